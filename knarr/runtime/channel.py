"""A tiny message channel between the runtime and the processes it forks.

Messages are JSON objects, one per line, over one end of a socketpair. The
child's end is close-on-exec, so a successful exec closes it and the parent
reads EOF.
"""

import _socket
import os

from knarr import fastjson
from knarr.errors import FailedPrecondition, KnarrError

__all__ = ["Channel", "pair"]


class Channel:
    """One end of a socketpair that carries JSON messages."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self._buffer = b""

    def send(self, kind: str, **fields: object) -> None:
        """Send one message of the given kind."""
        self.sock.sendall(fastjson.dumps({"kind": kind, **fields}).encode() + b"\n")

    def recv(self) -> dict | None:
        """Receive one message; None at EOF."""
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return fastjson.loads(line)

    def expect(self, kind: str, what: str) -> dict:
        """Receive a message of `kind`; a reported error or EOF is raised."""
        message = self.recv()
        if message is None:
            raise FailedPrecondition(f"{what}: container init exited unexpectedly")
        if message["kind"] == "error":
            raise error_from(message)
        if message["kind"] != kind:
            raise FailedPrecondition(f"{what}: expected {kind!r}, got {message['kind']!r}")
        return message

    def send_error(self, exc: BaseException) -> None:
        """Report an exception to the other side, best effort."""
        category = type(exc).__name__ if isinstance(exc, KnarrError) else "FailedPrecondition"
        text = str(exc) if isinstance(exc, KnarrError) else _describe(exc)
        try:
            self.send("error", category=category, message=text)
        except OSError:
            pass

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" if not exc.filename else f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def error_from(message: dict) -> KnarrError:
    """Rebuild the error a child reported."""
    import knarr.errors as errors

    cls = getattr(errors, message.get("category", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, KnarrError)):
        cls = FailedPrecondition
    return cls(message.get("message", "container init failed"))


def pair() -> tuple[Channel, Channel]:
    """A (parent, child) pair of channels; both ends close on exec."""
    # _socket: the socket module's enums cost more start-up than the channel's work.
    parent, child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    for sock in (parent, child):
        os.set_inheritable(sock.fileno(), False)
    return Channel(parent), Channel(child)
