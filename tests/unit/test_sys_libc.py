"""knarr.sys.libc's C types (declared on _ctypes, without the ctypes package) and a few
harmless calls through them, compared with what the kernel and ctypes say."""

import ctypes
import os
import subprocess
import sys

from knarr.sys import libc

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(libc.__file__))))


def test_c_types_have_ctypes_sizes():
    for ours, theirs in ((libc.c_int, ctypes.c_int), (libc.c_uint, ctypes.c_uint),
                         (libc.c_long, ctypes.c_long), (libc.c_ulong, ctypes.c_ulong),
                         (libc.c_uint64, ctypes.c_uint64), (libc.c_char_p, ctypes.c_char_p),
                         (libc.c_void_p, ctypes.c_void_p), (libc.c_size_t, ctypes.c_size_t)):
        assert libc.sizeof(ours) == ctypes.sizeof(theirs)
    assert libc.c_ulong(2**63 + 5).value == 2**63 + 5  # unsigned, 64 bits
    assert libc.c_int(-1).value == -1


def test_capget_matches_proc_status():
    effective, permitted, _ = libc.capget()
    status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines()
                  if ":\t" in line)
    assert effective == int(status["CapEff"], 16)
    assert permitted == int(status["CapPrm"], 16)


def test_errors_carry_errno_and_the_call():
    try:
        libc.umount2("/nonexistent/knarr-test")
    except OSError as exc:
        assert exc.errno in (2, 1)  # ENOENT as root, EPERM otherwise
        assert "umount /nonexistent/knarr-test" in str(exc)
    else:
        raise AssertionError("umount2 of a missing path succeeded")


def test_openat2_and_pidfd():
    fd = libc.openat2(-100, "/proc/self/status", os.O_RDONLY, 0, libc.RESOLVE_NO_MAGICLINKS)
    try:
        assert os.read(fd, 5) == b"Name:"
    finally:
        os.close(fd)
    pidfd = libc.pidfd_open(os.getpid())
    os.close(pidfd)


def test_importing_knarr_sys_leaves_ctypes_out():
    code = "import sys; import knarr.sys; print('ctypes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=_REPO)
    assert out.stdout.strip() == "False"


def test_tid_field_holds_the_main_threads_id_and_is_not_trusted_elsewhere():
    import threading

    address = libc._tid_field()
    assert address and libc.c_int.from_address(address).value == os.getpid()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(libc._tid_field()))
    thread.start()
    thread.join()
    assert seen == [0]  # another thread's id is not the process's


def test_fork_into_cgroup_for_a_long_lived_child_needs_the_tid_field(monkeypatch):
    monkeypatch.setattr(libc, "_TID_OFFSET", None)
    try:
        libc.fork_into_cgroup(-1, long_lived=True)
    except OSError as exc:
        assert exc.errno == 95  # ENOTSUP, before any clone3
    else:
        raise AssertionError("fork_into_cgroup forked without glibc's thread id")


def test_set_child_subreaper_sets_it_as_prctl_reads_it_back():
    # in a child: the test process itself must not become a subreaper
    code = ("import ctypes, sys; sys.path.insert(0, sys.argv[1]); from knarr import sys as ksys; "
            "libc = ctypes.CDLL(None); flag = ctypes.c_int(-1); "
            "libc.prctl(37, ctypes.byref(flag), 0, 0, 0); before = flag.value; "
            "ksys.set_child_subreaper(); libc.prctl(37, ctypes.byref(flag), 0, 0, 0); "
            "print(before, flag.value)")
    out = subprocess.run([sys.executable, "-I", "-c", code, _REPO], capture_output=True,
                         text=True, check=True, timeout=60)
    assert out.stdout.split() == ["0", "1"]


def test_prlimit_reads_and_sets_as_getrlimit_and_setrlimit_do():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    as_ours = [libc.RLIM_INFINITY if v == resource.RLIM_INFINITY else v for v in (soft, hard)]
    assert list(libc.prlimit(resource.RLIMIT_CORE)) == as_ours
    try:
        assert list(libc.prlimit(resource.RLIMIT_CORE, 0, as_ours[1])) == as_ours
        assert resource.getrlimit(resource.RLIMIT_CORE) == (0, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
    try:
        libc.prlimit(resource.RLIMIT_CORE, 2, 1)  # soft above hard
    except OSError as exc:
        assert exc.errno == 22 and "prlimit" in str(exc)
    else:
        raise AssertionError("prlimit took a soft limit above the hard one")


def test_read_bytes_and_text_read_whole_files_without_io(tmp_path):
    from knarr import sys as ksys

    big = tmp_path / "big"
    big.write_bytes(b"x" * 200_000 + "é".encode())
    assert ksys.read_bytes(str(big)) == big.read_bytes()
    assert ksys.read_text(str(big)).endswith("xé")
    (tmp_path / "empty").write_bytes(b"")
    assert ksys.read_bytes(str(tmp_path / "empty")) == b""
    assert ksys.read_text("/proc/self/mountinfo") == open("/proc/self/mountinfo").read()
    try:
        ksys.read_bytes(str(tmp_path / "missing"))
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("a missing file was read")


def test_real_path_is_realpath(tmp_path):
    from knarr import sys as ksys

    (tmp_path / "a" / "b").mkdir(parents=True)
    os.symlink(tmp_path / "a", tmp_path / "link")
    for path in (tmp_path / "link" / "b", tmp_path / "a" / ".." / "a" / "b", tmp_path / "nope",
                 "relative-that-does-not-exist", tmp_path):
        assert ksys.real_path(str(path)) == os.path.realpath(path)
