"""Live restore: containers outlive a daemon killed with -9 and a new one finds them."""

import os
import time

import pytest
from test_api_support import demux, knarrd_fixture, read_all, wait_for  # noqa: F401

pytestmark = pytest.mark.privileged

TICK = ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] not in "ZX"
    except FileNotFoundError:
        return False


def test_containers_survive_kill_9_of_the_daemon(knarrd):
    client = knarrd.client
    ticker = client.run("busybox", TICK, name="ticker")
    sleeper = client.run("busybox", ["sleep", "1000"], name="sleeper")
    shell = client.run("busybox", ["sh"], name="shell", Tty=True, OpenStdin=True,
                       AttachStdin=True, AttachStdout=True)
    ids = {ticker, sleeper, shell}
    sock, head, rest = client.hijack(f"/containers/{shell}/attach",
                                     query={"stream": 1, "stdin": 1, "stdout": 1})
    assert head.startswith("HTTP/1.1 101")
    pids = {cid: client.inspect(cid)["State"]["Pid"] for cid in ids}
    log_path = client.inspect(ticker)["LogPath"]

    knarrd.kill9()
    sock.close()
    size_then = os.path.getsize(log_path)
    time.sleep(1.0)
    assert all(_alive(pid) for pid in pids.values())
    assert os.path.getsize(log_path) > size_then  # the monitor kept logging

    knarrd.start()
    listed = {c["Id"]: c for c in client.get("/containers/json").json()}
    assert set(listed) == ids
    assert all(c["State"] == "running" and c["Status"].startswith("Up")
               for c in listed.values())
    assert {cid: client.inspect(cid)["State"]["Pid"] for cid in ids} == pids

    exec_id = client.post(f"/containers/{sleeper}/exec", {
        "Cmd": ["echo", "again"], "AttachStdout": True}).json()["Id"]
    esock, _head, erest = client.hijack(f"/exec/{exec_id}/start", {"Detach": False})
    assert demux(read_all(esock, erest))[1] == b"again\n"
    esock.close()

    sock, head, rest = client.hijack(f"/containers/{shell}/attach",
                                     query={"stream": 1, "stdin": 1, "stdout": 1})
    assert head.startswith("HTTP/1.1 101")
    sock.sendall(b"echo back-$((40+2))\n")
    seen = rest
    sock.settimeout(10)
    while b"back-42" not in seen:
        chunk = sock.recv(4096)
        assert chunk, seen
        seen += chunk
    sock.close()

    logs = client.get(f"/containers/{ticker}/logs", stdout=1, tail="3").body
    assert len(demux(logs)[1].splitlines()) == 3

    assert client.post(f"/containers/{sleeper}/stop", t=0).status == 204
    assert wait_for(lambda: not client.inspect(sleeper)["State"]["Running"])
