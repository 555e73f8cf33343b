"""The container's root filesystem: its mounts, its /dev, the pivot into it.

The container's init process calls, in its own fresh mount namespace:
`prepare_rootfs` (propagation, the config's mounts, devices), `pivot_into`
(rootfs becomes /), then `finalize_rootfs` (masked and read-only paths, a
read-only root). See config.md "Mounts" and config-linux.md of the runtime
spec, and mount_namespaces(7) for why propagation comes first.
"""

import errno
import os
import stat

from knarr import sys as ksys
from knarr.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from knarr.runtime.devices import bind_console, create_dev_links, create_devices, devices_of
from knarr.runtime.mounts import (
    PROPAGATION,
    CgroupHierarchy,
    MountInfo,
    MountOptions,
    host_cgroup_hierarchies,
    mount_flags_of,
    own_cgroups,
    parse_options,
    read_mountinfo,
    safe_join,
)
from knarr.sys.libc import (
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_UNBINDABLE,
    mount,
    pivot_root,
    umount2,
)

__all__ = [
    "prepare_rootfs",
    "pivot_into",
    "finalize_rootfs",
    "bind_console",
    "safe_join",
]

# errno values that mean the config asked for something impossible, rather
# than the host refusing something possible.
_INVALID = {errno.EINVAL, errno.ENOTDIR, errno.ENODEV, errno.ELOOP, errno.ENAMETOOLONG}


def _error(action: str, exc: OSError, **context: object) -> Exception:
    # strerror, not str(exc): knarr.sys messages repeat the call and its paths
    message = f"{action}: {os.strerror(exc.errno) if exc.errno else exc}"
    if exc.errno == errno.ENOENT:
        return NotFound(message, errno=exc.errno, **context)
    if exc.errno in _INVALID:
        return InvalidArgument(message, errno=exc.errno, **context)
    return FailedPrecondition(message, errno=exc.errno, **context)


