"""The container process's security setup, for real: a forked child calls
process.finalize (and maybe exec_process), and the test checks it from outside
through /proc/<pid>/status, or reads what the child reports over a pipe.
"""

import errno
import os
import resource
import shutil
import stat

import pytest

from knarr import sys as ksys
from knarr.errors import FailedPrecondition, InvalidArgument, NotFound
from knarr.runtime import capabilities, process, rlimits, seccomp
from knarr.sys import seccomp as scmp

BUSYBOX = "/bin/busybox"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
needs_busybox = pytest.mark.skipif(not os.access(BUSYBOX, os.X_OK),
                                   reason="needs busybox-static at /bin/busybox")
needs_libseccomp = pytest.mark.skipif(not scmp.available(), reason="needs libseccomp.so.2")

DOCKER_CAPS = ["CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
               "CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
               "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"]


class Child:
    """A forked child running `body(out_fd, hold)`; whatever it raises is reported."""

    def __init__(self, body):
        self._out_r, out_w = os.pipe()
        go_r, self._go_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # never return into pytest from here
            code = 0
            try:
                os.close(self._out_r)
                os.close(self._go_w)
                body(out_w, lambda: _hold(out_w, go_r))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                os.write(out_w, f"{type(exc).__name__}: {exc}".encode())
                code = 99
            os._exit(code)
        os.close(out_w)
        os.close(go_r)

    def wait_ready(self) -> bytes:
        """Wait until the child holds; return what it wrote before that."""
        data = b""
        while not data.endswith(b"ready\n"):
            chunk = os.read(self._out_r, 4096)
            if not chunk:
                raise AssertionError((data + self.finish()[1]).decode())
            data += chunk
        return data[:-len(b"ready\n")]

    def finish(self) -> tuple[int, bytes]:
        """Let the child go; return its exit code and everything else it wrote."""
        os.close(self._go_w)
        chunks = []
        while chunk := os.read(self._out_r, 65536):
            chunks.append(chunk)
        os.close(self._out_r)
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status), b"".join(chunks)

    def status(self) -> dict[str, str]:
        with open(f"/proc/{self.pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f)


def _hold(out_w: int, go_r: int) -> None:
    os.write(out_w, b"ready\n")
    os.read(go_r, 1)


def _exec_to(out_w: int, proc: dict) -> None:
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    process.exec_process(proc)


def _proc(**fields) -> dict:
    base = {"cwd": "/", "args": [BUSYBOX, "true"], "env": ["PATH=/bin:/usr/bin"],
            "user": {"uid": 0, "gid": 0}}
    base.update(fields)
    return base


def _caps(names: list[str], **sets) -> dict:
    caps = {s: list(names) for s in ("bounding", "effective", "permitted")}
    caps.update(sets)
    return caps


def _mask(names: list[str]) -> int:
    return capabilities.mask(names, "test")


# Capabilities, user, groups, no_new_privs: checked from outside.

@pytest.mark.privileged
@needs_root
def test_finalize_sets_user_groups_caps_and_no_new_privs():
    caps = {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
            "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"]}
    proc = _proc(cwd="/tmp", capabilities=caps, noNewPrivileges=True,
                 user={"uid": 1000, "gid": 1001, "additionalGids": [20, 10], "umask": 0o027})
    child = Child(lambda out, hold: (process.finalize(proc, seccomp=None), hold()))
    child.wait_ready()
    try:
        status = child.status()
        cwd = os.readlink(f"/proc/{child.pid}/cwd")
    finally:
        code, output = child.finish()
    assert (code, output) == (0, b"")
    for key, field in (("CapBnd", "bounding"), ("CapEff", "effective"),
                       ("CapPrm", "permitted"), ("CapInh", "inheritable"),
                       ("CapAmb", "ambient")):
        assert int(status[key], 16) == _mask(caps[field]), key
    assert status["NoNewPrivs"] == "1"
    assert status["Uid"].split() == ["1000"] * 4
    assert status["Gid"].split() == ["1001"] * 4
    assert sorted(status["Groups"].split()) == ["10", "20"]
    assert status["Umask"] == "0027"
    assert cwd == "/tmp"


