"""Mount options, mount tables and paths inside a root, as plain data.

Nothing here mounts anything: it turns the option strings of an OCI mount
entry into mount(2) flags, reads /proc/self/mountinfo and /proc/self/cgroup,
and resolves container paths inside a rootfs. `knarr.runtime.rootfs` acts on
what these return.
"""

import errno
import os

from knarr import sys as ksys
from knarr.errors import InvalidArgument
from knarr.runtime.tuples import record
from knarr.sys.libc import (
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)

__all__ = [
    "MountOptions",
    "MountInfo",
    "CgroupHierarchy",
    "PROPAGATION",
    "parse_options",
    "parse_mountinfo",
    "read_mountinfo",
    "cgroup_hierarchies",
    "host_cgroup_hierarchies",
    "hierarchies_from_wire",
    "own_cgroups",
    "mount_flags_of",
    "safe_join",
]

# option -> (clears the flag?, flag); fstab(5) / mount(8) names.
_FLAGS = {
    "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID), "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV), "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC), "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS), "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME), "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME), "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME), "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME), "nostrictatime": (True, MS_STRICTATIME),
    "lazytime": (False, MS_LAZYTIME), "nolazytime": (True, MS_LAZYTIME),
    "nosymfollow": (False, MS_NOSYMFOLLOW), "symfollow": (True, MS_NOSYMFOLLOW),
    "silent": (False, MS_SILENT), "loud": (True, MS_SILENT),
    "bind": (False, MS_BIND), "rbind": (False, MS_BIND | MS_REC),
}

PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}

# Accepted and deliberately not acted on. tmpcopyup asks for the mount point's
# old contents to be copied into a fresh tmpfs; knarr does not do that yet,
# and passing it on as data would make tmpfs refuse the mount.
_IGNORED = {"tmpcopyup"}

# Bits of statvfs(3) f_flag and the mount(2) flag each stands for.
_STATVFS_FLAGS = (
    (os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC), (os.ST_SYNCHRONOUS, MS_SYNCHRONOUS),
    (os.ST_MANDLOCK, MS_MANDLOCK), (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME),
    (8192, MS_NOSYMFOLLOW),  # ST_NOSYMFOLLOW, which Python 3.11's os lacks
)

# Flags a bind mount only takes from a second, remounting mount(2) call.
REMOUNT_FLAGS = (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS | MS_MANDLOCK
                 | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW)

_MAX_SYMLINKS = 255


class MountOptions(record("MountOptions", "flags propagation data", (0, (), ""))):
    """An OCI mount entry's options, split the way mount(2) wants them."""

    __slots__ = ()

    @property
    def is_bind(self) -> bool:
        """Whether the entry asks for a bind (or recursive bind) mount."""
        return bool(self.flags & MS_BIND)

    @property
    def remount_flags(self) -> int:
        """The flags a bind mount needs applied by a remount pass."""
        return self.flags & REMOUNT_FLAGS


def parse_options(options: list[str]) -> MountOptions:
    """Split mount options into flags, propagation changes and filesystem data.

    Later options win over earlier ones ("ro,rw" is read-write). Options that
    are neither flags nor propagation are the filesystem's own ("mode=755",
    "size=64k") and go, in order, into the data string.
    """
    flags = 0
    propagation = []
    data = []
    for option in options:
        if option in _FLAGS:
            clear, flag = _FLAGS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option in PROPAGATION:
            propagation.append(PROPAGATION[option])
        elif option not in _IGNORED and option:
            data.append(option)
    return MountOptions(flags, tuple(propagation), ",".join(data))


def mount_flags_of(path: str) -> int:
    """The per-mount flags (MS_RDONLY, MS_NOSUID, ...) the mount at `path` has now.

    A remount must repeat them: inside a user namespace the kernel refuses a
    remount that would clear a flag locked by the parent namespace.
    """
    f_flag = os.statvfs(path).f_flag
    return sum(ms for st, ms in _STATVFS_FLAGS if f_flag & st)


