"""Property tests (hypothesis) of the Engine API's JSON bodies and query strings.

Whatever a client sends, knarrd answers without a 500, every error carries a
message, malformed input is a 400, and the daemon stays up. One daemon serves
the module; the examples are few enough to keep the whole file well under a
minute.
"""

import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_api_support import Daemon

pytestmark = [pytest.mark.privileged]
SETTINGS = settings(max_examples=int(os.environ.get("KNARR_FUZZ_EXAMPLES", "120")), deadline=None,
                    derandomize=not os.environ.get("KNARR_FUZZ_RANDOM"),
                    database=None, suppress_health_check=list(HealthCheck))

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)

CREATE_FIELDS = ["Image", "Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Tty",
                 "OpenStdin", "Labels", "ExposedPorts", "StopSignal", "StopTimeout",
                 "Healthcheck", "Hostname", "Volumes", "NetworkDisabled", "HostConfig",
                 "NetworkingConfig"]
HOST_FIELDS = ["Memory", "MemorySwap", "CpuShares", "NanoCpus", "CpuQuota", "CpusetCpus",
               "PidsLimit", "Binds", "Mounts", "RestartPolicy", "PortBindings", "AutoRemove",
               "CapAdd", "CapDrop", "Privileged", "ReadonlyRootfs", "SecurityOpt", "Tmpfs",
               "Ulimits", "LogConfig", "Devices", "ExtraHosts", "Dns", "ShmSize", "Sysctls",
               "NetworkMode", "Init", "OomScoreAdj", "GroupAdd", "IpcMode", "PidMode"]
UPDATE_FIELDS = ["Memory", "MemorySwap", "CpuShares", "NanoCpus", "CpuQuota", "PidsLimit",
                 "RestartPolicy", "MemoryReservation", "BlkioWeight", "CpusetCpus"]
EXEC_FIELDS = ["Cmd", "Env", "User", "WorkingDir", "Tty", "AttachStdin", "AttachStdout",
               "DetachKeys", "Privileged", "ConsoleSize"]


@pytest.fixture(scope="module")
def api():
    daemon = Daemon(tempfile.mkdtemp(prefix="knarrd-")).start()
    client = daemon.client
    client.request("POST", "/images/create", query={"fromImage": "busybox", "tag": "latest"})
    daemon.target = client.run("busybox", ["sleep", "1000"], name="target")
    try:
        yield daemon
    finally:
        leftovers = daemon.teardown()
        assert not leftovers, leftovers


def _check(daemon, resp, what) -> None:
    assert resp.status < 500, f"{what}: {resp.status} {resp.body[:300]!r}\n" \
        f"{daemon.log_text()[-2000:]}"
    if resp.status >= 400:
        assert resp.headers["Content-Type"] == "application/json", what
        assert resp.json()["message"], what
    assert daemon.proc.poll() is None, "knarrd died"


def _body_with(base: dict, fields: list[str], draw_value, draw) -> dict:
    body = dict(base)
    for name in draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
        body[name] = draw(draw_value)
    return body


@st.composite
def create_bodies(draw):
    body = _body_with({"Image": "busybox", "Cmd": ["true"]}, CREATE_FIELDS, json_values, draw)
    if draw(st.booleans()):
        body["HostConfig"] = _body_with({}, HOST_FIELDS, json_values, draw)
    return body


@given(body=create_bodies())
@SETTINGS
def test_container_create_bodies(api, body):
    resp = api.client.request("POST", "/containers/create", body)
    _check(api, resp, json.dumps(body))
    if resp.status == 201:
        cid = resp.json()["Id"]
        _check(api, api.client.get(f"/containers/{cid}/json"), "inspect")
        assert api.client.delete(f"/containers/{cid}", force=1).status == 204


@given(body=st.one_of(json_values, st.dictionaries(st.sampled_from(UPDATE_FIELDS),
                                                   json_values, max_size=3)))
@SETTINGS
def test_update_and_exec_bodies(api, body):
    resp = api.client.request("POST", f"/containers/{api.target}/update", body)
    _check(api, resp, f"update {body!r}")
    exec_body = body if not isinstance(body, dict) else \
        {"Cmd": ["true"], **{k: v for k, v in body.items() if k in EXEC_FIELDS}}
    _check(api, api.client.request("POST", f"/containers/{api.target}/exec", exec_body),
           f"exec {exec_body!r}")


query_values = st.one_of(st.text(max_size=30), st.integers(-2**40, 2**40).map(str),
                         json_values.map(json.dumps))
ROUTES = [("GET", "/containers/json"), ("GET", "/images/json"), ("GET", "/system/df"),
          ("GET", "/containers/target/json"), ("GET", "/containers/target/top"),
          ("GET", "/containers/target/logs"), ("GET", "/containers/target/changes"),
          ("GET", "/containers/target/stats"), ("POST", "/containers/target/resize"),
          ("POST", "/containers/target/kill"), ("POST", "/containers/prune"),
          ("GET", "/images/busybox/json"), ("GET", "/images/busybox/history"),
          ("POST", "/images/busybox/tag"), ("GET", "/events"), ("POST", "/containers/create"),
          ("GET", "/containers/target/archive"), ("GET", "/info"), ("GET", "/version")]
QUERY_NAMES = ["all", "limit", "size", "filters", "stdout", "stderr", "tail", "since",
               "until", "timestamps", "h", "w", "signal", "repo", "tag", "ps_args", "name",
               "path", "stream", "one-shot", "dangling", "follow", "term"]
# Parameters that make a response stream until the client goes, or stop the target.
PINNED = {"follow": "0", "stream": "0", "until": "1", "signal": "SIGWINCH"}


@given(route=st.sampled_from(ROUTES),
       query=st.dictionaries(st.sampled_from(QUERY_NAMES), query_values, max_size=4))
@SETTINGS
def test_query_strings(api, route, query):
    method, path = route
    query = {k: PINNED.get(k, v) for k, v in query.items()}
    if path == "/events":
        query["until"] = "1"
    if path.endswith("/stats"):
        query["stream"] = "0"
    if path.endswith("/kill"):
        query["signal"] = "SIGWINCH"  # the target must live on
    if path.endswith("/logs"):
        query.setdefault("stdout", "1")
    resp = api.client.request(method, path, query=query, timeout=10)
    _check(api, resp, f"{method} {path} {query!r}")
    if resp.status == 201 and path == "/containers/create":
        api.client.delete(f"/containers/{resp.json()['Id']}", force=1)
    assert api.client.inspect("target")["State"]["Running"]


@given(raw=st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode)),
       path=st.sampled_from(["/containers/create", "/containers/target/update",
                             "/containers/target/exec", "/images/busybox/tag", "/commit"]))
@SETTINGS
def test_malformed_json_is_a_400_with_a_message(api, raw, path):
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    else:
        if path != "/commit":
            return  # well-formed JSON is the other tests' business
    conn_body = raw
    resp = _raw_post(api, path, conn_body)
    _check(api, resp, f"POST {path} {raw!r}")
    if parsed is None and raw.strip() and path != "/images/busybox/tag":
        assert resp.status == 400, (path, raw, resp.status, resp.body)


def _raw_post(api, path: str, body: bytes):
    from test_api_support import Response, _UnixConnection

    conn = _UnixConnection(api.sock, 30)
    conn.request("POST", "/v1.50" + path, body=body,
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = Response(resp.status, resp.headers, resp.read())
    conn.close()
    return out
