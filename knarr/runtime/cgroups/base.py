"""What the v1 and v2 drivers share: a set of directories, one per hierarchy."""

import os

from knarr.errors import NotFound
from knarr.runtime.cgroups import fs

__all__ = ["Cgroup"]


class Cgroup:
    """A container's cgroup: the same relative path in one or more hierarchies.

    Subclasses fill in the resource, freezer and statistics methods; the
    directory handling here is the same for both versions.
    """

    layout = ""
    # How long to keep retrying rmdir while the last processes finish exiting.
    remove_timeout = 2.0
    # How long a freeze or thaw may take before it counts as failed.
    freeze_timeout = 5.0

    def __init__(self, path: str, dirs: dict[str, str], container_id: str) -> None:
        self.path = path
        self.container_id = container_id
        self._dirs = dirs

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.layout} {self.path}>"

    @property
    def paths(self) -> dict[str, str]:
        """Hierarchy name ("memory", "systemd", "unified", ...) → the container's directory."""
        return dict(self._dirs)

    def _unique_dirs(self) -> list[str]:
        # Co-mounted controllers ("cpu,cpuacct") share one directory.
        return sorted(set(self._dirs.values()))

    def exists(self) -> bool:
        """Whether the container's directory exists in any hierarchy."""
        return any(os.path.isdir(d) for d in self._unique_dirs())

    def create(self) -> None:
        """Make the container's directory in every hierarchy (mkdir -p)."""
        for cgdir in self._unique_dirs():
            fs.make_dirs(cgdir)

    def create_v2(self) -> str | None:
        """Make the container's v2 directory, if it has one, and return it: a process
        can then be forked straight into it (knarr.sys.fork_into_cgroup) while the
        rest is made. The v2 driver makes everything here."""
        v2 = self._dirs.get("unified")
        if v2:
            fs.make_dirs(v2)
        return v2

    def v1_anchors(self) -> list[tuple[str, str, str]]:
        """(mount point, the container's directory relative to it, the directory) of
        each v1 hierarchy, for `join_at`: opened before the directories exist, the
        mount points let a process join once they do, wherever its mounts are by then."""
        return []

    def add_process(self, pid: int) -> None:
        """Move process `pid` (all its threads) into the container's cgroup everywhere."""
        # A hierarchy mounted after create() has no directory for this container;
        # its init is not there either, so the new process skips it too.
        existing = [d for d in self._unique_dirs() if os.path.isdir(d)]
        if not existing:
            raise NotFound(f"cgroup {self.path}: add process {pid}: the cgroup does not exist",
                           path=self.path, pid=pid)
        for cgdir in existing:
            fs.write(cgdir, "cgroup.procs", pid, doing=f"add process {pid}")

    def join_self(self) -> str | None:
        """Move the calling process, which must have one thread, into the container's
        cgroup in every v1 hierarchy; return its v2 directory, not joined, if it has one.

        A v1 `tasks` write of "0" (the calling thread) skips the lock a move through
        cgroup.procs takes, and so the wait for an RCU grace period (10-15 ms here)
        that the first such move after a quiet spell pays. A v2 domain cgroup has no
        such way in: the caller forks its child into the returned directory
        (knarr.sys.fork_into_cgroup), or writes cgroup.procs itself.
        """
        existing = [d for d in self._unique_dirs() if os.path.isdir(d)]
        if not existing:
            raise NotFound(f"cgroup {self.path}: add process {os.getpid()}: the cgroup does "
                           "not exist", path=self.path, pid=os.getpid())
        v2 = self._dirs.get("unified")
        for cgdir in existing:
            if cgdir != v2:
                fs.write(cgdir, "tasks", 0, doing=f"add process {os.getpid()}")
        return v2 if v2 in existing else None

    def pids(self) -> list[int]:
        """Every process in the container's cgroup and the cgroups below it."""
        return fs.procs_under(self._pids_dir())

    def _pids_dir(self) -> str:
        return self._unique_dirs()[0]

    def destroy(self) -> None:
        """Remove the container's directories everywhere; no error if already gone."""
        for cgdir in self._unique_dirs():
            fs.remove_tree(cgdir, self.remove_timeout)

    def update(self, resources: dict) -> None:
        """Change the limits of a running container; the same as `apply`."""
        self.apply(resources)

    def apply(self, resources: dict) -> None:
        """Write the OCI `linux.resources` to the control files."""
        raise NotImplementedError


def open_anchors(anchors: list[tuple[str, str, str]]) -> list[tuple[int, str, str]]:
    """Open each anchor's mount point (O_PATH): (fd, relative dir, dir), for join_at."""
    opened = []
    try:
        for mountpoint, rel, cgdir in anchors:
            fd = os.open(mountpoint, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            opened.append((fd, rel, cgdir))
    except OSError as exc:
        close_anchors(opened)
        raise fs.error(exc, mountpoint, "open the hierarchy") from exc
    return opened


def close_anchors(opened: list[tuple[int, str, str]]) -> None:
    """Close what open_anchors opened."""
    for fd, _, _ in opened:
        os.close(fd)


def join_at(opened: list[tuple[int, str, str]]) -> None:
    """Move the calling process, which must have one thread, into the container's
    directory of each opened v1 hierarchy, by writing "0" to its `tasks` (the calling
    thread: the kernel then skips the migration lock a cgroup.procs write takes, and
    the RCU grace period it may wait for). A hierarchy with no directory for the
    container (mounted after create) is skipped; NotFound if none has one."""
    joined = 0
    for fd, rel, cgdir in opened:
        try:
            tasks = os.open(f"{rel}/tasks", os.O_WRONLY | os.O_CLOEXEC, dir_fd=fd)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise fs.error(exc, cgdir, f"add process {os.getpid()}") from exc
        try:
            os.write(tasks, b"0")
        except OSError as exc:
            raise fs.error(exc, cgdir, f"add process {os.getpid()}") from exc
        finally:
            os.close(tasks)
        joined += 1
    if opened and not joined:
        raise NotFound(f"cgroup {opened[0][2]}: add process {os.getpid()}: the cgroup does "
                       "not exist", path=opened[0][2], pid=os.getpid())
