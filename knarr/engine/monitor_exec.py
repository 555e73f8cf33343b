"""The monitor's exec sessions: one more process in the container, its stdio
relayed to the client that asked (or collected, for a health probe).

A task child runs the runtime's exec and exits; the process it starts is
reparented to the monitor (a subreaper), which reaps it and sends its exit
code to the client as a control frame.
"""

import os
import time

from knarr import fastjson
from knarr.engine import monitor_io, monitor_tasks
from knarr.runtime import console

__all__ = ["ExecSession", "ExecMixin"]


class ExecSession:
    """One exec'd process: its stdio and the client that waits for it."""

    def __init__(self, master: int | None, stdin: int | None, outputs: dict[int, int]) -> None:
        self.conn = None
        self.master = master
        self.stdin = stdin
        self.outputs = outputs  # fd -> stream number
        self.pid = 0
        self.on_exit = None  # health probes collect the output instead of a client
        self.collected = b""


def _pipes(tty: bool, stdin: bool) -> tuple[list[int], int | None, dict[int, int], list[int]]:
    """(the child's stdio, our stdin end, our output ends, fds to close after the fork)."""
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    child = [devnull, devnull, devnull]
    stdin_w, outputs = None, {}
    if not tty:
        if stdin:
            child[0], stdin_w = os.pipe()
            os.set_blocking(stdin_w, False)
        out_r, child[1] = os.pipe()
        err_r, child[2] = os.pipe()
        outputs = {out_r: 1, err_r: 2}
    return child, stdin_w, outputs, sorted(set(child))


class ExecMixin:
    """Exec for the Monitor."""

    def spawn_exec(self, process: dict | None, stdin: bool, args: list[str] | None = None,
                   user: str = "") -> ExecSession:
        """Run one more process in the container with our pipes (or a pty) as its stdio."""
        tty = bool(process and process.get("terminal"))
        child, stdin_w, outputs, to_close = _pipes(tty, stdin)
        relay = console.Relay(".", f"e{time.monotonic_ns()}") if tty else None
        try:
            pid, report = monitor_tasks.fork_task(
                monitor_tasks.exec_child, self.p, process, args, user, child,
                relay.path if relay else None)
            for fd in to_close:
                os.close(fd)
            to_close = []
            try:
                target = monitor_tasks.read_message(report)["pid"]
            except BaseException:
                os.close(report)
                monitor_tasks.reap_child(pid)
                raise
            os.close(report)
            self.reap_later(pid)
            master = None
            if relay:
                master = relay.receive()
                os.set_blocking(master, False)
                outputs, stdin_w = {master: 1}, master
        except BaseException:
            for fd in to_close + list(outputs) + ([stdin_w] if stdin_w is not None else []):
                os.close(fd)
            raise
        finally:
            if relay:
                relay.close()
        session = ExecSession(master, stdin_w, outputs)
        session.pid = target
        self.execs[target] = session
        for fd in outputs:
            self.watch(fd, lambda fd, s=session: self._on_exec_output(s, fd))
        if target in self.unclaimed:  # it exited before we knew its pid
            self._exec_exited(self.execs.pop(target), self.unclaimed.pop(target))
        return session

    def _exec(self, conn, req: dict) -> None:
        conn.kind = "exec"
        conn.stdin = bool(req.get("stdin"))
        try:
            if not self.init_pid:
                raise monitor_tasks.TaskError(f"Container {self.id} is not running")
            session = self.spawn_exec(req["process"], conn.stdin, user=req.get("user") or "")
        except (monitor_tasks.TaskError, OSError) as exc:
            code = 127 if "not found" in str(exc) else 126
            self._reply(conn, {"error": str(exc), "exit_code": code})
            self._close(conn)
            return
        session.conn = conn
        conn.session = session
        self._reply(conn, {"ok": True, "pid": session.pid})
        if session.pid not in self.execs:  # already over: its exit code is waiting
            self._exec_finish(session, session.exit_code)

    def _on_exec_output(self, session: ExecSession, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            self.unwatch(fd)
            session.outputs.pop(fd, None)
            if fd != session.master:
                os.close(fd)
            return
        self._exec_deliver(session, session.outputs.get(fd, 1), data)

    def _exec_deliver(self, session: ExecSession, stream: int, data: bytes) -> None:
        if session.on_exit is not None:
            session.collected += data
        elif session.conn is not None and session.conn.sock.fileno() >= 0:
            self._send(session.conn, monitor_io.frame(stream, data))

    def _exec_exited(self, session: ExecSession, code: int) -> None:
        self._drain(session.outputs, lambda s, d: self._exec_deliver(session, s, d))
        for fd in list(session.outputs):
            self.unwatch(fd)
            os.close(fd)
        session.outputs = {}
        if session.stdin is not None and session.stdin != session.master:
            os.close(session.stdin)
        session.stdin = None
        session.exit_code = code
        if session.on_exit is not None:
            session.on_exit(code, session.collected)
        elif session.conn is not None:
            self._exec_finish(session, code)

    def _exec_finish(self, session: ExecSession, code: int) -> None:
        conn = session.conn
        if conn is not None and conn.sock.fileno() >= 0:
            self._send(conn, monitor_io.frame(monitor_io.CONTROL,
                                              fastjson.dumps({"exit_code": code}).encode()))
            if conn.sock.fileno() >= 0:
                self._close(conn)
