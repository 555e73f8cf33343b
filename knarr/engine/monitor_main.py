"""A monitor's life from fork to exit: set up, create, (wait for go), start, serve.

`main` runs in the process the fork helper made; the daemon learns how the
start went on the report channel ("created", "started" or "error").
"""

import _signal
import os
import socket

from knarr import fastjson
from knarr import sys as ksys
from knarr.engine.monitor import Monitor
from knarr.runtime.waiting import become_subreaper

__all__ = ["main"]


def _category(exc: BaseException) -> str:
    return getattr(exc, "category", "") or type(exc).__name__


def _report(sock: socket.socket | None, kind: str, **fields: object) -> None:
    if sock is None:
        return
    try:
        sock.sendall(fastjson.dumps({"kind": kind, **fields}).encode() + b"\n")
    except OSError:
        pass


def main(params_path: str, report: socket.socket | None, starter=None) -> None:
    """The monitor's life; called in a freshly forked process, never returns. `starter`:
    a starter task child forked ahead (monitor_tasks.prefork_starter), if any."""
    code = 0
    try:
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in range(3):
            os.dup2(devnull, fd)
        os.close(devnull)
        os.setsid()
        become_subreaper()
        if report is not None:  # it came through the helper without close-on-exec
            os.set_inheritable(report.fileno(), False)
        params = fastjson.loads(ksys.read_bytes(params_path))
        os.chdir(params["bundle"])
        code = _serve(params, report, starter)
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


def _serve(params: dict, report: socket.socket | None, starter=None) -> int:
    mon = Monitor(params, report, open_now=False)
    mon.preforked = starter
    try:
        # the task child mounts the rootfs and creates the container while we set up
        mon.create_begin()
        try:
            mon.open_state()
            mon.setup_signals()
            mon.listen()
        except BaseException:
            _abandon_create(mon)
            raise
        pid = mon.create_end()
    except BaseException as exc:  # noqa: BLE001 - reported to the daemon
        _report(report, "error", message=str(exc), category=_category(exc))
        mon.open_state()  # if the create failed before we had
        mon.state.update(Error=str(exc), ExitCode=127 if "not found" in str(exc) else 126)
        mon.save_state()
        mon.unmount_rootfs()
        _drain_report(report)
        return 1
    if params.get("wait_go"):
        _report(report, "created", pid=pid, monitor=os.getpid())
        if not _wait_go_serving(mon, report):
            mon._end_starter()
            mon.manual_stop = True
            mon.signal(_signal.SIGKILL, all_processes=True)
            mon.run()
            return 1
    try:
        mon.start()
    except BaseException as exc:  # noqa: BLE001
        _report(report, "error", message=str(exc), category=_category(exc))
        mon.manual_stop = True
        mon.signal(_signal.SIGKILL, all_processes=True)
        mon.run()
        return 1
    _report(report, "started", pid=pid, monitor=os.getpid())
    if report is not None:
        mon.adopt_watch(report)  # the daemon's link from here on: no connect, no request
    mon.run()
    mon.flush_all(1.0)
    return 0


def _drain_report(report: socket.socket | None) -> None:
    """After an error before go: read what the daemon sent (attach connections, its go)
    until it closes its end (it does once it has read the error), a few seconds at most.
    A unix socket closed with unread data resets its peer's end, and the daemon's
    reader would drop the error line it holds for the reset."""
    if report is None:
        return
    report.settimeout(5.0)
    try:
        while True:
            data, fds, _flags, _addr = socket.recv_fds(report, 65536, 16)
            for fd in fds:
                os.close(fd)
            if not data:
                return
    except OSError:
        pass


def _abandon_create(mon: Monitor) -> None:
    """Our own set-up failed while the task child created the container: kill its init."""
    try:
        mon.create_end()
    except BaseException:  # noqa: BLE001 - nothing made, nothing to kill
        return
    mon._end_starter()
    try:
        os.kill(mon.init_pid, _signal.SIGKILL)
    except OSError:
        pass


def _wait_go_serving(mon: Monitor, report: socket.socket) -> bool:
    """Serve monitor.sock (attaches) until the daemon says go on the report channel.

    Before its go (or no) the daemon may send `attach REQUEST` lines, each with the
    monitor's end of a connection it made for a client attached before the start: they
    are served from here on, as if they had come through monitor.sock."""
    answer: list[bool] = []
    pending = [b""]
    fds: list[int] = []  # an attach line's connection comes with its own bytes, in order

    def on_report(fd: int) -> None:
        try:
            data, got, _flags, _addr = socket.recv_fds(report, 65536, 4)
        except OSError:
            data, got = b"", []
        fds.extend(got)
        if not data:
            answer.append(False)
        pending[0] += data
        while not answer and b"\n" in pending[0]:
            line, _, pending[0] = pending[0].partition(b"\n")
            if line.startswith(b"attach ") and fds:
                mon.adopt_client(fds.pop(0), fastjson.loads(line[7:]))
            else:
                answer.append(line.startswith(b"go"))
        if answer:
            mon.unwatch(fd)
            for extra in fds:  # none unless the daemon gave up half-way
                os.close(extra)

    mon.watch(report.fileno(), on_report)
    while not answer:
        for fd, _events in mon.poll.poll(None):
            handler = mon.handlers.get(fd)
            if handler is not None:
                handler(fd)
        if mon.init_pid == 0:
            return False
    return answer[0]
