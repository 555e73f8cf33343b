"""The cgroup v2 driver against a fake cgroupfs: plain files in tmp_path.

The kernel's side is played by the tests: they create the control files a
real cgroup would have and read back what the driver wrote.
"""

import errno
import os
import threading
import time

import pytest

from knarr.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from knarr.runtime import cgroups
from knarr.runtime.cgroups import fs, v2_resources
from knarr.runtime.cgroups.layout import forget_hierarchies

CONTROLLERS = "cpuset cpu io memory hugetlb pids"

CONTROL_FILES = {
    "cgroup.procs": "", "cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 0\n",
    "cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
    "cpuset.cpus": "", "cpuset.mems": "", "memory.max": "max", "memory.swap.max": "max",
    "memory.low": "0", "memory.current": "0", "pids.max": "max", "pids.current": "0",
}


def _files(cgdir, files):
    os.makedirs(cgdir, exist_ok=True)
    for name, content in files.items():
        with open(os.path.join(cgdir, name), "w") as f:
            f.write(content)


def _read(cgdir, name):
    with open(os.path.join(cgdir, name)) as f:
        return f.read()


@pytest.fixture
def root(tmp_path):
    """A fake v2 root with its knarr/ parent, as the kernel would show them."""
    top = str(tmp_path / "cgroup")
    _files(top, {"cgroup.controllers": CONTROLLERS, "cgroup.subtree_control": "",
                 "cgroup.procs": ""})
    _files(os.path.join(top, "knarr"), {"cgroup.controllers": CONTROLLERS,
                                        "cgroup.subtree_control": "", "cgroup.procs": ""})
    return top


@pytest.fixture
def cg(root):
    """A created container cgroup with the control files of every controller."""
    cgroup = cgroups.open_cgroup(None, "c1", root=root)
    cgroup.create()
    _files(cgroup.paths["unified"], CONTROL_FILES)
    cgroup.freeze_timeout = 1.0
    return cgroup


# layout and paths

def test_layout_is_v2_when_root_has_cgroup_controllers(root):
    assert cgroups.current_layout(root) == "v2"
    cgroup = cgroups.open_cgroup(None, "c1", root=root)
    assert isinstance(cgroup, cgroups.V2Cgroup)
    assert cgroup.paths == {"unified": os.path.join(root, "knarr/c1")}


def test_layout_v1_and_hybrid_from_a_listing(tmp_path):
    _files(str(tmp_path / "memory"), {"cgroup.procs": ""})
    _files(str(tmp_path / "systemd"), {"cgroup.procs": ""})
    assert cgroups.current_layout(str(tmp_path)) == "v1"
    _files(str(tmp_path / "unified"), {"cgroup.controllers": "", "cgroup.procs": ""})
    assert cgroups.current_layout(str(tmp_path)) == "hybrid"
    cgroup = cgroups.open_cgroup("/x", "c1", root=str(tmp_path))
    assert sorted(cgroup.paths) == ["memory", "systemd", "unified"]


@pytest.mark.parametrize(("given", "expected"), [
    (None, "/knarr/c1"),
    ("", "/knarr/c1"),
    ("/a/b", "/a/b"),
    ("a/b", "/a/b"),
    ("/a/../../etc", "/etc"),
    ("machine.slice:libpod:abc", "/machine.slice/libpod-abc.scope"),
    ("machine-qemu.slice:vm:1", "/machine.slice/machine-qemu.slice/vm-1.scope"),
    (":knarr:abc", "/system.slice/knarr-abc.scope"),
    ("user.slice::abc", "/user.slice/abc.scope"),
])
def test_resolve_path(given, expected):
    assert cgroups.resolve_path(given, "c1") == expected


@pytest.mark.parametrize("given", ["/", "/..", "machine.slice:libpod:", "bad:libpod:x"])
def test_resolve_path_refuses(given):
    with pytest.raises(InvalidArgument):
        cgroups.resolve_path(given, "c1")


# create, add_process, pids, destroy