@pytest.mark.privileged
@needs_root
@needs_busybox
def test_root_container_keeps_exactly_its_sets_across_exec():
    proc = _proc(args=[BUSYBOX, "grep", "^Cap\\|^NoNewPrivs", "/proc/self/status"],
                 capabilities=_caps(DOCKER_CAPS), noNewPrivileges=False)
    code, output = Child(lambda out, hold: (process.finalize(proc, seccomp=None),
                                            _exec_to(out, proc))).finish()
    assert code == 0, output
    status = dict(line.split(":\t") for line in output.decode().splitlines())
    want = _mask(DOCKER_CAPS)
    assert [int(status[k], 16) for k in ("CapBnd", "CapEff", "CapPrm")] == [want] * 3
    assert int(status["CapInh"], 16) == 0 and int(status["CapAmb"], 16) == 0
    assert status["NoNewPrivs"] == "0"


@pytest.mark.privileged
@needs_root
@needs_busybox
def test_ambient_capabilities_survive_exec_as_a_non_root_user():
    caps = _caps(["CAP_NET_BIND_SERVICE", "CAP_KILL"], inheritable=["CAP_NET_BIND_SERVICE"],
                 ambient=["CAP_NET_BIND_SERVICE"])
    proc = _proc(args=[BUSYBOX, "grep", "^CapEff\\|^CapAmb", "/proc/self/status"],
                 capabilities=caps, user={"uid": 1000, "gid": 1000})
    code, output = Child(lambda out, hold: (process.finalize(proc, seccomp=None),
                                            _exec_to(out, proc))).finish()
    assert code == 0, output
    status = dict(line.split(":\t") for line in output.decode().splitlines())
    assert int(status["CapEff"], 16) == int(status["CapAmb"], 16) == 1 << 10


@pytest.mark.privileged
@needs_root
def test_without_capabilities_in_the_config_the_sets_are_left_alone():
    child = Child(lambda out, hold: (process.finalize(_proc(), seccomp=None), hold()))
    child.wait_ready()
    try:
        status = child.status()
    finally:
        child.finish()
    effective, permitted, inheritable = ksys.capget()
    assert int(status["CapEff"], 16) == effective
    assert int(status["CapPrm"], 16) == permitted
    assert int(status["CapBnd"], 16) == _mask(capabilities.host_capabilities())


@pytest.mark.privileged
@needs_root
def test_a_permitted_capability_the_runtime_lacks_is_a_clear_error():
    def body(out, hold):
        host = ksys.capget()[1]
        ksys.capset(host & ~(1 << 24), host & ~(1 << 24), 0)  # as on a host without it
        process.finalize(_proc(capabilities=_caps(["CAP_KILL", "CAP_SYS_RESOURCE"])),
                         seccomp=None)
    code, output = Child(body).finish()
    assert code == 99
    assert output == b"FailedPrecondition: set capabilities: the runtime lacks CAP_SYS_RESOURCE"


# Seccomp.

def _errno_of(call) -> int:
    try:
        call()
    except OSError as exc:
        return exc.errno
    return 0


