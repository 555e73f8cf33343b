"""OCI `linux.resources` written to cgroup v2 control files.

The OCI fields were named after v1, so several values are converted on the
way: cpu shares to cpu.weight, blkio weights to io.weight, the memory+swap
total to a swap-only limit. A control file that is missing means its
controller is not enabled for this cgroup, which is reported as such.
"""

import os

from knarr.errors import InvalidArgument, Unavailable
from knarr.runtime.cgroups import fs
from knarr.runtime.cgroups.values import integer, items, rdma_lines, section, text

__all__ = ["apply", "blkio_weight_to_io", "shares_to_weight", "swap_only"]

_THROTTLES = {
    "throttleReadBpsDevice": "rbps",
    "throttleWriteBpsDevice": "wbps",
    "throttleReadIOPSDevice": "riops",
    "throttleWriteIOPSDevice": "wiops",
}


def apply(cgdir: str, resources: dict) -> None:
    """Write every limit in `resources` to the cgroup at `cgdir`."""
    _memory(cgdir, section(resources, "memory"))
    _cpu(cgdir, section(resources, "cpu"))
    _pids(cgdir, section(resources, "pids"))
    _io(cgdir, section(resources, "blockIO"))
    _hugepages(cgdir, items(resources, "hugepageLimits"))
    for line in rdma_lines(resources):
        if fs.has(cgdir, "rdma.max"):
            fs.write(cgdir, "rdma.max", line)
    # devices is ignored: v2 has no devices.* files. Device access is policed
    # by an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) attached to the cgroup,
    # and knarr.sys has no bpf(2) binding to load one yet.
    # network is ignored too: net_cls and net_prio exist only in v1.
    _unified(cgdir, section(resources, "unified"))


def _set(cgdir: str, name: str, value: object) -> None:
    if not fs.has(cgdir, name):
        controller = name.partition(".")[0]
        raise Unavailable(f"cgroup {cgdir}: set {name} to {value}: the {controller} "
                          "controller is not enabled for this cgroup", path=cgdir,
                          file=name, value=value)
    fs.write(cgdir, name, value)


def _max(value: int) -> int | str:
    # OCI says -1 for no limit; v2 files say "max".
    return "max" if value < 0 else value


def _memory(cgdir: str, memory: dict) -> None:
    field = "memory"
    limit = integer(memory, "limit", field, unset_zero=True)
    swap = integer(memory, "swap", field, unset_zero=True)
    reservation = integer(memory, "reservation", field, unset_zero=True)
    # swappiness is ignored (v2 has no per-cgroup swappiness; vm.swappiness
    # applies), as are disableOOMKiller (v2 has no switch to turn the OOM
    # killer off) and kernel/kernelTCP (v2 accounts kernel memory in memory.max).
    if limit is not None:
        _set(cgdir, "memory.max", _max(limit))
    if swap is not None and fs.has(cgdir, "memory.swap.max"):
        _set(cgdir, "memory.swap.max", swap_only(swap, limit))
    if reservation is not None:
        _set(cgdir, "memory.low", _max(reservation))


