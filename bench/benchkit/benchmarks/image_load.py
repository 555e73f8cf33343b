"""image_load: load the `docker save` tarball of the ~350 MB test image.

The tarball is image_data.py's image after a `docker load` / `docker save`
round trip through a private dockerd, so it is what Docker writes: one
uncompressed `layer.tar` per layer. Subjects, same run:

- docker load: `docker load -i image.tar` into a private dockerd (its own
  socket, data root and exec root, no bridge), a fresh one on an empty data
  root per run, started before the clock starts;
- knarr: `python -m knarr.images --root R load < image.tar` into a fresh
  root per run (blobs verified, layers unpacked, image registered).

Dirty pages are flushed before each run's clock starts; earlier runs are
kept until the end (image_data.fresh_dir says why). Use few iterations:
`bench/run.py image_load -n 3 -w 1 --timeout 300`.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from benchkit.benchmarks import image_data
from benchkit.host import VENV_BIN
from benchkit.registry import Goal, register
from benchkit.subjects import KNARR, PEER, Subject


def docker_subject(base: Path, image: Path, version: str) -> Subject:
    """`docker load` into a dockerd of its own per run, started (untimed) on an empty
    data root; the previous run's daemon is stopped but its files are kept till the end
    (see image_data.fresh_dir for why nothing is deleted between runs)."""
    current: list[image_data.Dockerd] = []

    def argv(run_id: str) -> list[str]:
        for daemon in current:
            daemon.stop(remove=False)
        current[:] = [image_data.Dockerd(image_data.fresh_dir(base, run_id))]
        current[0].start()
        os.sync()
        return current[0].argv("load", "-i", str(image))

    def leftovers() -> list[str]:
        # the sweep at the end of the benchmark: where the last private dockerd stops
        for daemon in current:
            daemon.stop(remove=False)
        return []

    return Subject(name="docker load", role=PEER, argv=argv, leftovers=leftovers,
                   version=version, notes={"data roots": str(base)})


_MAIN = "import sys; sys.path.insert(0, sys.argv.pop(1)); from knarr.images.__main__ import main; " \
    "sys.exit(main())"


def knarr_subject(image: Path, base: Path, source: str | None = None) -> Subject:
    """`python -m knarr.images load` into a fresh root each run (with the knarr package
    found in `source` rather than this checkout, when given)."""
    def argv(run_id: str) -> list[str]:
        root = image_data.fresh_dir(base, run_id)
        start = ["-c", _MAIN, source] if source else ["-m", "knarr.images"]
        command = [str(VENV_BIN / "python"), *start, "--root", str(root), "load"]
        return ["sh", "-c", f"exec {shlex.join(command)} < {shlex.quote(str(image))} >/dev/null"]

    return Subject(name="knarr@baseline" if source else "knarr", role=KNARR, argv=argv,
                   version=f"python {sys.version.split()[0]}", notes={"source": source or "."})


def unavailable(name: str, role: str, reason: str) -> Subject:
    """A subject that cannot run here, and why."""
    return Subject(name=name, role=role, argv=lambda run_id: [], unavailable=reason)


@register(
    "image_load",
    summary="load a `docker save` tarball of a ~350 MB, ~8,000-entry image into a fresh store",
    goals=(Goal(knarr="knarr", peer="docker load", max_ratio=0.5),),
)
def image_load(workdir: Path) -> list[Subject]:
    """docker load as the peer, knarr's load as knarr, on the same tarball."""
    reason = image_data.missing_docker()
    if reason is not None:
        cache, _ = image_data.ensure_image()
        image = cache / "image.tar"
        if not image.exists():
            return [unavailable("docker load", PEER, reason),
                    unavailable("knarr", KNARR, f"no cached image.tar to load ({reason})")]
        return [unavailable("docker load", PEER, reason), knarr_subject(image, workdir / "knarr")]
    cache, _ = image_data.ensure_image()
    image = cache / "image.tar"
    docker = image_data.Dockerd(workdir / "dockerd-prepare")
    docker.start()
    try:
        version = docker.version()
        if not image.exists():
            image_data.ensure_image(docker)
    finally:
        docker.stop()
    return [docker_subject(workdir / "dockerd", image, version),
            knarr_subject(image, workdir / "knarr")] + (
        [knarr_subject(image, workdir / "baseline", image_data.BASELINE)]
        if image_data.BASELINE else [])
