"""Health checks, run by the monitor: a probe exec'd in the container now and then.

Docker's rules: a probe that exits 0 is a pass; `Retries` failures in a row make
the container unhealthy (failures in the start period do not count); the last
five results are kept in State.Health.Log.
"""

import os

from knarr.engine import jsonlog
from knarr.engine.monitor_tasks import TaskError

__all__ = ["Checker", "probe_args"]

_SECOND = 1_000_000_000


def probe_args(test: list[str] | None) -> list[str] | None:
    """The probe's argv from a Healthcheck.Test; None when checks are off."""
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return list(test[1:])
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]]
    return list(test)


class Checker:
    """The health state machine of one container."""

    def __init__(self, monitor, config: dict | None) -> None:
        self.monitor = monitor
        config = config or {}
        self.args = probe_args(config.get("Test"))
        self.interval = (config.get("Interval") or 30 * _SECOND) / _SECOND
        self.timeout = (config.get("Timeout") or 30 * _SECOND) / _SECOND
        self.start_period = (config.get("StartPeriod") or 0) / _SECOND
        self.retries = config.get("Retries") or 3
        self.timer = None
        self.started_ns = 0

    def started(self) -> None:
        """The container (re)started: probes begin after one interval."""
        if self.args is None:
            return
        self.started_ns = jsonlog.time.monotonic_ns()
        self.monitor.state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
        self.timer = self.monitor.at(self.interval, self.probe)

    def stopped(self) -> None:
        """The container stopped: no more probes."""
        if self.timer is not None:
            self.monitor.cancel(self.timer)
            self.timer = None

    def probe(self) -> None:
        """Run one probe; its end (or its timeout) records a result."""
        self.timer = None
        start = jsonlog.timestamp()
        try:
            session = self.monitor.spawn_exec(None, stdin=False, args=self.args)
        except (TaskError, OSError) as exc:
            self._record(start, -1, str(exc))
            return
        killer = self.monitor.at(self.timeout, lambda: _kill(session.pid))
        session.on_exit = lambda code, out: self._finished(start, killer, code, out)

    def _finished(self, start: str, killer, code: int, output: bytes) -> None:
        self.monitor.cancel(killer)
        if not self.monitor.init_pid:
            return
        self._record(start, code, output[:4096].decode("utf-8", "replace"))

    def _record(self, start: str, code: int, output: str) -> None:
        health = self.monitor.state.setdefault("Health", {"Status": "starting",
                                                          "FailingStreak": 0, "Log": []})
        health["Log"] = (health["Log"] + [{"Start": start, "End": jsonlog.timestamp(),
                                           "ExitCode": code, "Output": output}])[-5:]
        before = health["Status"]
        if code == 0:
            health.update(Status="healthy", FailingStreak=0)
        else:
            in_start = (jsonlog.time.monotonic_ns() - self.started_ns) / _SECOND < \
                self.start_period
            if not in_start:
                health["FailingStreak"] += 1
                if health["FailingStreak"] >= self.retries:
                    health["Status"] = "unhealthy"
        self.monitor.save_state()
        if health["Status"] != before:
            self.monitor.notify({"event": "health_status", "status": health["Status"]})
        if self.monitor.init_pid:
            self.timer = self.monitor.at(self.interval, self.probe)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
