"""Shared by the hardening suite: the C probe, a private dockerd beside a private knarrd,
and how hard the suite runs.

`make test` runs the quick versions; `make hardening` sets KNARR_HARDENING=full for the
full rounds and KNARR_HARDENING_OUT to a directory where each test leaves its figures.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KNARR = os.path.join(os.path.dirname(sys.executable), "knarr")
FULL = os.environ.get("KNARR_HARDENING") == "full"


def rounds(quick: int, full: int) -> int:
    """How many rounds a test runs: `quick` in `make test`, `full` in `make hardening`."""
    return full if FULL else quick


def record(name: str, figures: dict) -> None:
    """Leave a test's figures as JSON in KNARR_HARDENING_OUT (when set) and on stdout."""
    print(f"{name}: {json.dumps(figures, sort_keys=True)}")
    out = os.environ.get("KNARR_HARDENING_OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(figures, f, indent=1, sort_keys=True)


def compile_probe(directory: str) -> str:
    """The probe, compiled statically, in a directory of its own (bound into containers)."""
    os.makedirs(directory, exist_ok=True)
    out = os.path.join(directory, "probe")
    subprocess.run(["gcc", "-static", "-O1", "-Wall", "-o", out,
                    os.path.join(HERE, "hardening_probe.c")], check=True, capture_output=True)
    return out


def host_block_device() -> str:
    """major:minor of a real block device of this host (not a loop device if there is one)."""
    names = sorted(os.listdir("/sys/block"), key=lambda n: (n.startswith(("loop", "zram")), n))
    for name in names:
        try:
            with open(f"/sys/block/{name}/dev") as f:
                return f.read().strip()
        except OSError:
            continue
    return "7:0"


def cli(host: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The knarr CLI against a daemon (knarrd or dockerd) at `host`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return subprocess.run([KNARR, "-H", host, *args], capture_output=True, timeout=timeout,
                          env=env)


def run_probe(host: str, probe: str, *args: str, options: tuple = ()) -> dict[str, str]:
    """Run the probe in a fresh busybox container; {probe name: outcome}."""
    result = cli(host, "run", "--rm", "-v", f"{os.path.dirname(probe)}:/probe:ro", *options,
                 "busybox", "/probe/probe", *args)
    assert result.returncode == 0, (host, args, result.stdout, result.stderr)
    outcomes = {}
    for line in result.stdout.decode().splitlines():
        name, _, outcome = line.partition(" ")
        outcomes[name] = outcome
    return outcomes


def denied(outcome: str) -> bool:
    """The attempt failed (or, for a masked file, read nothing)."""
    return not outcome.startswith(("ALLOWED", "ok"))


def eperm_set(outcomes: dict[str, str]) -> set[int]:
    """Syscall numbers the probe saw refused with EPERM."""
    return {int(nr) for nr, outcome in outcomes.items() if outcome == "EPERM"}


def syscall_names() -> dict[int, str]:
    """{number: name} of this machine's native syscalls, from the kernel headers gcc uses."""
    import glob
    import re

    out = {}
    for header in glob.glob("/usr/include/*/asm/unistd_64.h") + \
            glob.glob("/usr/include/asm-generic/unistd.h")[:1]:
        with open(header) as f:
            for match in re.finditer(r"#define __NR_(\w+)\s+(\d+)", f.read()):
                out.setdefault(int(match.group(2)), match.group(1))
        if out:
            break
    return out
