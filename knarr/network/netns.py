"""Named network namespaces: a bind mount of an nsfs file, as `ip netns` makes them.

unshare(CLONE_NEWNET) and setns move only the calling thread, so the engine
does this work on one dedicated thread, which returns to the host's namespace
before anything else runs on it.
"""

import os

from knarr.sys import CLONE_NEWNET, MNT_DETACH, MS_BIND, mount, setns, umount2, unshare

__all__ = ["create", "remove", "Entered", "exists"]


def create(path: str) -> None:
    """Make a new network namespace at `path` and leave the calling thread in it."""
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    try:
        unshare(CLONE_NEWNET)
        mount("/proc/thread-self/ns/net", path, None, MS_BIND)
    except OSError:
        os.unlink(path)
        raise


def remove(path: str) -> None:
    """Unmount and delete a namespace file (the namespace ends with its last user)."""
    try:
        umount2(path, MNT_DETACH)
    except OSError:
        pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def exists(path: str) -> bool:
    """Whether `path` is a mounted namespace file."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False


class Entered:
    """`with Entered(host_fd, path):` runs the block in the namespace at `path` (or
    in one just made there, with `create=True`), then returns to `host_fd`'s."""

    def __init__(self, host_fd: int, path: str, create: bool = False) -> None:
        self.host_fd, self.path, self.create = host_fd, path, create

    def __enter__(self) -> "Entered":
        if self.create:
            try:
                create(self.path)
            except BaseException:
                setns(self.host_fd, CLONE_NEWNET)
                raise
            return self
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd, CLONE_NEWNET)
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc) -> None:
        setns(self.host_fd, CLONE_NEWNET)
