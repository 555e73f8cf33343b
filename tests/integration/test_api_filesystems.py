"""A container's file system through the API: changes, export, commit, import."""

import gzip
import io
import json
import tarfile

import pytest
from test_api_support import _UnixConnection, demux, knarrd_fixture, wait_for  # noqa: F401

pytestmark = pytest.mark.privileged


def test_changes_export_commit_and_run_the_new_image(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sh", "-c", "echo hi > /root/new.txt; rm /etc/group; "
                                 "echo more >> /etc/passwd"])
    assert client.post(f"/containers/{cid}/wait").json()["StatusCode"] == 0
    changes = {c["Path"]: c["Kind"] for c in client.get(f"/containers/{cid}/changes").json()}
    assert changes == {"/root": 0, "/root/new.txt": 1, "/etc": 0, "/etc/group": 2,
                       "/etc/passwd": 0}

    tarball = client.get(f"/containers/{cid}/export").body
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        names = set(archive.getnames())
        assert archive.extractfile("root/new.txt").read() == b"hi\n"
    assert "bin/busybox" in names and "etc/group" not in names

    resp = client.request("POST", "/commit", {"Cmd": ["cat", "/root/new.txt"]},
                          {"container": cid, "repo": "committed", "tag": "v1",
                           "comment": "a test"})
    assert resp.status == 201
    image_id = resp.json()["Id"]
    info = client.get("/images/committed:v1/json").json()
    assert info["Id"] == image_id and len(info["RootFS"]["Layers"]) == 2
    assert info["Config"]["Cmd"] == ["cat", "/root/new.txt"]
    new = client.run("committed:v1")
    assert client.post(f"/containers/{new}/wait").json()["StatusCode"] == 0
    assert demux(client.get(f"/containers/{new}/logs", stdout=1).body)[1] == b"hi\n"


def test_import_a_gzipped_tarball(knarrd, busybox_rootfs):
    client = knarrd.client
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        archive.add(busybox_rootfs, arcname=".")
    body = gzip.compress(buf.getvalue())
    conn = _UnixConnection(client.path, 60)
    conn.request("POST", client.url("/images/create", {"fromSrc": "-", "repo": "imported",
                                                       "tag": "x"}), body=body)
    resp = conn.getresponse()
    status = json.loads(resp.read().splitlines()[0])["status"]
    assert resp.status == 200 and status.startswith("sha256:")
    cid = client.run("imported:x", ["echo", "from an import"])
    assert client.post(f"/containers/{cid}/wait").json()["StatusCode"] == 0
    assert demux(client.get(f"/containers/{cid}/logs", stdout=1).body)[1] == b"from an import\n"


def test_archive_out_and_in_running_and_stopped(knarrd):
    import base64

    client = knarrd.client
    cid = client.run("busybox", ["sh", "-c", "echo inside > /root/f.txt; "
                                 "ln -s /etc /root/escape; sleep 1000"])
    assert wait_for(lambda: client.request(  # the container's shell has made both files
        "HEAD", f"/containers/{cid}/archive", query={"path": "/root/escape"}).status == 200)
    head = client.request("HEAD", f"/containers/{cid}/archive", query={"path": "/root/f.txt"})
    assert head.status == 200
    stat = json.loads(base64.b64decode(head.headers["X-Docker-Container-Path-Stat"]))
    assert stat["name"] == "f.txt" and stat["size"] == 7
    got = client.request("GET", f"/containers/{cid}/archive", query={"path": "/root/f.txt"})
    with tarfile.open(fileobj=io.BytesIO(got.body)) as archive:
        assert archive.extractfile("f.txt").read() == b"inside\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo("put.txt")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"put\n"))
    conn = _UnixConnection(client.path, 30)
    conn.request("PUT", client.url(f"/containers/{cid}/archive", {"path": "/tmp"}),
                 body=buf.getvalue())
    assert conn.getresponse().status == 200
    exec_id = client.post(f"/containers/{cid}/exec", {"Cmd": ["cat", "/tmp/put.txt"],
                                                      "AttachStdout": True}).json()["Id"]
    from test_api_support import read_all

    sock, _h, rest = client.hijack(f"/exec/{exec_id}/start", {"Detach": False})
    assert demux(read_all(sock, rest))[1] == b"put\n"
    assert client.request("GET", f"/containers/{cid}/archive", query={"path": "/nope"}).status == 404
    client.post(f"/containers/{cid}/stop", t=0)
    stopped = client.request("GET", f"/containers/{cid}/archive", query={"path": "/tmp/put.txt"})
    assert stopped.status == 200
    with tarfile.open(fileobj=io.BytesIO(stopped.body)) as archive:
        assert archive.extractfile("put.txt").read() == b"put\n"
    escape = client.request("GET", f"/containers/{cid}/archive", query={"path": "/root/escape/passwd"})
    with tarfile.open(fileobj=io.BytesIO(escape.body)) as archive:
        assert b"root:x:0:0" in archive.extractfile("passwd").read()  # the container's own
