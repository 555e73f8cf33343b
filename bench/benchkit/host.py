"""The host side of a bench run: set-up, scratch bundles, and a description of the machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO = BENCH_DIR.parent
VENV_BIN = REPO / ".venv" / "bin"


def run_setup() -> tuple[bool, str]:
    """Run bench/setup.sh; return whether it succeeded and what it said."""
    try:
        done = subprocess.run([str(BENCH_DIR / "setup.sh")], capture_output=True, text=True,
                              timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"run bench/setup.sh: {exc}"
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def make_busybox_bundle(directory: Path, args: list[str]) -> Path:
    """Make a busybox-static OCI bundle running args, with scripts/busybox-bundle."""
    done = subprocess.run([str(REPO / "scripts" / "busybox-bundle"), str(directory), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"make busybox bundle {directory}: {done.stderr.strip()}")
    return directory


def git_commit() -> str:
    """The checked-out commit of the repo, with '-dirty' when the tree has changes."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                              text=True, timeout=30, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def cgroup_layout() -> str:
    """'v2', 'hybrid' or 'v1', read from the mount table."""
    types = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ", 1)[1].split()
        if fields[0] in ("cgroup", "cgroup2"):
            types.add(fields[0])
    if types == {"cgroup2"}:
        return "v2"
    return "hybrid" if "cgroup2" in types else "v1"


def cpu_ticks() -> list[int]:
    """The aggregate `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    return [int(x) for x in first[1:9]]


def steal_share(before: list[int], after: list[int]) -> float:
    """The fraction of CPU time the hypervisor took from this VM between two readings."""
    delta = [a - b for a, b in zip(after, before, strict=True)]
    return delta[7] / sum(delta) if sum(delta) else 0.0


def describe() -> dict[str, object]:
    """What a reader of a result file needs to know about the machine that made it."""
    return {
        "kernel": platform.release(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cgroups": cgroup_layout(),
        "python": sys.version.split()[0],
        "knarr_commit": git_commit(),
    }
