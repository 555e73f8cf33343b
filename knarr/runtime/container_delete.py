"""delete: remove a stopped (or, with force, any) container and all it holds."""

from knarr.errors import NotFound
from knarr.runtime import container as containers
from knarr.runtime import hooks, state

__all__ = ["delete"]


def delete(root: str, container_id: str, force: bool = False) -> None:
    """Delete a container; a running one only with `force` (SIGKILL first)."""
    try:
        c = containers.load(root, container_id)
    except NotFound:
        if force:
            return
        raise
    status = c.status()
    if status in (state.Status.RUNNING, state.Status.PAUSED) and not force:
        raise c.refuse("delete", status)
    if status != state.Status.STOPPED:
        c.kill_all()
    c.cgroup.destroy()
    state.remove_dir(state.container_dir(root, container_id))
    hooks.run({"hooks": c.record.get("hooks") or {}}, "poststop",
              state.oci_state(c.record, state.Status.STOPPED))
