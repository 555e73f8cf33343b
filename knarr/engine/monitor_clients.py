"""The monitor's clients on monitor.sock: watch, attach, exec, resize, stop, kill.

A client sends one JSON line; the monitor answers with one, then (attach, exec)
Docker's frames; raw bytes from the client are the process's stdin.
"""

import _signal
import _socket
import os

from knarr import fastjson
from knarr.engine import monitor_io
from knarr.runtime import console

__all__ = ["Conn", "ClientsMixin"]

_MAX_PENDING = 8 << 20


class Conn:
    """A client of monitor.sock."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.kind = None
        self.streams = (True, True)  # stdout, stderr wanted
        self.stdin = False
        self.session = None  # the ExecSession of an exec connection
        self.pending = b""  # input the process has not taken yet
        self.out = b""  # output the client has not taken yet
        self.closing = False
        self.target: int | None = None



class ClientsMixin:
    """Serving monitor.sock, for the Monitor."""

    # -- clients ------------------------------------------------------------

    # The C socket type, not socket.socket: its Python wrapper turns family and type
    # into enums on every accept, and each enum object it touches costs the monitor a
    # private copy of a page it would otherwise share with the fork helper.

    def listen(self) -> None:
        self.server = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            os.unlink(monitor_io.MONITOR_SOCK)
        except FileNotFoundError:
            pass
        self.server.bind(monitor_io.MONITOR_SOCK)
        os.chmod(monitor_io.MONITOR_SOCK, 0o600)
        self.server.listen(16)
        self.watch(self.server.fileno(), self._on_accept)

    def adopt_watch(self, sock: _socket.socket) -> None:
        """Serve `sock` (the daemon's report channel, after "started") as a watch client
        that asked nothing: the daemon reads the container's events on it at once."""
        sock.setblocking(False)
        conn = Conn(sock)
        conn.kind = "watch"
        self.conns[sock.fileno()] = conn
        self.watch(sock.fileno(), self._on_conn)

    def adopt_client(self, fd: int, request: dict) -> None:
        """Serve a connection the daemon made and handed over (with the request it would
        have sent on it) as if it had come through monitor.sock: an attach before the
        start, without a connect and a round trip while the container waits for go."""
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
        sock.setblocking(False)
        conn = Conn(sock)
        self.conns[sock.fileno()] = conn
        self.watch(sock.fileno(), self._on_conn)
        self._request(conn, request)

    def _on_accept(self, _fd: int) -> None:
        fd, _ = self.server._accept()
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
        sock.setblocking(False)
        conn = Conn(sock)
        self.conns[sock.fileno()] = conn
        self.watch(sock.fileno(), self._on_conn)

    def _on_conn(self, fd: int) -> None:
        conn = self.conns[fd]
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if conn.kind is None:
            conn.buf += data
            if b"\n" not in conn.buf and data:
                return
            line, _, rest = conn.buf.partition(b"\n")
            conn.buf = b""
            if not line:
                self._close(conn)
                return
            self._request(conn, fastjson.loads(line))
            data = rest
            if not data or conn.kind is None:
                return
        if not data:
            self._input_closed(conn)
            return
        self._input(conn, data)

    def _input(self, conn: Conn, data: bytes) -> None:
        target = self.stdin_w if conn.kind == "attach" else (
            conn.session.stdin if conn.session else None)
        if target is None or not conn.stdin:
            return
        conn.pending, conn.target = data, target
        if not self._write_pending(conn):
            # The process is not reading: stop reading its client until it does.
            self.unwatch(conn.sock.fileno())
            self.blocked.append(conn)

    def _write_pending(self, conn: Conn) -> bool:
        """Write what the client sent; True once all of it is out (or cannot be)."""
        while conn.pending:
            try:
                written = os.write(conn.target, conn.pending)
            except BlockingIOError:
                return False
            except OSError:
                conn.pending = b""
                return True
            conn.pending = conn.pending[written:]
        return True

    def flush_blocked(self) -> None:
        """Retry blocked input; a client whose input is out is read again."""
        for conn in list(self.blocked):
            if conn.sock.fileno() < 0:
                self.blocked.remove(conn)
            elif self._write_pending(conn):
                self.blocked.remove(conn)
                self.watch(conn.sock.fileno(), self._on_conn)

    def _input_closed(self, conn: Conn) -> None:
        """The client closed its side: for stdin-once or exec, the process's stdin ends."""
        self.unwatch(conn.sock.fileno())
        if conn.kind == "exec" and conn.session and conn.stdin:
            session = conn.session
            if session.stdin is not None and session.stdin != session.master:
                os.close(session.stdin)
                session.stdin = None
            elif session.master is not None:
                try:
                    os.write(session.master, b"\x04")
                except OSError:
                    pass
            return
        if conn.kind == "attach" and conn.stdin and self.p.get("stdin_once") and \
                self.stdin_w is not None and self.stdin_w != self.master:
            os.close(self.stdin_w)
            self.stdin_w = None
        if conn.kind not in ("attach", "exec"):
            self._close(conn, unwatched=True)
        elif conn.kind == "attach" and not (conn.streams[0] or conn.streams[1]):
            self._close(conn, unwatched=True)

    def _send(self, conn: Conn, data: bytes) -> None:
        """Send without blocking; what the client cannot take yet waits (up to a limit)."""
        if conn.sock.fileno() < 0:
            return
        if conn.out:
            conn.out += data
            if len(conn.out) > _MAX_PENDING:
                self._drop(conn)  # a client this far behind is gone in all but name
            return
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._drop(conn)
            return
        if sent < len(data):
            conn.out = data[sent:]
            self.slow.append(conn)

    def flush_slow(self) -> None:
        """Send waiting output; close the clients that were waiting only for that."""
        for conn in list(self.slow):
            try:
                sent = conn.sock.send(conn.out) if conn.sock.fileno() >= 0 else len(conn.out)
            except BlockingIOError:
                continue
            except OSError:
                sent = len(conn.out)
            conn.out = conn.out[sent:]
            if not conn.out:
                self.slow.remove(conn)
                if conn.closing:
                    self._drop(conn)

    def flush_all(self, timeout: float) -> None:
        """Before the monitor exits: give slow clients a last moment to take their output."""
        for conn in list(self.slow):
            try:
                conn.sock.settimeout(timeout)
                conn.sock.sendall(conn.out)
            except OSError:
                pass

    def _reply(self, conn: Conn, message: dict) -> None:
        self._send(conn, fastjson.dumps(message).encode() + b"\n")

    def _close(self, conn: Conn, unwatched: bool = False) -> None:
        """Close once the client has taken what was sent to it."""
        if conn.out and conn.sock.fileno() >= 0:
            conn.closing = True
            if not unwatched:
                self.unwatch(conn.sock.fileno())
            return
        self._drop(conn, unwatched)

    def _drop(self, conn: Conn, unwatched: bool = False) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        if not unwatched:
            self.unwatch(fd)
        self.conns.pop(fd, None)
        if conn in self.slow:
            self.slow.remove(conn)
        conn.sock.close()

    def _request(self, conn: Conn, req: dict) -> None:
        op = req.get("op")
        if op == "watch":
            conn.kind = "watch"
            self._reply(conn, {"ok": True, "state": self.state})
        elif op == "attach":
            conn.kind = "attach"
            conn.streams = (bool(req.get("stdout")), bool(req.get("stderr")))
            conn.stdin = bool(req.get("stdin"))
            self._reply(conn, {"ok": True})
        elif op == "exec":
            self._exec(conn, req)
        elif op == "resize":
            self._resize(req)
            self._reply(conn, {"ok": True})
            self._close(conn)
        elif op == "stop":
            self._reply(conn, {"ok": True})
            self._close(conn)
            self.stop(req.get("signal") or _signal.SIGTERM, req.get("timeout", 10))
        elif op == "kill":
            if req.get("manual"):
                self.manual_stop = True
            self.signal(req["signal"])
            self._reply(conn, {"ok": True})
            self._close(conn)
        elif op == "update":  # docker update --restart
            self.p["restart_policy"] = req["restart_policy"]
            self._reply(conn, {"ok": True})
            self._close(conn)
        else:
            self._reply(conn, {"error": f"unknown request {op!r}"})
            self._close(conn)

    def _resize(self, req: dict) -> None:
        master = self.master
        if req.get("exec_pid"):
            session = self.execs.get(req["exec_pid"])
            master = session.master if session else None
        if master is not None:
            try:
                console.set_size(master, req.get("height", 0), req.get("width", 0))
            except OSError:
                pass