class MountInfo(record("MountInfo", "mount_id parent_id root mount_point options optional "
                                 "fstype source super_options")):
    """One line of /proc/<pid>/mountinfo (see proc(5))."""

    __slots__ = ()


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \ooo octal escapes
    if "\\" not in field:
        return field
    raw = field.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i:i + 1] == b"\\" and raw[i + 1:i + 4].isdigit():
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return os.fsdecode(bytes(out))


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse the text of a mountinfo file into its lines, in order."""
    mounts = []
    make = MountInfo._make
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(" ")
        sep = fields.index("-", 6)
        mounts.append(make((
            int(fields[0]), int(fields[1]), _unescape(fields[3]), _unescape(fields[4]),
            fields[5], tuple(fields[6:sep]), fields[sep + 1], _unescape(fields[sep + 2]),
            fields[sep + 3] if len(fields) > sep + 3 else "")))
    return mounts


def read_mountinfo() -> list[MountInfo]:
    """The calling process's mount table."""
    return parse_mountinfo(ksys.read_text("/proc/self/mountinfo"))


class CgroupHierarchy(record("CgroupHierarchy", "subsystems mount_point root")):
    """A mounted cgroup hierarchy: v1 with its subsystems, or the v2 one."""

    __slots__ = ()

    @property
    def version(self) -> int:
        """1 for a cgroup v1 hierarchy, 2 for the unified one."""
        return 1 if self.subsystems else 2

    @property
    def name(self) -> str:
        """The directory name it gets under /sys/fs/cgroup: "cpu,cpuacct", "systemd"."""
        if not self.subsystems:
            return "unified"
        return ",".join(s.removeprefix("name=") for s in self.subsystems)


def cgroup_hierarchies(mounts: list[MountInfo], controllers: set[str]) -> list[CgroupHierarchy]:
    """The distinct cgroup hierarchies in a mount table, first mount of each.

    `controllers` are the v1 subsystem names the kernel knows (/proc/cgroups);
    a v1 mount's other super options (rw, xattr, release_agent=...) are not
    subsystems.
    """
    found: dict[tuple[str, ...], CgroupHierarchy] = {}
    for m in mounts:
        if m.fstype == "cgroup2":
            key: tuple[str, ...] = ()
        elif m.fstype == "cgroup":
            key = tuple(o for o in m.super_options.split(",")
                        if o in controllers or o.startswith("name="))
            if not key:
                continue
        else:
            continue
        found.setdefault(key, CgroupHierarchy(key, m.mount_point, m.root))
    return list(found.values())


def host_cgroup_hierarchies() -> list[CgroupHierarchy]:
    """The cgroup hierarchies mounted in this process's mount namespace."""
    try:
        lines = ksys.read_text("/proc/cgroups").splitlines()
    except FileNotFoundError:
        lines = []
    known = {line.split()[0] for line in lines if line and not line.startswith("#")}
    return cgroup_hierarchies(read_mountinfo(), known)


def hierarchies_from_wire(items: list) -> list[CgroupHierarchy]:
    """CgroupHierarchy records back from their JSON form (lists)."""
    return [CgroupHierarchy(tuple(subsystems), point, root) for subsystems, point, root in items]


def own_cgroups(text: str) -> dict[frozenset[str], str]:
    """Map each hierarchy's set of subsystems to this process's cgroup path in it.

    `text` is /proc/self/cgroup; the v2 line ("0::/path") maps from the empty set.
    """
    paths = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        _, names, path = line.split(":", 2)
        key = frozenset(n for n in names.split(",") if n)
        paths[key] = path
    return paths


def safe_join(rootfs: str, path: str) -> str:
    """Resolve `path` inside `rootfs` as if `rootfs` were "/"; return the host path.

    Symlinks are followed component by component, absolute ones from rootfs
    and ".." never above it, so the result cannot name anything outside
    rootfs. Components that do not exist yet are kept as written. Like every
    path-based check this is open to a rootfs that changes while it runs;
    knarr resolves before mounting, in a mount namespace nobody else uses.
    """
    root = os.path.abspath(rootfs)
    resolved: list[str] = []
    pending = _components(path)
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        here = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(here)
        except OSError as exc:
            # EINVAL: not a symlink; ENOENT, ENOTDIR: not there (yet)
            if exc.errno not in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
                raise
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise InvalidArgument(f"resolve {path} in {rootfs}: too many levels of symbolic "
                                  f"links", path=path, rootfs=rootfs)
        if target.startswith("/"):
            resolved.clear()
        pending[:0] = _components(target)
    return os.path.join(root, *resolved) if resolved else root


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]
