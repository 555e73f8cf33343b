"""Bindings to libc and raw syscalls (x86_64 and aarch64).

Built on `_ctypes` itself: the `ctypes` package's own start-up (its type
checks, caches, `struct`, the endian structures) costs knarr-runtime more than
all the calls made here; the few C types needed are declared below the way
`ctypes` declares them.
"""

import _ctypes
import _thread
import errno
import os


class c_int(_ctypes._SimpleCData):
    _type_ = "i"


class c_uint(_ctypes._SimpleCData):
    _type_ = "I"


class c_long(_ctypes._SimpleCData):
    _type_ = "l"


class c_ulong(_ctypes._SimpleCData):
    _type_ = "L"


class c_uint64(_ctypes._SimpleCData):
    _type_ = "Q"


class c_char_p(_ctypes._SimpleCData):
    _type_ = "z"


class c_void_p(_ctypes._SimpleCData):
    _type_ = "P"


c_uint32 = c_uint
c_size_t = c_ulong  # LP64 (x86_64, aarch64)
byref, sizeof, get_errno = _ctypes.byref, _ctypes.sizeof, _ctypes.get_errno


class _Function(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _Library:
    """What CFuncPtr needs of a library: its dlopen handle (here the process's own
    symbols, libc among them)."""

    _handle = _ctypes.dlopen(None, 0)

    def __getattr__(self, name: str) -> _Function:
        function = _Function((name, self))
        setattr(self, name, function)
        return function


_libc = _Library()

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_FORCE = 1
MNT_DETACH = 2

_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "pidfd_open": 434, "pidfd_send_signal": 424, "capget": 125,
               "capset": 126, "setns": 308, "openat2": 437, "clone3": 435},
    "aarch64": {"pivot_root": 41, "pidfd_open": 434, "pidfd_send_signal": 424, "capget": 90,
                "capset": 91, "setns": 268, "openat2": 437, "clone3": 435},
}[os.uname().machine]

_libc.syscall.restype = c_long
_libc.mount.argtypes = [c_char_p, c_char_p, c_char_p, c_ulong,
                        c_void_p]
_libc.umount2.argtypes = [c_char_p, c_int]
_libc.prctl.argtypes = [c_int, c_ulong, c_ulong, c_ulong,
                        c_ulong]


def _check(result: int, what: str, *paths: object) -> int:
    if result < 0:
        err = get_errno()
        detail = " ".join(str(p) for p in paths if p is not None)
        raise OSError(err, f"{what} {detail}: {os.strerror(err)}".replace("  ", " "))
    return result


