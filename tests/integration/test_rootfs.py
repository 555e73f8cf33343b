"""prepare_rootfs, pivot_into and finalize_rootfs for real, in a forked child.

Each test forks; the child unshares a mount namespace (and a cgroup one when
asked), sets the rootfs up, pivots and runs busybox `sh -c` checks that print
"ok NAME" or "FAIL NAME". The parent reads them through a pipe and then checks
that nothing the child mounted is left in the host's mount table.
"""

import json
import os
import select
import shutil
import signal
import subprocess
import time
import traceback

import pytest

from knarr.errors import KnarrError
from knarr.runtime import rootfs as rootfs_mod
from knarr.runtime.mounts import read_mountinfo
from knarr.sys import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    capget,
    capset,
    unshare,
)

pytestmark = pytest.mark.privileged

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHECKS = r"""
check() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "ok $name"; else echo "FAIL $name"; fi; }
out=$(touch /probe 2>&1)
case "$out" in *Read-only*) echo "ok root-erofs";; *) echo "FAIL root-erofs: $out";; esac
check kcore-masked sh -c 'test ! -e /proc/kcore || test -z "$(head -c 16 /proc/kcore)"'
check timer-list-masked test -z "$(head -c 16 /proc/timer_list)"
check timer-list-null test "$(stat -c %t,%T /proc/timer_list)" = 1,3
check proc-sys-ro grep -q ' /proc/sys ro,' /proc/self/mountinfo
v=$(cat /proc/sys/kernel/hostname)
out=$( (echo "$v" > /proc/sys/kernel/hostname) 2>&1)
case "$out" in *Read-only*) echo "ok proc-sys-erofs";; *) echo "FAIL proc-sys-erofs: $out";; esac
check null-char test -c /dev/null
check null-1-3 test "$(stat -c %t,%T /dev/null)" = 1,3
check null-mode test "$(stat -c %a /dev/null)" = 666
check null-writable sh -c 'echo x > /dev/null'
check urandom-1-9 test "$(stat -c %t,%T /dev/urandom)" = 1,9
check tty-5-0 test "$(stat -c %t,%T /dev/tty)" = 5,0
check ptmx-link test "$(readlink /dev/ptmx)" = pts/ptmx
check fd-link test "$(readlink /dev/fd)" = /proc/self/fd
check stderr-link test "$(readlink /dev/stderr)" = /proc/self/fd/2
check devpts grep -q ' /dev/pts .* - devpts ' /proc/self/mountinfo
check shm-writable touch /dev/shm/probe
check mqueue grep -q ' /dev/mqueue .* - mqueue ' /proc/self/mountinfo
check sys-ro grep -q ' /sys ro,' /proc/self/mountinfo
check firmware-masked test -z "$(ls -A /sys/firmware)"
check cgroup-memory test -f /sys/fs/cgroup/memory/memory.limit_in_bytes
check cgroup-memory-ro grep -q ' /sys/fs/cgroup/memory ro,' /proc/self/mountinfo
check cgroup-tmpfs-ro grep -q ' /sys/fs/cgroup ro,' /proc/self/mountinfo
check cgroup-unified test -f /sys/fs/cgroup/unified/cgroup.procs
check cgroup-systemd test -d /sys/fs/cgroup/systemd
awk '{print "mount " $5}' /proc/self/mountinfo
"""

ALLOWED_MOUNTS = ("/", "/proc", "/dev", "/sys")


@pytest.fixture(scope="module")
def bundle_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("rootfs-template") / "bundle"
    subprocess.run([os.path.join(REPO, "scripts", "busybox-bundle"), str(path)], check=True,
                   capture_output=True)
    return path


@pytest.fixture
def bundle(bundle_template, tmp_path):
    """A fresh copy of a busybox bundle: (rootfs path, config)."""
    path = tmp_path / "bundle"
    shutil.copytree(bundle_template, path, symlinks=True)
    with open(path / "config.json") as f:
        config = json.load(f)
    return str(path / "rootfs"), config


