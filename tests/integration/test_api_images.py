"""Image routes and the system routes that count images and containers."""

import http.client
import json

import pytest
from test_api_support import _UnixConnection, knarrd_fixture  # noqa: F401

pytestmark = pytest.mark.privileged


def _pull(client, name: str) -> http.client.HTTPResponse:
    return client.request("POST", "/images/create", query={"fromImage": name, "tag": "latest"})


def test_pull_builtin_list_inspect_history_tag_remove(knarrd):
    client = knarrd.client
    assert _pull(client, "busybox").status == 200
    # a real reference goes to its registry (here one nothing answers at; the 404 of a
    # registry that lacks the image is in test_distribution_pull.py)
    missing = _pull(client, "127.0.0.1:9/no-such-thing")
    assert missing.status == 500 and "registry 127.0.0.1:9" in missing.message
    images = client.get("/images/json").json()
    assert [i["RepoTags"] for i in images] == [["busybox:latest"]]
    image_id = images[0]["Id"]
    info = client.get("/images/busybox/json").json()
    assert info["Id"] == image_id and info["Config"]["Cmd"] == ["sh"]
    assert client.get("/images/nope/json").message == "No such image: nope"
    history = client.get("/images/busybox:latest/history").json()
    assert history[0]["Id"] == image_id and history[0]["Size"] > 0
    assert client.post("/images/busybox/tag", repo="example.com/team/box", tag="v1").status == 201
    tagged = client.get("/images/example.com/team/box:v1/json").json()
    assert tagged["Id"] == image_id
    untag = client.delete("/images/example.com/team/box:v1").json()
    assert untag == [{"Untagged": "example.com/team/box:v1"}]
    cid = client.create("busybox", ["true"])
    refused = client.delete("/images/busybox")
    assert refused.status == 409 and "being used by stopped container" in refused.message
    client.delete(f"/containers/{cid}")
    removed = client.delete("/images/busybox").json()
    assert {"Deleted": image_id} in removed
    assert client.get("/images/json").json() == []


def test_save_and_load_round_trip(knarrd):
    client = knarrd.client
    _pull(client, "hello-world")
    image_id = client.get("/images/hello-world/json").json()["Id"]
    tarball = client.get("/images/get", names="hello-world").body
    assert len(tarball) > 1024
    client.delete("/images/hello-world")
    conn = _UnixConnection(client.path, 60)
    conn.request("POST", client.url("/images/load"), body=tarball,
                 headers={"Content-Type": "application/x-tar"})
    resp = conn.getresponse()
    lines = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    assert resp.status == 200 and lines == [{"stream": "Loaded image: hello-world:latest\n"}]
    assert client.get("/images/hello-world/json").json()["Id"] == image_id


def test_info_and_system_df(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"])
    info = client.get("/info").json()
    assert info["Containers"] == 1 and info["ContainersRunning"] == 1 and info["Images"] == 1
    assert info["OSType"] == "linux" and info["Driver"] == "overlay2"
    df = client.get("/system/df").json()
    assert [c["Id"] for c in df["Containers"]] == [cid]
    assert df["Images"][0]["Containers"] == 1 and df["LayersSize"] > 0
