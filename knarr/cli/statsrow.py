"""One container's stats sample as Docker's CLI computes and shows it.

CPU % is the container's share of the host's CPU time since the previous
sample, times the number of online CPUs; memory leaves out the page cache
(inactive file pages), as `docker stats` does.
"""

from knarr.cli import units

__all__ = ["StatsRow", "cpu_percent", "memory_usage", "block_io", "network_io", "HEADERS",
           "DEFAULT_FORMAT"]

DEFAULT_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t" \
                 "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
           "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def cpu_percent(stats: dict) -> float:
    """(container CPU delta / system CPU delta) × online CPUs × 100."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    usage, pre_usage = cpu.get("cpu_usage") or {}, pre.get("cpu_usage") or {}
    cpu_delta = usage.get("total_usage", 0) - pre_usage.get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len(usage.get("percpu_usage") or []) or 1
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(mem: dict) -> float:
    """Usage without the page cache: total_inactive_file (v1) or inactive_file (v2)."""
    usage = mem.get("usage", 0)
    detail = mem.get("stats") or {}
    if "total_inactive_file" in detail and detail["total_inactive_file"] < usage:
        return usage - detail["total_inactive_file"]
    if detail.get("inactive_file", usage) < usage:
        return usage - detail["inactive_file"]
    return usage


def block_io(stats: dict) -> tuple[int, int]:
    """(bytes read, bytes written) summed over devices."""
    read = write = 0
    for entry in (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = (entry.get("op") or " ")[0].lower()
        if op == "r":
            read += entry.get("value", 0)
        elif op == "w":
            write += entry.get("value", 0)
    return read, write


def network_io(stats: dict) -> tuple[int, int]:
    """(bytes received, bytes sent) summed over interfaces."""
    rx = tx = 0
    for net in (stats.get("networks") or {}).values():
        rx += net.get("rx_bytes", 0)
        tx += net.get("tx_bytes", 0)
    return rx, tx


class StatsRow:
    """Template fields for one sample: .ID .Name .CPUPerc .MemUsage .MemPerc .NetIO ..."""

    def __init__(self, stats: dict, container: str = "", trunc: bool = True) -> None:
        self.stats, self.trunc = stats, trunc
        ident = stats.get("id", "")
        self.Container = container or ident
        self.full_id = ident
        self.Name = (stats.get("name") or "").lstrip("/") or "--"
        mem = stats.get("memory_stats") or {}
        self.cpu = cpu_percent(stats)
        self.mem, self.limit = memory_usage(mem), mem.get("limit", 0)
        self.mem_percent = self.mem / self.limit * 100.0 if self.limit else 0.0
        self.net, self.blk = network_io(stats), block_io(stats)
        self.pids = (stats.get("pids_stats") or {}).get("current", 0)

    @property
    def ID(self) -> str:
        return self.full_id[:12] if self.trunc else self.full_id

    @property
    def CPUPerc(self) -> str:
        return f"{self.cpu:.2f}%"

    @property
    def MemUsage(self) -> str:
        return f"{units.bytes_size(self.mem)} / {units.bytes_size(self.limit)}"

    @property
    def MemPerc(self) -> str:
        return f"{self.mem_percent:.2f}%"

    @property
    def NetIO(self) -> str:
        return f"{units.human_size(self.net[0])} / {units.human_size(self.net[1])}"

    @property
    def BlockIO(self) -> str:
        return f"{units.human_size(self.blk[0])} / {units.human_size(self.blk[1])}"

    @property
    def PIDs(self) -> str:
        return str(self.pids)

    def as_dict(self) -> dict:
        """What `{{json .}}` prints."""
        return {k: getattr(self, k) for k in ("BlockIO", "CPUPerc", "Container", "ID",
                                               "MemPerc", "MemUsage", "Name", "NetIO", "PIDs")}
