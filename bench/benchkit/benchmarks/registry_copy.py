"""registry_copy: skopeo copy of a >= 300 MB image into and out of knarr's registry and distribution's.

Both registries run for the whole benchmark, started by prepare on free
127.0.0.1 ports with their own roots: `knarr-registry serve` (as
`python -m knarr.registry`) and distribution 2.8 (Debian's `docker-registry`,
filesystem storage). The image is an OCI layout made locally: busybox, the
host's Python library trees as a plain tar layer, and 100 MB random
layers (incompressible), then more random layers until the blobs reach 300 MB; all
plain tar layers, so skopeo does no compression work.

Subjects, each a timed `skopeo copy`:
- `<registry> push`: the layout to a fresh repository per run. skopeo's blob
  cache (which would turn the push into cross-repository mounts) is hidden
  under a private tmpfs (`unshare -m`), so every run sends every byte.
- `<registry> pull`: the seeded repository to a fresh OCI layout, then removed.

Median wall time ratios knarr / distribution are throughput ratios inverted:
a ratio <= 1.0 means knarr moves the image at least as fast.

Also measured once in prepare, per server: resident memory (VmRSS, sampled
every 20 ms) before and at its peak during a streamed 1 GiB blob upload, and
that upload's throughput; they are in each subject's notes in the report.
The servers are stopped by the last sweep (`leftovers`).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

from benchkit.registry import Goal, register
from benchkit.subjects import KNARR, PEER, Subject, missing_program, program_version

REPO_ROOT = Path(__file__).resolve().parents[3]
PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
DISTRIBUTION = shutil.which("docker-registry")
MIN_IMAGE = 300_000_000
RANDOM_LAYER = 100 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PLAIN_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _tar_of(paths: list[str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            if os.path.exists(path):
                tar.add(path, arcname=path.lstrip("/"),
                        filter=lambda info: None if "__pycache__" in info.name else info)
    return out.getvalue()


def make_image(layout: Path) -> int:
    """The benchmark image as an OCI layout (tag `latest`); return its total blob bytes."""
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    layers = [_tar_of(["/bin/busybox"]), _tar_of(["/usr/lib/python3.11",
                                                   "/usr/lib/python3/dist-packages"])]
    total = sum(len(x) for x in layers)
    while total < MIN_IMAGE or len(layers) < 4:
        layers.append(_tar_of_random(RANDOM_LAYER))
        total += len(layers[-1])
    descs, diff_ids = [], []
    for layer in layers:
        descs.append({"mediaType": PLAIN_LAYER, **_blob(layout, layer)})
        diff_ids.append(descs[-1]["digest"])
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      **_blob(layout, config)},
                           "layers": descs}).encode()
    mdesc = {"mediaType": OCI_MANIFEST, **_blob(layout, manifest),
             "annotations": {"org.opencontainers.image.ref.name": "latest"}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [mdesc]}))
    return total + len(config) + len(manifest)


def _tar_of_random(size: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("random.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return out.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"registry on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"registry on port {port} did not answer")


def start_knarr(root: Path, port: int) -> subprocess.Popen:
    """knarr's registry on 127.0.0.1:port."""
    proc = subprocess.Popen([PYTHON, "-m", "knarr.registry", "serve", "--root", str(root),
                             "--addr", f"127.0.0.1:{port}"], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_listening(port, proc)
    return proc


def start_distribution(root: Path, port: int) -> subprocess.Popen:
    """distribution (docker-registry) on 127.0.0.1:port with filesystem storage."""
    root.mkdir(parents=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([DISTRIBUTION, "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_listening(port, proc)
    return proc


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def upload_rss(port: int, pid: int, size: int = 1 << 30) -> dict:
    """Stream a `size`-byte blob (PATCH, chunked) and sample the server's RSS meanwhile."""
    chunk = os.urandom(1 << 20)
    digest = hashlib.sha256()
    for _ in range(size // len(chunk)):
        digest.update(chunk)
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(_rss_kib(pid))
            time.sleep(0.02)

    before = _rss_kib(pid)
    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("POST", "/v2/rss/probe/blobs/uploads/")
    resp = conn.getresponse()
    resp.read()
    location = resp.headers["Location"]
    path = location.split("://", 1)[-1][location.split("://", 1)[-1].find("/"):] \
        if "://" in location else location
    conn.request("PATCH", path, body=(chunk for _ in range(size // len(chunk))),
                 encode_chunked=True)
    resp = conn.getresponse()
    resp.read()
    location = resp.headers["Location"]
    path = location.split("://", 1)[-1][location.split("://", 1)[-1].find("/"):] \
        if "://" in location else location
    sep = "&" if "?" in path else "?"
    conn.request("PUT", f"{path}{sep}digest=sha256:{digest.hexdigest()}", body=b"")
    resp = conn.getresponse()
    resp.read()
    elapsed = time.monotonic() - start
    stop.set()
    sampler.join()
    conn.close()
    if resp.status != 201:
        raise RuntimeError(f"1 GiB upload to port {port}: status {resp.status}")
    return {"rss_before_mib": round(before / 1024, 1),
            "rss_peak_mib": round(max(samples or [before]) / 1024, 1),
            "upload_mib_s": round(size / elapsed / (1 << 20), 1)}


def _push(layout: Path, port: int):
    def argv(run_id: str) -> list[str]:
        copy = (f"skopeo copy -q --dest-tls-verify=false oci:{layout}:latest "
                f"docker://127.0.0.1:{port}/push/{run_id.lower()}:latest")
        # skopeo's blob cache would mount rather than upload: hide it in a private tmpfs
        return ["unshare", "-m", "sh", "-c",
                "mkdir -p /var/lib/containers/cache && "
                f"mount -t tmpfs tmpfs /var/lib/containers/cache && {copy}"]
    return argv


def _pull(workdir: Path, port: int):
    def argv(run_id: str) -> list[str]:
        out = workdir / f"pull-{run_id}"
        return ["sh", "-c", f"skopeo copy -q --src-tls-verify=false "
                f"docker://127.0.0.1:{port}/seed/image:latest oci:{out}:latest; "
                f"status=$?; rm -rf {out}; exit $status"]
    return argv


def _seed(layout: Path, port: int) -> None:
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:latest",
                    f"docker://127.0.0.1:{port}/seed/image:latest"], check=True,
                   capture_output=True, timeout=600)


class Servers:
    """Both registries; `stop` ends them (run once, from the last sweep)."""

    def __init__(self, workdir: Path) -> None:
        self.procs: list[subprocess.Popen] = []
        self.knarr_port, self.dist_port = _free_port(), _free_port()
        self.procs.append(start_knarr(workdir / "knarr-root", self.knarr_port))
        self.procs.append(start_distribution(workdir / "distribution-root", self.dist_port))

    def stop(self) -> list[str]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        return []


@register(
    "registry_copy",
    summary="skopeo copy of a >=300 MB image into / out of a registry: knarr vs distribution 2.8",
    goals=(Goal(knarr="knarr push", peer="distribution push", max_ratio=1.0),
           Goal(knarr="knarr pull", peer="distribution pull", max_ratio=1.0)),
)
def registry_copy(workdir: Path) -> list[Subject]:
    """Start both registries, seed them, measure upload memory; return push and pull subjects."""
    missing = missing_program("skopeo") or (None if DISTRIBUTION else
                                            "docker-registry is not installed (Debian package "
                                            "docker-registry)")
    if missing:
        return [Subject(n, r, argv=lambda run_id: [], unavailable=missing)
                for n, r in (("distribution push", PEER), ("knarr push", KNARR))]
    layout = workdir / "image"
    size = make_image(layout)
    servers = Servers(workdir)
    try:
        _seed(layout, servers.knarr_port)
        _seed(layout, servers.dist_port)
        knarr_rss = upload_rss(servers.knarr_port, servers.procs[0].pid)
        dist_rss = upload_rss(servers.dist_port, servers.procs[1].pid)
    except BaseException:
        servers.stop()
        raise
    image = {"image_bytes": str(size)}
    knarr_notes = {**image, **{k: str(v) for k, v in knarr_rss.items()}}
    dist_notes = {**image, **{k: str(v) for k, v in dist_rss.items()}}
    print(f"registry_copy: image {size / 1e6:.0f} MB; 1 GiB upload: knarr {knarr_rss}, "
          f"distribution {dist_rss}", file=sys.stderr)
    dist_version = program_version("docker-registry")
    return [
        Subject("distribution push", PEER, argv=_push(layout, servers.dist_port),
                version=dist_version, notes=dist_notes, leftovers=servers.stop),
        Subject("knarr push", KNARR, argv=_push(layout, servers.knarr_port), notes=knarr_notes,
                leftovers=servers.stop),
        Subject("distribution pull", PEER, argv=_pull(workdir, servers.dist_port),
                version=dist_version, notes=dist_notes, leftovers=servers.stop),
        Subject("knarr pull", KNARR, argv=_pull(workdir, servers.knarr_port),
                notes=knarr_notes, leftovers=servers.stop),
    ]
