"""OCI `linux.resources` written to cgroup v1 control files.

`dirs` maps a controller name to the container's directory in the hierarchy
that carries it. Optional controllers (hugetlb, net_cls, net_prio, rdma) and
optional files (blkio weights) are skipped when the host lacks them; a limit
on memory, cpu, pids or devices with its hierarchy missing is an error.
"""

from knarr.errors import InvalidArgument, Unavailable
from knarr.runtime.cgroups import fs
from knarr.runtime.cgroups.values import boolean, integer, items, rdma_lines, section, text

__all__ = ["apply", "device_rule"]

_THROTTLES = {
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}


def apply(dirs: dict[str, str], resources: dict) -> None:
    """Write every limit in `resources` that this host's hierarchies can carry."""
    if resources.get("unified"):
        raise InvalidArgument("config.json: linux.resources.unified: needs cgroup v2, "
                              "this host has cgroup v1", field="linux.resources.unified")
    _memory(dirs, section(resources, "memory"))
    _cpu(dirs, section(resources, "cpu"))
    _pids(dirs, section(resources, "pids"))
    _block_io(dirs.get("blkio"), section(resources, "blockIO"))
    _hugepages(dirs.get("hugetlb"), items(resources, "hugepageLimits"))
    _network(dirs, section(resources, "network"))
    _rdma(dirs.get("rdma"), rdma_lines(resources))
    _devices(dirs, items(resources, "devices"))


def _need(dirs: dict[str, str], controller: str, what: str) -> str:
    if controller not in dirs:
        raise Unavailable(f"cgroup: set {what}: no {controller} hierarchy mounted",
                          controller=controller)
    return dirs[controller]


def _memory(dirs: dict[str, str], memory: dict) -> None:
    field = "memory"
    limit = integer(memory, "limit", field, unset_zero=True)
    swap = integer(memory, "swap", field, unset_zero=True)
    reservation = integer(memory, "reservation", field, unset_zero=True)
    swappiness = integer(memory, "swappiness", field)
    no_oom_kill = boolean(memory, "disableOOMKiller", field)
    # kernel is ignored: the kernel no longer honours kmem.limit_in_bytes (it
    # accepts the write and keeps no limit). kernelTCP still works on v1.
    kernel_tcp = integer(memory, "kernelTCP", field, unset_zero=True)
    wanted = (limit, swap, reservation, swappiness, no_oom_kill, kernel_tcp)
    if all(v is None for v in wanted):
        return
    cgdir = _need(dirs, "memory", "memory limits")
    _memory_and_swap(cgdir, limit, swap)
    if reservation is not None:
        fs.write(cgdir, "memory.soft_limit_in_bytes", reservation)
    # Docker sends -1 to mean "the host's default", which is what not writing gives.
    if swappiness is not None and swappiness >= 0:
        fs.write(cgdir, "memory.swappiness", swappiness)
    if no_oom_kill is not None:
        fs.write(cgdir, "memory.oom_control", int(no_oom_kill))
    if kernel_tcp is not None and fs.has(cgdir, "memory.kmem.tcp.limit_in_bytes"):
        fs.write(cgdir, "memory.kmem.tcp.limit_in_bytes", kernel_tcp)


def _memory_and_swap(cgdir: str, limit: int | None, swap: int | None) -> None:
    memsw = "memory.memsw.limit_in_bytes"
    if not fs.has(cgdir, memsw):
        # Swap accounting is off (swapaccount=0): there is no memory+swap
        # counter to limit, and the daemon warns the user about it.
        swap = None
    elif limit == -1 and swap is None:
        # Lifting the memory limit alone would leave memsw below it, which the
        # kernel refuses; unlimited memory means unlimited memory+swap.
        swap = -1
    writes = [("memory.limit_in_bytes", limit), (memsw, swap)]
    writes = [(name, value) for name, value in writes if value is not None]
    # The kernel keeps limit <= memsw at every moment: when memsw grows it must
    # grow first, and when it shrinks the limit must shrink first.
    if swap is not None and (swap == -1 or swap > fs.read_int(cgdir, memsw)):
        writes.reverse()
    for name, value in writes:
        fs.write(cgdir, name, value)


def _cpu(dirs: dict[str, str], cpu: dict) -> None:
    field = "cpu"
    settings = [
        ("cpu.shares", integer(cpu, "shares", field, unset_zero=True)),
        ("cpu.cfs_period_us", integer(cpu, "period", field, unset_zero=True)),
        ("cpu.cfs_quota_us", integer(cpu, "quota", field, unset_zero=True)),
        ("cpu.idle", integer(cpu, "idle", field)),
    ]
    burst = integer(cpu, "burst", field)
    # realtimeRuntime and realtimePeriod are ignored: they need
    # CONFIG_RT_GROUP_SCHED and an RT budget set aside in every parent first.
    settings = [(name, value) for name, value in settings if value is not None]
    if settings or burst is not None:
        cgdir = _need(dirs, "cpu", "cpu limits")
        _cpu_settings(cgdir, settings, burst)
    for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        value = text(cpu, key, field)
        if value is not None:
            fs.write(_need(dirs, "cpuset", name), name, value)


def _cpu_settings(cgdir: str, settings: list[tuple[str, int]], burst: int | None) -> None:
    if burst is not None:
        # The kernel wants burst <= quota: shrink the burst before the quota
        # changes, grow it after.
        burst_file = "cpu.cfs_burst_us"
        shrinking = fs.has(cgdir, burst_file) and burst <= fs.read_int(cgdir, burst_file)
        settings.insert(0 if shrinking else len(settings), (burst_file, burst))
    for name, value in settings:
        fs.write(cgdir, name, value)


