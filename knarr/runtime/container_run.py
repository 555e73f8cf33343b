"""run: create + start, then (unless detached) wait for the container and delete it."""

import os

from knarr.runtime import container_create, container_delete, container_start, signals
from knarr.runtime.container import Container
from knarr.runtime.waiting import become_subreaper, wait_exit_status

__all__ = ["run", "forward_signals"]


def run(root: str, container_id: str, bundle: str, *, detach: bool = False,
        console_socket: str | None = None, pid_file: str | None = None, no_pivot: bool = False,
        preserve_fds: int = 0, keep: bool = False) -> int:
    """Run a container; return its exit status (0 when detached)."""
    if not detach:
        become_subreaper()
    relay = None
    config = container_create.load_bundle(bundle, root)
    if config["process"].get("terminal") and not console_socket and not detach:
        from knarr.runtime import console

        relay = console.Relay(root, container_id)
        console_socket = relay.path
    try:
        record, cgroup = container_create.create_held(
            root, container_id, bundle, console_socket=console_socket, pid_file=pid_file,
            no_pivot=no_pivot, preserve_fds=preserve_fds, config=config)
        master = relay.receive() if relay else None
    finally:
        if relay:
            relay.close()
    # Started and deleted from the record and cgroup in hand, not read back from the
    # state root; their status is still the kernel's.
    c = Container(root, record, cgroup)
    try:
        container_start.start_container(c)
    except BaseException:
        container_delete.delete_container(c, force=True)
        raise
    if detach:
        return 0
    status = _wait(record["pid"], master)
    if not keep:
        container_delete.delete_container(c, force=True)
    return status


def _wait(pid: int, master: int | None) -> int:
    forward_signals(pid, master)
    if master is not None:
        from knarr.runtime import console

        console.proxy(master)
    return wait_exit_status(pid)


def forward_signals(pid: int, master: int | None) -> None:
    """Pass the signals a user sends us on to `pid`; a resize goes to the pty instead."""
    def forward(signum, _frame):
        if signum == signals.SIGWINCH and master is not None:
            from knarr.runtime import console

            console.copy_size(0, master)
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in signals.FORWARDED:
        signals.handle(signum, forward)
