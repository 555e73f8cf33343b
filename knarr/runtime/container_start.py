"""start: release a created container's init to exec the user's process."""

import os
import select

from knarr.errors import FailedPrecondition
from knarr.runtime import container as containers
from knarr.runtime import hooks, state

__all__ = ["start", "start_container"]


def start(root: str, container_id: str) -> containers.Container:
    """Start a created container and run its poststart hooks."""
    return start_container(containers.load(root, container_id))


def start_container(c: containers.Container) -> containers.Container:
    """`start` for a container already looked up (run holds the one it created)."""
    status = c.status()
    if status != state.Status.CREATED:
        raise c.refuse("start", status)
    fifo = os.path.join(state.container_dir(c.root, c.id), state.FIFO_NAME)
    _release(c, fifo)
    later = c.record.get("hooks") or {}
    if later.get("poststart"):
        hooks.run({"hooks": later}, "poststart", c.oci_state())
    return c


def _release(c: containers.Container, fifo: str) -> None:
    # Non-blocking open: if init died, a blocking open would wait forever.
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready and os.read(fd, 1):
                break
            if state.process_start_time(c.pid) != c.record["start_time"]:
                raise FailedPrecondition(f"start container {c.id}: its init exited before "
                                         f"start", id=c.id)
    finally:
        os.close(fd)
    os.unlink(fifo)
