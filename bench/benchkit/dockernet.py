"""Docker's own bridge networking for a bench's private dockerd, and the way back.

A dockerd of a benchmark's own runs either without networking (`--bridge=none
--iptables=false`: its containers get no interface but lo) or, as Docker's users
have it, with its bridge driver: `DockerBridge` makes a bridge of the bench's own
(a name and a subnet of its own, so the host's docker0 and other engines' bridges
are not touched) and dockerd runs with `--bridge NAME`, iptables on, as Docker
sets them up.

dockerd changes the host while it runs and leaves the changes behind when it
stops: its chains and rules in iptables' and ip6tables' filter, nat, raw and
mangle tables, the FORWARD chain's policy (DROP, when it turns IP forwarding on),
the forwarding and bridge-netfilter sysctls. `DockerBridge.up()` first writes what
it found (`RECORDS/<bridge>.json`, temp + fsync + rename) and only then makes the
bridge; `down()` puts the policy and sysctls back as they were, takes out the
rules and chains dockerd added (those naming a DOCKER chain or the bench's
bridge; other programs' rules, even new ones, stay), deletes the bridge and the
record.

A bench killed with SIGKILL (or a crash of the host's Python) cannot run
`down()`: its record stays, and the next `up()` of any bench (or `bench/run.py
--restore-network`) applies it first. /run is a tmpfs, as are iptables' rules:
a reboot drops both.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

RECORDS = Path("/run/knarr-bench/dockernet")
TABLES = ("filter", "nat", "raw", "mangle")
FAMILIES = ("iptables", "ip6tables")
SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding",
           "net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables")


def _sh(argv: list[str], check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def _rules(family: str, table: str) -> list[str]:
    """`iptables -S` of a table: its -P, -N and -A lines ([] when the table is not there)."""
    return _sh([family, "-w", "-t", table, "-S"], check=False).splitlines()


def _forward_policy(family: str) -> str:
    for line in _rules(family, "filter"):
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return "ACCEPT"


def _sysctl(name: str) -> str | None:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return None


def _docker_made(line: str, bridge: str) -> bool:
    """Whether an -A or -N line is dockerd's: in or to a DOCKER chain, or on our bridge."""
    words = shlex.split(line)
    return any(w.startswith("DOCKER") for w in words) or bridge in words


class DockerBridge:
    """A bridge of the bench's own for a dockerd to use, with its undo record."""

    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.address = address  # the bridge's own address with the prefix, 10.215.1.1/24
        self.record = RECORDS / f"{name}.json"

    def dockerd_args(self) -> list[str]:
        """dockerd's flags for Docker's default networking on this bridge."""
        return ["--bridge", self.name]

    def up(self) -> None:
        """Record the host's state, then make the bridge (a stale record is undone first)."""
        restore_all()
        state = {
            "bridge": self.name, "pid": os.getpid(),
            "policy": {f: _forward_policy(f) for f in FAMILIES},
            "rules": {f: {t: _rules(f, t) for t in TABLES} for f in FAMILIES},
            "sysctls": {s: _sysctl(s) for s in SYSCTLS},
            "dockerd_pid": None,
        }
        self._write(state)
        try:
            _sh(["ip", "link", "add", self.name, "type", "bridge"])
            _sh(["ip", "addr", "add", self.address, "dev", self.name])
            _sh(["ip", "link", "set", self.name, "up"])
        except RuntimeError:
            self.down()
            raise

    def started(self, dockerd_pid: int) -> None:
        """Note the dockerd using the bridge, for a later restore to stop it if it outlives us."""
        state = json.loads(self.record.read_text())
        state["dockerd_pid"] = dockerd_pid
        self._write(state)

    def down(self) -> None:
        """Put the host back as up() found it (dockerd must be stopped already)."""
        if self.record.exists():
            restore(self.record)

    def _write(self, state: dict) -> None:
        RECORDS.mkdir(parents=True, exist_ok=True)
        tmp = self.record.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.record)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def restore(record: Path) -> None:
    """Undo what a DockerBridge's dockerd left, from its record; remove the record."""
    state = json.loads(record.read_text())
    bridge = state["bridge"]
    pid = state.get("dockerd_pid")
    if _alive(pid) and b"dockerd" in Path(f"/proc/{pid}/cmdline").read_bytes():
        os.kill(pid, 15)  # a killed bench's dockerd, still running: stop it first
        for _ in range(300):
            if not _alive(pid):
                break
            subprocess.run(["sleep", "0.1"], check=False)
    for family in FAMILIES:
        for table in TABLES:
            old = Counter(state["rules"][family][table])
            now = _rules(family, table)
            extra = Counter(now) - old  # an -A line there twice now and once before: once
            for line in reversed(now):
                if line.startswith("-A ") and extra[line] and _docker_made(line, bridge):
                    extra[line] -= 1
                    _sh([family, "-w", "-t", table, "-D", *shlex.split(line[3:])], check=False)
            for line in now:
                if line.startswith("-N ") and line not in old and _docker_made(line, bridge):
                    _sh([family, "-w", "-t", table, "-F", line.split()[1]], check=False)
            for line in now:
                if line.startswith("-N ") and line not in old and _docker_made(line, bridge):
                    _sh([family, "-w", "-t", table, "-X", line.split()[1]], check=False)
        if _forward_policy(family) != state["policy"][family]:
            _sh([family, "-w", "-P", "FORWARD", state["policy"][family]], check=False)
    for name, value in state["sysctls"].items():
        if value is not None and _sysctl(name) not in (None, value):
            (Path("/proc/sys") / name).write_text(value + "\n")
    _sh(["ip", "link", "del", bridge], check=False)
    record.unlink(missing_ok=True)


def restore_all() -> list[str]:
    """Apply every record whose bench is gone (killed before its down()); their bridges."""
    done = []
    for record in sorted(RECORDS.glob("*.json")) if RECORDS.is_dir() else []:
        try:
            pid = json.loads(record.read_text()).get("pid")
        except (OSError, ValueError):
            record.unlink(missing_ok=True)
            continue
        if pid != os.getpid() and _alive(pid):
            continue  # another bench, still running, owns it
        restore(record)
        done.append(record.stem)
    return done


if __name__ == "__main__":
    print("restored: " + (", ".join(restore_all()) or "nothing to restore"), file=sys.stderr)
