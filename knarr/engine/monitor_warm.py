"""Warming the monitor's code up in the fork helper, before it forks monitors."""

import os
import shutil
import socket
import time

from knarr import fastjson
from knarr.engine import monitor_io
from knarr.engine.monitor import Monitor

__all__ = ["warm_up"]


def warm_up(rounds: int = 20) -> None:
    """Run the monitor's steady-state paths in the fork helper, before it forks.

    CPython specialises bytecode in place as it runs: a monitor that ran these
    paths for the first time would write to (and so privately copy) the pages of
    every code object on them. Warmed up here, they stay shared with the helper.
    """
    # not tempfile.mkdtemp: tempfile imports random, whose at-fork hook (a reseed, in
    # Python) would then run in every monitor and task the helper forks
    base = f"/tmp/knarr-warm-{os.getpid()}-{time.monotonic_ns()}"
    os.mkdir(base, 0o700)
    cwd = os.getcwd()
    try:
        os.chdir(base)  # the monitor binds its socket relative to its bundle dir
        for i in range(rounds):
            _round(base, i)
    finally:
        os.chdir(cwd)
        shutil.rmtree(base, ignore_errors=True)


def _round(base: str, i: int) -> None:
    params = {"id": "0" * 64, "bundle": base, "state_path": f"{base}/state.json",
              "log_driver": "json-file", "log_path": f"{base}/log", "log_max_size": 0,
              "log_max_file": 1, "tty": False, "open_stdin": False,
              "restart_policy": {"Name": "no"}, "healthcheck": None}
    mon = Monitor(fastjson.loads(fastjson.dumps(params)), None)
    mon.listen()
    out_r, out_w = os.pipe()
    mon.outputs = {out_r: 1}
    mon.watch(out_r, mon._on_output)
    clients = []
    try:
        for request in (b'{"op": "watch"}\n', b'{"op": "attach", "stdin": true, '
                                                 b'"stdout": true, "stderr": true}\n'):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(monitor_io.MONITOR_SOCK)
            clients.append(client)
            mon._on_accept(mon.server.fileno())
            client.sendall(request + b"input")
            mon._on_conn(max(mon.conns))
            client.recv(65536)
        mon.save_state()
        mon.notify({"event": "start", "pid": i})
        os.write(out_w, b"warm up\n")
        mon._on_output(out_r)
        mon._deliver(2, b"warm")
        mon.cancel(mon.at(1.0, lambda: None))
        mon.reap()
        mon.poll.poll(0)
        for client in clients:
            client.close()
        for fd in list(mon.conns):
            mon._on_conn(fd)
    finally:
        for client in clients:
            client.close()
        mon.unwatch(out_r)
        os.close(out_r)
        os.close(out_w)
        mon.unwatch(mon.server.fileno())
        mon.server.close()
        mon.log.close()
