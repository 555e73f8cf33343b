"""Relaying a hijacked attach/exec stream to this terminal or these pipes.

Without a TTY the daemon frames stdout and stderr (knarr.client.frames); with
one the stream is raw and this side puts its own terminal in raw mode, sends
the window size on SIGWINCH, and watches stdin for the detach keys.
"""

import _signal
import os

from knarr.client import frames

__all__ = ["Terminal", "relay", "DETACHED", "ENDED"]

DETACHED, ENDED = "detached", "ended"
_BUF = 65536


class Terminal:
    """Raw mode for a tty on stdin, restored on exit; the window size and its changes."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self._saved = None
        self._wake_r = self._wake_w = -1
        self._old_handler = None
        self._old_wakeup = -1

    def size(self) -> tuple[int, int] | None:
        """(rows, columns) of the terminal on stdout or stdin."""
        for fd in (1, self.fd):
            try:
                cols, rows = os.get_terminal_size(fd)
                return rows, cols
            except OSError:
                continue
        return None

    def __enter__(self) -> "Terminal":
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd, termios.TCSANOW)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_wakeup = _signal.set_wakeup_fd(self._wake_w)
        self._old_handler = _signal.signal(_signal.SIGWINCH, lambda *_: None)
        return self

    def __exit__(self, *exc) -> None:
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        _signal.signal(_signal.SIGWINCH, self._old_handler or _signal.SIG_DFL)
        _signal.set_wakeup_fd(self._old_wakeup)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def resized(self) -> bool:
        """Drain the wake-up pipe; whether a SIGWINCH came in."""
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return False
        return _signal.SIGWINCH in data


class _Escape:
    """Watches input for the detach sequence, holding back a partial match."""

    def __init__(self, keys: bytes) -> None:
        self.keys, self.held = keys, b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward, whether the full sequence was typed)."""
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes((byte,))
            if self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    return bytes(out), True
            else:
                out += candidate
                self.held = b""
        return bytes(out), False


def relay(sock, leftover: bytes, tty: bool, stdin: bool, detach_keys: bytes = b"",
          terminal: Terminal | None = None, on_resize=None, out_fd: int = 1,
          err_fd: int = 2, in_fd: int = 0, resize_pending: bool = False) -> str:
    """Copy stdin to the socket and the socket to stdout/stderr until the stream ends.

    on_resize() sends the window size and says whether the daemon took it; with
    resize_pending (the first attempt failed: the program was not running yet)
    it is tried again, 10 ms, 20 ms, ... apart, ten times at most, as Docker does.
    Returns DETACHED when the detach keys were typed, else ENDED.
    """
    demux = None if tty else frames.Demuxer()
    escape = _Escape(detach_keys if (stdin and tty) else b"")
    sock_fd = sock.fileno()
    _output(leftover, demux, out_fd, err_fd)
    reading_stdin = stdin
    retry = 1 if resize_pending and on_resize else 0
    while True:
        fds = [sock_fd]
        if reading_stdin:
            fds.append(in_fd)
        if terminal is not None:
            fds.append(terminal._wake_r)
        if len(fds) == 1 and not retry:
            ready = fds  # the socket alone: wait in its recv (and import no select)
        else:
            import select

            try:
                ready, _, _ = select.select(fds, [], [], retry * 0.01 if retry else None)
            except InterruptedError:
                continue
        if retry and not ready:
            retry = 0 if on_resize() or retry >= 10 else retry + 1
        if terminal is not None and terminal._wake_r in ready and terminal.resized() \
                and on_resize:
            on_resize()
        if sock_fd in ready:
            data = _recv(sock)
            if not data:
                return ENDED
            _output(data, demux, out_fd, err_fd)
        if reading_stdin and in_fd in ready:
            data = os.read(in_fd, _BUF)
            if not data:
                reading_stdin = False
                _shutdown_write(sock)
                continue
            data, detached = escape.feed(data)
            if data:
                sock.sendall(data)
            if detached:
                return DETACHED


def _recv(sock) -> bytes:
    """What the socket has; over TLS also what is already decrypted (select cannot see it)."""
    try:
        data = sock.recv(_BUF)
    except OSError as exc:
        if type(exc).__name__ in ("SSLEOFError", "SSLZeroReturnError"):
            return b""
        raise
    while data and getattr(sock, "pending", None) and sock.pending():
        data += sock.recv(_BUF)
    return data


def _shutdown_write(sock) -> None:
    """End our direction only, so the daemon closes the program's stdin."""
    import _socket

    if hasattr(sock, "pending"):  # TLS: a close_notify alert, reading stays open
        _tls_close_write(sock)
        return
    try:
        sock.shutdown(_socket.SHUT_WR)
    except OSError:
        pass


def _tls_close_write(sock) -> None:
    """Send TLS close_notify without waiting for the peer's (SSLSocket.shutdown would drop
    the TLS layer and unwrap() would block reading)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        sock._sslobj.shutdown()
    except OSError:
        pass  # SSLWantReadError: ours is sent, the peer's is not here yet
    finally:
        sock.settimeout(timeout)


def _output(data: bytes, demux, out_fd: int, err_fd: int) -> None:
    if not data:
        return
    if demux is None:
        _write_all(out_fd, data)
        return
    for stream, payload in demux.feed(data):
        _write_all(err_fd if stream == frames.STDERR else out_fd, payload)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