def _deny_profile() -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                 "errnoRet": errno.EACCES},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOTSUP},
                # getpriority(PRIO_PGRP or PRIO_USER, ...): two tests of one argument.
                {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EIO,
                 "args": [{"index": 0, "value": os.PRIO_PGRP, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": os.PRIO_USER, "op": "SCMP_CMP_EQ"}]},
                {"names": ["no_such_syscall"], "action": "SCMP_ACT_KILL"},
            ]}


def _probe_syscalls(out: int, tmp_path) -> None:
    results = [
        _errno_of(lambda: os.mkdir(tmp_path / "denied")),
        _errno_of(os.getcwd),
        _errno_of(lambda: os.getpriority(os.PRIO_PGRP, 0)),
        _errno_of(lambda: os.getpriority(os.PRIO_USER, 0)),
        _errno_of(lambda: os.getpriority(os.PRIO_PROCESS, 0)),
        _errno_of(lambda: os.rmdir(tmp_path / "not-there")),
    ]
    os.write(out, " ".join(map(str, results)).encode())


@pytest.mark.privileged
@needs_root
@needs_libseccomp
@pytest.mark.parametrize("no_new_privs", [True, False])
def test_profile_denies_with_exactly_its_errno(tmp_path, no_new_privs):
    # Without no_new_privs the filter needs CAP_SYS_ADMIN to load, which the
    # container lacks: finalize keeps it just long enough.
    caps = _caps(DOCKER_CAPS)
    proc = _proc(capabilities=caps, noNewPrivileges=no_new_privs)

    def body(out, hold):
        process.finalize(proc, seccomp=_deny_profile())
        _probe_syscalls(out, tmp_path)
        hold()

    child = Child(body)
    data = child.wait_ready()
    try:
        status = child.status()
    finally:
        code, rest = child.finish()
    assert (code, rest) == (0, b"")
    assert data.split() == [str(e).encode() for e in (
        errno.EACCES, errno.ENOTSUP, errno.EIO, errno.EIO, 0, errno.ENOENT)]
    assert status["NoNewPrivs"] == ("1" if no_new_privs else "0")
    assert int(status["Seccomp"]) == 2
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == _mask(DOCKER_CAPS)
    assert not (tmp_path / "denied").exists()


@pytest.mark.privileged
@needs_root
@needs_busybox
@needs_libseccomp
def test_busybox_mkdir_sees_the_profiles_errno(tmp_path):
    proc = _proc(args=[BUSYBOX, "mkdir", str(tmp_path / "d")], noNewPrivileges=True,
                 capabilities=_caps(DOCKER_CAPS))
    code, output = Child(lambda out, hold: (process.finalize(proc, seccomp=_deny_profile()),
                                            _exec_to(out, proc))).finish()
    assert code == 1
    assert b"Permission denied" in output
    assert not (tmp_path / "d").exists()


@pytest.mark.privileged
@needs_root
@needs_busybox
@needs_libseccomp
def test_default_profile_runs_a_shell_and_blocks_unshare():
    script = ("echo hello; " + BUSYBOX + " unshare -u " + BUSYBOX + " true; echo unshare=$?")
    proc = _proc(args=[BUSYBOX, "sh", "-c", script], noNewPrivileges=True,
                 capabilities=_caps(DOCKER_CAPS))

    def body(out, hold):
        process.finalize(proc, seccomp=seccomp.default_profile(DOCKER_CAPS))
        unshare = _errno_of(lambda: ksys.unshare(ksys.CLONE_NEWUTS))
        os.write(out, f"ctypes-unshare={unshare}\n".encode())
        _exec_to(out, proc)

    code, output = Child(body).finish()
    assert code == 0, output
    lines = output.decode().splitlines()
    assert lines[0] == f"ctypes-unshare={errno.EPERM}"
    assert lines[1] == "hello"
    assert lines[-1] == "unshare=1"
    assert any("Operation not permitted" in line for line in lines[2:-1])


# Limits.

@pytest.mark.privileged
@needs_root
def test_rlimits_are_set():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want_hard = min(hard, 4096)
    proc = _proc(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 100, "hard": want_hard},
                          {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}])
    child = Child(lambda out, hold: (process.finalize(proc, seccomp=None), hold()))
    child.wait_ready()
    try:
        limits = resource.prlimit(child.pid, resource.RLIMIT_NOFILE)
        core = resource.prlimit(child.pid, resource.RLIMIT_CORE)
    finally:
        child.finish()
    assert limits == (100, want_hard)
    assert core == (0, 0)


