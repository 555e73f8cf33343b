"""run: create + start, then (unless detached) wait for the container and delete it."""

import os
import signal

from knarr.runtime import container_create, container_delete, container_start
from knarr.runtime.waiting import become_subreaper, wait_exit_status

__all__ = ["run", "FORWARDED_SIGNALS"]

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)


def run(root: str, container_id: str, bundle: str, *, detach: bool = False,
        console_socket: str | None = None, pid_file: str | None = None, no_pivot: bool = False,
        preserve_fds: int = 0, keep: bool = False) -> int:
    """Run a container; return its exit status (0 when detached)."""
    if not detach:
        become_subreaper()
    relay = None
    config = container_create.load_bundle(bundle)
    if config["process"].get("terminal") and not console_socket and not detach:
        relay = _ConsoleRelay(root, container_id)
        console_socket = relay.path
    try:
        record = container_create.create(root, container_id, bundle,
                                         console_socket=console_socket, pid_file=pid_file,
                                         no_pivot=no_pivot, preserve_fds=preserve_fds)
        master = relay.receive() if relay else None
    finally:
        if relay:
            relay.close()
    try:
        container_start.start(root, container_id)
    except BaseException:
        container_delete.delete(root, container_id, force=True)
        raise
    if detach:
        return 0
    status = _wait(record["pid"], master)
    if not keep:
        container_delete.delete(root, container_id, force=True)
    return status


def _wait(pid: int, master: int | None) -> int:
    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)
    if master is not None:
        _proxy(master)
    return wait_exit_status(pid)


def _proxy(master: int) -> None:
    """Copy between our stdio and the container's pty until it closes."""
    import select
    import sys
    import termios
    import tty

    stdin = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    if saved:
        tty.setraw(stdin)
    try:
        watched = [master, stdin]
        while True:
            ready, _, _ = select.select(watched, [], [])
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return
                if not data:
                    return
                os.write(sys.stdout.fileno(), data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    watched.remove(stdin)
                else:
                    os.write(master, data)
    finally:
        if saved:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


class _ConsoleRelay:
    """A private console socket for `run` in the foreground with a terminal."""

    def __init__(self, root: str, container_id: str) -> None:
        import socket

        os.makedirs(root, mode=0o700, exist_ok=True)
        self.path = os.path.join(root, f".console-{container_id}-{os.getpid()}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)

    def receive(self) -> int:
        import socket

        conn, _ = self.sock.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
        return fds[0]

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
