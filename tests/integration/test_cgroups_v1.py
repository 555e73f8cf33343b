"""The cgroup v1 driver on this host's real hierarchies (v1 or hybrid).

Every test gets a cgroup of its own, /knarr-test-<random>, in every
hierarchy; the fixture kills what is left in it, thaws it, removes it and
checks that no directory of it is left anywhere, whether the test passed or not.
"""

import os
import signal
import time
import uuid

import pytest

from knarr.errors import InvalidArgument
from knarr.runtime import cgroups

ROOT = "/sys/fs/cgroup"
MiB = 1 << 20


def _v1_host() -> bool:
    return os.path.isdir(ROOT) and cgroups.current_layout(ROOT) in ("v1", "hybrid")


pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(not _v1_host(), reason="needs cgroup v1 (or hybrid) mounted")]


def _read(cgdir, name):
    with open(os.path.join(cgdir, name)) as f:
        return f.read().strip()


class Children:
    """Forked children that wait on a pipe until they are in the cgroup."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def fork(self, work) -> tuple[int, int]:
        """Fork a child that runs `work()` once released; returns (pid, release fd)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 0
            try:
                os.close(w)
                os.read(r, 1)
                work()
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(r)
        self.pids.append(pid)
        return pid, w

    def start(self, cg, work) -> int:
        """Fork, put the child in `cg`, release it; return its pid."""
        pid, release = self.fork(work)
        cg.add_process(pid)
        os.write(release, b"x")
        os.close(release)
        return pid

    def wait(self, pid: int) -> int:
        """waitpid for `pid`; returns the raw status."""
        self.pids.remove(pid)
        return os.waitpid(pid, 0)[1]

    def reap_all(self) -> None:
        """Kill and reap every child still known."""
        for pid in list(self.pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(pid)


def _busy_then_sleep():
    data = b"x" * (4 * MiB)  # touched pages, charged to the new cgroup
    end = time.monotonic() + 0.05
    while time.monotonic() < end:
        pass
    time.sleep(60)
    del data


def _hog():
    chunks = []
    for _ in range(64):
        chunks.append(b"x" * MiB)
    time.sleep(60)


@pytest.fixture
def children():
    kids = Children()
    yield kids
    kids.reap_all()


@pytest.fixture
def cg(children):
    cgroup = cgroups.open_cgroup(f"/knarr-test-{uuid.uuid4().hex[:12]}", "test")
    cgroup.create()
    yield cgroup
    for pid in cgroup.pids():
        os.kill(pid, signal.SIGKILL)
    if cgroup.is_frozen():
        cgroup.thaw()  # killed tasks cannot exit while frozen
    children.reap_all()
    cgroup.destroy()
    left = [d for d in cgroup.paths.values() if os.path.exists(d)]
    assert not left, f"cgroup dirs left behind: {left}"


def test_create_places_the_process_in_every_hierarchy(cg, children):
    assert cg.layout == cgroups.current_layout(ROOT)
    assert {"memory", "cpu", "pids", "freezer", "devices"} <= set(cg.paths)
    assert _read(cg.paths["cpuset"], "cpuset.cpus")  # copied down, else no attach
    pid = children.start(cg, _busy_then_sleep)
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    assert lines and all(line.split(":", 2)[2] == cg.path for line in lines)
    assert cg.pids() == [pid]


def test_limits_freeze_stats(cg, children):
    pid = children.start(cg, _busy_then_sleep)
    cg.apply({"memory": {"limit": 32 * MiB, "swap": 32 * MiB},
              "pids": {"limit": 10},
              "cpu": {"quota": 20000, "period": 100000, "shares": 512}})
    assert _read(cg.paths["memory"], "memory.limit_in_bytes") == str(32 * MiB)
    assert _read(cg.paths["pids"], "pids.max") == "10"
    assert _read(cg.paths["cpu"], "cpu.cfs_quota_us") == "20000"
    assert _read(cg.paths["cpu"], "cpu.cfs_period_us") == "100000"
    assert _read(cg.paths["cpu"], "cpu.shares") == "512"

    cg.freeze()
    assert _read(cg.paths["freezer"], "freezer.state") == "FROZEN" and cg.is_frozen()
    with open(f"/proc/{pid}/status") as f:
        state = next(line for line in f if line.startswith("State:"))
    assert "D" in state.split()  # a frozen task shows as uninterruptible
    cg.thaw()
    assert _read(cg.paths["freezer"], "freezer.state") == "THAWED" and not cg.is_frozen()

    time.sleep(0.1)  # let the child finish its busy loop
    stats = cg.stats()
    assert stats["cpu"]["usage"]["total"] > 0
    assert len(stats["cpu"]["usage"]["percpu"]) == os.cpu_count()
    assert stats["memory"]["usage"]["usage"] >= 4 * MiB
    assert stats["memory"]["usage"]["limit"] == 32 * MiB
    assert stats["memory"]["raw"]["hierarchical_memory_limit"] == 32 * MiB
    assert stats["pids"] == {"current": 1, "limit": 10}
    assert not cg.oom_killed()


def test_memory_and_swap_in_an_order_the_kernel_accepts(cg):
    memory = cg.paths["memory"]
    steps = [(64 * MiB, 128 * MiB), (32 * MiB, 48 * MiB), (256 * MiB, 512 * MiB),
             (16 * MiB, 16 * MiB)]
    for limit, swap in steps:
        cg.apply({"memory": {"limit": limit, "swap": swap}})
        assert _read(memory, "memory.limit_in_bytes") == str(limit)
        assert _read(memory, "memory.memsw.limit_in_bytes") == str(swap)
    cg.apply({"memory": {"limit": -1}})  # lifts memsw too, or the kernel would refuse
    assert int(_read(memory, "memory.limit_in_bytes")) > 1 << 62
    assert int(_read(memory, "memory.memsw.limit_in_bytes")) > 1 << 62


def test_a_refused_value_is_invalid_argument_naming_file_and_value(cg):
    with pytest.raises(InvalidArgument) as info:
        cg.apply({"cpu": {"quota": 10}})  # below the kernel's 1 ms minimum
    assert str(info.value) == (f"cgroup {cg.paths['cpu']}: set cpu.cfs_quota_us to 10: "
                               "Invalid argument")
    with pytest.raises(InvalidArgument, match="memory.memsw.limit_in_bytes"):
        cg.apply({"memory": {"limit": 64 * MiB, "swap": 32 * MiB}})


def test_device_rules_in_order(cg):
    cg.apply({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rw"},
    ]})
    rules = _read(cg.paths["devices"], "devices.list").splitlines()
    assert rules == ["c 1:3 rwm", "c 136:* rw"]


