"""Terminals: a pty made inside the container, its master sent to a console socket."""

import array
import fcntl
import os
import socket
import struct
import termios

from knarr.errors import FailedPrecondition

__all__ = ["connect", "open_pty", "send_master", "make_controlling", "set_size"]

_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


def connect(path: str) -> socket.socket:
    """Connect to the console socket the caller passed with --console-socket."""
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
    number = array.array("i", [0])
    fcntl.ioctl(master, _TIOCGPTN, number, True)
    return master, f"/dev/pts/{number[0]}"


def send_master(sock: socket.socket, master: int) -> None:
    """Pass the pty master over the console socket with SCM_RIGHTS, as runc does."""
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
