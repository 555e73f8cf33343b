"""Terminals: a pty made inside the container, its master sent to a console socket."""

import fcntl
import os
import struct
import termios

from knarr.errors import FailedPrecondition

__all__ = ["connect", "open_pty", "send_master", "make_controlling", "set_size", "copy_size",
           "Relay", "proxy"]

_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


def connect(path: str):
    """Connect to the console socket the caller passed with --console-socket."""
    import socket  # only with a terminal: its enums cost start-up

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise FailedPrecondition(f"connect to console socket {path}: {exc.strerror}",
                                 path=path) from exc
    os.set_inheritable(sock.fileno(), False)
    return sock


def open_pty() -> tuple[int, str]:
    """Open a pty from /dev/ptmx of the current mount namespace; return (master, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    (number,) = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0\0\0\0"))
    return master, f"/dev/pts/{number}"


def send_master(sock, master: int) -> None:
    """Pass the pty master over the console socket with SCM_RIGHTS, as runc does."""
    import socket

    socket.send_fds(sock, [b"/dev/ptmx"], [master])


def make_controlling(slave_path: str) -> None:
    """Make the slave this session's controlling terminal and the process's stdio."""
    slave = os.open(slave_path, os.O_RDWR)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def set_size(fd: int, height: int, width: int) -> None:
    """Set a terminal's window size."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def copy_size(source: int, target: int) -> None:
    """Give terminal `target` the window size of `source`, if `source` is a terminal."""
    try:
        fcntl.ioctl(target, termios.TIOCSWINSZ, fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


def proxy(master: int) -> None:
    """Copy between our stdio and a container's pty until the pty closes."""
    import select
    import tty

    stdin = 0
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    if saved:
        copy_size(stdin, master)
        tty.setraw(stdin)
    try:
        watched = [master, stdin]
        while True:
            try:
                ready, _, _ = select.select(watched, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return
                if not data:
                    return
                os.write(1, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if data:
                    os.write(master, data)
                else:
                    watched.remove(stdin)
    finally:
        if saved:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


class Relay:
    """A private console socket, for `run` and `exec` in the foreground with a terminal."""

    def __init__(self, root: str, name: str) -> None:
        import socket

        os.makedirs(root, mode=0o700, exist_ok=True)
        self.path = os.path.join(root, f".console-{name}-{os.getpid()}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)

    def receive(self) -> int:
        """The pty master the container's process sent."""
        import socket

        conn, _ = self.sock.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
        return fds[0]

    def close(self) -> None:
        """Close and remove the socket."""
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
