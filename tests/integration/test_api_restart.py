"""Restart policies, applied by each container's monitor."""

import os
import signal
import time

import pytest
from test_api_support import knarrd_fixture, wait_for  # noqa: F401

pytestmark = pytest.mark.privileged


def _policy(name: str, count: int = 0) -> dict:
    return {"HostConfig": {"RestartPolicy": {"Name": name, "MaximumRetryCount": count}}}


def test_on_failure_3_restarts_exactly_three_times(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sh", "-c", "echo ran; exit 1"], **_policy("on-failure", 3))
    assert wait_for(lambda: client.inspect(cid)["RestartCount"] == 3 and
                    client.inspect(cid)["State"]["Status"] == "exited", timeout=20)
    time.sleep(1.0)  # no fourth restart after a while
    info = client.inspect(cid)
    assert info["RestartCount"] == 3 and info["State"]["ExitCode"] == 1
    logs = client.get(f"/containers/{cid}/logs", stdout=1).body
    assert logs.count(b"ran\n") == 4


def test_on_failure_does_not_restart_a_success(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["true"], **_policy("on-failure"))
    assert client.post(f"/containers/{cid}/wait").json()["StatusCode"] == 0
    time.sleep(0.5)
    assert client.inspect(cid)["RestartCount"] == 0


def test_always_restarts_after_kill_9_of_the_app(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"], **_policy("always"))
    first = client.inspect(cid)["State"]["Pid"]
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: client.inspect(cid)["State"]["Running"] and
                    client.inspect(cid)["State"]["Pid"] not in (0, first), timeout=10)
    assert client.inspect(cid)["RestartCount"] == 1


def test_unless_stopped_stays_stopped_after_stop(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"], **_policy("unless-stopped"))
    assert client.post(f"/containers/{cid}/stop", t=1).status == 204
    time.sleep(1.0)
    info = client.inspect(cid)
    assert not info["State"]["Running"] and info["State"]["Status"] == "exited"
    assert info["RestartCount"] == 0


def test_daemon_start_starts_always_but_not_stopped_unless_stopped(knarrd):
    client = knarrd.client
    always = client.run("busybox", ["sleep", "1000"], **_policy("always"))
    unless = client.run("busybox", ["sleep", "1000"], **_policy("unless-stopped"))
    for cid in (always, unless):
        assert client.post(f"/containers/{cid}/stop", t=0).status == 204
    knarrd.stop()
    knarrd.start()
    assert client.inspect(always)["State"]["Running"]
    assert not client.inspect(unless)["State"]["Running"]