@pytest.mark.privileged
@needs_root
def test_hard_limit_above_the_allowed_one_names_the_missing_capability():
    def body(out, hold):
        host = ksys.capget()[1] & ~(1 << 24)  # no CAP_SYS_RESOURCE, as on this host
        ksys.capset(host, host, 0)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        rlimits.apply([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 1}])
    code, output = Child(body).finish()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert code == 99
    assert output.decode() == (
        f"FailedPrecondition: set RLIMIT_NOFILE: cannot raise the hard limit to {hard + 1}, "
        f"above the allowed {hard}: CAP_SYS_RESOURCE is missing")


def test_rlimit_config_errors_name_the_field():
    with pytest.raises(InvalidArgument, match=r"process.rlimits\[0\].type: unknown rlimit"):
        rlimits.validate([{"type": "RLIMIT_FUN", "soft": 1, "hard": 1}])
    with pytest.raises(InvalidArgument, match="soft limit 10 is above its hard limit 5"):
        rlimits.validate([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}])
    with pytest.raises(InvalidArgument, match=r"process.rlimits\[0\].hard"):
        rlimits.validate([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": -1}])
    rlimits.validate([{"type": "RLIMIT_CORE", "soft": 5, "hard": 2**64 - 1}])


# cwd, PATH and env.

@pytest.mark.privileged
@needs_root
def test_missing_cwd_is_not_found():
    code, output = Child(lambda out, hold: process.finalize(_proc(cwd="/no/such/dir"),
                                                            seccomp=None)).finish()
    assert code == 99
    assert output == b"NotFound: chdir to cwd /no/such/dir: no such file or directory"


@pytest.mark.privileged
@needs_root
@needs_busybox
def test_exec_searches_the_containers_path_and_passes_its_env(tmp_path):
    tool = tmp_path / "knarr-test-tool"
    tool.write_text(f"#!{BUSYBOX} sh\necho \"$A $B\"; {BUSYBOX} env | {BUSYBOX} sort\n")
    tool.chmod(0o755)
    env = [f"PATH=/nowhere:{tmp_path}", "NO_EQUALS", "A=1", "A=2", "B=x=y", "=bad"]
    proc = _proc(args=["knarr-test-tool"], env=env)
    assert shutil.which("knarr-test-tool") is None  # not on the runtime's own PATH
    assert process.find_executable(proc) == str(tool)
    code, output = Child(lambda out, hold: (process.finalize(proc, seccomp=None),
                                            _exec_to(out, proc))).finish()
    assert code == 0, output
    first, *rest = output.decode().splitlines()
    assert first == "2 x=y"
    shell_own = ("PWD=", "SHLVL=")
    assert [line for line in rest if not line.startswith(shell_own)] == [
        "A=2", "B=x=y", f"PATH=/nowhere:{tmp_path}"]


def test_exec_of_a_missing_program_uses_dockers_wording(tmp_path):
    proc = _proc(args=["no-such-program"], env=[f"PATH={tmp_path}"])
    for call in (process.exec_process, process.find_executable):
        with pytest.raises(NotFound) as info:
            call(proc)
        assert str(info.value) == 'exec: "no-such-program": executable file not found in $PATH'
    with pytest.raises(NotFound, match='exec: "/no/such": stat /no/such: no such file'):
        process.exec_process(_proc(args=["/no/such"]))


def test_exec_of_a_file_without_execute_permission_is_denied(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    for proc in (_proc(args=["script"], env=[f"PATH={tmp_path}"]),
                 _proc(args=[str(script)])):
        for call in (process.exec_process, process.find_executable):
            with pytest.raises(FailedPrecondition, match=r'exec: ".*script": permission denied'):
                call(proc)


def test_environ_drops_entries_without_a_name_or_equals_sign():
    assert process.environ(["A=1", "B", "=c", "A=2", "D=", "E=f=g"]) == {
        "A": "2", "D": "", "E": "f=g"}
