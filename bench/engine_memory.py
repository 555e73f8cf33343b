"""engine_memory: PSS of what each engine adds per running container, and its daemon's.

Not a timing, so not one of bench/run.py's benchmarks (the harness measures wall
time only); run it on its own, as root:

    .venv/bin/python bench/engine_memory.py [-n 5]

For each engine (private daemons, as in the engine_* benchmarks: see
benchkit/benchmarks/engines.py) it starts N busybox `sleep 1000` containers,
finds each container's parent process (knarr's monitor, podman's conmon,
docker's containerd-shim-runc-v2), sums their Pss from /proc/PID/smaps_rollup
and divides by N. The daemon figure is knarrd with its fork helper (and the
helper's spare monitor, when one waits for the next start), and dockerd with its
containerd. Everything is removed and stopped at the end. With
KNARR_BENCH_BASELINE=DIR, knarr@baseline (the knarr of DIR) is measured too.
Goals (issue 4): knarr <= 1.0 MiB per container, its daemon <= 60 MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.benchmarks.engines import Engines, _must  # noqa: E402

SHELLS = {"knarr": "knarr monitor", "podman": "conmon", "docker": "containerd-shim-runc-v2"}


def pss_kib(pid: int) -> int:
    """Pss of one process, in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def ppid(pid: int) -> int:
    """The parent of `pid`."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def children(pid: int) -> list[int]:
    """The direct children of `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if ppid(int(entry)) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def main() -> int:
    """Measure and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=5, help="containers per engine (5)")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench/engine_memory.py: must run as root", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="knarr-bench-engine_memory-"))
    engines = Engines(workdir)
    try:
        engines.start()
        for engine in engines.available():
            pids = []
            for i in range(args.n):
                cid = engines.run_detached(engine, f"kbmem{engine.replace('@', '-')}{i}",
                                           "sleep", "1000")
                pids.append(int(_must(engines.argv(engine, "inspect", "-f", "{{.State.Pid}}",
                                                   cid))))
            shells = {ppid(pid) for pid in pids}
            per = sum(pss_kib(s) for s in shells) / args.n
            line = (f"{engine:<7} {SHELLS[engine.split('@')[0]]}: {len(shells)} processes "
                    f"for {args.n} containers, {per / 1024:.2f} MiB PSS per container")
            if engine.startswith("knarr"):
                daemon = (engines.knarrd if engine == "knarr" else engines.baseline).proc.pid
                # the fork helper, and its children that are no container's monitor:
                # the spare monitor waiting for the next start is the daemon's cost
                helpers = children(daemon)
                spares = [c for h in helpers for c in children(h) if c not in shells]
                kib = pss_kib(daemon) + sum(pss_kib(c) for c in helpers + spares)
                line += (f"; knarrd + fork helper{' + spare' if spares else ''} "
                         f"{kib / 1024:.1f} MiB PSS")
            elif engine == "docker":
                daemon = engines.dockerd.proc.pid
                kib = pss_kib(daemon) + sum(pss_kib(c) for c in children(daemon))
                line += f"; dockerd + containerd {kib / 1024:.1f} MiB PSS"
            print(line, flush=True)
    finally:
        engines.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