def test_create_enables_controllers_down_the_path(root):
    cgroup = cgroups.open_cgroup(None, "c1", root=root)
    cgroup.create()
    assert cgroup.exists()
    want = "+cpu +cpuset +hugetlb +io +memory +pids"
    assert _read(root, "cgroup.subtree_control") == want
    assert _read(os.path.join(root, "knarr"), "cgroup.subtree_control") == want


def test_create_enables_controllers_one_by_one_when_one_is_refused(root, monkeypatch):
    real_write = fs.write
    written = []

    def write(cgdir, name, value, doing=""):
        if name == "cgroup.subtree_control" and "+cpu " in f"{value} ":
            raise InvalidArgument("refused")
        written.append(value)
        real_write(cgdir, name, value, doing)

    monkeypatch.setattr(fs, "write", write)
    cgroups.open_cgroup(None, "c1", root=root).create()
    assert written[:5] == ["+cpuset", "+hugetlb", "+io", "+memory", "+pids"]


def test_add_process_and_pids_recursive(cg):
    cg.add_process(42)
    cgdir = cg.paths["unified"]
    assert _read(cgdir, "cgroup.procs") == "42"
    _files(cgdir, {"cgroup.procs": "42\n7\n"})
    _files(os.path.join(cgdir, "sub"), {"cgroup.procs": "99\n7\n"})
    assert cg.pids() == [7, 42, 99]


def test_add_process_to_a_missing_cgroup_is_not_found(root):
    with pytest.raises(NotFound, match="add process 42: the cgroup does not exist"):
        cgroups.open_cgroup(None, "c1", root=root).add_process(42)


def test_add_process_skips_a_hierarchy_mounted_after_create(tmp_path):
    _files(str(tmp_path / "memory"), {"cgroup.procs": ""})
    cgroups.open_cgroup("/x", "c1", root=str(tmp_path)).create()
    _files(str(tmp_path / "pids"), {"cgroup.procs": ""})  # mounted later
    forget_hierarchies()  # as a new knarr-runtime process would see it
    cgroup = cgroups.open_cgroup("/x", "c1", root=str(tmp_path))
    _files(cgroup.paths["memory"], {"cgroup.procs": ""})
    cgroup.add_process(42)
    assert _read(cgroup.paths["memory"], "cgroup.procs") == "42"
    assert not os.path.exists(cgroup.paths["pids"]) and cgroup.pids() == [42]


def test_join_self_on_v2_writes_nothing_and_names_the_directory(cg):
    # a v2 domain cgroup takes a process only through cgroup.procs (with the migration
    # lock) or at birth (clone3): join_self leaves it to the caller's fork
    cgdir = cg.paths["unified"]
    assert cg.join_self() == cgdir
    assert _read(cgdir, "cgroup.procs") == ""
    assert not os.path.exists(os.path.join(cgdir, "tasks"))


def test_join_self_on_hybrid_writes_0_to_each_v1_tasks_file(tmp_path):
    for name in ("memory", "systemd"):
        _files(str(tmp_path / name), {"cgroup.procs": ""})
    _files(str(tmp_path / "unified"), {"cgroup.controllers": "", "cgroup.procs": ""})
    _files(str(tmp_path / "pids"), {"cgroup.procs": ""})
    forget_hierarchies()
    cgroup = cgroups.open_cgroup("/x", "c1", root=str(tmp_path))
    cgroup.create()
    os.rmdir(cgroup.paths["pids"])  # a hierarchy the container has no directory in
    for name in ("memory", "systemd"):
        _files(cgroup.paths[name], {"tasks": ""})
    assert cgroup.join_self() == cgroup.paths["unified"]
    for name in ("memory", "systemd"):
        assert _read(cgroup.paths[name], "tasks") == "0"
        assert not os.path.exists(os.path.join(cgroup.paths[name], "cgroup.procs"))
    assert not os.path.exists(os.path.join(cgroup.paths["unified"], "tasks"))
    forget_hierarchies()


