"""Per-container runtime state: the state file, and status read from the kernel.

The state file is a cache written temp + fsync + rename. Status is never taken
from it: a container is running only while its init pid exists with the start
time recorded at create (so a reused pid is not mistaken for it).
"""

import os

from knarr import fastjson
from knarr import sys as ksys
from knarr.errors import AlreadyExists, InvalidArgument, NotFound

__all__ = [
    "DEFAULT_ROOT",
    "Status",
    "validate_id",
    "container_dir",
    "make_container_dir",
    "load",
    "save",
    "stage",
    "commit",
    "status_of",
    "process_start_time",
    "oci_state",
    "list_ids",
    "write_atomic",
    "remove_dir",
]

DEFAULT_ROOT = "/run/knarr/runtime"
FIFO_NAME = "exec.fifo"


class Status:
    """The OCI status values."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


def validate_id(container_id: str) -> None:
    """Refuse ids that are empty, path-like or otherwise unsafe as a directory name."""
    if not container_id or not all(c.isalnum() or c in "_+-." for c in container_id) \
            or container_id in (".", ".."):
        raise InvalidArgument(f"invalid container id {container_id!r}: use letters, digits, "
                              f"'_', '+', '-' and '.'", id=container_id)


def container_dir(root: str, container_id: str) -> str:
    """The state directory of one container."""
    validate_id(container_id)
    return os.path.join(root, container_id)


def make_container_dir(root: str, container_id: str) -> str:
    """Create the state directory; AlreadyExists if the id is taken."""
    path = container_dir(root, container_id)
    try:
        try:
            os.mkdir(path, 0o711)
        except FileNotFoundError:  # the first container under this root
            os.makedirs(root, mode=0o700, exist_ok=True)
            os.mkdir(path, 0o711)
    except FileExistsError:
        raise AlreadyExists(f"container with id exists: {container_id}", id=container_id) from None
    return path


def write_atomic(path: str, data: bytes, mode: int = 0o600, durable: bool = False) -> None:
    """Write `data` to `path` via a temp file and rename, so no reader sees half of it.

    Run-time state does not outlive the boot (its processes die with the machine),
    so it is not fsynced unless `durable`: the rename alone keeps it whole across a
    crash of knarr-runtime, and an fsync on a disk-backed --root costs more than a
    whole container start.
    """
    os.rename(_write_temp(path, data, mode, durable), path)


def _write_temp(path: str, data: bytes, mode: int = 0o600, durable: bool = False) -> str:
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _state_path(root: str, container_id: str) -> str:
    return os.path.join(container_dir(root, container_id), "state.json")


def save(root: str, state: dict) -> None:
    """Persist the state of one container."""
    write_atomic(_state_path(root, state["id"]), fastjson.dumps(state).encode())


def stage(root: str, state: dict) -> str:
    """Write the state of one container beside its state file, not yet in its place
    (create writes it while init finishes); `commit` puts it there. Returns the
    temp file's path (in the container's directory, which a failed create removes)."""
    return _write_temp(_state_path(root, state["id"]), fastjson.dumps(state).encode())


def commit(root: str, container_id: str, staged: str) -> None:
    """Put a state file `stage` wrote in its place."""
    os.rename(staged, _state_path(root, container_id))


def load(root: str, container_id: str) -> dict:
    """Read a container's state; NotFound if there is no such container."""
    path = os.path.join(container_dir(root, container_id), "state.json")
    try:
        with open(path, "rb") as f:
            return fastjson.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"container does not exist: {container_id}", id=container_id) from None
    except ValueError as exc:
        raise InvalidArgument(f"container {container_id}: state file {path} is corrupt: {exc}",
                              id=container_id) from exc


def list_ids(root: str) -> list[str]:
    """Ids of every container that has a state file under `root`."""
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.exists(os.path.join(root, n, "state.json"))]


def process_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot; None if gone or a zombie."""
    try:
        raw = ksys.read_bytes(f"/proc/{pid}/stat")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def status_of(root: str, state: dict, frozen: bool | None = None) -> str:
    """Work out the status from the kernel: pid + start time, the fifo, the freezer."""
    pid = state.get("pid") or 0
    if pid <= 0 or process_start_time(pid) != state.get("start_time"):
        return Status.STOPPED
    if os.path.exists(os.path.join(container_dir(root, state["id"]), FIFO_NAME)):
        return Status.CREATED
    if frozen:
        return Status.PAUSED
    return Status.RUNNING


def oci_state(state: dict, status: str) -> dict:
    """The state as the runtime spec (and runc's `state`) prints it."""
    running = status in (Status.CREATED, Status.RUNNING, Status.PAUSED)
    return {
        "ociVersion": state["ociVersion"],
        "id": state["id"],
        "pid": state["pid"] if running else 0,
        "status": status,
        "bundle": state["bundle"],
        "rootfs": state["rootfs"],
        "created": state["created"],
        "owner": "",
        "annotations": state.get("annotations") or {},
    }


def remove_dir(path: str) -> None:
    """Remove a container's state directory (flat: files, the fifo, sockets)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except (FileNotFoundError, IsADirectoryError):
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
