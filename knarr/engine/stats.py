"""Container statistics in Docker's stats JSON shape, and `top` output.

The numbers come from the runtime's cgroup statistics (runc's shape); this
module only renames them as Docker's API does. The client subtracts the page
cache (total_inactive_file on cgroup v1, inactive_file on v2) from usage.
"""

import os

from knarr.engine.jsonlog import timestamp

__all__ = ["sample", "docker_stats", "parse_ps", "host_memory"]

_ZERO_TIME = "0001-01-01T00:00:00Z"
_UNLIMITED = 1 << 62


def _system_cpu_ns() -> int:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(v) for v in fields) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def host_memory() -> int:
    """MemTotal in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _networks(pid: int) -> dict:
    out = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.readlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        v = [int(x) for x in rest.split()]
        if name == "lo" or len(v) < 16:
            continue
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2],
                     "rx_dropped": v[3], "tx_bytes": v[8], "tx_packets": v[9],
                     "tx_errors": v[10], "tx_dropped": v[11]}
    return out


def sample(cid: str, pid: int, running: bool) -> dict:
    """One reading of a container's cgroup (empty when it is not running)."""
    from knarr.runtime import cgroups

    reading = {"read": timestamp(), "system": _system_cpu_ns(), "cgroup": {},
               "networks": {}, "running": running}
    if running:
        cgroup = cgroups.open_cgroup(f"/knarr/{cid}", cid)
        if cgroup.exists():
            reading["cgroup"] = cgroup.stats()
            reading["layout"] = cgroup.layout
        reading["networks"] = _networks(pid)
    return reading


def _cpu(reading: dict | None) -> dict:
    if not reading or not reading["cgroup"]:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                              "usage_in_usermode": 0}, "throttling_data": {
            "periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    cpu = reading["cgroup"].get("cpu", {})
    usage = cpu.get("usage", {})
    throttling = cpu.get("throttling", {})
    out = {
        "cpu_usage": {"total_usage": usage.get("total", 0),
                      "usage_in_kernelmode": usage.get("kernel", 0),
                      "usage_in_usermode": usage.get("user", 0)},
        "system_cpu_usage": reading["system"], "online_cpus": os.cpu_count() or 1,
        "throttling_data": {"periods": throttling.get("periods", 0),
                            "throttled_periods": throttling.get("throttled_periods", 0),
                            "throttled_time": throttling.get("throttled_time", 0)},
    }
    if usage.get("percpu"):
        out["cpu_usage"]["percpu_usage"] = usage["percpu"]
    return out


def _memory(reading: dict) -> dict:
    memory = reading["cgroup"].get("memory")
    if not memory:
        return {}
    usage = memory.get("usage", {})
    limit = usage.get("limit", 0)
    if not limit or limit >= _UNLIMITED:
        limit = host_memory()
    return {"usage": usage.get("usage", 0), "max_usage": usage.get("max", 0),
            "failcnt": usage.get("failcnt", 0), "limit": limit,
            "stats": dict(memory.get("raw", {}))}


def _blkio(reading: dict) -> dict:
    blkio = reading["cgroup"].get("blkio", {})
    names = {"ioServiceBytesRecursive": "io_service_bytes_recursive",
             "ioServicedRecursive": "io_serviced_recursive"}
    out = {v: None for v in ("io_service_bytes_recursive", "io_serviced_recursive",
                             "io_queue_recursive", "io_service_time_recursive",
                             "io_wait_time_recursive", "io_merged_recursive",
                             "io_time_recursive", "sectors_recursive")}
    for ours, theirs in names.items():
        if blkio.get(ours):
            out[theirs] = [dict(e) for e in blkio[ours]]
    return out


def docker_stats(record: dict, reading: dict, previous: dict | None) -> dict:
    """One stats document, `previous` giving precpu_stats."""
    pids = reading["cgroup"].get("pids", {})
    doc = {
        "read": reading["read"] if reading["running"] else _ZERO_TIME,
        "preread": previous["read"] if previous and previous["running"] else _ZERO_TIME,
        "pids_stats": {"current": pids.get("current", 0)} if pids else {},
        "blkio_stats": _blkio(reading), "num_procs": 0, "storage_stats": {},
        "cpu_stats": _cpu(reading), "precpu_stats": _cpu(previous),
        "memory_stats": _memory(reading), "name": record["Name"], "id": record["Id"],
    }
    if pids.get("limit"):
        doc["pids_stats"]["limit"] = pids["limit"]
    if reading["networks"]:
        doc["networks"] = reading["networks"]
    return doc


def parse_ps(output: str, pids: set[int]) -> dict:
    """`ps` output cut to the container's processes: {Titles, Processes}."""
    lines = output.splitlines()
    if not lines:
        return {"Titles": [], "Processes": []}
    titles = lines[0].split()
    try:
        pid_col = titles.index("PID")
    except ValueError:
        raise ValueError("ps output has no PID column") from None
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}
