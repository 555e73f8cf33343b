"""pause and resume: freeze and thaw every process of a container."""

from knarr.runtime import container as containers
from knarr.runtime import state

__all__ = ["pause", "resume"]


def pause(root: str, container_id: str) -> None:
    """Freeze a running container."""
    c = containers.load(root, container_id)
    status = c.status()
    if status != state.Status.RUNNING:
        raise c.refuse("pause", status)
    c.cgroup.freeze()


def resume(root: str, container_id: str) -> None:
    """Thaw a paused container."""
    c = containers.load(root, container_id)
    status = c.status()
    if status != state.Status.PAUSED:
        raise c.refuse("resume", status)
    c.cgroup.thaw()