def swap_only(swap: int, limit: int | None) -> int | str:
    """OCI's swap (memory plus swap, as in v1) as memory.swap.max (swap alone)."""
    if swap < 0:
        return "max"
    if limit is None or limit < 0:
        raise InvalidArgument("config.json: linux.resources.memory.swap: a swap limit "
                              "needs a memory limit on cgroup v2",
                              field="linux.resources.memory.swap")
    if swap < limit:
        raise InvalidArgument(f"config.json: linux.resources.memory.swap: {swap} is below "
                              f"the memory limit {limit}; swap counts memory plus swap",
                              field="linux.resources.memory.swap")
    return swap - limit


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144, default 1024) mapped linearly onto cpu.weight (1..10000)."""
    shares = min(max(shares, 2), 262144)
    return 1 + (shares - 2) * 9999 // 262142


def blkio_weight_to_io(weight: int) -> int:
    """blkio.weight (10..1000) mapped linearly onto io.weight (1..10000)."""
    weight = min(max(weight, 10), 1000)
    return 1 + (weight - 10) * 9999 // 990


def _cpu(cgdir: str, cpu: dict) -> None:
    field = "cpu"
    shares = integer(cpu, "shares", field, unset_zero=True)
    if shares is not None:
        _set(cgdir, "cpu.weight", shares_to_weight(shares))
    _cpu_max(cgdir, integer(cpu, "quota", field, unset_zero=True),
             integer(cpu, "period", field, unset_zero=True))
    # realtimeRuntime and realtimePeriod are ignored: v2 has no RT group budget.
    for key, name in (("burst", "cpu.max.burst"), ("idle", "cpu.idle")):
        value = integer(cpu, key, field)
        if value is not None:
            _set(cgdir, name, value)
    for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        value = text(cpu, key, field)
        if value is not None:
            _set(cgdir, name, value)


def _cpu_max(cgdir: str, quota: int | None, period: int | None) -> None:
    if quota is None and period is None:
        return
    if quota is None:
        # cpu.max takes "quota [period]", so a new period restates the quota.
        quota_text = fs.read(cgdir, "cpu.max").split()[0] if fs.has(cgdir, "cpu.max") else "max"
    else:
        quota_text = str(_max(quota))
    _set(cgdir, "cpu.max", quota_text if period is None else f"{quota_text} {period}")


def _pids(cgdir: str, pids: dict) -> None:
    # 0 is "not set" (runc's reading); any negative number lifts the limit.
    limit = integer(pids, "limit", "pids", unset_zero=True)
    if limit is not None:
        _set(cgdir, "pids.max", _max(limit))


def _io(cgdir: str, block_io: dict) -> None:
    field = "blockIO"
    weight = integer(block_io, "weight", field, unset_zero=True)
    # leafWeight is ignored: v2 has no separate weight for a cgroup's own tasks.
    if weight is not None:
        _io_weight(cgdir, "default", weight)
    for i, device in enumerate(items(block_io, "weightDevice", f"{field}.weightDevice")):
        where = f"{field}.weightDevice[{i}]"
        weight = integer(device, "weight", where, unset_zero=True)
        if weight is not None:
            _io_weight(cgdir, _major_minor(device, where), weight)
    for key, limit in _THROTTLES.items():
        for i, device in enumerate(items(block_io, key, f"{field}.{key}")):
            where = f"{field}.{key}[{i}]"
            # For throttles 0 lifts the limit, as writing 0 does in v1.
            rate = integer(device, "rate", where) or -1
            _set(cgdir, "io.max", f"{_major_minor(device, where)} {limit}={_max(rate)}")


def _io_weight(cgdir: str, target: str, weight: int) -> None:
    # BFQ keeps blkio's 1-1000 scale; io.weight (the iocost controller) is 1-10000.
    # With neither file there is no proportional I/O control to set, so skip.
    if fs.has(cgdir, "io.bfq.weight"):
        fs.write(cgdir, "io.bfq.weight", f"{target} {weight}")
    elif fs.has(cgdir, "io.weight"):
        fs.write(cgdir, "io.weight", f"{target} {blkio_weight_to_io(weight)}")


def _major_minor(device: dict, field: str) -> str:
    major = integer(device, "major", field)
    minor = integer(device, "minor", field)
    if major is None or minor is None:
        raise InvalidArgument(f"config.json: linux.resources.{field}: needs major and minor",
                              field=f"linux.resources.{field}")
    return f"{major}:{minor}"


def _hugepages(cgdir: str, limits: list[dict]) -> None:
    for i, entry in enumerate(limits):
        size = text(entry, "pageSize", f"hugepageLimits[{i}]")
        limit = integer(entry, "limit", f"hugepageLimits[{i}]")
        name = f"hugetlb.{size}.max"
        if size and limit is not None and fs.has(cgdir, name):
            fs.write(cgdir, name, _max(limit))


def _unified(cgdir: str, unified: dict) -> None:
    # Written last, so that a raw setting wins over the same knob set above.
    for key, value in unified.items():
        where = f"linux.resources.unified.{key}"
        if not isinstance(value, str):
            raise InvalidArgument(f"config.json: {where}: expected string, got "
                                  f"{type(value).__name__}", field=where)
        if os.sep in key or key in ("", ".", ".."):
            raise InvalidArgument(f"config.json: {where}: not a control file name",
                                  field=where)
        if not fs.has(cgdir, key):
            raise InvalidArgument(f"cgroup {cgdir}: set {key} to {value}: no such control "
                                  "file (or its controller is not enabled)", path=cgdir,
                                  field=where)
        fs.write(cgdir, key, value)
