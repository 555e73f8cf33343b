"""knarr-runtime drives real busybox containers through the OCI lifecycle."""

import json
import os
import time

import pytest

from knarr.runtime.state import process_start_time

pytestmark = pytest.mark.privileged


def _state(runtime, cid):
    result = runtime("state", cid, check=True)
    return json.loads(result.stdout)


def test_run_prints_and_exits_with_the_process_status(runtime, bundle):
    bundle.args("sh", "-c", "echo hello; exit 3").write()
    result = runtime("run", "--bundle", bundle.path, runtime.new_id())
    assert result.stdout == b"hello\n", result.stderr
    assert result.returncode == 3


def test_container_is_pid_1_with_its_hostname_and_own_proc(runtime, bundle):
    bundle.config["hostname"] = "boxy"
    bundle.args("sh", "-c", "echo $$; hostname; ls /proc | grep -c '^[0-9]'").write()
    result = runtime("run", "--bundle", bundle.path, runtime.new_id())
    assert result.returncode == 0, result.stderr
    pid, hostname, nprocs = result.stdout.decode().split()
    assert (pid, hostname) == ("1", "boxy")
    assert int(nprocs) <= 3  # sh, grep and ls: nothing of the host


def test_create_start_state_kill_delete(runtime, bundle):
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("create", "--bundle", bundle.path, cid, check=True)
    created = _state(runtime, cid)
    assert created["status"] == "created"
    assert created["id"] == cid and created["bundle"] == bundle.path
    assert created["pid"] > 0 and os.path.exists(f"/proc/{created['pid']}")
    runtime("start", cid, check=True)
    assert _state(runtime, cid)["status"] == "running"
    refused = runtime("start", cid)
    assert refused.returncode == 1 and b"running" in refused.stderr
    assert runtime("delete", cid).returncode == 1
    runtime("kill", cid, "KILL", check=True)
    for _ in range(200):
        if _state(runtime, cid)["status"] == "stopped":
            break
        time.sleep(0.01)
    assert _state(runtime, cid)["status"] == "stopped"
    runtime("delete", cid, check=True)
    assert runtime("state", cid).returncode == 1
    # Gone, or a zombie waiting for whichever process it was reparented to.
    assert process_start_time(created["pid"]) is None


def test_pause_and_resume(runtime, bundle):
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    runtime("pause", cid, check=True)
    assert _state(runtime, cid)["status"] == "paused"
    runtime("resume", cid, check=True)
    assert _state(runtime, cid)["status"] == "running"
    runtime("delete", "-f", cid, check=True)


def test_exec_runs_inside_the_container(runtime, bundle):
    bundle.config["hostname"] = "inside"
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    result = runtime("exec", cid, "sh", "-c", "hostname; cat /proc/1/cmdline; exit 5")
    assert result.returncode == 5, result.stderr
    assert result.stdout.decode().splitlines() == ["inside", "sleep\x001000\x00"]
    missing = runtime("exec", cid, "no-such-program")
    assert missing.returncode != 0 and b"not found" in missing.stderr
    pids = json.loads(runtime("ps", "--format", "json", cid, check=True).stdout)
    assert _state(runtime, cid)["pid"] in pids


