"""Interop with a real dockerd, both ways: knarr save -> docker load/run, docker save -> knarr load.

The module starts one dockerd of its own (its own socket, data root and exec
root, no bridge, no iptables) and stops it at the end. Skipped, with the
reason, when dockerd is not installed (Debian package docker.io).
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from knarr import sys as ksys
from knarr.images import GREETING, ImageStore, busybox, hello_world, load, save

DOCKERD = shutil.which("dockerd")
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(DOCKERD is None or DOCKER is None,
                       reason="dockerd is not installed (Debian package docker.io)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                       reason="needs busybox-static (/bin/busybox)"),
]

_DOCKERFILE = """\
FROM busybox:latest
RUN mkdir -p /data/keep /data/drop && echo a > /data/keep/a && echo b > /data/drop/b \\
 && ln /data/keep/a /data/keep/hard && ln -s /data/keep/a /data/sym && mknod /data/null c 1 3
RUN rm -rf /data/drop && rm /etc/group && mkdir /data/drop && echo new > /data/drop/new
RUN dd if=/dev/urandom of=/data/big bs=1M count=6 && ln /data/big /data/big-hard \
 && mkdir -p /data/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn && echo deep > /data/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn
ENV GREETING=hi
CMD ["cat", "/data/keep/a"]
"""


def _hugetlb_fix() -> None:
    """dockerd 20.10 on a cgroup v1 host wants a hugetlb hierarchy to exist."""
    base = "/sys/fs/cgroup"
    if os.path.exists(f"{base}/cgroup.controllers") or os.path.ismount(f"{base}/hugetlb"):
        return
    os.makedirs(f"{base}/hugetlb", exist_ok=True)
    subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", f"{base}/hugetlb"],
                   check=False)


@pytest.fixture(scope="module")
def docker(tmp_path_factory):
    """A function running the docker CLI against this module's own dockerd."""
    _hugetlb_fix()
    state = tmp_path_factory.mktemp("dockerd")
    sock = f"unix://{state}/docker.sock"
    log = open(state / "dockerd.log", "wb")
    proc = subprocess.Popen([DOCKERD, "--host", sock, "--data-root", str(state / "data"),
                             "--exec-root", str(state / "exec"), "--pidfile",
                             str(state / "dockerd.pid"), "--bridge=none", "--iptables=false"],
                            stdout=log, stderr=subprocess.STDOUT)

    def run(*args, check=True, **kwargs):
        return subprocess.run([DOCKER, "-H", sock, *args], capture_output=True, check=check,
                              **kwargs)

    try:
        deadline = time.monotonic() + 30
        while run("version", check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start: {(state / 'dockerd.log').read_text()}")
            time.sleep(0.2)
        yield run
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(state / "data", ignore_errors=True)


@pytest.fixture(scope="module")
def knarr(tmp_path_factory):
    store = ImageStore(str(tmp_path_factory.mktemp("knarr") / "root"))
    yield store
    store.close()


@pytest.fixture(scope="module")
def loaded(docker, knarr, tmp_path_factory):
    """knarr's busybox and hello-world, saved by knarr and loaded into dockerd."""
    ids = {"busybox:latest": busybox(knarr), "hello-world:latest": hello_world(knarr)}
    path = tmp_path_factory.mktemp("save") / "knarr.tar"
    with open(path, "wb") as f:
        save(knarr, list(ids), f, format="docker")
    out = docker("load", "-i", str(path)).stdout.decode()
    assert "Loaded image: busybox:latest" in out and "Loaded image: hello-world:latest" in out
    return ids


def test_knarr_images_keep_their_ids_in_docker(docker, loaded):
    for ref, image_id in loaded.items():
        assert docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.decode().strip() \
            == image_id


def test_knarr_busybox_runs_in_docker(docker, loaded):
    out = docker("run", "--rm", "--network", "none", "busybox:latest", "sh", "-c",
                 "echo knarr-$((6*7)) && ls /bin/ls && id -un")
    assert out.stdout.decode().split() == ["knarr-42", "/bin/ls", "root"]


def test_knarr_hello_world_runs_in_docker(docker, loaded):
    out = docker("run", "--rm", "--network", "none", "hello-world:latest")
    assert out.stdout == GREETING


@pytest.fixture(scope="module")
def built(docker, loaded, tmp_path_factory):
    """An image docker builds on knarr's busybox: several layers, whiteouts, an opaque dir."""
    context = tmp_path_factory.mktemp("context")
    (context / "Dockerfile").write_text(_DOCKERFILE)
    docker("build", "--network", "none", "-t", "knarr-test/built:v1", str(context),
           env=dict(os.environ, DOCKER_BUILDKIT="0"))
    info = json.loads(docker("image", "inspect", "knarr-test/built:v1").stdout)[0]
    path = context / "built.tar"
    docker("save", "-o", str(path), "knarr-test/built:v1")
    return info, path


def test_docker_save_loads_into_knarr_with_same_id_and_layers(knarr, built):
    info, path = built
    with open(path, "rb") as f:
        (result,) = load(knarr, f)
    assert result["Id"] == info["Id"]
    mine = knarr.inspect("knarr-test/built:v1")
    assert mine["RootFS"]["Layers"] == info["RootFS"]["Layers"]
    assert mine["Config"]["Cmd"] == ["cat", "/data/keep/a"]
    assert mine["RepoTags"] == ["knarr-test/built:v1"]
    assert knarr.check() == []


def test_docker_image_runs_from_knarr_snapshots(knarr, built, tmp_path):
    """Mount the loaded image's layers the way the runtime will, then run its command."""
    info, _ = built
    top = knarr.chain_ids(info["Id"])[-1]
    (mount,) = knarr.snapshots.prepare("run-test", top)
    target = tmp_path / "rootfs"
    target.mkdir()
    ksys.mount("overlay", str(target), "overlay", 0, ",".join(mount["options"]))
    try:
        script = ("cat /data/keep/a; ls /data/drop; test -e /etc/group || echo no-group; "
                  "stat -c %h /data/keep/hard; readlink /data/sym; stat -c %t,%T /data/null")
        out = subprocess.run(["chroot", str(target), "/bin/sh", "-c", script],
                             capture_output=True, check=True).stdout.decode().split()
        assert out == ["a", "new", "no-group", "2", "/data/keep/a", "1,3"]
    finally:
        ksys.umount2(str(target))
        knarr.snapshots.remove("run-test")


def test_docker_save_knarr_load_save_docker_load_round_trips(docker, knarr, built, tmp_path):
    """The big layer (> 4 MB) is kept as a layer recipe, no blob; knarr's save makes it
    again, byte for byte: dockerd loads the same image id and layers, and runs it."""
    info, path = built
    with open(path, "rb") as f:
        assert load(knarr, f)[0]["Id"] == info["Id"]
    layers = knarr.get(info["Id"])["layers"]
    recipes = [layer for layer in layers if not knarr.content.exists(layer["digest"])]
    assert len(recipes) == 1 and recipes[0]["diff_size"] > (6 << 20)
    before = docker("run", "--rm", "--network", "none", "knarr-test/built:v1",
                    "md5sum", "/data/big").stdout
    again = tmp_path / "again.tar"
    with open(again, "wb") as f:
        save(knarr, ["knarr-test/built:v1"], f)
    docker("rmi", "knarr-test/built:v1")
    assert "Loaded image: knarr-test/built:v1" in docker("load", "-i", str(again)).stdout.decode()
    mine = json.loads(docker("image", "inspect", "knarr-test/built:v1").stdout)[0]
    assert mine["Id"] == info["Id"] and mine["RootFS"]["Layers"] == info["RootFS"]["Layers"]
    assert docker("run", "--rm", "--network", "none", "knarr-test/built:v1",
                  "md5sum", "/data/big").stdout == before
    assert knarr.check() == []


def test_docker_resave_of_a_knarr_image_round_trips(docker, loaded, tmp_path):
    path = tmp_path / "again.tar"
    docker("save", "-o", str(path), "hello-world:latest")
    fresh = ImageStore(str(tmp_path / "fresh"))
    with open(path, "rb") as f:
        assert load(fresh, f)[0]["Id"] == loaded["hello-world:latest"]
    fresh.close()