def _mount(what: str, source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    """mount(2), its failure named by `what` (a type or a source) and `target`."""
    try:
        mount(source, target, fstype, flags, data or None)
    except OSError as exc:
        raise _error(f"mount {what} on {target}", exc, destination=target) from exc


# -- prepare_rootfs ---------------------------------------------------------


def prepare_rootfs(config: dict, rootfs: str, *, in_cgroupns: bool, in_userns: bool,
                   bundle: str | None = None, in_cgroup=None) -> None:
    """Mount everything the config asks for inside `rootfs`, and make its /dev.

    Runs in the container's fresh mount namespace, before `pivot_into`.
    `in_cgroupns`: cgroup hierarchies can be mounted fresh (they show the
    namespace's root); `in_userns`: device nodes cannot be made, so the
    host's are bind-mounted. A relative bind source is relative to `bundle`
    (config.md), or to the working directory when `bundle` is None.
    `in_cgroup`, if given, is called before the first step that depends on the
    process's cgroup: with limits=False before a cgroup mount, with limits=True
    before device nodes (the devices rules judge mknod); it may be called again. It
    may return the cgroup hierarchies (CgroupHierarchy) the runtime found mounted in
    its own namespace, of which this one is a copy; None: they are looked up here.
    """
    in_cgroup = in_cgroup or _nothing
    rootfs = os.path.abspath(rootfs)
    propagation = config.get("linux", {}).get("rootfsPropagation")
    _set_root_propagation(propagation)
    applied = PROPAGATION[propagation or "rslave"]
    if not (applied & MS_REC and applied & (MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE)):
        # rslave, rprivate and runbindable (made rprivate) on / leave no mount
        # shared, so only the others need rootfs's parent mount looked up
        _make_parent_private(rootfs)
    _mount(rootfs, rootfs, rootfs, None, MS_BIND | MS_REC)
    mounts = config.get("mounts", [])
    hierarchies = None
    for entry in mounts:
        if entry.get("type") == "cgroup":
            hierarchies = in_cgroup(limits=False)
        _mount_entry(rootfs, entry, in_cgroupns=in_cgroupns, bundle=bundle,
                     hierarchies=hierarchies)
    if not _dev_is_bound(mounts):
        in_cgroup(limits=True)
        create_devices(rootfs, devices_of(config), bind=in_userns)
        create_dev_links(rootfs)


def _nothing(limits: bool = True) -> None:
    return None


def _set_root_propagation(name: str | None) -> None:
    # Default: slave, so the host's mounts still reach us but nothing we mount
    # (or unmount, when leaving the old root) reaches the host. "shared" stays
    # shared here so that binds of the host's shared mounts stay peers of
    # them; the rootfs mount itself becomes shared only after the pivot.
    # "unbindable" would forbid binding rootfs onto itself, so it waits too.
    if name is None:
        name = "rslave"
    elif name not in PROPAGATION:
        raise InvalidArgument(f"linux.rootfsPropagation: unknown propagation {name!r}",
                              field="linux.rootfsPropagation")
    flags = PROPAGATION[name]
    if flags & MS_UNBINDABLE:
        flags = MS_PRIVATE | (flags & MS_REC)
    _mount(f"propagation {name}", None, "/", None, flags)


def _set_new_root_propagation(name: str | None) -> None:
    # pivot_root(2) refuses a shared new root, and unbindable ones cannot be
    # bound onto themselves; either is applied once / is the rootfs.
    flags = PROPAGATION.get(name or "", 0)
    if flags & (MS_SHARED | MS_UNBINDABLE):
        _mount(f"propagation {name}", None, "/", None, flags)


def _make_parent_private(rootfs: str) -> None:
    # pivot_root(2) and MS_MOVE refuse a new root whose parent mount is shared,
    # which it is when rootfsPropagation made / shared.
    parent = _mount_containing(os.path.realpath(rootfs))
    if parent is not None and any(o.startswith("shared:") for o in parent.optional):
        _mount("propagation private", None, parent.mount_point, None, MS_PRIVATE)


def _mount_containing(path: str) -> MountInfo | None:
    best = None
    for m in read_mountinfo():
        point = m.mount_point.rstrip("/") + "/"
        if (path + "/").startswith(point) and (best is None
                                               or len(m.mount_point) >= len(best.mount_point)):
            best = m
    return best


def _dev_is_bound(mounts: list[dict]) -> bool:
    """Whether the config bind-mounts something (the host's /dev) over /dev."""
    return any(os.path.normpath("/" + m.get("destination", "").lstrip("/")) == "/dev"
               and parse_options(m.get("options", [])).is_bind for m in mounts)


def _mount_entry(rootfs: str, entry: dict, *, in_cgroupns: bool, bundle: str | None,
                 hierarchies: list[CgroupHierarchy] | None = None) -> None:
    dest = safe_join(rootfs, entry["destination"])
    options = parse_options(entry.get("options", []))
    # linux.mountLabel (an SELinux context) is ignored: knarr has no LSM labelling.
    kind = entry.get("type") or ""
    source = entry.get("source") or kind
    if options.is_bind:
        _bind_entry(os.path.join(bundle or "", source), dest, options)
    elif kind == "cgroup":
        _make_dir(dest)
        _mount_cgroups(dest, options, in_cgroupns=in_cgroupns, hierarchies=hierarchies)
    else:
        if not options.flags & MS_REMOUNT:
            _make_dir(dest)
        _mount(kind or source, source, dest, kind or None, options.flags, options.data)
    _apply_propagation(dest, options)


def _apply_propagation(dest: str, options: MountOptions) -> None:
    for flag in options.propagation:
        _mount("propagation", None, dest, None, flag)


def _bind_entry(source: str, dest: str, options: MountOptions) -> None:
    try:
        is_dir = stat.S_ISDIR(os.stat(source).st_mode)
    except OSError as exc:
        raise _error(f"mount {source} on {dest}", exc, destination=dest) from exc
    if is_dir:
        _make_dir(dest)
    else:
        _make_file(dest)
    _mount(source, source, dest, None, options.flags & (MS_BIND | MS_REC))
    if options.remount_flags:
        _remount_bind(source, dest, options.remount_flags)


def _remount_bind(what: str, dest: str, flags: int) -> None:
    """Apply per-mount flags to a bind mount (mount(2): MS_REMOUNT|MS_BIND).

    Only the top mount changes, not the mounts under a recursive bind.
    """
    try:
        mount(None, dest, None, MS_REMOUNT | MS_BIND | flags)
    except PermissionError:
        # In a user namespace the flags the mount already has are locked;
        # keep them and add ours.
        _mount(what, None, dest, None, MS_REMOUNT | MS_BIND | flags | mount_flags_of(dest))
    except OSError as exc:
        raise _error(f"mount {what} on {dest}", exc, destination=dest) from exc


def _make_dir(path: str) -> None:
    try:
        if not os.path.isdir(path):
            os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise _error(f"create mount point {path}", exc, destination=path) from exc


def _make_file(path: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        if not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                             0o644))
    except OSError as exc:
        raise _error(f"create mount point {path}", exc, destination=path) from exc


# -- cgroup mounts ----------------------------------------------------------


def _mount_cgroups(dest: str, options: MountOptions, *, in_cgroupns: bool,
                   hierarchies: list[CgroupHierarchy] | None = None) -> None:
    """Mount the host's cgroup hierarchies at `dest`, in the layout the host has.

    v1 or hybrid: a tmpfs with one mount per hierarchy under it. Pure v2: the
    cgroup2 hierarchy itself. In a cgroup namespace each is a fresh mount,
    which shows the namespace's root; outside one, it is a bind of the
    process's own cgroup directory, so the container sees no more than that.
    """
    if hierarchies is None:
        hierarchies = host_cgroup_hierarchies()
    if not hierarchies:
        raise Unavailable(f"mount cgroup on {dest}: no cgroup hierarchy is mounted",
                          destination=dest)
    own = {} if in_cgroupns else _read_own_cgroups()  # a fresh mount needs no path
    if all(h.version == 2 for h in hierarchies):
        _mount_hierarchy(hierarchies[0], dest, options, own, in_cgroupns=in_cgroupns)
        return
    flags = options.flags & ~MS_RDONLY
    _mount("tmpfs", "tmpfs", dest, "tmpfs", flags, "mode=755")
    for hierarchy in hierarchies:
        sub = os.path.join(dest, hierarchy.name)
        _make_dir(sub)
        _mount_hierarchy(hierarchy, sub, options, own, in_cgroupns=in_cgroupns)
        _link_comounted(dest, hierarchy)
    if options.flags & MS_RDONLY:
        _remount_bind("tmpfs", dest, options.remount_flags)