def test_join_self_on_v1_has_no_v2_directory_and_a_missing_cgroup_is_not_found(tmp_path):
    _files(str(tmp_path / "memory"), {"cgroup.procs": ""})
    forget_hierarchies()
    cgroup = cgroups.open_cgroup("/x", "c1", root=str(tmp_path))
    with pytest.raises(NotFound, match="the cgroup does not exist"):
        cgroup.join_self()
    cgroup.create()
    _files(cgroup.paths["memory"], {"tasks": ""})
    assert cgroup.join_self() is None
    assert _read(cgroup.paths["memory"], "tasks") == "0"
    forget_hierarchies()


def test_join_at_writes_0_to_each_v1_tasks_file_through_mount_points_opened_first(tmp_path):
    # the mount points are opened before the container's directories exist (create
    # forks init first); join_at then finds them through those fds
    from knarr.runtime.cgroups.base import close_anchors, join_at, open_anchors

    for name in ("memory", "systemd", "pids"):
        _files(str(tmp_path / name), {"cgroup.procs": ""})
    _files(str(tmp_path / "unified"), {"cgroup.controllers": "", "cgroup.procs": ""})
    forget_hierarchies()
    cgroup = cgroups.open_cgroup("/x/y", "c1", root=str(tmp_path))
    assert cgroup.create_v2() == cgroup.paths["unified"]
    assert os.path.isdir(cgroup.paths["unified"]) and not os.path.exists(cgroup.paths["memory"])
    anchors = cgroup.v1_anchors()
    assert sorted(a[2] for a in anchors) == sorted(cgroup.paths[n] for n in ("memory", "pids",
                                                                            "systemd"))
    assert all(os.path.join(point, rel) == cgdir for point, rel, cgdir in anchors)
    opened = open_anchors(anchors)
    try:
        with pytest.raises(NotFound, match="the cgroup does not exist"):
            join_at(opened)
        cgroup.create()
        os.rmdir(cgroup.paths["pids"])  # a hierarchy the container has no directory in
        for name in ("memory", "systemd"):
            _files(cgroup.paths[name], {"tasks": ""})
        join_at(opened)
    finally:
        close_anchors(opened)
    for name in ("memory", "systemd"):
        assert _read(cgroup.paths[name], "tasks") == "0"
    assert not os.path.exists(os.path.join(cgroup.paths["unified"], "tasks"))
    forget_hierarchies()


def test_v2_makes_everything_at_create_v2_and_has_no_anchors(cg):
    assert cg.create_v2() == cg.paths["unified"] and os.path.isdir(cg.paths["unified"])
    assert cg.v1_anchors() == []


def test_destroy_removes_nested_dirs_and_is_idempotent(root):
    cgroup = cgroups.open_cgroup("/knarr/c1", "c1", root=root)
    cgroup.create()
    os.makedirs(os.path.join(cgroup.paths["unified"], "a/b"))
    cgroup.destroy()
    assert not cgroup.exists()
    assert os.path.isdir(os.path.join(root, "knarr"))  # shared parent stays
    cgroup.destroy()


def test_destroy_retries_while_busy(root, monkeypatch):
    cgroup = cgroups.open_cgroup(None, "c1", root=root)
    cgroup.create()
    real_rmdir, calls = os.rmdir, []

    def rmdir(path):
        calls.append(path)
        if len(calls) < 3:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        real_rmdir(path)

    monkeypatch.setattr(fs.os, "rmdir", rmdir)
    cgroup.destroy()
    assert len(calls) == 3 and not cgroup.exists()


def test_destroy_gives_up_after_the_timeout(root, monkeypatch):
    cgroup = cgroups.open_cgroup(None, "c1", root=root)
    cgroup.create()
    cgroup.remove_timeout = 0.05

    def rmdir(path):
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))

    monkeypatch.setattr(fs.os, "rmdir", rmdir)
    with pytest.raises(FailedPrecondition, match=r"knarr/c1: remove: Device or resource busy"):
        cgroup.destroy()


