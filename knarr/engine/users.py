"""Resolving Docker's `user[:group]` against the container's /etc/passwd and /etc/group."""

import os

from knarr.errors import InvalidArgument

__all__ = ["resolve"]


def _entries(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.count(":") >= 2]
    except OSError:
        return []


def _lookup_user(rootfs: str, name: str) -> tuple[int, int, str]:
    for fields in _entries(os.path.join(rootfs, "etc/passwd")):
        if len(fields) >= 6 and (fields[0] == name or (name.isdigit() and fields[2] == name)):
            return int(fields[2]), int(fields[3]), fields[5]
    if name.isdigit():
        return int(name), 0, "/"
    raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file",
                          user=name)


def _lookup_group(rootfs: str, name: str) -> int:
    if name.isdigit():
        return int(name)
    for fields in _entries(os.path.join(rootfs, "etc/group")):
        if fields[0] == name:
            return int(fields[2])
    raise InvalidArgument(f"unable to find group {name}: no matching entries in group file",
                          group=name)


def _member_gids(rootfs: str, user: str) -> list[int]:
    return [int(f[2]) for f in _entries(os.path.join(rootfs, "etc/group"))
            if len(f) >= 4 and user in f[3].split(",")]


def resolve(rootfs: str, spec: str, group_add: list[str] | None = None) -> tuple[dict, str]:
    """(OCI process.user, home directory) for `spec` in the container at `rootfs`."""
    user, _, group = (spec or "0").partition(":")
    uid, gid, home = _lookup_user(rootfs, user or "0")
    if group:
        gid = _lookup_group(rootfs, group)
    extra = [] if user.isdigit() else _member_gids(rootfs, user)
    extra += [_lookup_group(rootfs, g) for g in group_add or []]
    out = {"uid": uid, "gid": gid}
    if extra:
        out["additionalGids"] = sorted(set(extra))
    return out, home
