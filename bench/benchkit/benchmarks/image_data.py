"""The big test image of the image benchmarks, and a private dockerd to compare with.

Not a benchmark itself (it is not in MODULES): `image_unpack` and `image_load`
import it.

The image has two gzip layers: the running interpreter's standard library
tree (its lib dir without site-packages: about 250 MB in about 8,000 entries)
and one 100 MB file of random bytes. Making it takes a minute (gzip of 350
MB, then a `docker load` and `docker save` round trip), so it is cached under
bench/results/cache/ (git-ignored) and made again only when the cache is
missing, incomplete or of another recipe.

Files in the cache directory:

    stdlib.tar.gz, blob.tar.gz   the two layers, as `tar -xzf` takes them
    image.tar                    `docker save` output of the image (uncompressed
                                 layers, as Docker writes them)
    meta.json                    diff ids, sizes, entry count, recipe version

With KNARR_BENCH_BASELINE=DIR (a checkout of another knarr revision), both
benchmarks also time that revision's code as "knarr@baseline".
"""

from __future__ import annotations

import atexit
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
from pathlib import Path

from benchkit.dockernet import DockerBridge
from benchkit.host import BENCH_DIR

# A checkout of another knarr (e.g. `git worktree add /tmp/base HEAD~3`) to time beside
# this one, as the subject "knarr@baseline": before/after figures from the same run.
BASELINE = os.environ.get("KNARR_BENCH_BASELINE") or None

CACHE = BENCH_DIR / "results" / "cache" / "image"
RECIPE = 1
TAG = "knarr-bench/stdlib:latest"
BLOB_BYTES = 100 << 20
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
DOCKERD = shutil.which("dockerd")


def stdlib_dir() -> Path:
    """The standard library of the interpreter running the benchmark."""
    return Path(sysconfig.get_paths()["stdlib"])


def _sha256_of_gunzipped(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return f"sha256:{h.hexdigest()}", size


def _make_layers(cache: Path) -> dict:
    """Write stdlib.tar.gz and blob.tar.gz; return their diff ids and sizes."""
    lib = stdlib_dir()
    subprocess.run(["tar", "-C", str(lib), "--exclude=./site-packages", "-czf",
                    str(cache / "stdlib.tar.gz.tmp"), "."], check=True)
    os.rename(cache / "stdlib.tar.gz.tmp", cache / "stdlib.tar.gz")
    blob_dir = cache / "blob-src"
    shutil.rmtree(blob_dir, ignore_errors=True)
    (blob_dir / "data").mkdir(parents=True)
    with open(blob_dir / "data" / "random.bin", "wb") as f:
        for _ in range(BLOB_BYTES >> 20):
            f.write(os.urandom(1 << 20))
    subprocess.run(["tar", "-C", str(blob_dir), "-czf", str(cache / "blob.tar.gz.tmp"),
                    "data"], check=True)
    shutil.rmtree(blob_dir)
    os.rename(cache / "blob.tar.gz.tmp", cache / "blob.tar.gz")
    meta = {"recipe": RECIPE, "stdlib": str(lib), "layers": []}
    for name in ("stdlib.tar.gz", "blob.tar.gz"):
        diff_id, size = _sha256_of_gunzipped(cache / name)
        with tarfile.open(cache / name, "r:gz") as t:
            entries = sum(1 for _ in t)
        meta["layers"].append({"file": name, "diff_id": diff_id, "size": size,
                               "gzip_size": (cache / name).stat().st_size,
                               "entries": entries})
    return meta


def _docker_archive(cache: Path, meta: dict, out: Path) -> None:
    """A docker-load tarball of the two layers (what `docker save` is made from)."""
    diff_ids = [layer["diff_id"] for layer in meta["layers"]]
    config = {"architecture": "amd64" if os.uname().machine == "x86_64" else "arm64",
              "os": "linux", "created": "2026-01-01T00:00:00Z",
              "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created_by": "stdlib"}, {"created_by": "blob"}]}
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        _add(t, config_name, config_bytes)
        layers = []
        for i, layer in enumerate(meta["layers"]):
            info = tarfile.TarInfo(f"layer{i}/layer.tar")
            info.size = layer["size"]
            with gzip.open(cache / layer["file"], "rb") as plain:
                t.addfile(info, plain)
            layers.append(info.name)
        manifest = [{"Config": config_name, "RepoTags": [TAG], "Layers": layers}]
        _add(t, "manifest.json", json.dumps(manifest).encode())


