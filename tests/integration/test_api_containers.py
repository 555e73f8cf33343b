"""More of the container API: pause, rename, kill, restart, resize, exec with a tty,
list filters, log rotation, health checks, OOM kills, stats streaming."""

import json
import os
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


def test_pause_unpause_rename_kill_restart(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"], name="first")
    assert client.post(f"/containers/{cid}/pause").status == 204
    state = client.inspect(cid)["State"]
    assert state["Status"] == "paused" and state["Paused"]
    assert client.post(f"/containers/{cid}/pause").status == 409
    assert client.get("/containers/json").json()[0]["Status"].endswith("(Paused)")
    assert client.post(f"/containers/{cid}/unpause").status == 204
    assert client.inspect(cid)["State"]["Status"] == "running"

    assert client.post(f"/containers/{cid}/rename", name="second").status == 204
    assert client.inspect("second")["Id"] == cid
    assert client.get("/containers/first/json").status == 404

    pid = client.inspect(cid)["State"]["Pid"]
    assert client.post(f"/containers/{cid}/restart", t=0).status == 204
    info = client.inspect(cid)
    assert info["State"]["Running"] and info["State"]["Pid"] != pid

    assert client.post(f"/containers/{cid}/kill", signal="SIGKILL").status == 204
    state = client.inspect(cid)["State"]
    assert not state["Running"] and state["ExitCode"] == 137


def test_exec_with_a_tty_and_resize(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"])
    exec_id = client.post(f"/containers/{cid}/exec", {
        "Cmd": ["sh"], "Tty": True, "AttachStdin": True, "AttachStdout": True}).json()["Id"]
    sock, head, rest = client.hijack(f"/exec/{exec_id}/start", {"Detach": False, "Tty": True})
    assert "raw-stream" in head
    assert wait_for(lambda: client.get(f"/exec/{exec_id}/json").json()["Running"])
    assert client.post(f"/exec/{exec_id}/resize", h=33, w=111).status == 200
    sock.sendall(b"stty size; tty; exit 5\n")
    out = read_all(sock, rest)
    assert b"33 111" in out and b"/dev/pts/" in out
    assert wait_for(lambda: client.get(f"/exec/{exec_id}/json").json()["ExitCode"] == 5)
    assert client.get("/exec/nope/json").status == 404


def test_exec_stdin_and_missing_program(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"])
    exec_id = client.post(f"/containers/{cid}/exec", {
        "Cmd": ["tr", "a-z", "A-Z"], "AttachStdin": True, "AttachStdout": True}).json()["Id"]
    sock, _head, rest = client.hijack(f"/exec/{exec_id}/start", {"Detach": False})
    sock.sendall(b"shout\n")
    sock.shutdown(1)
    assert demux(read_all(sock, rest))[1] == b"SHOUT\n"
    missing = client.post(f"/containers/{cid}/exec", {"Cmd": ["no-such-program"]}).json()["Id"]
    sock, head, rest = client.hijack(f"/exec/{missing}/start", {"Detach": False})
    read_all(sock, rest)
    assert client.get(f"/exec/{missing}/json").json()["ExitCode"] in (126, 127)


def test_list_filters_and_all(knarrd):
    client = knarrd.client
    running = client.run("busybox", ["sleep", "1000"], name="runner", Labels={"role": "web"})
    done = client.run("busybox", ["true"], name="done")
    client.post(f"/containers/{done}/wait")
    created = client.create("busybox", ["true"], name="fresh")
    assert [c["Id"] for c in client.get("/containers/json").json()] == [running]
    assert {c["Id"] for c in client.get("/containers/json", all=1).json()} == \
        {running, done, created}
    by = {c["Names"][0]: c for c in client.get("/containers/json", all=1).json()}
    assert by["/fresh"]["State"] == "created" and by["/fresh"]["Status"] == "Created"
    assert by["/done"]["Status"].startswith("Exited (0)")
    one = client.get("/containers/json", all=1, filters={"status": ["exited"]}).json()
    assert [c["Id"] for c in one] == [done]
    labelled = client.get("/containers/json", all=1, filters={"label": ["role=web"]}).json()
    assert [c["Id"] for c in labelled] == [running]
    assert len(client.get("/containers/json", all=1, limit=1).json()) == 1


def test_log_rotation_keeps_max_file(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sh", "-c", "i=0; while [ $i -lt 400 ]; do "
                                 "echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; "
                                 "i=$((i+1)); done"],
                     HostConfig={"LogConfig": {"Type": "json-file",
                                               "Config": {"max-size": "4k", "max-file": "3"}}})
    client.post(f"/containers/{cid}/wait")
    path = client.inspect(cid)["LogPath"]
    assert os.path.exists(path + ".1") and os.path.exists(path + ".2")
    assert not os.path.exists(path + ".3")
    assert all(os.path.getsize(p) <= 4096 + 200 for p in (path, path + ".1", path + ".2"))
    lines = demux(client.get(f"/containers/{cid}/logs", stdout=1).body)[1].splitlines()
    assert lines[-1].startswith(b"line-399-") and len(lines) < 400


def test_health_check_turns_healthy_then_unhealthy(knarrd):
    client = knarrd.client
    second = 1_000_000_000
    cid = client.run("busybox", ["sleep", "1000"], Healthcheck={
        "Test": ["CMD-SHELL", "test ! -e /tmp/broken"], "Interval": second // 5,
        "Timeout": second, "Retries": 2})
    assert wait_for(lambda: client.inspect(cid)["State"].get("Health", {}).get("Status") ==
                    "healthy", timeout=10)
    exec_id = client.post(f"/containers/{cid}/exec", {"Cmd": ["touch", "/tmp/broken"]}).json()
    client.post(f"/exec/{exec_id['Id']}/start", {"Detach": True})
    assert wait_for(lambda: client.inspect(cid)["State"]["Health"]["Status"] == "unhealthy",
                    timeout=10)
    health = client.inspect(cid)["State"]["Health"]
    assert health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1
    assert "(unhealthy)" in client.get("/containers/json").json()[0]["Status"]


def test_oom_kill_is_recorded(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sh", "-c", "head -c 200m /dev/zero | tail"],
                     HostConfig={"Memory": 16 * 1024 * 1024})
    assert client.post(f"/containers/{cid}/wait").json()["StatusCode"] != 0
    assert client.inspect(cid)["State"]["OOMKilled"] is True


def test_stats_stream_gives_one_document_a_second(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"])
    conn = _UnixConnection(client.path, 30)
    conn.request("GET", client.url(f"/containers/{cid}/stats"))
    resp = conn.getresponse()
    started = time.monotonic()
    docs = [json.loads(resp.readline() or b"{}") for _ in range(2)]
    docs = [d for d in docs if d]
    conn.close()
    assert len(docs) == 2 and time.monotonic() - started < 3
    assert docs[1]["precpu_stats"]["cpu_usage"]["total_usage"] == \
        docs[0]["cpu_stats"]["cpu_usage"]["total_usage"]
    assert docs[0]["name"] == client.inspect(cid)["Name"]


def test_device_and_privileged(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sh", "-c", "ls -l /dev/mydisk; head -c 3 /dev/mydisk | wc -c"],
                     HostConfig={"Devices": [{"PathOnHost": "/dev/zero",
                                              "PathInContainer": "/dev/mydisk",
                                              "CgroupPermissions": "rwm"}]})
    assert client.post(f"/containers/{cid}/wait").json()["StatusCode"] == 0
    out = demux(client.get(f"/containers/{cid}/logs", stdout=1).body)[1]
    assert out.startswith(b"c") and out.endswith(b"3\n")
    bad = client.request("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"Devices": [{"PathOnHost": "/dev/nope"}]}})
    assert bad.status == 400 and '"/dev/nope"' in bad.message
    priv = client.run("busybox", ["sh", "-c", "ls /dev/vda* /dev/null && cat /proc/self/status"
                                  " | grep CapEff"], HostConfig={"Privileged": True})
    assert client.post(f"/containers/{priv}/wait").json()["StatusCode"] == 0
    out = demux(client.get(f"/containers/{priv}/logs", stdout=1).body)[1]
    assert b"/dev/vda" in out and b"CapEff:\t000001ff" in out


def test_bind_mounts_by_binds_and_mounts(knarrd, tmp_path):
    client = knarrd.client
    (tmp_path / "in.txt").write_text("from the host\n")
    cid = client.run("busybox", ["sh", "-c", "cat /a/in.txt; echo made > /b/out.txt; "
                                 "touch /a/x 2>/dev/null || echo read-only"],
                     HostConfig={"Binds": [f"{tmp_path}:/a:ro"],
                                 "Mounts": [{"Type": "bind", "Source": str(tmp_path),
                                             "Target": "/b"}]})
    assert client.post(f"/containers/{cid}/wait").json()["StatusCode"] == 0
    out = demux(client.get(f"/containers/{cid}/logs", stdout=1).body)[1]
    assert out == b"from the host\nread-only\n"
    assert (tmp_path / "out.txt").read_text() == "made\n"


def test_update_limits_live_and_restart_policy(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"], HostConfig={"Memory": 64 << 20})
    resp = client.post(f"/containers/{cid}/update", {"Memory": 128 << 20, "PidsLimit": 20,
                                                     "RestartPolicy": {"Name": "always"}})
    assert resp.status == 200 and resp.json() == {"Warnings": []}
    with open(f"/sys/fs/cgroup/memory/knarr/{cid}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 128 << 20
    with open(f"/sys/fs/cgroup/pids/knarr/{cid}/pids.max") as f:
        assert f.read().strip() == "20"
    host = client.inspect(cid)["HostConfig"]
    assert host["Memory"] == 128 << 20 and host["RestartPolicy"]["Name"] == "always"
    first = client.inspect(cid)["State"]["Pid"]
    os.kill(first, 9)
    assert wait_for(lambda: client.inspect(cid)["State"]["Pid"] not in (0, first), timeout=10)
    bad = client.post(f"/containers/{cid}/update", {"Memory": 1})
    assert bad.status == 400 and bad.message == "Minimum memory limit allowed is 6MB"
