"""ctypes bindings to libseccomp (libseccomp.so.2), as described in its man pages,
and the raw seccomp(2) call that installs an exported classic BPF program.

Raw calls only: each function makes one libseccomp call and turns a negative
return (libseccomp returns -errno) into OSError with that errno. The library
is opened on first use, so importing this module never fails; a missing
library surfaces as OSError(ENOENT) from the first call, or `available()`.
`set_mode_filter` needs only libc, so a program exported earlier can be loaded
where libseccomp is out of reach (after pivot_root or setns).
"""

import ctypes
import errno
import os
from collections.abc import Sequence

__all__ = [
    "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL", "SCMP_ACT_TRAP",
    "SCMP_ACT_NOTIFY", "SCMP_ACT_LOG", "SCMP_ACT_ALLOW", "act_errno", "act_trace",
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_FLTATR_ACT_DEFAULT", "SCMP_FLTATR_ACT_BADARCH", "SCMP_FLTATR_CTL_NNP",
    "SCMP_FLTATR_CTL_TSYNC", "SCMP_FLTATR_API_TSKIP", "SCMP_FLTATR_CTL_LOG",
    "SCMP_FLTATR_CTL_SSB", "SCMP_FLTATR_CTL_OPTIMIZE", "SCMP_FLTATR_API_SYSRAWRC",
    "NR_SCMP_ERROR",
    "available", "version", "api_get", "init", "release", "arch_resolve_name", "arch_native",
    "arch_exist", "arch_add", "syscall_resolve_name", "syscall_resolve_name_arch",
    "rule_add_array", "attr_set", "attr_get", "load", "export_bpf",
    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "set_mode_filter",
]

# Actions (seccomp.h). ERRNO and TRACE carry a 16-bit value: use act_errno/act_trace.
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_KILL = SCMP_ACT_KILL_THREAD
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_NOTIFY = 0x7FC00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000
_SCMP_ACT_TRACE = 0x7FF00000

# enum scmp_compare
SCMP_CMP_NE = 1
SCMP_CMP_LT = 2
SCMP_CMP_LE = 3
SCMP_CMP_EQ = 4
SCMP_CMP_GE = 5
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7

# enum scmp_filter_attr
SCMP_FLTATR_ACT_DEFAULT = 1
SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_TSYNC = 4
SCMP_FLTATR_API_TSKIP = 5
SCMP_FLTATR_CTL_LOG = 6
SCMP_FLTATR_CTL_SSB = 7
SCMP_FLTATR_CTL_OPTIMIZE = 8
SCMP_FLTATR_API_SYSRAWRC = 9

# seccomp(2) flags for SECCOMP_SET_MODE_FILTER (linux/seccomp.h).
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4
_SECCOMP_SET_MODE_FILTER = 1
_NR_SECCOMP = {"x86_64": 317, "aarch64": 277}.get(os.uname().machine)
_SOCK_FILTER_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k

# What seccomp_syscall_resolve_name returns for a name it does not know.
NR_SCMP_ERROR = -1


def act_errno(value: int) -> int:
    """SCMP_ACT_ERRNO(value): fail the call with errno `value` (low 16 bits)."""
    return _SCMP_ACT_ERRNO | (value & 0xFFFF)


