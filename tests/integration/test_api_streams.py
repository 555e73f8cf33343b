"""Streams: attach before start (as `docker run` does), logs --follow, events."""

import json
import socket
import threading
import time

import pytest
from test_api_support import (  # noqa: F401
    _UnixConnection,
    demux,
    knarrd_fixture,
    read_all,
    wait_for,
)

pytestmark = pytest.mark.privileged


def test_attach_before_start_sees_all_output_and_stdin(knarrd):
    client = knarrd.client
    cid = client.create("busybox", ["sh", "-c", "echo first; cat; echo err >&2"],
                        OpenStdin=True, StdinOnce=True, AttachStdin=True,
                        AttachStdout=True, AttachStderr=True)
    sock, head, rest = client.hijack(f"/containers/{cid}/attach", query={
        "stream": 1, "stdin": 1, "stdout": 1, "stderr": 1})
    assert head.startswith("HTTP/1.1 101")
    assert "application/vnd.docker.multiplexed-stream" in head
    assert client.post(f"/containers/{cid}/start").status == 204
    sock.sendall(b"piped\n")
    sock.shutdown(socket.SHUT_WR)
    out = demux(read_all(sock, rest))
    sock.close()
    assert out[1] == b"first\npiped\n" and out[2] == b"err\n"
    assert client.post(f"/containers/{cid}/wait").json()["StatusCode"] == 0


def test_run_rm_hello_world_flow(knarrd):
    client = knarrd.client
    cid = client.create("hello-world", HostConfig={"AutoRemove": True}, AttachStdout=True,
                        AttachStderr=True)
    sock, head, rest = client.hijack(f"/containers/{cid}/attach", query={
        "stream": 1, "stdout": 1, "stderr": 1})
    conn = _UnixConnection(client.path, 30)
    conn.request("POST", client.url(f"/containers/{cid}/wait", {"condition": "removed"}))
    assert client.post(f"/containers/{cid}/start").status == 204
    out = demux(read_all(sock, rest))
    assert b"Hello from knarr!" in out[1]
    assert json.loads(conn.getresponse().read())["StatusCode"] == 0
    assert client.get(f"/containers/{cid}/json").status == 404


def test_tty_attach_is_raw(knarrd):
    client = knarrd.client
    cid = client.create("busybox", ["sh", "-c", "stty size; echo tty-$(tty)"], Tty=True,
                        AttachStdout=True)
    sock, head, rest = client.hijack(f"/containers/{cid}/attach",
                                     query={"stream": 1, "stdout": 1})
    assert "application/vnd.docker.raw-stream" in head
    assert client.post(f"/containers/{cid}/start").status == 204
    data = read_all(sock, rest)
    assert b"tty-/dev/pts/0" in data and data[0] != 1


