"""A tiny message channel between the runtime and the processes it forks.

Messages are JSON objects, one per line, over a pair of pipes (one each way; the
`_socket` module a socketpair needs costs more start-up than the channel's work).
The child's ends are close-on-exec, so a successful exec closes them and the parent
reads EOF.
"""

import os

from knarr import fastjson
from knarr.errors import FailedPrecondition, KnarrError

__all__ = ["Channel", "pair"]


class Channel:
    """One side of a two-way channel that carries JSON messages: the read end of
    one pipe and the write end of the other."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        self._buffer = b""

    def send(self, kind: str, **fields: object) -> None:
        """Send one message of the given kind."""
        view = memoryview(fastjson.dumps({"kind": kind, **fields}).encode() + b"\n")
        while view:
            view = view[os.write(self.wfd, view):]

    def recv(self) -> dict | None:
        """Receive one message; None at EOF."""
        while b"\n" not in self._buffer:
            chunk = os.read(self.rfd, 65536)
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

    def fds(self) -> tuple[int, int]:
        """The two descriptors (read, write) this side holds."""
        return self.rfd, self.wfd

    def set_blocking(self, blocking: bool) -> None:
        """Whether recv waits for a message (else it raises BlockingIOError)."""
        os.set_blocking(self.rfd, blocking)

    def close(self) -> None:
        os.close(self.rfd)
        os.close(self.wfd)


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
    """A (parent, child) pair of channels; every end closes on exec."""
    to_parent_r, to_parent_w = os.pipe()  # not inheritable: close-on-exec
    to_child_r, to_child_w = os.pipe()
    return Channel(to_parent_r, to_child_w), Channel(to_child_r, to_parent_w)
