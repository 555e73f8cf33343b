"""knarr pulls from distribution 2.8 (Debian's docker-registry) on 127.0.0.1.

Each test has its own knarrd and its own registry (config, storage, port);
images are seeded with skopeo from OCI layouts made here. Pull by tag and by
digest with Docker's progress stream, a multi-arch index and --platform,
layers already present skipped, and the image runs.
"""

import json
import os
import subprocess
import sys

import pytest
from distribution_support import Distribution, manifest_digest, skopeo_copy
from test_api_support import knarrd_fixture  # noqa: F401
from test_registry_support import make_layout, write_blob

pytestmark = pytest.mark.privileged
KNARR = os.path.join(os.path.dirname(sys.executable), "knarr")
BUSYBOX = "/bin/busybox"


def knarr(daemon, *args, env=None, input=None, check=True):
    full = {**os.environ, "DOCKER_CONFIG": os.path.join(daemon.base, "cli"), **(env or {})}
    full.pop("DOCKER_HOST", None)
    proc = subprocess.run([KNARR, "-H", f"unix://{daemon.sock}", *args], capture_output=True,
                          text=True, env=full, input=input, timeout=180)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr, daemon.log_text()[-3000:])
    return proc


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    path = tmp_path_factory.mktemp("layout") / "img"
    with open(BUSYBOX, "rb") as f:
        files = {"bin/busybox": f.read(), "bin/sh": b""}
    digest = make_layout(str(path), [{"bin/busybox": files["bin/busybox"]},
                                     {"etc/motd": b"pulled from distribution\n",
                                      "data/random.bin": os.urandom(1 << 20)}])
    return str(path), digest


@pytest.fixture()
def registry(tmp_path):
    with Distribution(tmp_path / "registry") as reg:
        yield reg


def _stream(daemon, query: dict) -> tuple[int, list[dict]]:
    from test_api_support import _UnixConnection

    conn = _UnixConnection(daemon.sock, 120)
    import urllib.parse

    conn.request("POST", "/v1.41/images/create?" + urllib.parse.urlencode(query))
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    if resp.status != 200:
        return resp.status, [json.loads(body)]
    return 200, [json.loads(line) for line in body.splitlines() if line.strip()]


def test_pull_by_tag_and_digest_runs(knarrd, registry, layout):
    src, digest = layout
    ref = f"{registry.addr}/team/box"
    skopeo_copy(f"oci:{src}:latest", f"docker://{ref}:v1", "--dest-tls-verify=false")
    status, messages = _stream(knarrd, {"fromImage": ref, "tag": "v1"})
    assert status == 200, messages
    statuses = [m.get("status", "") for m in messages]
    assert statuses[0] == "Pulling from team/box" and messages[0]["id"] == "v1"
    layers = json.loads(open(os.path.join(src, "blobs", "sha256", digest[7:])).read())["layers"]
    for layer in layers:
        short = layer["digest"][7:19]
        mine = [m["status"] for m in messages if m.get("id") == short]
        assert mine[0] == "Pulling fs layer" and mine[-1] == "Pull complete", mine
        assert "Verifying Checksum" in mine and "Download complete" in mine
    assert any(m.get("progressDetail", {}).get("total") for m in messages)
    assert f"Digest: {digest}" in statuses
    assert statuses[-1] == f"Status: Downloaded newer image for {ref}:v1"
    info = knarrd.client.get(f"/images/{ref}:v1/json").json()
    assert info["RepoDigests"] == [f"{ref}@{digest}"]
    out = knarr(knarrd, "run", "--rm", f"{ref}:v1", "/bin/busybox", "cat", "/etc/motd")
    assert out.stdout == "pulled from distribution\n"
    # again: every layer is there already
    status, messages = _stream(knarrd, {"fromImage": ref, "tag": "v1"})
    assert {m["status"] for m in messages if m.get("id", "v1") != "v1"} == {"Already exists"}
    assert messages[-1]["status"] == f"Status: Image is up to date for {ref}:v1"
    # by digest, through the CLI
    knarrd.client.delete(f"/images/{ref}:v1")
    out = knarr(knarrd, "pull", f"{ref}@{digest}")
    assert f"Digest: {digest}" in out.stdout and out.stdout.endswith(f"{ref}@{digest}\n")
    assert knarrd.client.get(f"/images/{ref}@{digest}/json").status == 200
    assert knarr(knarrd, "image", "inspect", f"{ref}@{digest}").returncode == 0


