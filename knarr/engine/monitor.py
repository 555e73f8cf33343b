"""The per-container monitor: the parent of one container, for all of its life.

Forked by the fork helper, it mounts the rootfs, creates and starts the
container through the runtime library, holds its stdio (pipes, or the pty
master), writes the json-file log, serves attach, exec, resize, stop and kill
on `monitor.sock`, records the exit (code, time, OOM kill), restarts the
container as its policy says, and exits once the container is down for good
(after unmounting the rootfs). It never needs the daemon: a daemon that dies
finds it again through the socket. Single-threaded, one poll loop, no asyncio.
"""

import _signal
import os
import select
import socket
import time

from knarr import sys as ksys
from knarr.engine import health, jsonlog, monitor_io, users
from knarr.errors import KnarrError
from knarr.oci import fastjson
from knarr.oci.overlay import fit_overlay
from knarr.runtime import (
    console,
    container_create,
    container_delete,
    container_exec,
    container_start,
)
from knarr.runtime import container as containers
from knarr.runtime.waiting import become_subreaper, exit_status_of

__all__ = ["main"]

_IN = select.POLLIN | select.POLLHUP | select.POLLERR


class Conn:
    """A client of monitor.sock."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.kind = None
        self.streams = (True, True)  # stdout, stderr wanted
        self.stdin = False
        self.session = None  # the ExecSession of an exec connection


class ExecSession:
    """One exec'd process: its stdio and the client that waits for it."""

    def __init__(self, conn: Conn, master: int | None, stdin: int | None,
                 outputs: dict[int, int]) -> None:
        self.conn = conn
        self.master = master
        self.stdin = stdin
        self.outputs = outputs  # fd -> stream number
        self.pid = 0
        self.on_exit = None  # health checks collect instead of a client


