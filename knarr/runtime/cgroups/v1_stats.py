"""Statistics from cgroup v1 control files, in the shape of runc's `events --stats`.

A section whose hierarchy is not mounted is left out; a counter whose file
this kernel lacks reads as 0, so callers always find the keys they expect.
"""

import os

from knarr.runtime.cgroups import fs

__all__ = ["collect", "blkio_entries"]

# runc's names for the blkio files, in order of preference: BFQ, then the
# legacy CFQ files, then the throttle layer (which counts every I/O).
_BLKIO_FILES = {
    "ioServiceBytesRecursive": ("blkio.bfq.io_service_bytes_recursive",
                                "blkio.io_service_bytes_recursive",
                                "blkio.throttle.io_service_bytes_recursive"),
    "ioServicedRecursive": ("blkio.bfq.io_serviced_recursive",
                            "blkio.io_serviced_recursive",
                            "blkio.throttle.io_serviced_recursive"),
}


def collect(dirs: dict[str, str]) -> dict:
    """Every section this host's hierarchies can give."""
    stats: dict = {}
    if "cpuacct" in dirs or "cpu" in dirs:
        stats["cpu"] = _cpu(dirs.get("cpuacct"), dirs.get("cpu"))
    if "memory" in dirs:
        stats["memory"] = _memory(dirs["memory"])
    if "pids" in dirs:
        stats["pids"] = _pids(dirs["pids"])
    if "blkio" in dirs:
        stats["blkio"] = _blkio(dirs["blkio"])
    return stats


def _int_or_zero(cgdir: str, name: str) -> int:
    return fs.read_int(cgdir, name) if fs.has(cgdir, name) else 0


def _numbers(cgdir: str, name: str) -> list[int]:
    return [int(n) for n in fs.read(cgdir, name).split()] if fs.has(cgdir, name) else []


def _cpu(acct: str | None, cpu: str | None) -> dict:
    usage = {"total": 0, "percpu": [], "kernel": 0, "user": 0}
    if acct:
        usage.update(total=_int_or_zero(acct, "cpuacct.usage"),
                     percpu=_numbers(acct, "cpuacct.usage_percpu"),
                     percpu_kernel=_numbers(acct, "cpuacct.usage_percpu_sys"),
                     percpu_user=_numbers(acct, "cpuacct.usage_percpu_user"),
                     **_kernel_user(acct))
    throttled = fs.read_flat(cpu, "cpu.stat") if cpu and fs.has(cpu, "cpu.stat") else {}
    return {
        "usage": usage,
        "throttling": {
            "periods": throttled.get("nr_periods", 0),
            "throttled_periods": throttled.get("nr_throttled", 0),
            "throttled_time": throttled.get("throttled_time", 0),
        },
    }


def _kernel_user(acct: str) -> dict[str, int]:
    if fs.has(acct, "cpuacct.usage_sys"):
        return {"kernel": fs.read_int(acct, "cpuacct.usage_sys"),
                "user": fs.read_int(acct, "cpuacct.usage_user")}
    # Older kernels only have cpuacct.stat, counted in clock ticks.
    ticks = fs.read_flat(acct, "cpuacct.stat") if fs.has(acct, "cpuacct.stat") else {}
    per_tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return {"kernel": ticks.get("system", 0) * per_tick, "user": ticks.get("user", 0) * per_tick}


def _memory(cgdir: str) -> dict:
    raw = fs.read_flat(cgdir, "memory.stat") if fs.has(cgdir, "memory.stat") else {}
    return {
        "cache": raw.get("cache", 0),
        "usage": _usage(cgdir, "memory"),
        "swap": _usage(cgdir, "memory.memsw"),
        "kernel": _usage(cgdir, "memory.kmem"),
        "kernelTCP": _usage(cgdir, "memory.kmem.tcp"),
        "raw": raw,
    }


def _usage(cgdir: str, prefix: str) -> dict:
    return {
        "usage": _int_or_zero(cgdir, f"{prefix}.usage_in_bytes"),
        "max": _int_or_zero(cgdir, f"{prefix}.max_usage_in_bytes"),
        "failcnt": _int_or_zero(cgdir, f"{prefix}.failcnt"),
        "limit": _int_or_zero(cgdir, f"{prefix}.limit_in_bytes"),
    }


def _pids(cgdir: str) -> dict:
    limit = fs.read_int(cgdir, "pids.max") if fs.has(cgdir, "pids.max") else fs.UNLIMITED
    # runc reports no limit as 0.
    return {"current": _int_or_zero(cgdir, "pids.current"),
            "limit": 0 if limit == fs.UNLIMITED else limit}


def _blkio(cgdir: str) -> dict:
    stats: dict = {}
    for key, names in _BLKIO_FILES.items():
        name = next((n for n in names if fs.has(cgdir, n)), None)
        stats[key] = blkio_entries(fs.read(cgdir, name)) if name else []
    return stats


def blkio_entries(text: str) -> list[dict]:
    """Lines of "8:0 Read 4096" as runc's entries; the device-less "Total" line is dropped."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        entries.append({"major": int(major), "minor": int(minor), "op": fields[1],
                        "value": int(fields[2])})
    return entries