def test_logs_follow_until_exit_and_timestamps(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"])
    resp = client.get(f"/containers/{cid}/logs", stdout=1, follow=1, timestamps=1)
    lines = demux(resp.body)[1].decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["line1", "line2", "line3"]
    assert all(line.split(" ", 1)[0].endswith("Z") for line in lines)


def test_events_stream_container_lifecycle(knarrd):
    client = knarrd.client
    seen = []
    since = time.time()

    def listen():
        conn = _UnixConnection(client.path, 30)
        conn.request("GET", client.url("/events", {"filters": {"type": ["container"]}}))
        resp = conn.getresponse()
        while True:
            line = resp.readline()
            if not line:
                return
            if line.strip().startswith(b"{"):
                seen.append(json.loads(line))
                if seen[-1]["Action"] == "destroy":
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.2)
    cid = client.run("busybox", ["true"])
    client.post(f"/containers/{cid}/wait")
    client.delete(f"/containers/{cid}")
    listener.join(10)
    actions = [e["Action"] for e in seen if e["id"] == cid]
    assert actions == ["create", "start", "die", "destroy"]
    die = next(e for e in seen if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "0"
    assert die["Actor"]["Attributes"]["image"] == "busybox"
    past = client.get("/events", since=str(since), until=str(time.time()))
    assert [json.loads(line)["Action"] for line in past.body.splitlines()
            if line.strip()][:2] == ["create", "start"]


def test_big_input_to_a_process_not_reading_yet_blocks_nothing(knarrd):
    client = knarrd.client
    cid = client.create("busybox", ["sh", "-c", "sleep 2; wc -c"], OpenStdin=True,
                        StdinOnce=True, AttachStdin=True, AttachStdout=True)
    sock, _head, rest = client.hijack(f"/containers/{cid}/attach", query={
        "stream": 1, "stdin": 1, "stdout": 1})
    client.post(f"/containers/{cid}/start")
    sender = threading.Thread(target=lambda: (sock.sendall(b"x" * (1 << 20)),
                                              sock.shutdown(socket.SHUT_WR)), daemon=True)
    sender.start()
    time.sleep(0.5)
    exec_id = client.post(f"/containers/{cid}/exec", {"Cmd": ["echo", "alive"],
                                                      "AttachStdout": True}).json()["Id"]
    esock, _h, erest = client.hijack(f"/exec/{exec_id}/start", {"Detach": False})
    assert demux(read_all(esock, erest, timeout=5))[1] == b"alive\n"
    sender.join(10)
    assert demux(read_all(sock, rest))[1].strip() == b"1048576"


def test_a_client_that_does_not_read_blocks_nothing(knarrd):
    client = knarrd.client
    cid = client.create("busybox", ["sh", "-c", "sleep 0.5; head -c 20000000 /dev/zero | "
                                    "tr '\\0' a | fold -w 999; sleep 1000"], AttachStdout=True)
    sock, _head, _rest = client.hijack(f"/containers/{cid}/attach", query={
        "stream": 1, "stdout": 1})  # and never read
    client.post(f"/containers/{cid}/start")
    exec_id = client.post(f"/containers/{cid}/exec", {"Cmd": ["echo", "alive"],
                                                      "AttachStdout": True}).json()["Id"]
    esock, _h, erest = client.hijack(f"/exec/{exec_id}/start", {"Detach": False})
    assert demux(read_all(esock, erest, timeout=10))[1] == b"alive\n"
    path = client.inspect(cid)["LogPath"]
    assert wait_for(lambda: sum(1 for _ in open(path)) >= 20000000 // 1000, timeout=30)
    sock.close()


def test_detach_keys_end_the_attach_and_leave_the_container_running(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sh"], Tty=True, OpenStdin=True, StdinOnce=True,
                     AttachStdin=True, AttachStdout=True)
    for keys, sequence in ((None, b"\x10\x11"), ("ctrl-a,x", b"\x01x")):
        query = {"stream": 1, "stdin": 1, "stdout": 1}
        if keys:
            query["detachKeys"] = keys
        sock, _head, rest = client.hijack(f"/containers/{cid}/attach", query=query)
        sock.sendall(b"echo attached-$((1+1))\n")
        seen = rest
        while b"attached-2" not in seen:
            seen += sock.recv(4096)
        sock.sendall(sequence)
        read_all(sock, timeout=5)  # the daemon ends the session
        sock.close()
        assert client.inspect(cid)["State"]["Running"]
    bad = client.request("POST", f"/containers/{cid}/attach",
                         query={"stream": 1, "stdin": 1, "detachKeys": "ctrl-1"})
    assert bad.status == 400 and bad.message == "Invalid detach keys (ctrl-1) provided"


def test_detaching_from_an_exec_leaves_it_running(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"])
    exec_id = client.post(f"/containers/{cid}/exec", {
        "Cmd": ["sh"], "Tty": True, "AttachStdin": True, "AttachStdout": True}).json()["Id"]
    sock, _head, rest = client.hijack(f"/exec/{exec_id}/start", {"Detach": False, "Tty": True})
    sock.sendall(b"\x10\x11")
    read_all(sock, rest, timeout=5)
    sock.close()
    time.sleep(0.3)
    assert client.get(f"/exec/{exec_id}/json").json()["Running"] is True


def test_detaching_while_an_exec_writes_leaves_it_running(knarrd):
    # keys that come in while the daemon holds the first output back (the gap after the
    # head): the daemon must drain on, not fail on the closed client and close the
    # process's stream (its shell then reads EOF on the terminal and quits). When that
    # gap is depends on how soon the process writes: several delays cover it.
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"])
    script = "for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.01; done; exec sleep 1000"
    for delay in (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1):
        exec_id = client.post(f"/containers/{cid}/exec", {
            "Cmd": ["sh", "-c", script], "Tty": True, "AttachStdin": True,
            "AttachStdout": True}).json()["Id"]
        sock, _head, rest = client.hijack(f"/exec/{exec_id}/start",
                                          {"Detach": False, "Tty": True})
        time.sleep(delay)
        sock.sendall(b"\x10\x11")
        read_all(sock, rest, timeout=5)
        sock.close()
        time.sleep(0.3)
        assert client.get(f"/exec/{exec_id}/json").json()["Running"] is True, delay