def _host_cgroups(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return sorted(f.read().splitlines())


def test_exec_joins_every_cgroup_of_init_and_its_cgroup_namespace(runtime, bundle, tmp_path):
    # stage1 joins the v1 hierarchies through `tasks` and forks the process into the
    # v2 directory (clone3): the same place, in every hierarchy, as init's
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    init = _state(runtime, cid)["pid"]
    pid_file = tmp_path / "exec.pid"
    runtime("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "999", check=True)
    assert _host_cgroups(int(pid_file.read_text())) == _host_cgroups(init)
    inside = runtime("exec", cid, "cat", "/proc/self/cgroup", check=True).stdout.decode()
    assert inside and all(line.endswith(":/") for line in inside.splitlines()), inside


def test_exec_without_clone3_into_a_cgroup_moves_itself(runtime, bundle):
    # a kernel before 5.7 (or a seccomp filter) refuses clone3: stage1 writes its own
    # cgroup.procs in the v2 directory instead, and the process lands there all the same
    from knarr import sys as ksys
    from knarr.runtime import container_exec

    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    init = _state(runtime, cid)["pid"]

    def exec_refused():
        def refuse(fd):
            raise OSError(38, "clone3 into cgroup: Function not implemented")

        ksys.fork_into_cgroup = refuse
        proc = {"args": ["sleep", "998"], "cwd": "/", "env": ["PATH=/bin"],
                "user": {"uid": 0, "gid": 0}}
        return container_exec.exec_process(runtime.root, cid, proc, detach=True)

    pid = _pid_from_a_patched_child(exec_refused)
    assert pid and _host_cgroups(pid) == _host_cgroups(init)


def _pid_from_a_patched_child(work) -> int:
    """`work()` (which patches knarr and returns a pid) in a child of ours, so that the
    patch never touches the test process; the pid, once the child exited 0."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(r)
            os.write(w, str(work()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        pid = int(f.read() or b"0")
    assert os.waitpid(child, 0)[1] == 0
    return pid


def _in_container_cgroup(pid: int, cid: str) -> bool:
    lines = _host_cgroups(pid)
    return bool(lines) and all(line.endswith(f"/knarr/{cid}") for line in lines)


def test_init_is_in_the_containers_cgroup_in_every_hierarchy(runtime, bundle):
    # init is born in the v2 directory (clone3) and joins the v1 ones through `tasks`
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("create", "--bundle", bundle.path, cid, check=True)
    assert _in_container_cgroup(_state(runtime, cid)["pid"], cid)
    runtime("delete", "-f", cid, check=True)


@pytest.mark.parametrize("why", ["refused", "threaded"])
def test_create_without_clone3_into_a_cgroup_has_init_move_itself(runtime, bundle, why):
    # where clone3 is refused, or another thread runs (which may hold a lock of
    # glibc's that only glibc's fork takes care of), init is forked as usual and
    # writes its own cgroup.procs in the v2 directory
    import threading

    from knarr import sys as ksys
    from knarr.runtime import container_create

    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()

    def create_without():
        def refuse(fd, **_):
            raise OSError(38, "clone3 into cgroup: Function not implemented")

        if why == "refused":
            ksys.fork_into_cgroup = refuse
        else:
            ksys.fork_into_cgroup = lambda fd, **_: os._exit(3)  # must not be called
            stop = threading.Event()
            threading.Thread(target=stop.wait, daemon=True).start()
        return container_create.create(runtime.root, cid, bundle.path)["pid"]

    pid = _pid_from_a_patched_child(create_without)
    assert pid and _in_container_cgroup(pid, cid)
    runtime("delete", "-f", cid, check=True)


def test_a_child_forked_into_a_cgroup_has_glibcs_thread_id_right(tmp_path):
    # fork_into_cgroup(long_lived=True) has the kernel write the child's id where
    # glibc caches it, as glibc's own fork does: _tid_field finds it there
    import uuid

    from knarr import sys as ksys
    from knarr.runtime import cgroups
    from knarr.sys import libc

    cgroup = cgroups.open_cgroup(f"/knarr-test-{uuid.uuid4().hex[:8]}", "tid")
    v2 = cgroup.paths.get("unified")
    assert v2, "no cgroup v2 hierarchy on this host"
    cgroup.create()
    try:
        fd = os.open(v2, os.O_RDONLY | os.O_DIRECTORY)
        r, w = os.pipe()
        try:
            pid = ksys.fork_into_cgroup(fd, long_lived=True)
            if pid == 0:
                try:
                    os.write(w, f"{libc._tid_field() != 0} {_host_cgroups(os.getpid())}".encode())
                finally:
                    os._exit(0)
        finally:
            os.close(fd)
            os.close(w)
        with os.fdopen(r, "rb") as f:
            said = f.read().decode()
        assert os.waitpid(pid, 0)[1] == 0
        assert said.startswith("True ") and cgroup.path in said, said
        assert libc._tid_field() != 0  # and ours is untouched
    finally:
        cgroup.destroy()


def test_list_shows_containers(runtime, bundle):
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("create", "--bundle", bundle.path, cid, check=True)
    rows = json.loads(runtime("list", "--format", "json", check=True).stdout)
    assert [(r["id"], r["status"]) for r in rows] == [(cid, "created")]
    runtime("delete", cid, check=True)
    assert json.loads(runtime("list", "--format", "json", check=True).stdout) == []


def test_default_devices_work_under_a_deny_all_device_cgroup(runtime, bundle):
    bundle.args("sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c && "
                "head -c 1 /dev/urandom | wc -c").write()
    result = runtime("run", "--bundle", bundle.path, runtime.new_id())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"4", b"1"]


def _deny_mkdir(bundle):
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 13}]}
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})


def test_exec_applies_the_seccomp_profile_after_leaving_the_host(runtime, bundle):
    _deny_mkdir(bundle)
    bundle.args("sleep", "1000").write()
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", bundle.path, cid, check=True)
    result = runtime("exec", cid, "mkdir", "/tmp/x")
    assert result.returncode == 1
    assert b"Permission denied" in result.stderr, result.stderr


def test_start_container_hook_runs_inside_after_pivot(runtime, bundle):
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    bundle.config["hooks"] = {"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo hooked > /tmp/mark"]}]}
    bundle.args("cat", "/tmp/mark").write()
    result = runtime("run", "--bundle", bundle.path, runtime.new_id())
    assert (result.returncode, result.stdout) == (0, b"hooked\n"), result.stderr
