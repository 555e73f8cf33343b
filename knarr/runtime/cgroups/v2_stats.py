"""Statistics from cgroup v2 control files, in the shape of runc's `events --stats`.

v2 counts CPU time in microseconds where v1 (and runc's output) use
nanoseconds, has no per-CPU usage, and reports a limit of "max", which reads
as 2**64-1 here as it does in runc. A controller that is not enabled for the
cgroup leaves its section out (cpu is always there: cpu.stat is core).
"""

from knarr.runtime.cgroups import fs

__all__ = ["collect", "io_entries"]

_IO_KEYS = {
    "ioServiceBytesRecursive": (("rbytes", "Read"), ("wbytes", "Write")),
    "ioServicedRecursive": (("rios", "Read"), ("wios", "Write")),
}


def collect(cgdir: str) -> dict:
    """Every section the cgroup's enabled controllers can give."""
    stats: dict = {"cpu": _cpu(cgdir)}
    if fs.has(cgdir, "memory.current"):
        stats["memory"] = _memory(cgdir)
    if fs.has(cgdir, "pids.current"):
        stats["pids"] = _pids(cgdir)
    if fs.has(cgdir, "io.stat"):
        stats["blkio"] = {key: io_entries(fs.read(cgdir, "io.stat"), ops)
                          for key, ops in _IO_KEYS.items()}
    return stats


def _flat(cgdir: str, name: str) -> dict[str, int]:
    return fs.read_flat(cgdir, name) if fs.has(cgdir, name) else {}


def _int_or_zero(cgdir: str, name: str) -> int:
    return fs.read_int(cgdir, name) if fs.has(cgdir, name) else 0


def _cpu(cgdir: str) -> dict:
    stat = _flat(cgdir, "cpu.stat")
    return {
        "usage": {
            "total": stat.get("usage_usec", 0) * 1000,
            "percpu": [],
            "kernel": stat.get("system_usec", 0) * 1000,
            "user": stat.get("user_usec", 0) * 1000,
        },
        "throttling": {
            "periods": stat.get("nr_periods", 0),
            "throttled_periods": stat.get("nr_throttled", 0),
            "throttled_time": stat.get("throttled_usec", 0) * 1000,
        },
    }


def _memory(cgdir: str) -> dict:
    raw = _flat(cgdir, "memory.stat")
    usage = {
        "usage": _int_or_zero(cgdir, "memory.current"),
        "max": _int_or_zero(cgdir, "memory.peak"),
        # v1's failcnt counted hits on the limit; memory.events "max" counts the same.
        "failcnt": _flat(cgdir, "memory.events").get("max", 0),
        "limit": fs.read_int(cgdir, "memory.max") if fs.has(cgdir, "memory.max")
        else fs.UNLIMITED,
    }
    return {"cache": raw.get("file", 0), "usage": usage, "swap": _swap(cgdir, usage),
            "raw": raw}


def _swap(cgdir: str, memory: dict) -> dict:
    # runc reports v2 swap as memory plus swap, so that it means what v1's
    # memsw counters meant and the same arithmetic works on both.
    swap_limit = _int_or_zero(cgdir, "memory.swap.max") if fs.has(
        cgdir, "memory.swap.max") else 0
    unlimited = fs.UNLIMITED in (swap_limit, memory["limit"])
    return {
        "usage": _int_or_zero(cgdir, "memory.swap.current") + memory["usage"],
        "max": _int_or_zero(cgdir, "memory.swap.peak") + memory["max"],
        "failcnt": _flat(cgdir, "memory.swap.events").get("max", 0),
        "limit": fs.UNLIMITED if unlimited else swap_limit + memory["limit"],
    }


def _pids(cgdir: str) -> dict:
    limit = fs.read_int(cgdir, "pids.max") if fs.has(cgdir, "pids.max") else fs.UNLIMITED
    # runc reports no limit as 0.
    return {"current": _int_or_zero(cgdir, "pids.current"),
            "limit": 0 if limit == fs.UNLIMITED else limit}


def io_entries(text: str, ops: tuple[tuple[str, str], ...]) -> list[dict]:
    """Lines of io.stat ("8:0 rbytes=1 wbytes=2 ...") as runc's blkio entries."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        device, *pairs = line.split()
        major, _, minor = device.partition(":")
        counters = dict(pair.partition("=")[::2] for pair in pairs)
        for key, op in ops:
            if key in counters:
                entries.append({"major": int(major), "minor": int(minor), "op": op,
                                "value": int(counters[key])})
    return entries
