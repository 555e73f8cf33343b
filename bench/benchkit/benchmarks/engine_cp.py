"""engine_cp_out / engine_cp_in: `CLI cp` of a 300 MB tree out of and into a container.

The same private engines as engine_hello (engines.py): knarr's CLI against a
knarrd of its own, the docker CLI against a dockerd of its own (own socket,
data root and exec root, --bridge=none --iptables=false, knarr's busybox loaded
into it). podman is left out: the goal is against docker, and each run moves
300 MB. The tree (20 directories, each with ten 1 MiB files and a hundred
50 KiB files: 2,200 files, 298 MiB of random bytes) is made once on the host
and copied into one `sleep` container per engine before the first clock starts.
Every run copies the whole tree again over the previous copy (out: into a
directory of the scratch dir; in: into /in of the container), so no run pays
for a removal and the disk never holds more than one extra tree per engine.
Goal (issue 10): knarr within 0.5x docker, both ways. With KNARR_BENCH_BASELINE
set, knarr@baseline (that checkout's CLI and knarrd) copies the same tree too.
"""

from __future__ import annotations

import os
from pathlib import Path

from benchkit.benchmarks.engine_hello import prepare
from benchkit.benchmarks.engines import _must
from benchkit.registry import Goal, register

ENGINES = ("docker", "knarr", "knarr@baseline")


def make_tree(top: Path) -> Path:
    """The 298 MiB tree (made once per benchmark)."""
    for d in range(20):
        sub = top / f"dir{d:02d}"
        sub.mkdir(parents=True)
        for i in range(10):
            (sub / f"big{i}").write_bytes(os.urandom(1 << 20))
        for i in range(100):
            (sub / f"small{i:03d}").write_bytes(os.urandom(50 << 10))
    return top


def _engines(engines) -> list[str]:
    return [e for e in ENGINES if e in engines.engines()]


def _prepare(workdir: Path):
    engines = prepare(workdir)
    try:
        tree = make_tree(workdir / "tree")
        ids = {}
        for e in _engines(engines):
            if e in engines.unavailable:
                continue
            ids[e] = engines.run_detached(e, f"kbcp{e.replace('@', '-')}", "sleep", "100000")
            _must(engines.argv(e, "exec", ids[e], "mkdir", "/in"))
            _must(engines.argv(e, "cp", str(tree), f"{ids[e]}:/tree"), timeout=300)
            (workdir / "out" / e).mkdir(parents=True)
    except BaseException:
        engines.stop()
        raise
    return engines, ids, tree


def _cp_subjects(workdir: Path, paths):
    """One subject per engine running `CLI cp SRC DST`, where `paths(engine, container id,
    tree, run_id)` gives SRC and DST."""
    engines, ids, tree = _prepare(workdir)
    return [engines.subject(e, argv=lambda run_id, e=e: engines.argv(
        e, "cp", *paths(e, ids[e], tree, run_id))) for e in _engines(engines)]


@register(
    "engine_cp_out",
    summary="wall time of `CLI cp C:/tree DIR`, a 298 MiB tree of 2,200 files (docker, knarr)",
    goals=(Goal(knarr="knarr", peer="docker", max_ratio=0.5),),
)
def engine_cp_out(workdir: Path):
    """Out of the container, over the previous copy."""
    return _cp_subjects(workdir, lambda e, cid, tree, run_id: (
        f"{cid}:/tree", str(workdir / "out" / e)))


@register(
    "engine_cp_in",
    summary="wall time of `CLI cp DIR C:/in`, a 298 MiB tree of 2,200 files (docker, knarr)",
    goals=(Goal(knarr="knarr", peer="docker", max_ratio=0.5),),
)
def engine_cp_in(workdir: Path):
    """Into the container, over the previous copy."""
    return _cp_subjects(workdir, lambda e, cid, tree, run_id: (str(tree), f"{cid}:/in"))


@register(
    "engine_cp_out_fresh",
    summary="wall time of `CLI cp C:/tree NEWDIR`, the same tree into a new directory each "
            "run (docker, knarr)",
    goals=(Goal(knarr="knarr", peer="docker", max_ratio=0.5),),
)
def engine_cp_out_fresh(workdir: Path):
    """Out of the container into a directory that does not exist yet: nothing to unlink or
    rewrite, the common case. Every run's copy stays until the benchmark ends (a removal
    between runs would make the next run pay for the freed blocks and inodes)."""
    return _cp_subjects(workdir, lambda e, cid, tree, run_id: (
        f"{cid}:/tree", str(workdir / "out" / e / f"r{run_id}")))


@register(
    "engine_cp_in_fresh",
    summary="wall time of `CLI cp DIR C:/NEWDIR`, the same tree into a new directory of the "
            "container each run (docker, knarr)",
    goals=(Goal(knarr="knarr", peer="docker", max_ratio=0.5),),
)
def engine_cp_in_fresh(workdir: Path):
    """Into a directory of the container that does not exist yet (nothing to rewrite)."""
    return _cp_subjects(workdir, lambda e, cid, tree, run_id: (
        str(tree), f"{cid}:/in/r{run_id}"))
