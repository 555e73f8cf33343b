"""Bad input gets Docker's status and message, and changes nothing."""

import pytest
from test_api_support import knarrd_fixture, read_all, wait_for  # noqa: F401

pytestmark = pytest.mark.privileged


def _everything(client) -> list:
    return sorted(c["Id"] for c in client.get("/containers/json", all=1).json())


@pytest.mark.parametrize("method,path", [
    ("GET", "/containers/nope/json"), ("POST", "/containers/nope/start"),
    ("POST", "/containers/nope/stop"), ("POST", "/containers/nope/kill"),
    ("DELETE", "/containers/nope"), ("GET", "/containers/nope/logs?stdout=1"),
    ("POST", "/containers/nope/wait"), ("POST", "/containers/nope/exec"),
])
def test_unknown_container_is_404(knarrd, method, path):
    body = {"Cmd": ["true"]} if path.endswith("/exec") else None
    resp = knarrd.client.request(method, path, body=body)
    assert resp.status == 404
    assert resp.message == "No such container: nope"


def test_name_conflict_is_409_with_dockers_text(knarrd):
    client = knarrd.client
    first = client.create("busybox", ["true"], name="taken")
    before = _everything(client)
    resp = client.request("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]},
                          {"name": "taken"})
    assert resp.status == 409
    assert resp.message == (
        f'Conflict. The container name "/taken" is already in use by container "{first}". '
        "You have to remove (or rename) that container to be able to reuse that name.")
    assert _everything(client) == before


@pytest.mark.parametrize("memory,message", [
    (1024, "Minimum memory limit allowed is 6MB"),
    (-5, "Minimum memory limit allowed is 6MB"),
    ("lots", "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory "
             "of type int64"),
])
def test_bad_memory_value_is_400(knarrd, memory, message):
    client = knarrd.client
    resp = client.request("POST", "/containers/create",
                          {"Image": "busybox", "HostConfig": {"Memory": memory}})
    assert resp.status == 400
    assert resp.message == message
    assert _everything(client) == []


def test_bad_name_unknown_image_and_bad_restart_policy(knarrd):
    client = knarrd.client
    resp = client.request("POST", "/containers/create", {"Image": "busybox"}, {"name": "a b"})
    assert resp.status == 400 and resp.message.startswith("Invalid container name (a b)")
    resp = client.request("POST", "/containers/create", {"Image": "no-such-image"})
    assert resp.status == 404 and resp.message == "No such image: no-such-image"
    resp = client.request("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}})
    assert resp.status == 400 and resp.message == "invalid restart policy 'sometimes'"
    assert _everything(client) == []


def test_conflicts_of_state(knarrd):
    client = knarrd.client
    cid = client.run("busybox", ["sleep", "1000"])
    resp = client.delete(f"/containers/{cid}")
    assert resp.status == 409 and resp.message.startswith(
        f"You cannot remove a running container {cid}.")
    assert client.post(f"/containers/{cid}/start").status == 304
    stopped = client.create("busybox", ["true"])
    resp = client.post(f"/containers/{stopped}/exec", {"Cmd": ["true"]})
    assert resp.status == 409 and resp.message == f"Container {stopped} is not running"
    resp = client.post(f"/containers/{stopped}/kill")
    assert resp.status == 409
    resp = client.post(f"/containers/{cid}/kill", signal="NOPE")
    assert resp.status == 400 and resp.message == "Invalid signal: NOPE"
    assert client.get("/nothing/here").status == 404


def test_missing_program_fails_start_with_dockers_text(knarrd):
    client = knarrd.client
    cid = client.create("busybox", ["nosuchcmd"], HostConfig={"AutoRemove": True},
                        AttachStdout=True)
    sock, head, rest = client.hijack(f"/containers/{cid}/attach",
                                     query={"stream": 1, "stdout": 1})
    resp = client.post(f"/containers/{cid}/start")
    assert resp.status == 400
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in resp.message
    read_all(sock, rest, timeout=5)  # the attach ends
    assert wait_for(lambda: client.get(f"/containers/{cid}/json").status == 404)
    kept = client.create("busybox", ["nosuchcmd"])
    assert client.post(f"/containers/{kept}/start").status == 400
    state = client.inspect(kept)["State"]
    assert state["ExitCode"] == 127 and "executable file not found" in state["Error"]
    assert client.post(f"/containers/{kept}/wait").json()["StatusCode"] == 127
