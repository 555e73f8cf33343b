"""Reading and writing cgroupfs files, with errors that name the cgroup and file.

Both drivers go through these few functions, so every failure reads the same
way: `cgroup <dir>: <what was being done>: <strerror>`.
"""

import errno
import os
import time

from knarr import sys as ksys
from knarr.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    KnarrError,
    NotFound,
    Unavailable,
)

__all__ = [
    "UNLIMITED",
    "error",
    "has",
    "make_dirs",
    "procs_under",
    "read",
    "read_flat",
    "read_int",
    "remove_tree",
    "wait_until",
    "write",
]

# What runc reports for a limit the kernel shows as "max".
UNLIMITED = 2**64 - 1

# errno values a write of a bad value gets back: the kernel parsed the value and
# refused it (EBUSY: a memory limit below what is in use; ENOSPC: an empty cpuset).
_REFUSED = {errno.EINVAL, errno.ERANGE, errno.EBUSY, errno.EOVERFLOW, errno.ENOSPC}

_KINDS: dict[int, type[KnarrError]] = {
    errno.ENOENT: NotFound,
    errno.ESRCH: NotFound,
    errno.EEXIST: AlreadyExists,
    errno.EPERM: FailedPrecondition,
    errno.EACCES: FailedPrecondition,
    errno.EROFS: FailedPrecondition,
    errno.EBUSY: FailedPrecondition,
    errno.ENOTEMPTY: FailedPrecondition,
}


def error(exc: OSError, cgdir: str, doing: str, kind: type[KnarrError] | None = None,
          **context: object) -> KnarrError:
    """Translate an OSError met while `doing` something to cgroup `cgdir`."""
    reason = exc.strerror or str(exc)
    chosen = kind or _KINDS.get(exc.errno or 0, Unavailable)
    return chosen(f"cgroup {cgdir}: {doing}: {reason}", path=cgdir, **context)


def has(cgdir: str, name: str) -> bool:
    """Whether the control file `name` exists in `cgdir`."""
    return os.path.exists(os.path.join(cgdir, name))


def read(cgdir: str, name: str) -> str:
    """The content of control file `name`, stripped."""
    try:
        return ksys.read_text(os.path.join(cgdir, name)).strip()
    except OSError as exc:
        raise error(exc, cgdir, f"read {name}") from exc


def read_int(cgdir: str, name: str) -> int:
    """A single-number control file; "max" reads as UNLIMITED."""
    text = read(cgdir, name)
    if text == "max":
        return UNLIMITED
    try:
        return int(text)
    except ValueError:
        raise Unavailable(f"cgroup {cgdir}: read {name}: not a number: {text!r}",
                          path=cgdir) from None


def read_flat(cgdir: str, name: str) -> dict[str, int]:
    """A flat-keyed control file ("key value" per line), such as memory.stat."""
    values = {}
    for line in read(cgdir, name).splitlines():
        key, _, value = line.partition(" ")
        try:
            values[key] = UNLIMITED if value == "max" else int(value)
        except ValueError:
            continue  # not every line of every file is numeric; skip the odd one
    return values


def write(cgdir: str, name: str, value: object, doing: str = "") -> None:
    """Write `value` to control file `name` in one write(2), as cgroupfs wants.

    `doing` replaces "set <name> to <value>" in an error message.
    """
    path = os.path.join(cgdir, name)
    try:
        # O_TRUNC is a no-op on cgroupfs but makes a plain file in a fake tree behave.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    except OSError as exc:
        kind = InvalidArgument if exc.errno in _REFUSED else None
        raise error(exc, cgdir, doing or f"set {name} to {value}", kind, file=name,
                    value=value) from exc


def make_dirs(cgdir: str) -> None:
    """mkdir -p `cgdir` (one mkdir when its parent exists, as it mostly does)."""
    try:
        os.mkdir(cgdir)
        return
    except FileExistsError:
        if os.path.isdir(cgdir):
            return
    except FileNotFoundError:
        pass  # a parent is missing: makedirs makes it, and says what else is wrong
    except OSError as exc:
        raise error(exc, cgdir, "create") from exc
    try:
        os.makedirs(cgdir, exist_ok=True)
    except OSError as exc:
        raise error(exc, cgdir, "create") from exc


def procs_under(cgdir: str) -> list[int]:
    """Every pid in `cgdir` and the cgroups below it, sorted; [] when it is gone."""
    pids: set[int] = set()
    for dirpath, _, _ in os.walk(cgdir):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                pids.update(int(line) for line in f if line.strip())
        except FileNotFoundError:
            continue  # removed between the walk and the read
        except OSError as exc:
            raise error(exc, dirpath, "read cgroup.procs") from exc
    return sorted(pids)


def remove_tree(cgdir: str, timeout: float) -> None:
    """rmdir `cgdir` and every cgroup below it, deepest first; gone already is fine.

    A cgroup stays busy for a moment after its last process is killed (the
    exit is not finished yet), so EBUSY is retried until `timeout`.
    """
    try:
        os.rmdir(cgdir)  # the usual case: no cgroup below it, no process left
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
            raise error(exc, cgdir, "remove") from exc
    for dirpath, _, _ in os.walk(cgdir, topdown=False):
        _remove_one(dirpath, time.monotonic() + timeout)


def _remove_one(cgdir: str, deadline: float) -> None:
    delay = 0.001
    while True:
        try:
            os.rmdir(cgdir)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise error(exc, cgdir, "remove") from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def wait_until(check, timeout: float) -> bool:
    """Poll `check` until it is true or `timeout` seconds pass; return the last answer."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not check():
        if time.monotonic() >= deadline:
            return check()
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True
