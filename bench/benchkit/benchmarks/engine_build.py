"""engine_build: `CLI build` of FROM busybox + COPY of a ~350 MB, 8,000-file tree + a RUN.

docker (its classic builder: DOCKER_BUILDKIT=0), podman (buildah) and knarr, each
private to the run (engines.py), build the same context with `--no-cache`, so
every run copies the whole tree, commits its layer and runs the RUN step in a
container; each run is timed from the CLI's start (which sends the context) to
its exit (knarr@baseline too, with KNARR_BENCH_BASELINE). The tree is made once,
deterministically, in the scratch directory:
8,000 files under 40 x 10 directories, most of them 0.5-24 KiB and 40 large
ones, 350 MiB in all, of incompressible bytes. Goal (issue 9): knarr within
0.33x docker.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from benchkit.benchmarks.engines import Engines
from benchkit.registry import Goal, register

FILES = 8000
TOTAL = 350 * 1024 * 1024
DOCKERFILE = "FROM busybox\nCOPY tree /tree\nRUN echo built > /built\n"


def make_tree(root: Path, files: int = FILES, total: int = TOTAL, seed: int = 9) -> None:
    """The same tree on every host: `files` files of `total` bytes in all."""
    rnd = random.Random(seed)
    block = rnd.randbytes(1 << 20)
    sizes = [rnd.randint(512, 24 * 1024) for _ in range(files - 40)]
    sizes += [(total - sum(sizes)) // 40] * 40
    for i, size in enumerate(sizes):
        where = root / f"d{i % 40:02d}" / f"s{(i // 40) % 10}"
        where.mkdir(parents=True, exist_ok=True)
        with open(where / f"f{i:05d}.bin", "wb") as f:
            f.write(i.to_bytes(8, "little"))
            left, offset = size - 8, (i * 4099) % len(block)
            while left > 0:
                piece = block[offset:offset + left]
                f.write(piece)
                left -= len(piece)
                offset = 0


@register(
    "engine_build",
    summary="wall time of `CLI build --no-cache` of FROM busybox + COPY 350 MiB / 8,000 "
            "files + RUN (docker classic builder, podman, knarr; private daemons)",
    goals=(Goal(knarr="knarr", peer="docker", max_ratio=0.33),),
)
def engine_build(workdir: Path):
    """The context is made first; then the engines start and get knarr's busybox."""
    context = workdir / "context"
    make_tree(context / "tree")
    (context / "Dockerfile").write_text(DOCKERFILE)
    os.sync()
    engines = Engines(workdir)
    try:
        engines.start()
    except BaseException:
        engines.stop()
        raise

    def argv(engine: str):
        def build(run_id: str) -> list[str]:
            line = engines.argv(engine, "build", "--no-cache", "-q", "-t",
                                f"kbbuild:{run_id.lower()}", str(context))
            return ["env", "DOCKER_BUILDKIT=0", *line] if engine == "docker" else line
        return build

    return [engines.subject(e, argv=argv(e)) for e in engines.engines()]