class Monitor:
    """The loop and everything it tracks."""

    def __init__(self, params: dict, report: socket.socket | None) -> None:
        self.p = params
        self.id = params["id"]
        self.report = report
        self.poll = select.poll()
        self.handlers: dict[int, object] = {}
        self.timers: list[tuple[float, object]] = []
        self.conns: dict[int, Conn] = {}
        self.execs: dict[int, ExecSession] = {}
        self.init_pid = 0
        self.outputs: dict[int, int] = {}
        self.stdin_w: int | None = None
        self.master: int | None = None
        self.manual_stop = False
        self.done = False
        self.started_at = 0.0
        self.backoff = 0.1
        self.state = monitor_io.read_state(params["state_path"]) or {}
        self.state.update(RestartCount=params.get("restart_count", 0))
        self.log = None
        if params["log_driver"] == "json-file":
            self.log = jsonlog.Writer(params["log_path"], params["log_max_size"],
                                      params["log_max_file"])
        self.health = health.Checker(self, params.get("healthcheck"))

    # -- the loop -----------------------------------------------------------

    def watch(self, fd: int, handler) -> None:
        self.handlers[fd] = handler
        self.poll.register(fd, _IN)

    def unwatch(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            self.poll.unregister(fd)

    def at(self, delay: float, fn) -> object:
        entry = (time.monotonic() + delay, fn)
        self.timers.append(entry)
        return entry

    def cancel(self, entry) -> None:
        if entry in self.timers:
            self.timers.remove(entry)

    def run(self) -> None:
        while not self.done:
            timeout = None
            if self.timers:
                timeout = max(0, min(t for t, _ in self.timers) - time.monotonic()) * 1000
            for fd, _events in self.poll.poll(timeout):
                handler = self.handlers.get(fd)
                if handler is not None:
                    handler(fd)
            now = time.monotonic()
            for entry in [t for t in self.timers if t[0] <= now]:
                self.cancel(entry)
                entry[1]()

    # -- signals and children -----------------------------------------------

    def setup_signals(self) -> None:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.set_wakeup_fd(w)
        _signal.signal(_signal.SIGCHLD, lambda *_: None)
        for signum in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP):
            _signal.signal(signum, _signal.SIG_IGN)
        self.watch(r, self._on_signal)

    def _on_signal(self, fd: int) -> None:
        try:
            while os.read(fd, 512):
                pass
        except BlockingIOError:
            pass
        self.reap()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid:
                self._container_exited(exit_status_of(status))
            elif pid in self.execs:
                self._exec_exited(self.execs.pop(pid), exit_status_of(status))

    # -- the container ------------------------------------------------------

    def mount_rootfs(self) -> None:
        target = os.path.join(self.p["bundle"], "rootfs")
        os.makedirs(target, exist_ok=True)
        if os.path.ismount(target):
            return  # a restart, or a monitor started again over a mounted rootfs
        for m in self.p["rootfs_mounts"]:
            if m["type"] == "bind":
                ksys.mount(m["source"], target, None, ksys.MS_BIND | ksys.MS_REC)
                if "ro" in m.get("options", []):
                    ksys.mount(None, target, None,
                               ksys.MS_BIND | ksys.MS_REMOUNT | ksys.MS_RDONLY)
                continue
            base, fitted = fit_overlay(m)
            cwd = os.getcwd()
            if base:
                os.chdir(base)
            try:
                ksys.mount(fitted.get("source", "overlay"), target, fitted["type"], 0,
                           ",".join(fitted.get("options", [])))
            finally:
                os.chdir(cwd)

    def unmount_rootfs(self) -> None:
        target = os.path.join(self.p["bundle"], "rootfs")
        while os.path.ismount(target):
            try:
                ksys.umount2(target, 0)
            except OSError:
                ksys.umount2(target, ksys.MNT_DETACH)

    def _resolve_user(self) -> None:
        spec = self.p.get("user") or ""
        if not spec and not self.p.get("group_add"):
            return
        path = os.path.join(self.p["bundle"], "config.json")
        with open(path, "rb") as f:
            config = fastjson.loads(f.read())
        rootfs = os.path.join(self.p["bundle"], "rootfs")
        config["process"]["user"], home = users.resolve(rootfs, spec, self.p.get("group_add"))
        env = config["process"]["env"]
        if home and not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={home}")
        monitor_io.write_state(path, config)

    def create(self) -> int:
        """Create the container with our pipes (or a pty) as its stdio; return init's pid."""
        self._resolve_user()
        tty = self.p["tty"]
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        child = [devnull, devnull, devnull]
        relay = console.Relay(".", "c") if tty else None
        mine: dict[int, int] = {}
        if not tty:
            if self.p["open_stdin"]:
                child[0], self.stdin_w = os.pipe()
            out_r, child[1] = os.pipe()
            err_r, child[2] = os.pipe()
            mine = {out_r: 1, err_r: 2}
        try:
            for fd, source in enumerate(child):
                os.dup2(source, fd)
            record = container_create.create(self.p["runtime_root"], self.id,
                                             self.p["bundle"],
                                             console_socket=relay.path if relay else None)
            if relay:
                self.master = relay.receive()
                self.stdin_w = self.master if self.p["open_stdin"] else None
                mine = {self.master: 1}
        finally:
            for fd in range(3):
                os.dup2(devnull, fd)
            for fd in set(child):
                os.close(fd)
            if relay:
                relay.close()
        self.outputs = mine
        for fd in mine:
            self.watch(fd, self._on_output)
        self.init_pid = record["pid"]
        return self.init_pid

    def start(self) -> None:
        """Let the created container's process run."""
        container_start.start(self.p["runtime_root"], self.id)
        self.started_at = time.time()
        self.state.update(Status="running", Running=True, Paused=False, Restarting=False,
                          OOMKilled=False, Dead=False, Pid=self.init_pid, ExitCode=0, Error="",
                          StartedAt=jsonlog.timestamp(), MonitorPid=os.getpid())
        if self.state.get("FinishedAt") is None:
            self.state["FinishedAt"] = "0001-01-01T00:00:00Z"
        self.save_state()
        self.notify({"event": "start", "pid": self.init_pid})
        self.health.started()

    def save_state(self, durable: bool = False) -> None:
        monitor_io.write_state(self.p["state_path"], self.state, durable)

    def notify(self, message: dict) -> None:
        line = fastjson.dumps(message).encode() + b"\n"
        for conn in [c for c in self.conns.values() if c.kind == "watch"]:
            self._send(conn, line)

    def _on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            self.unwatch(fd)
            self.outputs.pop(fd, None)
            if fd != self.master:
                os.close(fd)
            return
        self._deliver(self.outputs.get(fd, 1), data)

    def _deliver(self, stream: int, data: bytes) -> None:
        if self.log is not None:
            self.log.write("stdout" if stream == 1 else "stderr", data)
        packet = monitor_io.frame(stream, data)
        for conn in [c for c in self.conns.values() if c.kind == "attach"]:
            if conn.streams[stream - 1]:
                self._send(conn, packet)

    def _drain(self, outputs: dict[int, int], deliver) -> None:
        """Read what is left in the output pipes without blocking."""
        for fd, stream in list(outputs.items()):
            os.set_blocking(fd, False)
            while True:
                try:
                    data = os.read(fd, 65536)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                deliver(stream, data)

    def _container_exited(self, code: int) -> None:
        self._drain(self.outputs, self._deliver)
        if self.log is not None:
            self.log.flush()
        for fd in list(self.outputs):
            self.unwatch(fd)
            os.close(fd)
        self.outputs = {}
        if self.stdin_w is not None and self.stdin_w != self.master:
            os.close(self.stdin_w)
        self.stdin_w = self.master = None
        self.init_pid = 0
        self.health.stopped()
        for conn in [c for c in self.conns.values() if c.kind == "attach"]:
            self._close(conn)
        oom = self._oom_killed()
        try:
            container_delete.delete(self.p["runtime_root"], self.id, force=True)
        except KnarrError:
            pass
        restart = self._should_restart(code)
        self.state.update(Status="restarting" if restart else "exited", Running=False,
                          Paused=False, Restarting=restart, OOMKilled=oom, Pid=0,
                          ExitCode=code, FinishedAt=jsonlog.timestamp())
        if restart:
            self._schedule_restart()
            self.save_state()
            self.notify({"event": "die", "exit_code": code, "oom": oom, "restarting": True})
        else:
            self.finish()

    def _oom_killed(self) -> bool:
        try:
            return containers.load(self.p["runtime_root"], self.id).cgroup.oom_killed()
        except (KnarrError, OSError):
            return False

    def _should_restart(self, code: int) -> bool:
        policy = self.p["restart_policy"]
        name = policy.get("Name") or "no"
        if self.manual_stop or name == "no":
            return False
        if name == "on-failure":
            limit = policy.get("MaximumRetryCount") or 0
            return code != 0 and (not limit or self.state["RestartCount"] < limit)
        return True

    def _schedule_restart(self) -> None:
        if time.time() - self.started_at >= 10:
            self.backoff = 0.1
        delay = self.backoff
        self.backoff = min(self.backoff * 2, 60.0)
        self.restart_timer = self.at(delay, self._restart)

    def _restart(self) -> None:
        if self.manual_stop:
            self.finish()
            return
        self.state["RestartCount"] += 1
        try:
            self.create()
            self.start()
        except (KnarrError, OSError) as exc:
            self.state.update(Error=str(exc))
            self._container_exited(128)

    def finish(self) -> None:
        """The container is down for good: unmount, record, tell the watchers, exit."""
        self.unmount_rootfs()
        self.state.update(Status="exited", Restarting=False, Running=False, Pid=0)
        self.state.pop("MonitorPid", None)
        self.save_state(durable=True)
        self.notify({"event": "die", "exit_code": self.state.get("ExitCode", 0),
                     "oom": self.state.get("OOMKilled", False), "restarting": False})
        self.done = True
        _remove_run_dir(self.p["bundle"])

    # -- stop and kill ------------------------------------------------------

    def signal(self, signum: int, all_processes: bool = False) -> None:
        if not self.init_pid:
            return
        try:
            containers.load(self.p["runtime_root"], self.id).signal(signum, all_processes)
        except KnarrError:
            pass

    def stop(self, signum: int, timeout: float) -> None:
        self.manual_stop = True
        if not self.init_pid:
            self.cancel(getattr(self, "restart_timer", None))
            self.finish()
            return
        self.signal(signum)
        if timeout >= 0:
            self.at(timeout, lambda: self.signal(_signal.SIGKILL, all_processes=True))

    # -- clients ------------------------------------------------------------

    def listen(self) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(monitor_io.MONITOR_SOCK)
        except FileNotFoundError:
            pass
        self.server.bind(monitor_io.MONITOR_SOCK)
        os.chmod(monitor_io.MONITOR_SOCK, 0o600)
        self.server.listen(16)
        self.watch(self.server.fileno(), self._on_accept)

    def _on_accept(self, _fd: int) -> None:
        sock, _ = self.server.accept()
        sock.settimeout(10.0)
        conn = Conn(sock)
        self.conns[sock.fileno()] = conn
        self.watch(sock.fileno(), self._on_conn)

    def _on_conn(self, fd: int) -> None:
        conn = self.conns[fd]
        try:
            data = conn.sock.recv(65536)
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
        try:
            os.write(target, data)
        except OSError:
            pass

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
        try:
            conn.sock.sendall(data)
        except OSError:
            self._close(conn)

    def _reply(self, conn: Conn, message: dict) -> None:
        self._send(conn, fastjson.dumps(message).encode() + b"\n")

    def _close(self, conn: Conn, unwatched: bool = False) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        if not unwatched:
            self.unwatch(fd)
        self.conns.pop(fd, None)
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

    # -- exec ---------------------------------------------------------------

    def spawn_exec(self, process: dict, stdin: bool) -> ExecSession:
        """Run one more process in the container with our pipes (or a pty) as its stdio."""
        tty = bool(process.get("terminal"))
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        child = [devnull, devnull, devnull]
        relay = console.Relay(".", f"e{time.monotonic_ns()}") if tty else None
        stdin_w, outputs, master = None, {}, None
        if not tty:
            if stdin:
                child[0], stdin_w = os.pipe()
            out_r, child[1] = os.pipe()
            err_r, child[2] = os.pipe()
            outputs = {out_r: 1, err_r: 2}
        try:
            for fd, source in enumerate(child):
                os.dup2(source, fd)
            pid = container_exec.exec_process(
                self.p["runtime_root"], self.id, process, detach=True,
                console_socket=relay.path if relay else None)
            if relay:
                master = relay.receive()
                outputs = {master: 1}
                stdin_w = master
        except BaseException:
            for fd in list(outputs) + ([stdin_w] if stdin_w is not None else []):
                os.close(fd)
            raise
        finally:
            for fd in range(3):
                os.dup2(devnull, fd)
            for fd in set(child):
                os.close(fd)
            if relay:
                relay.close()
        session = ExecSession(None, master, stdin_w, outputs)
        session.pid = pid
        self.execs[pid] = session
        for fd in outputs:
            self.watch(fd, lambda fd, s=session: self._on_exec_output(s, fd))
        return session

    def _exec(self, conn: Conn, req: dict) -> None:
        conn.kind = "exec"
        conn.stdin = bool(req.get("stdin"))
        process = req["process"]
        try:
            if not self.init_pid:
                raise KnarrError(f"Container {self.id} is not running")
            if req.get("user"):
                rootfs = os.path.join(self.p["bundle"], "rootfs")
                process["user"], _home = users.resolve(rootfs, req["user"])
            session = self.spawn_exec(process, conn.stdin)
        except (KnarrError, OSError) as exc:
            code = 127 if "not found" in str(exc) else 126
            self._reply(conn, {"error": str(exc), "exit_code": code})
            self._close(conn)
            return
        session.conn = conn
        conn.session = session
        self._reply(conn, {"ok": True, "pid": session.pid})

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
            session.collected = getattr(session, "collected", b"") + data
        elif session.conn is not None and session.conn.sock.fileno() >= 0:
            self._send(session.conn, monitor_io.frame(stream, data))

    def _exec_exited(self, session: ExecSession, code: int) -> None:
        self._drain(session.outputs, lambda s, d: self._exec_deliver(session, s, d))
        for fd in list(session.outputs):
            self.unwatch(fd)
            os.close(fd)
        if session.stdin is not None and session.stdin != session.master:
            os.close(session.stdin)
        if session.on_exit is not None:
            session.on_exit(code, getattr(session, "collected", b""))
            return
        conn = session.conn
        if conn is not None and conn.sock.fileno() >= 0:
            self._send(conn, monitor_io.frame(monitor_io.CONTROL,
                                              fastjson.dumps({"exit_code": code}).encode()))
            if conn.sock.fileno() >= 0:
                self._close(conn)


