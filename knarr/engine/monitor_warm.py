"""Warming the monitor's code up in the fork helper, before it forks monitors."""

import shutil
import socket
import tempfile

from knarr.engine.monitor import Monitor
from knarr.engine.monitor_clients import Conn
from knarr.oci import fastjson

__all__ = ["warm_up"]


def warm_up(rounds: int = 20) -> None:
    """Run the monitor's steady-state paths in the fork helper, before it forks.

    CPython specialises bytecode in place as it runs: a monitor that ran these
    paths for the first time would write to (and so privately copy) the pages of
    every code object on them. Warmed up here, they stay shared with the helper.
    """
    base = tempfile.mkdtemp(prefix="knarr-warm-")
    ours, theirs = socket.socketpair()
    try:
        for i in range(rounds):
            params = {"id": "0" * 64, "bundle": base, "state_path": f"{base}/state.json",
                      "log_driver": "json-file", "log_path": f"{base}/log", "log_max_size": 0,
                      "log_max_file": 1, "tty": False, "open_stdin": False,
                      "restart_policy": {"Name": "no"}, "healthcheck": None}
            mon = Monitor(fastjson.loads(fastjson.dumps(params)), None)
            conn = Conn(ours)
            conn.kind, conn.streams = "attach", (True, True)
            mon.conns[-1 - i] = conn
            mon.save_state()
            mon.notify({"event": "start", "pid": i})
            mon._deliver(1, b"warm up\n")
            mon._deliver(2, b"warm")
            theirs.recv(65536)
            mon.cancel(mon.at(1.0, lambda: None))
            mon.reap()
            mon.poll.poll(0)
            mon.log.close()
    finally:
        ours.close()
        theirs.close()
        shutil.rmtree(base, ignore_errors=True)