def test_pull_errors_are_clear(knarrd, registry, layout):
    status, messages = _stream(knarrd, {"fromImage": f"{registry.addr}/no/such", "tag": "v1"})
    assert status == 404
    assert messages[0]["message"] == (f"manifest for {registry.addr}/no/such:v1 not found: "
                                      "manifest unknown: manifest unknown")
    out = knarr(knarrd, "pull", f"{registry.addr}/no/such:v1", check=False)
    assert out.returncode == 1 and "manifest unknown" in out.stderr
    # nothing listens there
    status, messages = _stream(knarrd, {"fromImage": "127.0.0.1:9/x/y", "tag": "v1"})
    assert status == 500 and "127.0.0.1:9" in messages[0]["message"]
    # distribution has no search API: said plainly
    out = knarr(knarrd, "search", f"{registry.addr}/team", check=False)
    assert out.returncode == 1 and f"registry {registry.addr} has no search API" in out.stderr
    # the built-in images still come without a registry
    status, messages = _stream(knarrd, {"fromImage": "busybox", "tag": "latest"})
    assert status == 200 and messages[-1]["status"].startswith("Status:")


def _platform_image(layout_dir: str, arch: str, marker: bytes) -> dict:
    """Another manifest in the layout for `arch`; return its descriptor with platform."""
    from test_registry_support import _tar_layer

    blob, diff_id = _tar_layer({"etc/arch": marker})
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             **write_blob(layout_dir, blob)}
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **write_blob(layout_dir, config)}, "layers": [layer]}).encode()
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            **write_blob(layout_dir, manifest), "platform": {"architecture": arch,
                                                             "os": "linux"}}


def test_multi_arch_index_and_platform(knarrd, registry, tmp_path):
    layout_dir = str(tmp_path / "multi")
    make_layout(layout_dir, [{"etc/arch": b"unused"}])
    amd = _platform_image(layout_dir, "amd64", b"amd64\n")
    arm = _platform_image(layout_dir, "arm64", b"arm64\n")
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [amd, arm]}).encode()
    idesc = {"mediaType": "application/vnd.oci.image.index.v1+json",
             **write_blob(layout_dir, index),
             "annotations": {"org.opencontainers.image.ref.name": "multi"}}
    with open(os.path.join(layout_dir, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [idesc]}, f)
    ref = f"{registry.addr}/team/multi"
    skopeo_copy(f"oci:{layout_dir}:multi", f"docker://{ref}:v1", "--all",
                "--dest-tls-verify=false")
    assert manifest_digest(registry.addr, "team/multi", "v1") == idesc["digest"]
    knarr(knarrd, "pull", "--platform", "linux/arm64", f"{ref}:v1")
    info = knarrd.client.get(f"/images/{ref}:v1/json").json()
    assert info["Architecture"] == "arm64" and info["Manifest"]["Digest"] == arm["digest"]
    assert info["RepoDigests"] == [f"{ref}@{idesc['digest']}"]
    knarr(knarrd, "pull", f"{ref}:v1")
    info = knarrd.client.get(f"/images/{ref}:v1/json").json()
    assert info["Architecture"] == "amd64" and info["Manifest"]["Digest"] == amd["digest"]
    out = knarr(knarrd, "pull", "--platform", "linux/s390x", f"{ref}:v1", check=False)
    assert out.returncode == 1 and "no manifest for platform linux/s390x" in out.stderr


def test_docker_hub_names_go_to_a_mirror_first(tmp_path, registry, layout):
    from test_api_support import Daemon

    skopeo_copy(f"oci:{layout[0]}:latest", f"docker://{registry.addr}/library/knarrtest:v1",
                "--dest-tls-verify=false")
    base = tmp_path / "d"
    base.mkdir()
    daemon = Daemon(str(base)).start("--registry-mirror", f"http://{registry.addr}")
    try:
        out = knarr(daemon, "pull", "knarrtest:v1")
        assert f"Digest: {layout[1]}" in out.stdout
        assert out.stdout.endswith("docker.io/library/knarrtest:v1\n")
        info = daemon.client.get("/images/knarrtest:v1/json").json()
        assert info["RepoDigests"] == [f"knarrtest@{layout[1]}"]
    finally:
        leftovers = daemon.teardown()
    assert not leftovers, leftovers


def test_the_docker_cli_pulls_and_pushes_through_knarrd(knarrd, registry, layout):
    """The real docker CLI reads knarr's progress streams (pull and push) as Docker's."""
    env = dict(os.environ, DOCKER_HOST=f"unix://{knarrd.sock}",
               DOCKER_CONFIG=os.path.join(knarrd.base, "docker-config"))
    ref = f"{registry.addr}/team/box"
    skopeo_copy(f"oci:{layout[0]}:latest", f"docker://{ref}:v1", "--dest-tls-verify=false")

    def docker(*args):
        done = subprocess.run(["docker", *args], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    out = docker("pull", f"{ref}:v1")
    assert "Pull complete" in out and f"Digest: {layout[1]}" in out, out
    assert out.rstrip().endswith(f"{ref}:v1")
    docker("tag", f"{ref}:v1", f"{ref}:v2")
    out = docker("push", f"{ref}:v2")
    assert f"v2: digest: {layout[1]} size:" in out, out
    out = docker("pull", "-q", f"{ref}@{layout[1]}")
    assert out.strip() == f"{ref}@{layout[1]}"
