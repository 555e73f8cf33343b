"""The Engine API end to end: hello-world, a busybox that sleeps, top, exec, stats,
stop and delete, through a private knarrd and a raw HTTP client."""

import os
import time

import pytest
from test_api_support import demux, knarrd_fixture, read_all, wait_for  # noqa: F401

pytestmark = pytest.mark.privileged


def test_ping_and_version_headers(knarrd):
    resp = knarrd.client.get("/_ping")
    assert resp.status == 200 and resp.body == b"OK"
    assert resp.headers["Api-Version"] and resp.headers["Ostype"] == "linux"
    assert resp.headers["Builder-Version"] and resp.headers["Docker-Experimental"] == "false"
    head = knarrd.client.request("HEAD", "/_ping")
    assert head.status == 200 and head.headers["Api-Version"]
    version = knarrd.client.get("/version").json()
    assert version["Os"] == "linux" and version["ApiVersion"]


def test_hello_world_prints_the_greeting_and_exits_0(knarrd):
    client = knarrd.client
    cid = client.run("hello-world")
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)
    resp = client.post(f"/containers/{cid}/wait")
    assert resp.status == 200 and resp.json() == {"StatusCode": 0, "Error": None}
    logs = demux(client.get(f"/containers/{cid}/logs", stdout=1, stderr=1).body)
    assert b"Hello from knarr!" in logs[1]
    state = client.inspect(cid)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0
    assert client.delete(f"/containers/{cid}").status == 204
    assert client.get(f"/containers/{cid}/json").status == 404


def test_busybox_sleeps_top_exec_stats_stop_delete(knarrd):
    client = knarrd.client
    limit = 64 * 1024 * 1024
    cid = client.run("busybox", ["sleep", "1000"], HostConfig={"Memory": limit})
    info = client.inspect(cid)
    assert info["State"]["Running"] and info["Config"]["Hostname"] == cid[:12]
    listed = client.get("/containers/json").json()
    assert [c["Id"] for c in listed] == [cid] and listed[0]["Status"].startswith("Up")

    def top_lists_sleep() -> bool:  # start returns once init is released, maybe not yet exec'd
        top = client.get(f"/containers/{cid}/top").json()
        cmd = top["Titles"].index("CMD")
        return any("sleep 1000" in p[cmd] for p in top["Processes"])

    assert wait_for(top_lists_sleep, timeout=5)

    exec_id = client.post(f"/containers/{cid}/exec", {
        "Cmd": ["sh", "-c", "echo out; echo err >&2; hostname; exit 3"],
        "AttachStdout": True, "AttachStderr": True}).json()["Id"]
    sock, head, rest = client.hijack(f"/exec/{exec_id}/start", {"Detach": False, "Tty": False})
    assert head.startswith("HTTP/1.1 101")
    out = demux(read_all(sock, rest))
    sock.close()
    assert out[1] == f"out\n{cid[:12]}\n".encode() and out[2] == b"err\n"
    assert wait_for(lambda: client.get(f"/exec/{exec_id}/json").json()["ExitCode"] == 3)

    def own_usage() -> int:
        with open(f"/sys/fs/cgroup/memory/knarr/{cid}/memory.usage_in_bytes") as f:
            return int(f.read())

    time.sleep(0.5)  # the exec's processes are gone and their memory uncharged
    before = own_usage()
    stats = client.get(f"/containers/{cid}/stats", stream=0).json()
    after = own_usage()
    memory = stats["memory_stats"]
    assert memory["limit"] == limit
    assert min(before, after) * 0.9 <= memory["usage"] <= max(before, after) * 1.1
    assert stats["pids_stats"]["current"] >= 1 and stats["cpu_stats"]["cpu_usage"]

    started = time.monotonic()
    assert client.post(f"/containers/{cid}/stop", t=2).status == 204
    assert time.monotonic() - started < 2 + 2  # sleep ignores SIGTERM as pid 1: SIGKILL at 2 s
    state = client.inspect(cid)["State"]
    assert not state["Running"] and state["ExitCode"] == 137
    assert client.delete(f"/containers/{cid}").status == 204


def test_a_killed_fork_helper_is_replaced(knarrd):
    import signal
    import subprocess

    helpers = subprocess.run(["pgrep", "-P", str(knarrd.proc.pid)], capture_output=True,
                             text=True).stdout.split()
    assert len(helpers) == 1
    os.kill(int(helpers[0]), signal.SIGKILL)
    time.sleep(0.2)
    cid = knarrd.client.run("busybox", ["echo", "still here"])
    assert knarrd.client.post(f"/containers/{cid}/wait").json()["StatusCode"] == 0
    assert demux(knarrd.client.get(f"/containers/{cid}/logs", stdout=1).body)[1] == \
        b"still here\n"
