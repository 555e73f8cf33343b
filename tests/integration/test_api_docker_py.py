"""docker-py 7.1 (PyPI `docker`) against knarrd: every container, exec, image and system
endpoint it has, through both its low-level APIClient and its models."""

import io
import json
import os
import tarfile
import threading
import time

import docker
import pytest
from test_api_support import knarrd_fixture, wait_for  # noqa: F401

pytestmark = [pytest.mark.privileged]


@pytest.fixture
def client(knarrd):
    c = docker.DockerClient(base_url=f"unix://{knarrd.sock}", version="auto", timeout=60)
    c.containers.run("busybox", "true", remove=True)  # make the built-in image
    yield c
    c.close()


def test_negotiated_version_info_ping_df(client):
    assert client.api.api_version == "1.50"
    assert client.ping() is True
    version = client.version()
    assert version["ApiVersion"] == "1.50" and version["MinAPIVersion"] == "1.24"
    info = client.info()
    assert info["Images"] >= 1 and info["OSType"] == "linux" and info["NCPU"] >= 1
    df = client.df()
    assert [i["RepoTags"] for i in df["Images"]] == [["busybox:latest"]]
    assert df["Volumes"] == [] and df["LayersSize"] > 0
    old = docker.APIClient(base_url=client.api.base_url.replace("http+docker://localhost",
                                                                 ""), version="1.41")
    old.close()


def test_run_logs_wait_conditions(client):
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"],
                                stderr=True, remove=True)
    assert sorted(out.split()) == [b"err", b"out"]
    c = client.containers.create("busybox", ["sh", "-c", "echo started; sleep 0.3; exit 3"])
    results = {}
    next_exit = threading.Thread(target=lambda: results.setdefault(
        "next", client.api.wait(c.id, condition="next-exit")))
    next_exit.start()
    time.sleep(0.2)
    c.start()
    assert c.wait(condition="not-running") == {"StatusCode": 3, "Error": None}
    next_exit.join(10)
    assert results["next"]["StatusCode"] == 3
    assert c.logs() == b"started\n"
    assert c.logs(timestamps=True).split(b" ", 1)[1] == b"started\n"
    removed = threading.Thread(target=lambda: results.setdefault(
        "removed", client.api.wait(c.id, condition="removed")))
    removed.start()
    time.sleep(0.2)
    c.remove()
    removed.join(10)
    assert results["removed"]["StatusCode"] == 3
    with pytest.raises(docker.errors.APIError) as bad:
        client.api.wait("nope-no-such", condition="next-exit")
    assert bad.value.status_code == 404


def test_top_changes_export_update_resize_stats(client):
    c = client.containers.run("busybox", ["sh", "-c", "touch /made; exec sleep 1000"],
                              detach=True, tty=True, mem_limit="64m")
    try:
        wait_for(lambda: any(ch["Path"] == "/made" for ch in c.diff()))
        assert {"Path": "/made", "Kind": 1} in c.diff()
        top = c.top()
        assert "PID" in top["Titles"] and any("sleep" in " ".join(p) for p in top["Processes"])
        tar = tarfile.open(fileobj=io.BytesIO(b"".join(c.export())))
        assert "made" in tar.getnames() and "bin/busybox" in tar.getnames()
        c.update(mem_limit="96m", memswap_limit="192m")
        c.reload()
        assert c.attrs["HostConfig"]["Memory"] == 96 * 1024 * 1024
        c.resize(height=40, width=120)
        stats = c.stats(stream=False)
        assert stats["memory_stats"]["limit"] == 96 * 1024 * 1024
        c.pause()
        c.reload()
        assert c.status == "paused"
        c.unpause()
        c.kill()
        assert c.wait()["StatusCode"] == 137
    finally:
        c.remove(force=True)


def test_attach_and_exec(client):
    c = client.containers.run("busybox", ["sh", "-c", "read line; echo got $line; sleep 1000"],
                              detach=True, stdin_open=True)
    try:
        sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})
        sock._sock.sendall(b"hello\n")
        data = b""
        deadline = time.monotonic() + 10
        while b"got hello" not in data and time.monotonic() < deadline:
            data += sock._sock.recv(4096)
        sock.close()
        assert b"got hello" in data
        code, output = c.exec_run(["sh", "-c", "echo $FOO; exit 4"], environment={"FOO": "x"})
        assert (code, output) == (4, b"x\n")
        code, (out, err) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
        assert (code, out, err) == (0, b"o\n", b"e\n")
        exec_id = client.api.exec_create(c.id, ["cat"], stdin=True, tty=True)["Id"]
        sock = client.api.exec_start(exec_id, socket=True, tty=True)
        client.api.exec_resize(exec_id, height=20, width=70)
        sock._sock.sendall(b"echoed\n\x04")
        data = b""
        deadline = time.monotonic() + 10
        while b"echoed" not in data and time.monotonic() < deadline:
            data += sock._sock.recv(4096)
        sock.close()
        assert b"echoed" in data
        wait_for(lambda: not client.api.exec_inspect(exec_id)["Running"])
        inspected = client.api.exec_inspect(exec_id)
        assert inspected["ExitCode"] == 0 and inspected["ProcessConfig"]["tty"] is True
        with pytest.raises(docker.errors.NotFound):
            client.api.exec_inspect("no-such-exec")
    finally:
        c.remove(force=True)


