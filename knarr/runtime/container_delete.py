"""delete: remove a stopped (or, with force, any) container and all it holds."""

from knarr.errors import NotFound
from knarr.runtime import container as containers
from knarr.runtime import hooks, state

__all__ = ["delete", "delete_container"]


def delete(root: str, container_id: str, force: bool = False) -> None:
    """Delete a container; a running one only with `force` (SIGKILL first)."""
    try:
        c = containers.load(root, container_id)
    except NotFound:
        if force:
            return
        raise
    delete_container(c, force)


def delete_container(c: containers.Container, force: bool = False) -> None:
    """`delete` for a container already looked up (run holds the one it created)."""
    root, container_id = c.root, c.id
    status = c.status()
    if status in (state.Status.RUNNING, state.Status.PAUSED) and not force:
        raise c.refuse("delete", status)
    if status != state.Status.STOPPED:
        c.kill_all()
    c.cgroup.destroy()
    state.remove_dir(state.container_dir(root, container_id))
    later = c.record.get("hooks") or {}
    if later.get("poststop"):
        hooks.run({"hooks": later}, "poststop", state.oci_state(c.record, state.Status.STOPPED))