def _bytes(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces named by CLONE_* flags."""
    _check(_libc.unshare(c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace behind the open file descriptor `fd`."""
    _check(_libc.syscall(_SYSCALLS["setns"], c_int(fd), c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2); `data` is the comma-separated option string."""
    data_b = _bytes(data)
    _check(_libc.mount(_bytes(source), _bytes(target), _bytes(fstype), c_ulong(flags),
                       c_char_p(data_b) if data_b is not None else None),
           "mount", source, "on", target)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_bytes(target), flags), "umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make `new_root` the root, moving the old root to `put_old`."""
    _check(_libc.syscall(_SYSCALLS["pivot_root"], c_char_p(_bytes(new_root)),
                         c_char_p(_bytes(put_old))), "pivot_root", new_root)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns the call's result."""
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


# prctl without argtypes: Python ints go as C ints, which libffi widens to the
# register's 64 bits as the variadic prctl reads them. ctypes' argtypes conversion
# touches the C types' objects on every call, and a forked monitor (which becomes a
# subreaper first thing) would pay ~90 KiB of private copies of their pages for it.
_prctl_ints = _Function(("prctl", _libc))
_PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper() -> None:
    """prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants become our children."""
    if _prctl_ints(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0:
        err = get_errno()
        raise OSError(err, f"prctl({_PR_SET_CHILD_SUBREAPER}): {os.strerror(err)}")


class _Rlimit(_ctypes.Structure):
    _fields_ = [("cur", c_uint64), ("max", c_uint64)]


RLIM_INFINITY = 2**64 - 1


def prlimit(resource: int, soft: int | None = None, hard: int | None = None) -> tuple[int, int]:
    """prlimit(2) on the calling process: set `resource` to (soft, hard) when given
    (RLIM_INFINITY for no limit); returns the limits it had before."""
    old = _Rlimit()
    new = None if soft is None else byref(_Rlimit(soft, hard))
    _check(_libc.prlimit(c_int(0), c_int(resource), new, byref(old)), "prlimit", resource)
    return old.cur, old.max


def malloc_trim() -> None:
    """Give the C heap's free pages back to the kernel (glibc's malloc_trim(0));
    AttributeError where the C library has no malloc_trim."""
    _libc.malloc_trim(c_size_t(0))


def sethostname(name: str) -> None:
    """sethostname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(c_char_p(raw), c_size_t(len(raw))), "sethostname",
           name)


def setdomainname(name: str) -> None:
    """setdomainname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_libc.setdomainname(c_char_p(raw), c_size_t(len(raw))),
           "setdomainname", name)


class _CapHeader(_ctypes.Structure):
    _fields_ = [("version", c_uint32), ("pid", c_int)]


class _CapData(_ctypes.Structure):
    _fields_ = [("effective", c_uint32), ("permitted", c_uint32),
                ("inheritable", c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capget(pid: int = 0) -> tuple[int, int, int]:
    """Return (effective, permitted, inheritable) capability masks of `pid` (0: self)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_libc.syscall(_SYSCALLS["capget"], byref(header), data), "capget")
    join = lambda lo, hi: lo | (hi << 32)  # noqa: E731
    return (join(data[0].effective, data[1].effective),
            join(data[0].permitted, data[1].permitted),
            join(data[0].inheritable, data[1].inheritable))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's effective, permitted and inheritable capability masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(_SYSCALLS["capset"], byref(header), data), "capset")


def syncfs(fd: int) -> None:
    """syncfs(2): write out the file system that holds `fd`, and only that one."""
    _check(_libc.syncfs(c_int(fd)), "syncfs")


SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int) -> None:
    """sync_file_range(2) SYNC_FILE_RANGE_WRITE over the whole file: start writing its
    dirty pages to disk without waiting. Not durability (fsync or syncfs is): it only
    gets the disk working earlier, so the sync that follows has less left to do."""
    _check(_libc.sync_file_range(c_int(fd), c_long(0), c_long(0),  # off64_t: LP64 long
                                 c_uint(SYNC_FILE_RANGE_WRITE)), "sync_file_range")


def pidfd_open(pid: int) -> int:
    """pidfd_open(2): a file descriptor that refers to process `pid`."""
    return _check(_libc.syscall(_SYSCALLS["pidfd_open"], c_int(pid), c_uint(0)),
                  "pidfd_open", pid)


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """Send `sig` to the process behind `pidfd`, race-free against pid reuse."""
    _check(_libc.syscall(_SYSCALLS["pidfd_send_signal"], c_int(pidfd), c_int(sig),
                         None, c_uint(0)), "pidfd_send_signal")


# FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (linux/fs.h; the kernel reads and writes an int)
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000


def inode_flags(fd: int) -> int:
    """The inode flags of `fd` (chattr's attributes), FS_IOC_GETFLAGS."""
    import fcntl  # only the image store asks, once per open

    buf = bytearray(8)
    fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf)
    return int.from_bytes(buf[:4], "little", signed=True)


def add_inode_flags(fd: int, flags: int) -> None:
    """Set `flags` among the inode flags of `fd` (FS_IOC_SETFLAGS); OSError where the
    file system has no such flags (ENOTTY, EOPNOTSUPP)."""
    import fcntl

    current = inode_flags(fd)
    if current & flags != flags:
        fcntl.ioctl(fd, _FS_IOC_SETFLAGS, (current | flags).to_bytes(4, "little", signed=True)
                    + bytes(4))


RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class _OpenHow(_ctypes.Structure):
    _fields_ = [("flags", c_uint64), ("mode", c_uint64),
                ("resolve", c_uint64)]


def openat2(dir_fd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2): open `path` relative to `dir_fd` under the RESOLVE_* rules; the new fd."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _check(_libc.syscall(_SYSCALLS["openat2"], c_int(dir_fd),
                                c_char_p(_bytes(path)), byref(how),
                                c_size_t(sizeof(how))), "openat2", path)


CLONE_INTO_CGROUP = 0x200000000
_CLONE_CHILD_SETTID = 0x01000000
_SIGCHLD = 17
# Where glibc keeps a thread's id in its thread descriptor (struct pthread, at
# pthread_self()): glibc's fork has the kernel write the child's id there
# (CLONE_CHILD_SETTID), and so does fork_into_cgroup. Checked before each use.
_TID_OFFSET = {"x86_64": 0x2D0}.get(os.uname().machine)


class _CloneArgs(_ctypes.Structure):  # struct clone_args, version 2 (with cgroup)
    _fields_ = [(name, c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup")]


class _HeldFunction(_ctypes.CFuncPtr):
    """A call that keeps the GIL (as ctypes' PyDLL): fork(2) must be made holding it."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_PYTHONAPI | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_long


class _HeldLibrary(_Library):
    def __getattr__(self, name: str) -> _HeldFunction:
        function = _HeldFunction((name, self))
        setattr(self, name, function)
        return function


_held = _HeldLibrary()
_libc.pthread_self.restype = c_void_p


def _tid_field() -> int:
    """The address of glibc's cached id of the calling thread, when it is known and
    holds that id now (the main thread's id is the process id); else 0."""
    if _TID_OFFSET is None or _thread.get_native_id() != os.getpid():
        return 0
    address = _libc.pthread_self() + _TID_OFFSET
    return address if c_int.from_address(address).value == os.getpid() else 0


def fork_into_cgroup(cgroup_fd: int, *, long_lived: bool = False) -> int:
    """fork(2) whose child starts in the cgroup v2 directory open at `cgroup_fd`.

    clone3(2) with CLONE_INTO_CGROUP: the child is born there, so no write to
    cgroup.procs moves it, and no migration lock (with its wait for an RCU grace
    period) is taken. Returns 0 in the child and the child's pid in the parent, as
    os.fork; around the call, the interpreter's own before- and after-fork work, as
    os.fork does it. OSError when the kernel or a seccomp filter refuses (ENOSYS
    before Linux 5.7, E2BIG, EPERM, EBADF...): the caller then forks and moves the
    child itself. The kernel writes the child's thread id where glibc caches it, as
    glibc's fork has it do; where that place is not known, the child keeps its
    parent's id there and must exec or exit soon, calling only into the kernel (os,
    knarr.sys) on the way, or, with `long_lived`, OSError(ENOTSUP) is raised
    instead. Call it with no other thread running (glibc's fork also takes its
    malloc and stdio locks around the fork; this does not).
    """
    tid = _tid_field()
    if long_lived and not tid:
        raise OSError(errno.ENOTSUP, "clone3 into cgroup: glibc's thread id not found")
    args = _CloneArgs(flags=CLONE_INTO_CGROUP | (_CLONE_CHILD_SETTID if tid else 0),
                      exit_signal=_SIGCHLD, cgroup=cgroup_fd, child_tid=tid)
    _held.PyOS_BeforeFork()
    pid = _held.syscall(c_long(_SYSCALLS["clone3"]), byref(args), c_size_t(sizeof(args)))
    if pid == 0:
        _held.PyOS_AfterFork_Child()
        return 0
    err = get_errno()
    _held.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3 into cgroup: {os.strerror(err)}")
    return pid