def _add(t: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def ensure_image(docker: Dockerd | None = None) -> tuple[Path, dict]:
    """The cache directory, made if needed, and its meta.json.

    image.tar is made only when a dockerd is given (it is `docker save` output).
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    meta_path = CACHE / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("recipe") != RECIPE or not all((CACHE / n).exists()
                                               for n in ("stdlib.tar.gz", "blob.tar.gz")):
        print("image benchmarks: making the test image layers (once; cached in "
              f"{CACHE})", file=sys.stderr)
        meta = _make_layers(CACHE)
        (CACHE / "image.tar").unlink(missing_ok=True)
        _write_json(meta_path, meta)
    if docker is not None and not (CACHE / "image.tar").exists():
        print("image benchmarks: making image.tar with docker save (once)", file=sys.stderr)
        staged = CACHE / "made.tar"
        _docker_archive(CACHE, meta, staged)
        docker.run("load", "-i", str(staged))
        staged.unlink()
        docker.run("save", "-o", str(CACHE / "image.tar.tmp"), TAG)
        os.rename(CACHE / "image.tar.tmp", CACHE / "image.tar")
        docker.run("rmi", "-f", TAG)
    return CACHE, meta


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.rename(tmp, path)


def fresh_dir(base: Path, name: str) -> Path:
    """Name a new directory under `base` for one run, after flushing dirty pages.

    Called while a subject's command line is built, before its clock starts, so
    the write-back of an earlier run's files (tar leaves 350 MB dirty) does not
    fall on the run being timed. Earlier runs are *not* removed until the
    benchmark ends: on an ext4 without a journal (the development VM's), inode
    allocation skips every inode freed in the last 60 s (300 s while its
    inode-table block is dirty), reading that block for each, so files created
    just after 8,000 were deleted nearby cost about 1 ms each instead of 40 us;
    removing run N-1 would have slowed run N.
    """
    base.mkdir(parents=True, exist_ok=True)
    os.sync()
    return base / name


class Dockerd:
    """A dockerd of the benchmark's own: own socket, data root, exec root.

    Without `bridge`, no networking (`--bridge=none --iptables=false`); with one,
    Docker's default bridge networking on that bridge of the bench's own (made at
    start, and the host put back as it was at stop: benchkit/dockernet.py).
    """

    def __init__(self, state: Path, bridge: DockerBridge | None = None) -> None:
        self.state = state
        self.sock = f"unix://{state}/docker.sock"
        self.proc: subprocess.Popen | None = None
        self.bridge = bridge

    def start(self) -> None:
        """Start it and wait until it answers; RuntimeError if it does not."""
        self.state.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        if self.bridge is not None:
            self.bridge.up()
            net = self.bridge.dockerd_args()
        else:
            net = ["--bridge=none", "--iptables=false"]
        log = open(self.state / "dockerd.log", "wb")  # noqa: SIM115 - dockerd's, till stop
        self.proc = subprocess.Popen(
            [DOCKERD, "--host", self.sock, "--data-root", str(self.state / "data"),
             "--exec-root", str(self.state / "exec"), "--pidfile",
             str(self.state / "dockerd.pid"), *net],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        if self.bridge is not None:
            self.bridge.started(self.proc.pid)
        deadline = time.monotonic() + 60
        while self.run("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("dockerd did not start: "
                                   + (self.state / "dockerd.log").read_text()[-2000:])
            time.sleep(0.2)

    def argv(self, *args: str) -> list[str]:
        """A docker CLI command line against this dockerd."""
        return [DOCKER, "-H", self.sock, *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the docker CLI against this dockerd; RuntimeError on failure if `check`."""
        done = subprocess.run(self.argv(*args), capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
        return done

    def version(self) -> str:
        """The daemon's version, as `docker version` reports it."""
        done = self.run("version", "--format", "{{.Server.Version}}", check=False)
        return f"dockerd {done.stdout.strip()}" if done.returncode == 0 else ""

    def stop(self, remove: bool = True) -> None:
        """Stop the daemon (idempotent), put the host's networking back as it was (with a
        bridge) and, with `remove`, remove its state."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.bridge is not None:
            self.bridge.down()
        if remove:
            shutil.rmtree(self.state, ignore_errors=True)


def missing_docker() -> str | None:
    """Why no private dockerd can be run here, or None."""
    if DOCKERD is None or DOCKER is None:
        return "dockerd or docker: not installed (Debian package docker.io)"
    return None