# apply

def test_apply_memory(cg):
    cg.apply({"memory": {"limit": 32 << 20, "swap": 64 << 20, "reservation": 16 << 20,
                         "swappiness": 10, "disableOOMKiller": True, "kernel": 1 << 20}})
    cgdir = cg.paths["unified"]
    assert _read(cgdir, "memory.max") == str(32 << 20)
    assert _read(cgdir, "memory.swap.max") == str(32 << 20)  # swap alone: total - memory
    assert _read(cgdir, "memory.low") == str(16 << 20)
    cg.apply({"memory": {"limit": -1, "swap": -1}})
    assert _read(cgdir, "memory.max") == "max"
    assert _read(cgdir, "memory.swap.max") == "max"


@pytest.mark.parametrize("memory", [{"swap": 1 << 20}, {"limit": 2 << 20, "swap": 1 << 20},
                                    {"limit": "1g"}])
def test_apply_memory_refuses(cg, memory):
    with pytest.raises(InvalidArgument, match="linux.resources.memory"):
        cg.apply({"memory": memory})


def test_apply_cpu(cg):
    cgdir = cg.paths["unified"]
    cg.apply({"cpu": {"shares": 1024, "quota": 20000, "period": 100000, "burst": 1000,
                      "idle": 1, "cpus": "0-1", "mems": "0", "realtimeRuntime": 5}})
    assert _read(cgdir, "cpu.weight") == "39"
    assert _read(cgdir, "cpu.max") == "20000 100000"
    assert _read(cgdir, "cpu.max.burst") == "1000"
    assert _read(cgdir, "cpu.idle") == "1"
    assert (_read(cgdir, "cpuset.cpus"), _read(cgdir, "cpuset.mems")) == ("0-1", "0")
    cg.apply({"cpu": {"period": 50000}})
    assert _read(cgdir, "cpu.max") == "20000 50000"
    cg.apply({"cpu": {"quota": -1}})
    assert _read(cgdir, "cpu.max") == "max"


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000),
                                                (1, 1), (1 << 20, 10000)])
def test_shares_to_weight(shares, weight):
    assert v2_resources.shares_to_weight(shares) == weight


def test_apply_pids(cg):
    cg.apply({"pids": {"limit": 100}})
    assert _read(cg.paths["unified"], "pids.max") == "100"
    cg.apply({"pids": {"limit": -1}})
    assert _read(cg.paths["unified"], "pids.max") == "max"


def test_apply_block_io_prefers_bfq_then_io_weight_then_skips(cg):
    cgdir = cg.paths["unified"]
    block_io = {"blockIO": {"weight": 500}}
    cg.apply(block_io)
    assert not os.path.exists(os.path.join(cgdir, "io.weight"))
    _files(cgdir, {"io.weight": "default 100"})
    cg.apply(block_io)
    assert _read(cgdir, "io.weight") == "default 4950"
    _files(cgdir, {"io.bfq.weight": "default 100"})
    cg.apply(block_io)
    assert _read(cgdir, "io.bfq.weight") == "default 500"


def test_apply_io_throttle(cg):
    _files(cg.paths["unified"], {"io.max": ""})
    cg.apply({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0,
                                                     "rate": 1048576}]}})
    assert _read(cg.paths["unified"], "io.max") == "8:0 rbps=1048576"


def test_apply_ignores_devices_and_skips_missing_hugepage_files(cg):
    cgdir = cg.paths["unified"]
    before = sorted(os.listdir(cgdir))
    cg.apply({"devices": [{"allow": False, "access": "rwm"}],
              "hugepageLimits": [{"pageSize": "1GB", "limit": 0}]})
    assert sorted(os.listdir(cgdir)) == before
    _files(cgdir, {"hugetlb.2MB.max": "max"})
    cg.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    assert _read(cgdir, "hugetlb.2MB.max") == str(4 << 20)