def test_memory_hog_is_oom_killed(cg, children):
    cg.apply({"memory": {"limit": 16 * MiB, "swap": 16 * MiB}})
    pid = children.start(cg, _hog)
    status = children.wait(pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert cg.oom_killed()
    assert cg.stats()["memory"]["usage"]["max"] == 16 * MiB  # it hit the limit


def test_destroy_right_after_kill_retries_until_the_exit_is_done(cg, children):
    pid = children.start(cg, _busy_then_sleep)
    os.kill(pid, signal.SIGKILL)
    cg.destroy()  # no waitpid first: the cgroup may still be busy for a moment
    assert not cg.exists()
    cg.destroy()  # already gone is fine
    children.wait(pid)


@pytest.mark.skipif(not os.path.exists(f"{ROOT}/unified/cgroup.controllers"),
                    reason="needs a hybrid host with cgroup2 at /sys/fs/cgroup/unified")
def test_v2_driver_on_the_hybrid_unified_mount(children):
    # With every controller bound to v1 the unified tree has only its core
    # files, which is enough to run the v2 freezer and cpu.stat for real.
    cg = cgroups.open_cgroup(f"/knarr-test-{uuid.uuid4().hex[:12]}", "test",
                             root=f"{ROOT}/unified")
    cg.create()
    try:
        pid = children.start(cg, _busy_then_sleep)
        cg.freeze()
        assert _read(cg.paths["unified"], "cgroup.freeze") == "1" and cg.is_frozen()
        cg.thaw()
        assert not cg.is_frozen() and cg.pids() == [pid]
        assert cg.stats()["cpu"]["usage"]["total"] > 0
        children.reap_all()
    finally:
        children.reap_all()
        cg.destroy()
    assert not cg.exists()
