"""Helpers for the registry tests: a server in a subprocess, OCI layouts, a tiny client.

Holds no tests itself; the registry test modules import it.
"""

import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RegistryProcess:
    """`knarr-registry serve` on 127.0.0.1 and a free port, in its own process."""

    def __init__(self, root: str, *extra: str, port: int = 0) -> None:
        self.root = root
        self.extra = extra
        self.port = port
        self.proc = None

    def start(self) -> "RegistryProcess":
        """Start and wait until it listens."""
        argv = [sys.executable, "-m", "knarr.registry", "serve",
                "--addr", f"127.0.0.1:{self.port}", "--root", self.root, *self.extra]
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, cwd=REPO, text=True)
        line = self.proc.stderr.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"registry did not start: {line}{self.proc.stderr.read()}")
        self.port = int(line.strip().rsplit(":", 1)[1])
        return self

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGKILL to crash it) and reap it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self) -> "RegistryProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tar_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip layer of regular files; return (compressed bytes, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            tar.addfile(info, io.BytesIO(data))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    return gzip.compress(raw.getvalue(), mtime=0), diff_id


def write_blob(layout: str, data: bytes) -> dict:
    """Store bytes in an OCI layout; return their descriptor (without media type)."""
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def make_layout(layout: str, layers: list[dict[str, bytes]], tag: str = "latest") -> str:
    """An OCI image layout with one image of the given file layers; return its manifest digest."""
    os.makedirs(layout, exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    descs, diff_ids = [], []
    for files in layers:
        blob, diff_id = _tar_layer(files)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      **write_blob(layout, blob)})
        diff_ids.append(diff_id)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **write_blob(layout, config)},
        "layers": descs}).encode()
    mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             **write_blob(layout, manifest),
             "annotations": {"org.opencontainers.image.ref.name": tag}}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
    return mdesc["digest"]


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run skopeo; raise with its stderr on failure."""
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)}: {proc.stderr}")
    return proc


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll until `predicate()` is true or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