def test_apply_unified_writes_last(cg):
    cg.apply({"memory": {"limit": 1 << 30}, "unified": {"memory.max": "12345"}})
    assert _read(cg.paths["unified"], "memory.max") == "12345"


@pytest.mark.parametrize("unified", [{"../x": "1"}, {"memory.nope": "1"}, {"memory.max": 5}])
def test_apply_unified_refuses(cg, unified):
    with pytest.raises(InvalidArgument):
        cg.apply({"unified": unified})


def test_apply_without_the_controller_names_the_file(cg):
    os.remove(os.path.join(cg.paths["unified"], "pids.max"))
    with pytest.raises(Unavailable, match=r"knarr/c1: set pids.max to 10: the pids controller"):
        cg.apply({"pids": {"limit": 10}})


def test_a_value_the_kernel_refuses_is_invalid_argument(cg):
    cgdir = cg.paths["unified"]
    os.remove(os.path.join(cgdir, "memory.max"))
    os.symlink("/dev/full", os.path.join(cgdir, "memory.max"))  # every write: ENOSPC
    with pytest.raises(InvalidArgument) as info:
        cg.apply({"memory": {"limit": 1000}})
    assert str(info.value) == (f"cgroup {cgdir}: set memory.max to 1000: "
                               "No space left on device")
    assert info.value.context["file"] == "memory.max"


# freezer

def test_freeze_waits_for_the_kernel_then_thaw(cg):
    cgdir = cg.paths["unified"]
    kernel = threading.Timer(0.05, _files, (cgdir, {"cgroup.events": "frozen 1\n"}))
    kernel.start()
    started = time.monotonic()
    cg.freeze()
    assert time.monotonic() - started >= 0.04
    assert _read(cgdir, "cgroup.freeze") == "1" and cg.is_frozen()
    _files(cgdir, {"cgroup.events": "frozen 0\n"})
    cg.thaw()
    assert _read(cgdir, "cgroup.freeze") == "0" and not cg.is_frozen()


def test_freeze_that_never_settles_fails_and_thaws(cg):
    cg.freeze_timeout = 0.05
    with pytest.raises(Unavailable, match="still not frozen 1"):
        cg.freeze()
    assert _read(cg.paths["unified"], "cgroup.freeze") == "0"


# stats and oom

def test_stats(cg):
    _files(cg.paths["unified"], {
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\n"
                    "nr_throttled 2\nthrottled_usec 30\n",
        "memory.current": "4096", "memory.peak": "8192", "memory.max": "max",
        "memory.stat": "anon 1024\nfile 2048\n", "memory.events": "low 0\nmax 3\noom_kill 0\n",
        "memory.swap.current": "100", "memory.swap.max": "max",
        "pids.current": "2", "pids.max": "max",
        "io.stat": "8:0 rbytes=4096 wbytes=512 rios=1 wios=2 dbytes=0 dios=0\n",
    })
    stats = cg.stats()
    assert stats["cpu"] == {
        "usage": {"total": 1_500_000, "percpu": [], "kernel": 500_000, "user": 1_000_000},
        "throttling": {"periods": 10, "throttled_periods": 2, "throttled_time": 30_000}}
    memory = stats["memory"]
    assert memory["cache"] == 2048 and memory["raw"] == {"anon": 1024, "file": 2048}
    assert memory["usage"] == {"usage": 4096, "max": 8192, "failcnt": 3, "limit": 2**64 - 1}
    assert memory["swap"]["usage"] == 4196 and memory["swap"]["limit"] == 2**64 - 1
    assert stats["pids"] == {"current": 2, "limit": 0}
    assert stats["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096},
        {"major": 8, "minor": 0, "op": "Write", "value": 512}]


def test_oom_killed(cg):
    assert not cg.oom_killed()
    _files(cg.paths["unified"], {"memory.events": "oom 1\noom_kill 0\n"})
    assert not cg.oom_killed()
    _files(cg.paths["unified"], {"memory.events": "oom 1\noom_kill 1\n"})
    assert cg.oom_killed()
