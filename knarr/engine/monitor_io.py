"""What the monitor and the daemon share: paths, framing and the state file.

Over `monitor.sock` a client sends one JSON line (the request); the monitor
answers with one JSON line, then, for attach and exec, Docker's 8-byte frames
(stream 1 stdout, 2 stderr; stream 255 carries a JSON control message such as
an exec's exit code). Raw input after the request goes to the process's stdin.
"""

import os

from knarr import fastjson
from knarr import sys as ksys

__all__ = ["frame", "CONTROL", "read_state", "write_state", "monitor_dir",
           "MONITOR_SOCK"]

CONTROL = 255
MONITOR_SOCK = "monitor.sock"


def frame(stream: int, payload: bytes) -> bytes:
    """One frame of Docker's multiplexed stream."""
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


def monitor_dir(exec_root: str, container_id: str) -> str:
    """A running container's run-time directory (bundle, rootfs, monitor socket)."""
    return os.path.join(exec_root, "containers", container_id)


def read_state(path: str) -> dict | None:
    """The container's state file, or None if there is none yet."""
    try:
        return fastjson.loads(ksys.read_bytes(path))
    except FileNotFoundError:
        return None
    except ValueError:
        return None


def write_state(path: str, state: dict, durable: bool = False) -> None:
    """Replace the state file whole (temp file, optional fsync, rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, fastjson.dumps(state).encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