def test_images_tag_history_save_load_prune_search(client):
    image = client.images.get("busybox")
    assert image.tag("example.test/bb", "v1") is True
    assert "example.test/bb:v1" in client.images.get("busybox").tags
    assert client.api.history("busybox")[0]["Id"].startswith("sha256:")
    blob = b"".join(client.images.get("example.test/bb:v1").save(named="example.test/bb:v1"))
    client.images.remove("example.test/bb:v1")
    loaded = client.images.load(blob)
    assert [sorted(i.tags) for i in loaded] == [["busybox:latest", "example.test/bb:v1"]]
    client.images.remove("example.test/bb:v1")
    pruned = client.images.prune()
    assert pruned["ImagesDeleted"] in (None, [])
    with pytest.raises(docker.errors.APIError) as search:
        client.images.search("busybox")
    assert search.value.status_code == 501
    assert "search" in search.value.explanation
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("no-such-image:nope")


def test_containers_list_filters_prune_and_events(client):
    since = int(time.time()) - 1
    a = client.containers.run("busybox", "true", name="done", labels={"k": "v"}, detach=True)
    a.wait()
    b = client.containers.run("busybox", ["sleep", "1000"], name="up", detach=True)
    try:
        assert [c.name for c in client.containers.list()] == ["up"]
        assert [c.name for c in client.containers.list(all=True, filters={"label": "k=v"})] \
            == ["done"]
        assert [c.name for c in client.containers.list(filters={"status": "exited"},
                                                       all=True)] == ["done"]
        assert client.containers.prune()["ContainersDeleted"] == [a.id]
        events = client.events(since=since, until=int(time.time()) + 1, decode=True,
                               filters={"type": "container", "container": "done"})
        actions = [e["Action"] for e in events]
        assert actions[:3] == ["create", "start", "die"] and "destroy" in actions
    finally:
        b.remove(force=True)


def test_exec_tty_framing_follows_the_start_and_create_checks(client):
    api = client.api
    c = client.containers.run("busybox", "cat", detach=True, stdin_open=True)
    try:
        # created with a terminal, started without Tty (docker-py's default): the process
        # has a tty (CRLF), the stream is multiplexed, as Docker's daemon does it
        exec_id = api.exec_create(c.id, ["sh", "-c", "echo out; echo err >&2"], tty=True)
        assert api.exec_start(exec_id) == b"out\r\nerr\r\n"
        assert api.exec_start(api.exec_create(c.id, "echo hello world")) == b"hello world\n"
    finally:
        c.remove(force=True)
    rule = "c 7:128 rwm"
    ruled = client.containers.run("busybox", "cat /sys/fs/cgroup/devices/devices.list",
                                  device_cgroup_rules=[rule], detach=True)
    ruled.wait()
    assert ruled.attrs["HostConfig"]["DeviceCgroupRules"] == [rule]
    if os.path.isdir("/sys/fs/cgroup/devices"):  # cgroup v1 shows the rules it was given
        assert rule.encode() in ruled.logs()
    ruled.remove()
    with pytest.raises(docker.errors.APIError) as bad:
        client.containers.create("busybox", "true", log_config=docker.types.LogConfig(
            type="asdf-nope", config={}))
    assert bad.value.explanation == "logger: no log driver named 'asdf-nope' is registered"
    with pytest.raises(docker.errors.APIError) as bad:
        client.containers.create("busybox", "true", device_cgroup_rules=["x 1:2 rwm"])
    assert bad.value.status_code == 400


def test_attach_logs_prune_space_and_top_level_host_settings(client):
    api = client.api
    c = api.create_container("busybox", ["sh", "-c", "echo hello > /data.txt; echo hello"])
    api.start(c)
    api.wait(c)
    # the output is all there before the head goes out: docker-py must still see it
    assert api.attach(c, stream=False, logs=True) == b"hello\n"
    pruned = api.prune_containers()
    assert pruned["ContainersDeleted"] == [c["Id"]] and pruned["SpaceReclaimed"] > 0
    legacy = api.create_container("busybox", ["true"], runtime="runc")  # no HostConfig
    assert api.inspect_container(legacy)["HostConfig"]["Runtime"] == "runc"
    api.remove_container(legacy)


def test_commit_parent_and_import_changes(client):
    api = client.api
    c = api.create_container("busybox", ["touch", "/test"])
    api.start(c)
    api.wait(c)
    committed = api.commit(c)["Id"]
    assert api.inspect_image(committed)["Parent"] == api.inspect_image("busybox")["Id"]
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("testdata")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"AAAAA"))
    statuses = api.import_image_from_data(layer.getvalue(), repository="test/imported",
                                          changes=["USER foobar", 'CMD ["echo"]'])
    image = api.inspect_image(json.loads(statuses.splitlines()[-1])["status"])
    assert (image["Config"]["Cmd"], image["Config"]["User"]) == (["echo"], "foobar")
    api.remove_container(c)
    api.remove_image(committed)
    api.remove_image("test/imported")
