"""The local volume driver: `<root>/volumes/<name>/{_data,opts.json}`.

A volume is made whole in a temporary directory (opts.json written and fsynced,
the directory fsynced) and renamed into place, so a crash leaves either no
volume or a complete one. A volume with `--opt type=...` (tmpfs, a device, or
`type=none,o=bind,device=/path`) is mounted on `_data` when first used and
unmounted when removed. The store knows nothing of containers: the engine
refuses to remove a volume in use before it asks.
"""

import json
import os
import re
import secrets
import shutil
import time

from knarr.errors import InvalidArgument, NotFound

__all__ = ["VolumeStore", "validate_name", "ANONYMOUS_LABEL"]

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_OPTS = ("type", "device", "o", "size")


def validate_name(name: str) -> str:
    """A local volume name as Docker accepts it."""
    if len(name) < 2:
        raise InvalidArgument("volume name is too short, names should be at least two "
                              "alphanumeric characters", volume=name)
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f'"{name}" includes invalid characters for a local volume name, '
                              f'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended '
                              f"to pass a host directory, use absolute path", volume=name)
    return name


def _check_opts(opts: dict) -> None:
    for key in opts:
        if key not in _OPTS:
            raise InvalidArgument(f'invalid option: "{key}"', option=key)
    if opts.get("type") and not opts.get("device"):
        raise InvalidArgument('missing required option: "device"', option="device")
    if opts.get("device") and not opts.get("type"):
        raise InvalidArgument('missing required option: "type"', option="type")
    if "bind" in (opts.get("o") or "").split(",") and \
            not os.path.isabs(opts.get("device") or ""):
        raise InvalidArgument("a bind volume needs an absolute device path",
                              device=opts.get("device"))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VolumeStore:
    """Volumes of the local driver under `<root>/volumes`."""

    def __init__(self, root: str) -> None:
        self.dir = os.path.join(os.path.abspath(root), "volumes")
        os.makedirs(self.dir, mode=0o701, exist_ok=True)

    def path(self, name: str) -> str:
        """The directory a container sees: `<root>/volumes/<name>/_data`."""
        return os.path.join(self.dir, name, "_data")

    def exists(self, name: str) -> bool:
        """Whether a volume of that name exists."""
        return os.path.isfile(os.path.join(self.dir, name, "opts.json"))

    def create(self, name: str | None = None, driver: str = "local",
               opts: dict | None = None, labels: dict | None = None) -> tuple[dict, bool]:
        """Make a volume (a random name if none); return (its document, whether it is new).

        Creating a volume that exists returns it unchanged, as Docker does."""
        if driver not in ("", "local"):
            raise NotFound(f"plugin \"{driver}\" not found", driver=driver)
        name = validate_name(name) if name else secrets.token_hex(32)
        if self.exists(name):
            return self.get(name), False
        opts = dict(opts) if opts is not None else None
        _check_opts(opts or {})
        doc = {"CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "Driver": "local", "Labels": dict(labels or {}), "Mountpoint": "",
               "Name": name, "Options": opts, "Scope": "local"}
        tmp = os.path.join(self.dir, f".tmp-{secrets.token_hex(8)}")
        os.makedirs(os.path.join(tmp, "_data"), mode=0o755)
        try:
            with open(os.path.join(tmp, "opts.json"), "w") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(tmp)
            os.rename(tmp, os.path.join(self.dir, name))
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if self.exists(name):  # made meanwhile by another request
                return self.get(name), False
            raise
        _fsync_dir(self.dir)
        return self.get(name), True

    def get(self, name: str) -> dict:
        """Docker's volume inspect document (without UsageData)."""
        try:
            with open(os.path.join(self.dir, name, "opts.json")) as f:
                doc = json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"get {name}: no such volume", volume=name) from None
        doc["Mountpoint"] = self.path(name)
        return doc

    def names(self) -> list[str]:
        """Every volume's name."""
        return sorted(n for n in os.listdir(self.dir)
                      if not n.startswith(".") and self.exists(n))

    def all(self) -> list[dict]:
        """Every volume's document."""
        out = []
        for name in self.names():
            try:
                out.append(self.get(name))
            except NotFound:
                pass
        return out

    def mount(self, name: str) -> str:
        """Make the volume's `_data` ready for a container (mount its device if it has one);
        return its path."""
        doc = self.get(name)
        path = self.path(name)
        opts = doc.get("Options") or {}
        if opts.get("type") and not _is_mount(path):
            _mount_device(opts, path)
        return path

    def unmount_all(self) -> None:
        """Unmount every volume's device (the daemon is stopping; containers that run on
        keep their own reference to the mount)."""
        from knarr import sys as ksys

        for name in self.names():
            path = self.path(name)
            while _is_mount(path):
                try:
                    ksys.umount2(path, ksys.MNT_DETACH)
                except OSError:
                    break

    def remove(self, name: str) -> None:
        """Delete a volume and its data (the caller has checked it is not in use)."""
        self.get(name)
        path = self.path(name)
        from knarr import sys as ksys

        while _is_mount(path):
            ksys.umount2(path, ksys.MNT_DETACH)
        if _is_mount(path):  # never delete through a mount: it may be a host directory
            raise OSError(f"remove volume {name}: {path} is still mounted")
        gone = os.path.join(self.dir, f".gone-{secrets.token_hex(8)}")
        os.rename(os.path.join(self.dir, name), gone)
        shutil.rmtree(gone, ignore_errors=True)

    def size(self, name: str) -> int:
        """Bytes used by the files of a volume (Docker's UsageData.Size)."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.path(name)):
            for file in files:
                try:
                    total += os.lstat(os.path.join(dirpath, file)).st_blocks * 512
                except OSError:
                    pass
        return total


def _is_mount(path: str) -> bool:
    """Whether something is mounted at `path` (os.path.ismount misses a bind mount of a
    directory of the same file system)."""
    from knarr.runtime.mounts import read_mountinfo

    real = os.path.realpath(path)
    return any(m.mount_point == real for m in read_mountinfo())


def _mount_device(opts: dict, path: str) -> None:
    from knarr import sys as ksys
    from knarr.runtime.mounts import parse_options

    options = parse_options([o for o in (opts.get("o") or "").split(",") if o])
    kind = opts["type"]
    if options.is_bind:
        kind = None
    elif kind == "none":
        raise InvalidArgument(f"mount volume {path}: type none needs o=bind", path=path)
    try:
        ksys.mount(opts["device"], path, kind, options.flags, options.data or None)
        if options.is_bind and options.remount_flags:
            ksys.mount(None, path, None, ksys.MS_REMOUNT | ksys.MS_BIND | options.remount_flags)
    except OSError as exc:
        raise InvalidArgument(f"error while mounting volume '{path}': failed to mount local "
                              f"volume: mount {opts['device']}:{path}, flags: "
                              f"{options.flags:#x}, data: {options.data}: {exc.strerror}",
                              path=path) from exc
