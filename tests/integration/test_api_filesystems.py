"""A container's file system through the API: changes, export, commit, import."""

import gzip
import io
import json
import tarfile

import pytest
from test_api_support import _UnixConnection, demux, knarrd_fixture  # noqa: F401

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