def _pids(dirs: dict[str, str], pids: dict) -> None:
    # 0 is "not set" (runc's reading); any negative number lifts the limit.
    limit = integer(pids, "limit", "pids", unset_zero=True)
    if limit is not None:
        cgdir = _need(dirs, "pids", "pids.max")
        fs.write(cgdir, "pids.max", "max" if limit < 0 else limit)


def _block_io(cgdir: str | None, block_io: dict) -> None:
    if not block_io:
        return
    field = "blockIO"
    weight = integer(block_io, "weight", field, unset_zero=True)
    if cgdir is None:
        if any(block_io.get(k) for k in _THROTTLES):
            raise Unavailable("cgroup: set blkio throttles: no blkio hierarchy mounted")
        return
    # CFQ's blkio.weight went with the legacy block layer; BFQ offers the same
    # scale (10-1000) under another name, and with neither there is nothing to set.
    if weight is not None:
        _write_first(cgdir, ("blkio.weight", "blkio.bfq.weight"), weight)
    leaf = integer(block_io, "leafWeight", field, unset_zero=True)
    if leaf is not None:
        _write_first(cgdir, ("blkio.leaf_weight",), leaf)
    for i, device in enumerate(items(block_io, "weightDevice", f"{field}.weightDevice")):
        _weight_device(cgdir, device, f"{field}.weightDevice[{i}]")
    for key, name in _THROTTLES.items():
        for i, device in enumerate(items(block_io, key, f"{field}.{key}")):
            rate = integer(device, "rate", f"{field}.{key}[{i}]") or 0
            fs.write(cgdir, name, f"{_major_minor(device, f'{field}.{key}[{i}]')} {rate}")


def _weight_device(cgdir: str, device: dict, field: str) -> None:
    numbers = _major_minor(device, field)
    weight = integer(device, "weight", field, unset_zero=True)
    if weight is not None:
        _write_first(cgdir, ("blkio.weight_device", "blkio.bfq.weight_device"),
                     f"{numbers} {weight}")
    leaf = integer(device, "leafWeight", field, unset_zero=True)
    if leaf is not None:
        _write_first(cgdir, ("blkio.leaf_weight_device",), f"{numbers} {leaf}")


def _write_first(cgdir: str, names: tuple[str, ...], value: object) -> None:
    for name in names:
        if fs.has(cgdir, name):
            fs.write(cgdir, name, value)
            return


def _major_minor(device: dict, field: str) -> str:
    major = integer(device, "major", field)
    minor = integer(device, "minor", field)
    if major is None or minor is None:
        raise InvalidArgument(f"config.json: linux.resources.{field}: needs major and minor",
                              field=f"linux.resources.{field}")
    return f"{major}:{minor}"


def _hugepages(cgdir: str | None, limits: list[dict]) -> None:
    for i, entry in enumerate(limits):
        size = text(entry, "pageSize", f"hugepageLimits[{i}]")
        limit = integer(entry, "limit", f"hugepageLimits[{i}]")
        name = f"hugetlb.{size}.limit_in_bytes"
        if not (cgdir and size and limit is not None):
            continue
        if not fs.has(cgdir, name):
            raise InvalidArgument(f"config.json: linux.resources.hugepageLimits[{i}]: "
                                  f"page size {size} is not one this host has",
                                  field=f"linux.resources.hugepageLimits[{i}]")
        fs.write(cgdir, name, limit)


def _network(dirs: dict[str, str], network: dict) -> None:
    class_id = integer(network, "classID", "network")
    if class_id is not None and "net_cls" in dirs:
        fs.write(dirs["net_cls"], "net_cls.classid", class_id)
    for i, entry in enumerate(items(network, "priorities", "network.priorities")):
        name = text(entry, "name", f"network.priorities[{i}]")
        priority = integer(entry, "priority", f"network.priorities[{i}]")
        if "net_prio" in dirs and name and priority is not None:
            fs.write(dirs["net_prio"], "net_prio.ifpriomap", f"{name} {priority}")


def _rdma(cgdir: str | None, lines: list[str]) -> None:
    for line in lines:
        if cgdir and fs.has(cgdir, "rdma.max"):
            fs.write(cgdir, "rdma.max", line)


def _devices(dirs: dict[str, str], rules: list[dict]) -> None:
    if not rules:
        return
    cgdir = _need(dirs, "devices", "device rules")
    # Order matters: the kernel applies each rule to the list the last one left.
    for i, rule in enumerate(rules):
        name = "devices.allow" if rule.get("allow") else "devices.deny"
        fs.write(cgdir, name, device_rule(rule, f"devices[{i}]"))


def device_rule(rule: dict, field: str) -> str:
    """An OCI device rule as the v1 devices controller reads it: "c 1:3 rwm"."""
    kind = text(rule, "type", field) or "a"
    access = text(rule, "access", field) or "rwm"
    if kind not in ("a", "b", "c") or not set(access) <= set("rwm"):
        raise InvalidArgument(f"config.json: linux.resources.{field}: bad type {kind!r} "
                              f"or access {access!r}", field=f"linux.resources.{field}")
    major, minor = integer(rule, "major", field), integer(rule, "minor", field)
    number = lambda n: "*" if n is None or n < 0 else str(n)  # noqa: E731
    return f"{kind} {number(major)}:{number(minor)} {access}"