def _run_child(body, timeout: float = 20.0) -> tuple[int, str]:
    """Fork; run `body(write_fd)` in the child; return its exit code and output."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_fd)
            body(write_fd)
        except BaseException:
            os.write(write_fd, traceback.format_exc().encode())
        finally:
            os._exit(99)
    os.close(write_fd)
    output = _read_until_eof(read_fd, pid, timeout)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def _read_until_eof(fd: int, pid: int, timeout: float) -> str:
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                chunks.append(b"\n(timed out)")
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _container(config, rootfs, script, *, cgroupns=False, no_pivot=False, bundle=None):
    def body(out_fd):
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        unshare(CLONE_NEWNS | (CLONE_NEWCGROUP if cgroupns else 0))
        rootfs_mod.prepare_rootfs(config, rootfs, in_cgroupns=cgroupns, in_userns=False,
                                  bundle=bundle)
        rootfs_mod.pivot_into(rootfs, no_pivot=no_pivot)
        rootfs_mod.finalize_rootfs(config)
        os.execv("/bin/sh", ["sh", "-c", script])
    return _run_child(body)


def _host_mounts_under(path) -> list[str]:
    return [m.mount_point for m in read_mountinfo() if m.mount_point.startswith(str(path))]


@pytest.mark.parametrize("cgroupns, no_pivot", [(False, False), (True, False), (False, True)],
                         ids=["bind-cgroups", "cgroupns", "no-pivot"])
def test_default_config_rootfs(bundle, tmp_path, cgroupns, no_pivot):
    rootfs, config = bundle
    host_before = {(m.mount_point, m.fstype) for m in read_mountinfo()}
    code, out = _container(config, rootfs, CHECKS, cgroupns=cgroupns, no_pivot=no_pivot)
    assert code == 0, out
    failed = [line for line in out.splitlines() if not line.startswith(("ok ", "mount "))]
    assert not failed, out
    passed = [line for line in out.splitlines() if line.startswith("ok ")]
    assert len(passed) == CHECKS.count("\ncheck ") + 2, out  # + the two "case" checks
    if not no_pivot:  # with MS_MOVE and chroot the old root's mounts stay, by design
        points = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("mount ")]
        strays = [p for p in points if p not in ALLOWED_MOUNTS
                  and not p.startswith(tuple(a + "/" for a in ALLOWED_MOUNTS[1:]))]
        assert not strays, out
    assert not _host_mounts_under(tmp_path)
    host_after = {(m.mount_point, m.fstype) for m in read_mountinfo()}
    assert not {m for m in host_after - host_before if m[0].startswith(str(tmp_path))}
    assert os.listdir(os.path.join(rootfs, "dev")) == []  # nodes went to the tmpfs
    assert not os.path.exists(os.path.join(rootfs, "probe"))


def test_binds_and_a_symlinked_destination_stay_inside(bundle, tmp_path):
    rootfs, config = bundle
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("hi\n")
    bundle_dir = os.path.dirname(rootfs)
    with open(os.path.join(bundle_dir, "hostname"), "w") as f:
        f.write("box\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), os.path.join(rootfs, "evil"))
    config["mounts"] += [
        {"destination": "/data", "type": "bind", "source": str(data),
         "options": ["rbind", "ro", "rprivate"]},
        {"destination": "/etc/hostname", "type": "bind", "source": "hostname",
         "options": ["bind"]},  # relative to the bundle
        {"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ]
    script = r"""
    check() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "ok $name"; else echo "FAIL $name"; fi; }
    check data-readable test "$(cat /data/hello)" = hi
    out=$(touch /data/new 2>&1)
    case "$out" in *Read-only*) echo "ok data-ro";; *) echo "FAIL data-ro: $out";; esac
    check hostname-file test "$(cat /etc/hostname)" = box
    check evil-tmpfs grep -q " $(readlink /evil)/x .* - tmpfs " /proc/self/mountinfo
    """
    code, out = _container(config, rootfs, script, bundle=bundle_dir)
    assert code == 0, out
    assert "FAIL" not in out and out.count("ok ") == 4, out
    assert os.listdir(outside) == []
    assert os.path.isdir(os.path.join(rootfs, str(outside).lstrip("/"), "x"))
    assert not (data / "new").exists()
    assert not _host_mounts_under(tmp_path)


def test_failed_mount_names_the_mount(bundle, tmp_path):
    rootfs, config = bundle
    config["mounts"] = [{"destination": "/x", "type": "nosuchfs", "source": "none"}]

    def body(out_fd):
        unshare(CLONE_NEWNS)
        try:
            rootfs_mod.prepare_rootfs(config, rootfs, in_cgroupns=False, in_userns=False)
        except KnarrError as exc:
            os.write(out_fd, f"{type(exc).__name__}: {exc}".encode())
            os._exit(0)
    code, out = _run_child(body)
    assert code == 0, out
    assert out == f"InvalidArgument: mount nosuchfs on {rootfs}/x: No such device"
    assert not _host_mounts_under(tmp_path)


@pytest.mark.parametrize("propagation, tag", [
    ("rshared", "shared:"), ("shared", "shared:"), ("runbindable", "unbindable"),
    ("private", ""), ("rslave", "")])
def test_root_propagation_in_a_pid_namespace_with_bound_devices(bundle, tmp_path, propagation,
                                                                 tag):
    rootfs, config = bundle
    config["linux"]["rootfsPropagation"] = propagation
    script = r"""
    check() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "ok $name"; else echo "FAIL $name"; fi; }
    check pid-1 test $$ = 1
    check null-bound grep -q ' /dev/null .* - devtmpfs ' /proc/self/mountinfo
    check null-1-3 test "$(stat -c %t,%T /dev/null)" = 1,3
    echo "root $(awk '$5 == "/" {print $7}' /proc/self/mountinfo)"
    """

    def body(out_fd):
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        unshare(CLONE_NEWNS | CLONE_NEWPID)
        if os.fork():
            _, status = os.wait()
            os._exit(os.waitstatus_to_exitcode(status))
        try:
            rootfs_mod.prepare_rootfs(config, rootfs, in_cgroupns=False, in_userns=True)
            rootfs_mod.pivot_into(rootfs)
            rootfs_mod.finalize_rootfs(config)
            os.execv("/bin/sh", ["sh", "-c", script])
        finally:
            os.write(out_fd, traceback.format_exc().encode())
            os._exit(98)
    code, out = _run_child(body)
    assert code == 0, out
    assert "FAIL" not in out and out.count("ok ") == 3, out
    root_tag = out.split("root ", 1)[1].strip()
    assert root_tag.startswith(tag) if tag else root_tag in ("", "-"), out
    assert not _host_mounts_under(tmp_path)


def test_without_cap_mknod_host_nodes_are_bound(bundle, tmp_path):
    rootfs, config = bundle
    cap_mknod = 1 << 27
    script = r"""
    check() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "ok $name"; else echo "FAIL $name"; fi; }
    check null-bound grep -q ' /dev/null .* - devtmpfs ' /proc/self/mountinfo
    check zero-1-5 test "$(stat -c %t,%T /dev/zero)" = 1,5
    """

    def body(out_fd):
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        effective, permitted, inheritable = capget()
        capset(effective & ~cap_mknod, permitted, inheritable)
        unshare(CLONE_NEWNS)
        rootfs_mod.prepare_rootfs(config, rootfs, in_cgroupns=False, in_userns=False)
        rootfs_mod.pivot_into(rootfs)
        os.execv("/bin/sh", ["sh", "-c", script])
    code, out = _run_child(body)
    assert code == 0, out
    assert "FAIL" not in out and out.count("ok ") == 2, out


def test_in_a_user_namespace(bundle, tmp_path):
    """Locked mount flags are kept on remounts; device nodes are the host's, bound."""
    rootfs, config = bundle
    script = CHECKS.replace("check null-mode", ": ")  # a bound node keeps the host's mode
    ready_r, ready_w = os.pipe()
    mapped_r, mapped_w = os.pipe()

    def body(out_fd):
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        unshare(CLONE_NEWUSER)
        os.write(ready_w, b"u")
        if os.read(mapped_r, 1) != b"m":
            os._exit(97)
        os.setgid(0)
        os.setuid(0)
        # sysfs and mqueue want network and IPC namespaces owned by the user namespace
        unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWCGROUP)
        if os.fork():
            _, status = os.wait()
            os._exit(os.waitstatus_to_exitcode(status))
        try:
            rootfs_mod.prepare_rootfs(config, rootfs, in_cgroupns=True, in_userns=True)
            rootfs_mod.pivot_into(rootfs)
            rootfs_mod.finalize_rootfs(config)
            os.execv("/bin/sh", ["sh", "-c", script])
        finally:
            os.write(out_fd, traceback.format_exc().encode())
            os._exit(98)

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            body(write_fd)
        finally:
            os._exit(99)
    os.close(write_fd)
    try:
        select.select([ready_r], [], [], 10)
        os.read(ready_r, 1)
        for name, line in (("uid_map", "0 0 4294967295"), ("setgroups", "deny"),
                           ("gid_map", "0 0 4294967295")):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(line)
    finally:
        os.write(mapped_w, b"m")
        for fd in (ready_r, ready_w, mapped_r, mapped_w):
            os.close(fd)
    out = _read_until_eof(read_fd, pid, 20.0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    failed = [line for line in out.splitlines() if not line.startswith(("ok ", "mount "))]
    assert not failed, out
    assert not _host_mounts_under(tmp_path)


def test_bind_console_puts_a_pty_of_the_containers_devpts_on_dev_console(bundle, tmp_path):
    rootfs, config = bundle

    def body(out_fd):
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        unshare(CLONE_NEWNS)
        rootfs_mod.prepare_rootfs(config, rootfs, in_cgroupns=False, in_userns=False)
        rootfs_mod.pivot_into(rootfs)
        rootfs_mod.finalize_rootfs(config)
        _, slave = os.openpty()  # through /dev/ptmx -> pts/ptmx, the new devpts instance
        rootfs_mod.bind_console(os.ttyname(slave))
        os.execv("/bin/sh", ["sh", "-c", "echo $(stat -c %t /dev/console) $(readlink /dev/ptmx)"
                             " $(grep -c ' /dev/console ' /proc/self/mountinfo)"])
    code, out = _run_child(body)
    assert code == 0, out
    assert out.split() == ["88", "pts/ptmx", "1"], out  # 136, the pty slave major, in hex
    assert not os.path.exists(os.path.join(rootfs, "dev", "console"))
