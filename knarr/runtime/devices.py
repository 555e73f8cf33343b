"""Device nodes and the standard links of a container's /dev.

Nodes are made with mknod(2), or, inside a user namespace where mknod is not
allowed, bind-mounted from the host's node of the same path.
"""

import os
import stat

from knarr.errors import FailedPrecondition, InvalidArgument
from knarr.runtime.mounts import safe_join
from knarr.sys.libc import MS_BIND, mount

__all__ = [
    "DEFAULT_DEVICES",
    "devices_of",
    "create_devices",
    "create_dev_links",
    "bind_console",
    "with_default_rules",
]

# The nodes every container gets (config-linux.md, "Default Devices").
DEFAULT_DEVICES = (
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
)

_DEFAULT_MODE = 0o666

_NODE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}

_DEV_LINKS = (
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
)


def devices_of(config: dict) -> list[dict]:
    """The config's linux.devices, then each default device it does not redefine."""
    listed = list(config.get("linux", {}).get("devices", []))
    paths = {os.path.normpath(d.get("path", "")) for d in listed}
    return listed + [dict(d) for d in DEFAULT_DEVICES if d["path"] not in paths]


def create_devices(rootfs: str, devices: list[dict], *, bind: bool) -> None:
    """Make each device node inside `rootfs`; with `bind`, bind the host's node instead."""
    dirs: dict[str, str] = {}
    umask = os.umask(0)  # nodes get their configured mode without a chmod each
    try:
        for device in devices:
            _create_device(rootfs, device, dirs, bind=bind)
    finally:
        os.umask(umask)


def _create_device(rootfs: str, device: dict, dirs: dict[str, str], *, bind: bool) -> None:
    path = device.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidArgument(f"create device {path!r}: path must be absolute", path=path)
    dest = path
    try:
        dest = _entry_in(rootfs, path, dirs)
        if bind:
            _bind_device(path, dest)
        else:
            _make_or_bind(device, dest)
    except OSError as exc:
        raise FailedPrecondition(f"create device {path} at {dest}: {_reason(exc)}",
                                 path=path, errno=exc.errno) from exc


def _make_node(device: dict, dest: str) -> None:
    kind = device.get("type", "c")
    if kind not in _NODE_TYPES:
        raise InvalidArgument(f"create device {device['path']}: unknown type {kind!r}",
                              path=device["path"])
    mode = device.get("fileMode", _DEFAULT_MODE) & 0o7777
    number = 0 if kind == "p" else os.makedev(device.get("major", 0), device.get("minor", 0))
    try:
        os.mknod(dest, mode | _NODE_TYPES[kind], number)
    except FileExistsError:  # a fresh /dev has none; a bound or image /dev may
        _remove_non_directory(dest)
        os.mknod(dest, mode | _NODE_TYPES[kind], number)
    if mode & 0o7000:
        os.chmod(dest, mode)  # set-id and sticky bits, whatever mknod made of them
    uid, gid = device.get("uid", -1), device.get("gid", -1)
    if uid != -1 or gid != -1:
        os.chown(dest, uid, gid)


def _make_or_bind(device: dict, dest: str) -> None:
    # mknod is refused without CAP_MKNOD or where a devices cgroup withholds
    # "m"; the host's node of the same path, if it is the same device, serves.
    try:
        _make_node(device, dest)
    except PermissionError:
        if not _host_has(device):
            raise
        _bind_device(device["path"], dest)


def _host_has(device: dict) -> bool:
    try:
        st = os.stat(device["path"])
    except OSError:
        return False
    return (stat.S_IFMT(st.st_mode) == _NODE_TYPES.get(device.get("type", "c"))
            and os.major(st.st_rdev) == device.get("major")
            and os.minor(st.st_rdev) == device.get("minor"))


def _bind_device(path: str, dest: str) -> None:
    if os.path.islink(dest):
        os.unlink(dest)
    if not os.path.exists(dest):
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600))
    mount(path, dest, None, MS_BIND)


def _entry_in(rootfs: str, path: str, dirs: dict[str, str] | None = None) -> str:
    """`path` inside `rootfs`, its directory made; `dirs` remembers directories done."""
    path = os.path.normpath(path)
    parent = os.path.dirname(path)
    host_dir = None if dirs is None else dirs.get(parent)
    if host_dir is None:
        host_dir = safe_join(rootfs, parent)
        os.makedirs(host_dir, mode=0o755, exist_ok=True)
        if dirs is not None:
            dirs[parent] = host_dir
    return os.path.join(host_dir, os.path.basename(path))


def _remove_non_directory(path: str) -> None:
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def create_dev_links(rootfs: str) -> None:
    """Make /dev/fd, /dev/std{in,out,err}, /dev/ptmx and /dev/core links in `rootfs`."""
    links = list(_DEV_LINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/dev/core", "/proc/kcore"))
    dirs: dict[str, str] = {}
    for path, target in links:
        dest = path
        try:
            dest = _entry_in(rootfs, path, dirs)
            _link(target, dest)
        except OSError as exc:
            raise FailedPrecondition(f"link {path} to {target} at {dest}: {_reason(exc)}",
                                     path=path, errno=exc.errno) from exc


def _link(target: str, dest: str) -> None:
    try:
        os.symlink(target, dest)
    except FileExistsError:  # a fresh /dev has none; a bound or image /dev may
        if os.path.islink(dest) and os.readlink(dest) == target:
            return
        _remove_non_directory(dest)
        os.symlink(target, dest)


def _reason(exc: OSError) -> str:
    # knarr.sys puts the call and its paths in strerror; the caller names them
    return os.strerror(exc.errno) if exc.errno else str(exc)


def bind_console(slave_path: str) -> None:
    """Bind the terminal's pty slave onto /dev/console (of the current root)."""
    try:
        if not os.path.exists("/dev/console"):
            os.close(os.open("/dev/console",
                             os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600))
        mount(slave_path, "/dev/console", None, MS_BIND)
    except OSError as exc:
        raise FailedPrecondition(f"bind {slave_path} on /dev/console: {_reason(exc)}",
                                 path=slave_path, errno=exc.errno) from exc


# Device-cgroup rules every container needs whatever its config says: the
# default nodes, plus the terminals (/dev/console, /dev/ptmx, /dev/pts/*).
_ALWAYS_ALLOWED = [{"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"],
                    "access": "rwm"} for d in DEFAULT_DEVICES] + [
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]


def with_default_rules(resources: dict, devices: list[dict] = ()) -> dict:
    """`resources` with allow rules for the default devices after the config's own rules,
    and leave to mknod (only) each node of `devices`, the config's linux.devices."""
    rules = list(resources.get("devices", []))
    if not rules:
        return resources
    # The limits are set before init makes the nodes (runc sets them after), so a
    # node the rules do not allow needs "m" to be made; using it stays as the rules say.
    mknod = [{"allow": True, "type": "c" if d.get("type") == "u" else d["type"],
              "major": d.get("major"), "minor": d.get("minor"), "access": "m"}
             for d in devices if d.get("type") in ("b", "c", "u")]
    return {**resources, "devices": rules + [dict(r) for r in _ALWAYS_ALLOWED] + mknod}