def _remove_run_dir(bundle: str) -> None:
    """The bundle, the socket and the (unmounted, empty) rootfs dir: run-time state only."""
    for name in ("config.json", "monitor.json", monitor_io.MONITOR_SOCK):
        try:
            os.unlink(os.path.join(bundle, name))
        except FileNotFoundError:
            pass
    for path in (os.path.join(bundle, "rootfs"), bundle):
        try:
            os.rmdir(path)
        except OSError:
            pass


def _report(sock: socket.socket | None, kind: str, **fields: object) -> None:
    if sock is None:
        return
    try:
        sock.sendall(fastjson.dumps({"kind": kind, **fields}).encode() + b"\n")
    except OSError:
        pass


def _wait_go(sock: socket.socket) -> bool:
    buf = b""
    while b"\n" not in buf:
        data = sock.recv(4096)
        if not data:
            return False
        buf += data
    return buf.startswith(b"go")


def main(params_path: str, report: socket.socket | None) -> None:
    """The monitor's life; called in a freshly forked process, never returns."""
    code = 0
    try:
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in range(3):
            os.dup2(devnull, fd)
        os.close(devnull)
        os.setsid()
        become_subreaper()
        with open(params_path, "rb") as f:
            params = fastjson.loads(f.read())
        os.chdir(params["bundle"])
        code = _serve(params, report)
    except BaseException:  # noqa: BLE001 - kept in monitor.err, next to its socket
        code = 1
        _keep_traceback()
    os._exit(code)