def act_trace(value: int) -> int:
    """SCMP_ACT_TRACE(value): notify a ptrace tracer with message `value` (low 16 bits)."""
    return _SCMP_ACT_TRACE | (value & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    """struct scmp_version."""

    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    """struct sock_fprog: a classic BPF program of `len` instructions."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_lib: ctypes.CDLL | None = None
_libc: ctypes.CDLL | None = None

_SIGNATURES = {
    "seccomp_version": ([], ctypes.POINTER(_Version)),
    "seccomp_api_get": ([], ctypes.c_uint),
    "seccomp_init": ([ctypes.c_uint32], ctypes.c_void_p),
    "seccomp_release": ([ctypes.c_void_p], None),
    "seccomp_arch_resolve_name": ([ctypes.c_char_p], ctypes.c_uint32),
    "seccomp_arch_native": ([], ctypes.c_uint32),
    "seccomp_arch_exist": ([ctypes.c_void_p, ctypes.c_uint32], ctypes.c_int),
    "seccomp_arch_add": ([ctypes.c_void_p, ctypes.c_uint32], ctypes.c_int),
    "seccomp_syscall_resolve_name": ([ctypes.c_char_p], ctypes.c_int),
    "seccomp_syscall_resolve_name_arch": ([ctypes.c_uint32, ctypes.c_char_p], ctypes.c_int),
    "seccomp_rule_add_array": ([ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                ctypes.POINTER(_ArgCmp)], ctypes.c_int),
    "seccomp_attr_set": ([ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32], ctypes.c_int),
    "seccomp_attr_get": ([ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32)],
                         ctypes.c_int),
    "seccomp_load": ([ctypes.c_void_p], ctypes.c_int),
    "seccomp_export_bpf": ([ctypes.c_void_p, ctypes.c_int], ctypes.c_int),
}


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2")
        except OSError as exc:
            raise OSError(errno.ENOENT, f"load libseccomp.so.2: {exc}") from exc
        for name, (argtypes, restype) in _SIGNATURES.items():
            func = getattr(lib, name)
            func.argtypes = argtypes
            func.restype = restype
        _lib = lib
    return _lib


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise OSError(-rc, f"{what}: {os.strerror(-rc)}")
    return rc


def available() -> bool:
    """True if libseccomp.so.2 can be loaded."""
    try:
        _library()
    except OSError:
        return False
    return True


def version() -> tuple[int, int, int]:
    """The loaded library's (major, minor, micro) version."""
    v = _library().seccomp_version().contents
    return v.major, v.minor, v.micro


def api_get() -> int:
    """seccomp_api_get(3): the API level the library and kernel support together."""
    return _library().seccomp_api_get()


def init(default_action: int) -> int:
    """seccomp_init(3): a new filter context (an opaque pointer, as an int)."""
    ctx = _library().seccomp_init(default_action)
    if not ctx:
        raise OSError(errno.EINVAL, f"seccomp_init({default_action:#x}): failed")
    return ctx


def release(ctx: int) -> None:
    """seccomp_release(3): free a filter context (loaded filters stay in the kernel)."""
    _library().seccomp_release(ctx)


def arch_resolve_name(name: str) -> int:
    """seccomp_arch_resolve_name(3): the arch token for `name` ("x86_64"), 0 if unknown."""
    return _library().seccomp_arch_resolve_name(name.encode())


def arch_native() -> int:
    """seccomp_arch_native(3): the token of the architecture libseccomp was built for."""
    return _library().seccomp_arch_native()


def arch_exist(ctx: int, arch: int) -> bool:
    """seccomp_arch_exist(3): whether `arch` is in the filter."""
    rc = _library().seccomp_arch_exist(ctx, arch)
    if rc == -errno.EEXIST:
        return False
    _check(rc, f"seccomp_arch_exist({arch:#x})")
    return True


def arch_add(ctx: int, arch: int) -> None:
    """seccomp_arch_add(3); OSError(EEXIST) if the filter has the arch already."""
    _check(_library().seccomp_arch_add(ctx, arch), f"seccomp_arch_add({arch:#x})")


def syscall_resolve_name(name: str) -> int:
    """seccomp_syscall_resolve_name(3): the native number (negative pseudo-number for a
    call the native arch lacks), or NR_SCMP_ERROR for a name libseccomp does not know."""
    return _library().seccomp_syscall_resolve_name(name.encode())


def syscall_resolve_name_arch(arch: int, name: str) -> int:
    """seccomp_syscall_resolve_name_arch(3): like syscall_resolve_name for `arch`."""
    return _library().seccomp_syscall_resolve_name_arch(arch, name.encode())


def rule_add_array(ctx: int, action: int, syscall: int,
                   comparisons: Sequence[tuple[int, int, int, int]] = ()) -> None:
    """seccomp_rule_add_array(3); each comparison is (arg index, SCMP_CMP_*, a, b).

    All comparisons must hold for the rule to match; for SCMP_CMP_MASKED_EQ `a` is
    the mask and `b` the datum.
    """
    array = (_ArgCmp * max(len(comparisons), 1))()
    for i, (arg, op, datum_a, datum_b) in enumerate(comparisons):
        array[i] = _ArgCmp(arg, op, datum_a & (2**64 - 1), datum_b & (2**64 - 1))
    rc = _library().seccomp_rule_add_array(ctx, action, syscall, len(comparisons), array)
    _check(rc, f"seccomp_rule_add_array(action={action:#x}, syscall={syscall})")


def attr_set(ctx: int, attr: int, value: int) -> None:
    """seccomp_attr_set(3)."""
    _check(_library().seccomp_attr_set(ctx, attr, value), f"seccomp_attr_set({attr}, {value})")


def attr_get(ctx: int, attr: int) -> int:
    """seccomp_attr_get(3)."""
    value = ctypes.c_uint32()
    _check(_library().seccomp_attr_get(ctx, attr, ctypes.byref(value)),
           f"seccomp_attr_get({attr})")
    return value.value


def load(ctx: int) -> None:
    """seccomp_load(3): install the filter in the kernel for the calling thread."""
    _check(_library().seccomp_load(ctx), "seccomp_load")


def export_bpf(ctx: int) -> bytes:
    """seccomp_export_bpf(3): the filter as a classic BPF program (struct sock_filter
    array), the bytes the kernel takes; written to a memfd, so no size limit applies."""
    fd = os.memfd_create("knarr-seccomp-bpf", os.MFD_CLOEXEC)
    try:
        _check(_library().seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def set_mode_filter(program: bytes, flags: int = 0) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog): install a classic BPF program
    (as from export_bpf) for the calling thread (every thread, with FLAG_TSYNC).

    OSError(ESRCH) if TSYNC could not synchronise a thread (the kernel returns its id).
    """
    global _libc
    if _NR_SECCOMP is None:
        raise OSError(errno.ENOSYS, f"seccomp: no syscall number for {os.uname().machine}")
    if len(program) % _SOCK_FILTER_SIZE or not program:
        raise OSError(errno.EINVAL, f"seccomp: a BPF program of {len(program)} bytes")
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // _SOCK_FILTER_SIZE, ctypes.addressof(buf))
    rc = _libc.syscall(ctypes.c_long(_NR_SECCOMP), ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
                       ctypes.c_uint(flags), ctypes.byref(prog))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(err)}")
    if rc > 0:
        raise OSError(errno.ESRCH, f"seccomp(SECCOMP_SET_MODE_FILTER): thread {rc} could "
                                   f"not be synchronised")
