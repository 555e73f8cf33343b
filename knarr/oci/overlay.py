"""Fitting an overlay mount into the one page mount(2) accepts for its options.

The snapshotter returns overlay mounts with absolute paths. mount(2) takes
the option string in a single page (4096 bytes, NUL included), so an image
with many layers under a long state root does not fit. The kernel resolves
relative lowerdir/upperdir/workdir paths against the mounting process's
working directory; `fit_overlay` rewrites the paths relative to their common
parent directory, and the caller (the runtime, which performs mounts)
chdirs there for the mount(2) call. With knarr's `snapshots/<n>/fs` layout a
lower then costs `len("<n>/fs:")` bytes, room for the kernel's own limit of
500 lower layers while snapshot numbers stay below 1,000.
"""

import os

from knarr.errors import InvalidArgument

__all__ = ["PAGE_SIZE", "option_length", "fit_overlay"]

PAGE_SIZE = 4096
_PATH_KEYS = ("lowerdir=", "upperdir=", "workdir=")


def option_length(mount: dict) -> int:
    """Bytes mount(2) needs for the mount's options, NUL included."""
    return len(",".join(mount.get("options", [])).encode()) + 1


def fit_overlay(mount: dict, page_size: int = PAGE_SIZE) -> tuple[str | None, dict]:
    """Return (directory to chdir to or None, mount) such that the options fit one page."""
    if mount.get("type") != "overlay" or option_length(mount) <= page_size:
        return None, mount
    paths = [p for opt in mount["options"] for p in _paths_of(opt)]
    base = os.path.commonpath(paths)
    if base in paths:
        base = os.path.dirname(base)
    options = [_relative(opt, base) for opt in mount["options"]]
    fitted = dict(mount, options=options)
    if option_length(fitted) > page_size:
        raise InvalidArgument(
            f"overlay mount: {len(paths)} paths need {option_length(fitted)} bytes of "
            f"options even relative to {base}, more than {page_size}", layers=len(paths))
    return base, fitted


def _paths_of(option: str) -> list[str]:
    for key in _PATH_KEYS:
        if option.startswith(key):
            return option[len(key):].split(":")
    return []


def _relative(option: str, base: str) -> str:
    for key in _PATH_KEYS:
        if option.startswith(key):
            parts = option[len(key):].split(":")
            return key + ":".join(os.path.relpath(p, base) for p in parts)
    return option
