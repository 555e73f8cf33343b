"""The API server without a daemon: HTTP parsing, routes, versions, error statuses."""

import asyncio
import json

import pytest

from knarr.api import errors, http
from knarr.api.server import Server
from knarr.engine import NotModified
from knarr.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound


class FakeWriter:
    def __init__(self) -> None:
        self.data = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeEngine:
    """Just enough engine for the routes these tests call."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure

    def inspect(self, ref: str, size: bool = False) -> dict:
        if self.failure:
            raise self.failure
        return {"Id": ref, "Size": size}


def _serve(raw: bytes, engine=None) -> bytes:
    async def run() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        writer = FakeWriter()
        await Server(engine or FakeEngine()).handle(reader, writer)
        return writer.data
    return asyncio.run(run())


def _responses(data: bytes) -> list[tuple[int, dict, bytes]]:
    out = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("Content-Length", 0))
        out.append((int(lines[0].split()[1]), headers, data[:length]))
        data = data[length:]
    return out


def test_ping_has_dockers_headers():
    [(status, headers, body)] = _responses(_serve(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == 200 and body == b"OK"
    assert headers["Api-Version"] and headers["Ostype"] == "linux"
    assert headers["Builder-Version"] == "1" and headers["Docker-Experimental"] == "false"


def test_keep_alive_versioned_and_bare_paths():
    raw = (b"GET /v1.41/containers/abc/json HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /containers/abc/json?size=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    first, second = _responses(_serve(raw))
    assert first[0] == 200 and json.loads(first[2]) == {"Id": "abc", "Size": False}
    assert json.loads(second[2]) == {"Id": "abc", "Size": True}


def test_unknown_path_method_and_version():
    raw = (b"GET /nowhere HTTP/1.1\r\n\r\n"
           b"DELETE /_ping HTTP/1.1\r\n\r\n"
           b"GET /v1.99/_ping HTTP/1.1\r\n\r\n")
    statuses = [r[0] for r in _responses(_serve(raw))]
    assert statuses == [404, 405, 400]


def test_versions_outside_the_served_range_get_dockers_texts():
    raw = (b"GET /v1.99/_ping HTTP/1.1\r\n\r\nGET /v1.12/_ping HTTP/1.1\r\n\r\n"
           b"GET /v1.41/_ping HTTP/1.1\r\n\r\nGET /v1.50/_ping HTTP/1.1\r\n\r\n")
    new, old, low, high = _responses(_serve(raw))
    assert json.loads(new[2]) == {"message": "client version 1.99 is too new. Maximum "
                                  "supported API version is 1.50"}
    assert json.loads(old[2]) == {"message": "client version 1.12 is too old. Minimum "
                                  "supported API version is 1.24, please upgrade your client "
                                  "to a newer version"}
    assert (low[0], high[0], high[1]["Api-Version"]) == (200, 200, "1.50")


@pytest.mark.parametrize("failure,status", [
    (NotFound("No such container: abc"), 404), (Conflict("in use"), 409),
    (InvalidArgument("bad"), 400), (FailedPrecondition("not running"), 409),
    (RuntimeError("boom"), 500)])
def test_errors_are_rendered_as_docker_does(failure, status):
    [(got, headers, body)] = _responses(_serve(b"GET /containers/abc/json HTTP/1.1\r\n\r\n",
                                               FakeEngine(failure)))
    assert got == status and json.loads(body) == {"message": str(failure)}
    assert headers["Content-Type"] == "application/json"


def test_not_modified_has_no_body():
    assert errors.status_of(NotModified("already")) == 304


def test_chunked_body_and_query_helpers():
    async def run():
        reader = asyncio.StreamReader()
        reader.feed_data(b"POST /x?all=1&limit=3&filters=%7B%22status%22%3A%7B%22exited%22%3A"
                         b"true%7D%7D HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\n\r\n")
        reader.feed_eof()
        request = await http.read_request(reader)
        return request, await request.json()
    request, body = asyncio.run(run())
    assert body == {"a": 1}
    assert request.q_bool("all") and request.q_int("limit") == 3 and not request.q_bool("x")
    assert request.q_json("filters") == {"status": ["exited"]}


def test_hijack_answers_101_when_asked():
    async def run(upgrade: bool) -> bytes:
        reader = asyncio.StreamReader()
        head = b"POST /x HTTP/1.1\r\n" + (b"Connection: Upgrade\r\nUpgrade: tcp\r\n"
                                          if upgrade else b"") + b"\r\n"
        reader.feed_data(head)
        request = await http.read_request(reader)
        writer = FakeWriter()
        await http.Responder(writer, {}).hijack(request,
                                                "application/vnd.docker.raw-stream")
        return writer.data
    upgraded = asyncio.run(run(True)).decode()
    assert upgraded.startswith("HTTP/1.1 101 UPGRADED\r\n") and "Upgrade: tcp" in upgraded
    plain = asyncio.run(run(False)).decode()
    assert plain.startswith("HTTP/1.1 200 OK\r\n") and "raw-stream" in plain


def test_detach_keys():
    from knarr.api import detach

    assert detach.parse_keys(None) == b"\x10\x11"
    assert detach.parse_keys("ctrl-a,x,ctrl-@,ctrl-[") == b"\x01x\x00\x1b"
    with pytest.raises(InvalidArgument):
        detach.parse_keys("ctrl-1")
    d = detach.Detector(b"\x10\x11")
    assert d.feed(b"ab\x10") == (b"ab", False)
    assert d.feed(b"\x11rest") == (b"", True)
    d = detach.Detector(b"\x10\x11")
    assert d.feed(b"a\x10b\x10\x10") == (b"a\x10b\x10", False)
    assert d.feed(b"\x11") == (b"", True)


@pytest.mark.parametrize(("agent", "waits"), [
    ("docker-sdk-python/6.1.3", True), ("python-requests/2.31", True), ("", True),
    ("knarr-client/0.1.0 (linux)", False), ("Docker-Client/20.10.24+dfsg1 (linux)", False)])
def test_first_output_after_a_hijack_waits_only_for_clients_that_lose_it(agent, waits):
    # docker-py reads the head through a buffer and loses bytes that came with it: the
    # first output waits HEAD_GAP after the head. The docker CLI and ours read on from
    # their buffer, so a quick exec's output goes out at once.
    from knarr.api import routes_containers

    class Request:
        headers = {"user-agent": agent} if agent else {}

    class Responder:
        hijacked_at = 0.0

    async def first_output() -> float:
        loop = asyncio.get_running_loop()
        Responder.hijacked_at = loop.time()
        await routes_containers._after_the_head(Request(), Responder())
        return loop.time() - Responder.hijacked_at

    waited = asyncio.run(first_output())
    if waits:
        assert waited >= routes_containers.HEAD_GAP * 0.9
    else:
        assert waited < routes_containers.HEAD_GAP / 2
