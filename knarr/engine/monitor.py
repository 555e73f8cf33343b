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

from knarr import fastjson
from knarr import sys as ksys
from knarr.engine import health, jsonlog, monitor_io, monitor_tasks
from knarr.engine.monitor_clients import ClientsMixin
from knarr.engine.monitor_exec import ExecMixin
from knarr.engine.monitor_tasks import TaskError
from knarr.runtime import console
from knarr.runtime.waiting import exit_status_of

__all__ = ["Monitor"]

_IN = select.POLLIN | select.POLLHUP | select.POLLERR


class Monitor(ClientsMixin, ExecMixin):
    """The loop and everything it tracks."""

    def __init__(self, params: dict, report: socket.socket | None,
                 open_now: bool = True) -> None:
        self.p = params
        self.id = params["id"]
        self.report = report
        self.poll = select.poll()
        self.handlers: dict[int, object] = {}
        self.timers: list[tuple[float, object]] = []
        self.conns: dict = {}  # fd -> monitor_clients.Conn
        self.execs: dict = {}
        self.unclaimed: dict[int, int] = {}  # exit codes of pids not (yet) known
        self.ending_tasks: set[int] = set()  # task children the loop reaps when they end
        self.starter: tuple[int, int, int] | None = None
        self._creating: tuple | None = None  # (console relay, output fds) till create_end
        self.preforked = None  # a starter task child forked ahead (prefork_starter)
        self.blocked: list = []  # clients whose input waits for the process to read
        self.slow: list = []  # clients with output they have not taken yet
        self.init_pid = 0
        self.outputs: dict[int, int] = {}
        self.stdin_w: int | None = None
        self.master: int | None = None
        self.manual_stop = False
        self.done = False
        self.started_at = 0.0
        self.backoff = 0.1
        self.state: dict = {}
        self.log = None
        self.health = None
        if open_now:
            self.open_state()

    def open_state(self) -> None:
        """Read the saved state, open the log and make the health checker (once); a start
        does it after handing its task child the create, while that child works."""
        if self.health is not None:
            return
        params = self.p
        self.state = monitor_io.read_state(params["state_path"]) or {}
        self.state.update(RestartCount=params.get("restart_count", 0))
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
            if self.blocked or self.slow:  # a full pipe or a slow client: look again soon
                timeout = 20 if timeout is None else min(timeout, 20)
            for fd, _events in self.poll.poll(timeout):
                handler = self.handlers.get(fd)
                if handler is not None:
                    _guarded(handler, fd)
            if self.blocked:
                self.flush_blocked()
            if self.slow:
                self.flush_slow()
            now = time.monotonic()
            for entry in [t for t in self.timers if t[0] <= now]:
                self.cancel(entry)
                _guarded(entry[1])

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
            elif pid in self.ending_tasks:
                self.ending_tasks.discard(pid)
            else:
                self.unclaimed[pid] = exit_status_of(status)
                while len(self.unclaimed) > 64:
                    self.unclaimed.pop(next(iter(self.unclaimed)))

    # -- the container ------------------------------------------------------

    def unmount_rootfs(self) -> None:
        target = os.path.join(self.p["bundle"], "rootfs")
        while os.path.ismount(target):
            try:
                ksys.umount2(target, 0)
            except OSError:
                ksys.umount2(target, ksys.MNT_DETACH)

    def create(self) -> int:
        """Create the container (in a task child, which mounts the rootfs first) with our
        pipes or a pty as its stdio; init's pid."""
        self.create_begin()
        return self.create_end()

    def create_begin(self) -> None:
        """Fork the task child that mounts the rootfs and creates the container; the
        monitor goes on with its own set-up meanwhile, then `create_end` waits for it."""
        tty = self.p["tty"]
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        child = [devnull, devnull, devnull]
        relay = console.Relay(".", "c") if tty else None
        mine: dict[int, int] = {}
        if not tty:
            if self.p["open_stdin"]:
                child[0], self.stdin_w = os.pipe()
                os.set_blocking(self.stdin_w, False)
            out_r, child[1] = os.pipe()
            err_r, child[2] = os.pipe()
            mine = {out_r: 1, err_r: 2}
        go_r, go_w = os.pipe()
        try:
            handed = None
            if self.preforked is not None:  # a spare's starter, forked ahead: no fork now
                pre, self.preforked = self.preforked, None
                handed = monitor_tasks.hand_starter(pre, self.p, child,
                                                    relay.path if relay else None, go_r)
            pid, report = handed or monitor_tasks.fork_task(
                monitor_tasks.starter, self.p, child, relay.path if relay else None, go_r,
                close=(go_w,))
        except BaseException:
            for fd in (*mine, go_w):
                os.close(fd)
            if relay:
                relay.close()
            raise
        finally:
            for fd in set(child) | {go_r}:
                os.close(fd)
        self.starter = (pid, report, go_w)
        self._creating = (relay, mine)

    def create_end(self) -> int:
        """Wait for the child `create_begin` forked to create the container; init's pid."""
        relay, mine = self._creating
        self._creating = None
        _pid, report, _go = self.starter
        try:
            self.init_pid = monitor_tasks.read_message(report)["pid"]
            if relay:
                self.master = relay.receive()
                os.set_blocking(self.master, False)
                self.stdin_w = self.master if self.p["open_stdin"] else None
                mine = {self.master: 1}
        except BaseException:
            self._end_starter()
            for fd in mine:
                os.close(fd)
            raise
        finally:
            if relay:
                relay.close()
        self.outputs = mine
        for fd in mine:
            self.watch(fd, self._on_output)
        return self.init_pid

    def _end_starter(self, wait: bool = True) -> None:
        if self.starter is not None:
            pid, report, go = self.starter
            self.starter = None
            os.close(go)
            os.close(report)
            if wait:
                monitor_tasks.reap_child(pid)
            else:
                self.reap_later(pid)

    def reap_later(self, pid: int) -> None:
        """A task child that said all it had to: the loop reaps it when it has exited
        (its exit, an address space torn down, need not hold us up)."""
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done == 0:
            self.ending_tasks.add(pid)

    def start(self) -> None:
        """Let the created container's process run."""
        _pid, report, go = self.starter
        ok = False
        try:
            os.write(go, b"g")
            monitor_tasks.read_message(report)
            ok = True
        finally:
            self._end_starter(wait=not ok)
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
            try:
                self.log.write("stdout" if stream == 1 else "stderr", data)
            except OSError:
                pass  # a full disk loses log lines, not the container's monitor
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
        restart = self._should_restart(code)
        if not restart and self.p.get("auto_remove"):
            self._exited_for_removal(code)
            return
        oom = self._teardown(in_process=not restart)
        self.state.update(Status="restarting" if restart else "exited", Running=False,
                          Paused=False, Restarting=restart, OOMKilled=oom, Pid=0,
                          ExitCode=code, FinishedAt=jsonlog.timestamp())
        if restart:
            self._schedule_restart()
            self.save_state()
            self.notify({"event": "die", "exit_code": code, "oom": oom, "restarting": True})
        else:
            self.finish()

    def _exited_for_removal(self, code: int) -> None:
        """--rm: say "die" (with "removing") first, then tear down, unmount and exit.

        The daemon forgets the container at that die and answers its waiters while we
        clean up; it drops the container's files once we are gone, and cleans up
        itself whatever a monitor that dies half-way leaves.
        """
        oom = monitor_tasks.oom_killed(self.p)
        self.notify({"event": "die", "exit_code": code, "oom": oom, "restarting": False,
                     "removing": True})
        # then the state file (for a daemon that missed the die): the daemon forgets the
        # container at the die and reads nothing of it
        self.state.update(Status="exited", Running=False, Paused=False, Restarting=False,
                          OOMKilled=oom, Pid=0, ExitCode=code, FinishedAt=jsonlog.timestamp())
        self.save_state()
        monitor_tasks.delete_here(self.p)
        self.finish(die_sent=True)

    def _teardown(self, in_process: bool = False) -> bool:
        """Remove the runtime's container (cgroup, state); whether the OOM killer struck.

        In a task child while the monitor lives on (a restart), so the pages the
        runtime touches stay out of it; in-process when the monitor is about to
        exit anyway, which saves a fork and a reap on the way to "exited".
        """
        if in_process:
            return monitor_tasks.teardown_here(self.p)
        pid, report = monitor_tasks.fork_task(monitor_tasks.teardown, self.p)
        try:
            return bool(monitor_tasks.read_message(report).get("oom"))
        except TaskError:
            return False
        finally:
            os.close(report)
            monitor_tasks.reap_child(pid)

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
        except (TaskError, OSError) as exc:
            self.state.update(Error=str(exc))
            self._container_exited(128)

    def finish(self, die_sent: bool = False) -> None:
        """The container is down for good: unmount, record, tell the watchers, exit."""
        self.unmount_rootfs()
        self.state.update(Status="exited", Restarting=False, Running=False, Pid=0,
                          ManualStop=self.manual_stop)
        self.state.pop("MonitorPid", None)
        self.save_state(durable=not self.p.get("auto_remove"))  # --rm: gone in a moment
        if not die_sent:
            self.notify({"event": "die", "exit_code": self.state.get("ExitCode", 0),
                         "oom": self.state.get("OOMKilled", False), "restarting": False})
        self.done = True
        _remove_run_dir(self.p["bundle"])

    # -- stop and kill ------------------------------------------------------

    def signal(self, signum: int, all_processes: bool = False) -> None:
        """Signal init (our child, so its pid cannot be reused while unreaped), or all."""
        if not self.init_pid:
            return
        if all_processes:
            pid, report = monitor_tasks.fork_task(monitor_tasks.signal_all, self.p, signum)
            try:
                monitor_tasks.read_message(report)
            except TaskError:
                pass
            finally:
                os.close(report)
                monitor_tasks.reap_child(pid)
            return
        try:
            os.kill(self.init_pid, signum)
        except ProcessLookupError:
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

def _guarded(fn, *args) -> None:
    """Run a handler; a failure is written to monitor.err and the loop goes on."""
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - one bad event must not orphan the container
        import traceback

        try:
            with open("monitor.err", "a") as f:
                traceback.print_exc(file=f)
        except OSError:
            pass


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
