"""Linux namespaces: make new ones, join existing ones, map user ids."""

import os

from knarr import sys as ksys
from knarr.errors import FailedPrecondition, InvalidArgument, NotFound

__all__ = ["FLAGS", "PROC_NAMES", "new_flags", "join_paths", "join", "write_id_maps",
           "namespace_paths_of"]

FLAGS = {
    "pid": ksys.CLONE_NEWPID,
    "network": ksys.CLONE_NEWNET,
    "mount": ksys.CLONE_NEWNS,
    "ipc": ksys.CLONE_NEWIPC,
    "uts": ksys.CLONE_NEWUTS,
    "user": ksys.CLONE_NEWUSER,
    "cgroup": ksys.CLONE_NEWCGROUP,
    "time": ksys.CLONE_NEWTIME,
}

# The names under /proc/<pid>/ns/ for each OCI namespace type.
PROC_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
              "user": "user", "cgroup": "cgroup", "time": "time"}

# Join the user namespace first (it owns the others), the mount namespace last
# (it changes how the remaining paths resolve).
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


def new_flags(namespaces: dict[str, str | None], skip: tuple[str, ...] = ()) -> int:
    """CLONE_* flags for every namespace the config asks to create (no path)."""
    flags = 0
    for kind, path in namespaces.items():
        if not path and kind not in skip:
            flags |= FLAGS[kind]
    return flags


def join_paths(namespaces: dict[str, str | None]) -> list[tuple[str, str]]:
    """(type, path) pairs to join, in a safe order."""
    return [(k, namespaces[k]) for k in _JOIN_ORDER if namespaces.get(k)]


def open_paths(pairs: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """Open every namespace file up front, so that joining one cannot hide the next."""
    opened = []
    for kind, path in pairs:
        try:
            opened.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        except FileNotFoundError:
            raise NotFound(f"join {kind} namespace {path}: no such file", path=path) from None
        except OSError as exc:
            raise FailedPrecondition(f"join {kind} namespace {path}: {exc.strerror}",
                                     path=path) from exc
    return opened


def join(opened: list[tuple[str, int]]) -> None:
    """setns into each opened namespace file and close it."""
    for kind, fd in opened:
        try:
            ksys.setns(fd, FLAGS[kind])
        except OSError as exc:
            raise InvalidArgument(f"join {kind} namespace: {exc.strerror}") from exc
        finally:
            os.close(fd)


def namespace_paths_of(pid: int, kinds) -> dict[str, str]:
    """The /proc paths of `pid`'s namespaces of the given kinds that differ from ours."""
    paths = {}
    for kind in kinds:
        theirs = f"/proc/{pid}/ns/{PROC_NAMES[kind]}"
        try:
            if os.stat(theirs).st_ino != os.stat(f"/proc/self/ns/{PROC_NAMES[kind]}").st_ino:
                paths[kind] = theirs
        except FileNotFoundError:
            continue
    return paths


def _format_map(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def write_id_maps(pid: int, linux: dict) -> None:
    """Write uid_map and gid_map of a process that has just made a user namespace."""
    uid_map = _format_map(linux.get("uidMappings", []))
    gid_map = _format_map(linux.get("gidMappings", []))
    for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
        if not text:
            continue
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as exc:
            raise InvalidArgument(f"write {name} of pid {pid} ({text.strip()!r}): "
                                  f"{exc.strerror}") from exc
