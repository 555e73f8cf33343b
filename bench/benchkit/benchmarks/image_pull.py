"""image_pull: pull a ~360 MB, three-layer image from a local distribution registry.

The image: a busybox layer, the interpreter's standard library tree (about
250 MB in about 8,000 entries, image_data's stdlib.tar.gz) and 100 MB of
random bytes (image_data's blob.tar.gz), all gzip, as an OCI layout pushed
once with skopeo to distribution 2.8 (Debian's `docker-registry`) on a free
127.0.0.1 port, filesystem storage, started in prepare.

Subjects, same run, each pulling the same reference into a store that does
not hold it (the image is removed, untimed, before each run, and dirty pages
flushed):
- knarr: `knarr pull -q` against a knarrd of the benchmark's own;
- docker pull: `docker pull -q` against a private dockerd (own socket, data
  root, exec root; 127.0.0.0/8 registries are insecure by default);
- podman pull: `podman pull -q --tls-verify=false` with its own root;
- with KNARR_BENCH_BASELINE=DIR, knarr@baseline: the same as knarr, the knarr of
  DIR (another checkout) on a knarrd of its own, for before/after figures of one run.

The daemons and the registry stop at the last sweep. Use few iterations:
`bench/run.py image_pull -n 5 -w 1 --timeout 300`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

from benchkit.benchmarks import engines, image_data
from benchkit.benchmarks.registry_copy import DISTRIBUTION, _free_port, start_distribution
from benchkit.registry import Goal, register
from benchkit.subjects import KNARR, PEER, Subject, missing_program, program_version

REPO = "bench/pull"


def _put(layout: Path, data: bytes | None = None, source: Path | None = None) -> dict:
    """A blob in the layout from bytes or (hard-linked) from a file; its descriptor."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    if data is not None:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}
    h = hashlib.sha256()
    with open(source, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    target = blobs / h.hexdigest()
    if not target.exists():
        os.link(source, target)
    return {"digest": f"sha256:{h.hexdigest()}", "size": source.stat().st_size}


def _busybox_layer() -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add("/bin/busybox", "bin/busybox")
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), "sha256:" + hashlib.sha256(plain).hexdigest()


def make_layout(layout: Path, cache: Path, meta: dict) -> int:
    """The OCI layout of the benchmark image; return its total blob bytes."""
    gz_type = "application/vnd.oci.image.layer.v1.tar+gzip"
    busybox, busybox_diff = _busybox_layer()
    layers = [{"mediaType": gz_type, **_put(layout, busybox)}]
    layers += [{"mediaType": gz_type, **_put(layout, source=cache / item["file"])}
               for item in meta["layers"]]
    diff_ids = [busybox_diff] + [item["diff_id"] for item in meta["layers"]]
    arch = "amd64" if os.uname().machine == "x86_64" else "arm64"
    config = json.dumps({"architecture": arch, "os": "linux",
                         "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      **_put(layout, config)},
                           "layers": layers}).encode()
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            **_put(layout, manifest),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return sum(layer["size"] for layer in layers)


def _quiet(argv: list[str]) -> None:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, timeout=300, check=False)


class _Stack:
    """The registry and the daemons of one benchmark, stopped by the last sweep."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.registry = None
        self.knarrd = engines.Knarrd(workdir / "knarrd")
        self.baseline = None
        if image_data.BASELINE:
            self.baseline = engines.Knarrd(workdir / "knarrd-baseline", *engines.baseline_launchers(
                image_data.BASELINE, workdir / "baseline-bin"))
        self.dockerd = image_data.Dockerd(workdir / "dockerd")
        self.stopped = False

    def stop(self) -> list[str]:
        if not self.stopped:
            self.stopped = True
            self.knarrd.stop()
            if self.baseline is not None:
                self.baseline.stop()
            self.dockerd.stop(remove=False)
            if self.registry is not None and self.registry.poll() is None:
                self.registry.terminate()
                self.registry.wait(30)
            engines.unmount_under(self.workdir)
        return []


def _podman(workdir: Path, *args: str) -> list[str]:
    s = workdir / "podman"
    return ["podman", "--root", str(s / "root"), "--runroot", str(s / "run"), "--tmpdir",
            str(s / "tmp"), "--cgroup-manager=cgroupfs", "--events-backend=file", *args]


@register(
    "image_pull",
    summary="pull a ~360 MB, 3-layer gzip image (busybox, stdlib tree, 100 MB random) from "
            "a local distribution registry",
    goals=(Goal(knarr="knarr", peer="docker pull", max_ratio=0.5),
           Goal(knarr="knarr", peer="podman pull", max_ratio=0.5)),
)
def image_pull(workdir: Path) -> list[Subject]:
    """knarr, docker and podman pulling the same image from the same registry."""
    stack = _Stack(workdir)
    try:
        return _prepare(workdir, stack)
    except BaseException:
        stack.stop()  # a prepare that fails half way leaves no registry or daemon running
        raise


def _prepare(workdir: Path, stack: _Stack) -> list[Subject]:
    for reason in (missing_program("skopeo"), None if DISTRIBUTION else
                   "docker-registry is not installed (Debian package docker-registry)"):
        if reason:
            raise RuntimeError(reason)
    cache, meta = image_data.ensure_image()
    total = make_layout(workdir / "layout", cache, meta)
    port = _free_port()
    stack.registry = start_distribution(workdir / "registry", port)
    ref = f"127.0.0.1:{port}/{REPO}:latest"
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                    f"oci:{workdir / 'layout'}:latest", f"docker://{ref}"], check=True,
                   timeout=600)
    notes = {"image bytes": str(total), "reference": ref}

    def leftovers() -> list[str]:
        return stack.stop()

    stack.knarrd.start()
    subjects = [Subject(name="knarr", role=KNARR, leftovers=leftovers, notes=notes,
                        version="knarrd", argv=_fresh(stack.knarrd.argv("rmi", "-f", ref),
                                                      stack.knarrd.argv("pull", "-q", ref)))]
    if stack.baseline is not None:
        stack.baseline.start()
        subjects.append(Subject(
            name="knarr@baseline", role=KNARR, leftovers=leftovers, notes=notes,
            version=f"knarr of {image_data.BASELINE}",
            argv=_fresh(stack.baseline.argv("rmi", "-f", ref),
                        stack.baseline.argv("pull", "-q", ref))))
    reason = image_data.missing_docker()
    if reason is None:
        try:
            stack.dockerd.start()
        except RuntimeError as exc:
            reason = str(exc)
    if reason is None:
        subjects.append(Subject(
            name="docker pull", role=PEER, leftovers=leftovers, notes=notes,
            version=stack.dockerd.version(),
            argv=_fresh(stack.dockerd.argv("rmi", "-f", ref),
                        stack.dockerd.argv("pull", "-q", ref))))
    else:
        subjects.append(Subject(name="docker pull", role=PEER, argv=lambda r: [],
                                unavailable=reason, leftovers=leftovers))
    reason = missing_program("podman")
    subjects.append(Subject(
        name="podman pull", role=PEER, leftovers=leftovers, notes=notes,
        version=program_version("podman") if reason is None else "", unavailable=reason,
        argv=_fresh(_podman(workdir, "rmi", "-f", ref),
                    _podman(workdir, "pull", "-q", "--tls-verify=false", ref))))
    return subjects


def _fresh(remove: list[str], pull: list[str]):
    """An argv builder: remove the image (untimed), flush dirty pages, then pull."""
    def argv(run_id: str) -> list[str]:
        _quiet(remove)
        os.sync()
        return pull
    return argv