def _mount_hierarchy(hierarchy: CgroupHierarchy, dest: str, options: MountOptions,
                     own: dict[frozenset[str], str], *, in_cgroupns: bool) -> None:
    fstype = "cgroup" if hierarchy.version == 1 else "cgroup2"
    if in_cgroupns:
        data = ",".join(hierarchy.subsystems)
        _mount(fstype, fstype, dest, fstype, options.remount_flags, data)
        return
    source = _host_cgroup_dir(hierarchy, own.get(frozenset(hierarchy.subsystems), "/"))
    _mount(source, source, dest, None, MS_BIND | MS_REC)
    if options.remount_flags:
        _remount_bind(source, dest, options.remount_flags)


def _host_cgroup_dir(hierarchy: CgroupHierarchy, path: str) -> str:
    # The mount shows the hierarchy from hierarchy.root down; the process's
    # path is relative to the hierarchy's (or cgroup namespace's) root.
    root = hierarchy.root.rstrip("/")
    if root and (path + "/").startswith(root + "/"):
        path = path[len(root):]
    return os.path.join(hierarchy.mount_point, path.lstrip("/"))


def _link_comounted(dest: str, hierarchy: CgroupHierarchy) -> None:
    # "cpu,cpuacct" is also reachable as "cpu" and as "cpuacct"
    if "," not in hierarchy.name:
        return
    for name in hierarchy.name.split(","):
        link = os.path.join(dest, name)
        try:
            if not os.path.lexists(link):
                os.symlink(hierarchy.name, link)
        except OSError as exc:
            raise _error(f"link {link} to {hierarchy.name}", exc, destination=link) from exc


def _read_own_cgroups() -> dict[frozenset[str], str]:
    return own_cgroups(ksys.read_text("/proc/self/cgroup"))


# -- pivot_into -------------------------------------------------------------


def pivot_into(rootfs: str, *, no_pivot: bool = False) -> None:
    """Make `rootfs` the root of this mount namespace and drop the old root.

    With `no_pivot` (for a root on a ramfs, where pivot_root(2) fails) the
    rootfs is moved over / and chrooted into instead; the old root then stays
    reachable to a process that can escape a chroot.
    """
    try:
        if no_pivot:
            _move_root(rootfs)
        else:
            _pivot_root(rootfs)
    except OSError as exc:
        raise _error(f"pivot_root {rootfs}", exc, rootfs=rootfs) from exc


def _pivot_root(rootfs: str) -> None:
    # pivot_root(2) "pivot_root(".", ".")": the old root ends up stacked on
    # the new one at /, and unmounting "." then removes it, with no directory
    # for put_old needed inside rootfs.
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            pivot_root(".", ".")
        finally:
            os.close(new_root)
        os.fchdir(old_root)
        # Detaching the old root must not unmount anything on the host.
        mount(None, ".", None, MS_SLAVE | MS_REC)
        umount2(".", MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")


def _move_root(rootfs: str) -> None:
    os.chdir(rootfs)
    mount(rootfs, "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")


# -- finalize_rootfs --------------------------------------------------------


def finalize_rootfs(config: dict) -> None:
    """After `pivot_into`: read-only and masked paths, a read-only root, and the
    shared or unbindable propagation of linux.rootfsPropagation."""
    linux = config.get("linux", {})
    for path in linux.get("readonlyPaths", []):
        _make_readonly(path)
    for path in linux.get("maskedPaths", []):
        _mask(path)
    if config.get("root", {}).get("readonly"):
        _remount_readonly("/", 0)
    _set_new_root_propagation(linux.get("rootfsPropagation"))


def _make_readonly(path: str) -> None:
    try:
        mount(path, path, None, MS_BIND | MS_REC)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _error(f"mount {path} read-only", exc, destination=path) from exc
    _remount_readonly(path, MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _remount_readonly(path: str, flags: int) -> None:
    # Keep what the mount has (atime, and flags a user namespace locks).
    try:
        flags |= MS_BIND | MS_REMOUNT | MS_RDONLY | mount_flags_of(path)
        mount(None, path, None, flags)
    except OSError as exc:
        raise _error(f"remount {path} read-only", exc, destination=path) from exc


def _mask(path: str) -> None:
    # A file is hidden behind /dev/null, a directory behind an empty
    # read-only tmpfs.
    try:
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        else:
            mount("/dev/null", path, None, MS_BIND)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _error(f"mask {path}", exc, destination=path) from exc