def _keep_traceback() -> None:
    import traceback

    try:
        with open("monitor.err", "a") as f:
            traceback.print_exc(file=f)
    except OSError:
        pass


def _serve(params: dict, report: socket.socket | None) -> int:
    mon = Monitor(params, report)
    mon.setup_signals()
    mon.listen()
    try:
        mon.mount_rootfs()
        pid = mon.create()
    except BaseException as exc:  # noqa: BLE001 - reported to the daemon
        _report(report, "error", message=str(exc), category=type(exc).__name__)
        mon.state.update(Error=str(exc), ExitCode=127 if "not found" in str(exc) else 126)
        mon.save_state()
        mon.unmount_rootfs()
        return 1
    if params.get("wait_go"):
        _report(report, "created", pid=pid, monitor=os.getpid())
        if not _wait_go_serving(mon, report):
            mon.manual_stop = True
            mon.signal(_signal.SIGKILL, all_processes=True)
            mon.run()
            return 1
    try:
        mon.start()
    except BaseException as exc:  # noqa: BLE001
        _report(report, "error", message=str(exc), category=type(exc).__name__)
        mon.manual_stop = True
        mon.signal(_signal.SIGKILL, all_processes=True)
        mon.run()
        return 1
    _report(report, "started", pid=pid, monitor=os.getpid())
    if report is not None:
        report.close()
    mon.run()
    return 0


def _wait_go_serving(mon: Monitor, report: socket.socket) -> bool:
    """Serve monitor.sock (attaches) until the daemon says go on the report channel."""
    answer = []

    def on_report(fd: int) -> None:
        answer.append(_wait_go(report))
        mon.unwatch(fd)

    mon.watch(report.fileno(), on_report)
    while not answer:
        for fd, _events in mon.poll.poll(None):
            handler = mon.handlers.get(fd)
            if handler is not None:
                handler(fd)
        if mon.init_pid == 0:
            return False
    return answer[0]
