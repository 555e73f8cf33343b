"""Where the cgroup hierarchies are mounted and where a container goes in them.

Finding the hierarchies reads /proc/self/mountinfo (the kernel's own word on
what is mounted), and falls back to listing the root directory when nothing
is mounted there, which is how the unit tests point a driver at a fake tree.
"""

import os
import posixpath

from knarr import sys as ksys
from knarr.errors import InvalidArgument, Unavailable
from knarr.runtime.tuples import record

__all__ = [
    "Hierarchy",
    "V1_CONTROLLERS",
    "current_layout",
    "find_hierarchies",
    "forget_hierarchies",
    "resolve_path",
]

V1_CONTROLLERS = frozenset({
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory",
    "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma",
})

_MOUNTINFO = "/proc/self/mountinfo"


class Hierarchy(record("Hierarchy", "mountpoint controllers version")):
    """One mounted cgroup hierarchy: a v1 controller set, a named v1 tree, or cgroup2."""

    __slots__ = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The keys this hierarchy goes by in a cgroup's `paths`."""
        if self.version == 2:
            return ("unified",)
        return tuple(c.removeprefix("name=") for c in self.controllers)


def current_layout(root: str = "/sys/fs/cgroup") -> str:
    """Say how cgroups are mounted under `root`: "v1", "hybrid" or "v2"."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return "v2"
    if any(h.version == 2 for h in _find_hierarchies(root)):
        return "hybrid"
    return "v1"


_found: dict[str, list[Hierarchy]] = {}


def forget_hierarchies() -> None:
    """Drop what find_hierarchies remembered (a long-lived process whose host may
    mount or unmount a hierarchy calls this before looking again)."""
    _found.clear()


def find_hierarchies(root: str) -> list[Hierarchy]:
    """List the v1 hierarchies (and any cgroup2 mount) directly under `root`.

    Remembered per process: knarr-runtime looks several times per command, and
    reading mountinfo each time is a measurable part of a container start.
    """
    if root not in _found:
        _found[root] = _find_hierarchies(root)
    return list(_found[root])


def _find_hierarchies(root: str) -> list[Hierarchy]:
    found = _from_mountinfo(os.path.realpath(root))
    if not found:
        found = _from_listing(root)
    if not found:
        raise Unavailable(f"cgroup {root}: find hierarchies: no cgroup mounts there",
                          path=root)
    return sorted(found, key=lambda h: h.mountpoint)


def _from_mountinfo(root: str) -> list[Hierarchy]:
    try:
        lines = ksys.read_text(_MOUNTINFO).splitlines()
    except OSError:
        return []
    # A later mount on the same point hides an earlier one, so the last wins.
    by_point: dict[str, Hierarchy] = {}
    for line in lines:
        hierarchy = _parse_mount(line)
        if hierarchy and posixpath.dirname(hierarchy.mountpoint) == root:
            by_point[hierarchy.mountpoint] = hierarchy
    return list(by_point.values())


def _parse_mount(line: str) -> Hierarchy | None:
    # mountinfo: id parent dev root mountpoint options [optional...] - fstype source super
    before, sep, after = line.partition(" - ")
    fields, tail = before.split(), after.split()
    if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
        return None
    mountpoint = _unescape(fields[4])
    if tail[0] == "cgroup2":
        return Hierarchy(mountpoint, (), 2)
    options = tail[2].split(",")
    controllers = [o for o in options if o in V1_CONTROLLERS or o.startswith("name=")]
    return Hierarchy(mountpoint, tuple(controllers), 1) if controllers else None


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as octal escapes.
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def _from_listing(root: str) -> list[Hierarchy]:
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return []
    seen: dict[str, Hierarchy] = {}
    for entry in entries:
        path = os.path.join(root, entry)
        real = os.path.realpath(path)
        # "cpu" and "cpuacct" are often symlinks to "cpu,cpuacct": keep one of them.
        if not os.path.isdir(path) or real in seen:
            continue
        hierarchy = _listed(path, os.path.basename(real))
        if hierarchy:
            seen[real] = hierarchy
    return list(seen.values())


def _listed(path: str, name: str) -> Hierarchy | None:
    if os.path.exists(os.path.join(path, "cgroup.controllers")):
        return Hierarchy(path, (), 2)
    if not os.path.exists(os.path.join(path, "cgroup.procs")):
        return None
    parts = name.split(",")
    controllers = [p if p in V1_CONTROLLERS else f"name={p}" for p in parts]
    return Hierarchy(path, tuple(controllers), 1)


def resolve_path(cgroups_path: str | None, container_id: str) -> str:
    """Turn the config's `linux.cgroupsPath` into a path below each hierarchy's root.

    "/a/b" and "a/b" both land at /a/b (relative paths are taken from the root,
    not from the caller's own cgroup); "slice:prefix:name" is systemd's form
    and lands where systemd would put that scope; none gives /knarr/<id>.
    """
    if not cgroups_path:
        return _checked(f"/knarr/{container_id}", container_id)
    if not cgroups_path.startswith("/") and cgroups_path.count(":") == 2:
        return _checked(_systemd_path(*cgroups_path.split(":")), cgroups_path)
    return _checked(cgroups_path, cgroups_path)


def _checked(path: str, given: str) -> str:
    # Normalising from "/" keeps ".." from climbing out of the hierarchy.
    clean = posixpath.normpath(posixpath.join("/", path))
    if clean == "/":
        raise InvalidArgument(f"cgroups path {given!r}: resolves to the root cgroup",
                              path=given)
    return clean


def _systemd_path(slice_name: str, prefix: str, name: str) -> str:
    if not name:
        raise InvalidArgument(f"cgroups path {slice_name}:{prefix}:{name}: no unit name",
                              path=f"{slice_name}:{prefix}:{name}")
    unit = name if name.endswith(".slice") else (
        f"{prefix}-{name}.scope" if prefix else f"{name}.scope")
    return posixpath.join(_slice_dirs(slice_name or "system.slice"), unit)


def _slice_dirs(slice_name: str) -> str:
    # systemd nests slices by their dashes: a-b.slice lives in a.slice/a-b.slice.
    if slice_name == "-.slice":
        return "/"
    stem = slice_name.removesuffix(".slice")
    parts = stem.split("-")
    if not slice_name.endswith(".slice") or "" in parts or "/" in stem:
        raise InvalidArgument(f"cgroups path: bad systemd slice {slice_name!r}",
                              path=slice_name)
    return "/" + "/".join("-".join(parts[:i + 1]) + ".slice" for i in range(len(parts)))
