"""The API client against a scripted server on a unix socket: negotiation, bodies, errors, hijack."""

import os
import socket
import threading

import pytest

from knarr.client import api, frames, transport
from knarr.errors import Conflict, InvalidArgument, KnarrError, NotFound


class Server:
    """Answers each request with the next canned response; records what it was sent."""

    def __init__(self, path: str, responses: list[bytes]) -> None:
        self.path, self.responses, self.requests = path, list(responses), []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.responses:
            conn, _ = self.sock.accept()
            with conn:
                while self.responses:
                    request = self._read_request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    conn.sendall(self.responses.pop(0))

    @staticmethod
    def _read_request(conn) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                size = int(line.split(b":")[1])
                while len(body) < size:
                    body += conn.recv(65536)
        return head + b"\r\n\r\n" + body


def _resp(status: str, body: bytes = b"", headers: str = "", json: bool = True) -> bytes:
    kind = "Content-Type: application/json\r\n" if json else ""
    return (f"HTTP/1.1 {status}\r\n{kind}{headers}Content-Length: {len(body)}\r\n\r\n"
            .encode() + body)


PING = _resp("200 OK", b"OK", "Api-Version: 1.41\r\nOstype: linux\r\n", json=False)


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "d.sock")


def test_parse_host_forms():
    assert str(transport.parse_host("unix:///run/x.sock")) == "unix:///run/x.sock"
    assert str(transport.parse_host("tcp://10.0.0.1:2376")) == "tcp://10.0.0.1:2376"
    assert str(transport.parse_host("localhost:1234")) == "tcp://localhost:1234"
    assert transport.parse_host("tcp://h").port == 2375
    with pytest.raises(InvalidArgument):
        transport.parse_host("ftp://x")


def test_query_encoding():
    assert api.encode_query({"a": True, "b": None, "n": ["x y", "z"], "s": "a/b"}) == \
        "?a=1&n=x%20y&n=z&s=a%2Fb"
    assert api.encode_query({}) == ""


def test_negotiates_the_older_version_and_reuses_the_connection(sock_path):
    server = Server(sock_path, [PING, _resp("200 OK", b'[{"Id":"abc"}]'),
                                _resp("200 OK", b'{"Version":"x"}')])
    client = api.Client(f"unix://{sock_path}")
    assert client.get("/containers/json", {"all": 1}) == [{"Id": "abc"}]
    assert client.get("/version") == {"Version": "x"}
    assert client.version == "1.41"
    assert server.requests[0].startswith(b"GET /_ping HTTP/1.1")
    assert server.requests[1].startswith(b"GET /v1.41/containers/json?all=1 HTTP/1.1")


def test_chunked_streamed_json(sock_path):
    body = b'{"a":1}\n{"a"' + b":2}\n"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:5], body[5:])) + b"0\r\n\r\n"
    Server(sock_path, [PING, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked])
    client = api.Client(f"unix://{sock_path}")
    assert list(client.stream_json("GET", "/events")) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("status,kind", [("404 Not Found", NotFound), ("409 Conflict", Conflict),
                                         ("400 Bad Request", InvalidArgument),
                                         ("500 Internal Server Error", KnarrError)])
def test_errors_become_categories_with_the_daemons_message(sock_path, status, kind):
    Server(sock_path, [PING, _resp(status, b'{"message":"No such container: x"}')])
    client = api.Client(f"unix://{sock_path}")
    with pytest.raises(kind) as info:
        client.post("/containers/x/stop")
    assert info.value.message == "No such container: x"
    assert info.value.context["status"] == int(status.split()[0])


def test_not_found_of_a_named_object_uses_the_clients_wording(sock_path):
    Server(sock_path, [PING, _resp("404 Not Found", b'{"message":"no such container"}')])
    client = api.Client(f"unix://{sock_path}")
    with pytest.raises(NotFound) as info:
        client.get("/containers/x/json", what=("container", "x"))
    assert info.value.message == "No such container: x"
    assert info.value.context["object"] == "container"


def test_hijack_returns_bytes_read_past_the_headers(sock_path):
    first = frames.encode(1, b"early")
    Server(sock_path, [PING, b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\n"
                             b"Upgrade: tcp\r\n\r\n" + first])
    client = api.Client(f"unix://{sock_path}")
    sock, leftover = client.hijack("POST", "/containers/x/attach", {"stream": 1})
    data = leftover
    while len(data) < len(first):
        data += sock.recv(100)
    assert frames.Demuxer().feed(data) == [(1, b"early")]
    sock.close()


def test_unreachable_daemon(tmp_path):
    client = api.Client(f"unix://{tmp_path}/none.sock")
    with pytest.raises(api.DaemonUnreachable) as info:
        client.get("/version")
    assert "Cannot connect to the knarr daemon" in info.value.message


def test_request_body_from_a_file_goes_with_its_length(sock_path, tmp_path):
    server = Server(sock_path, [PING, _resp("200 OK", b"{}")])
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 200000)
    client = api.Client(f"unix://{sock_path}")
    with open(path, "rb") as f:
        client.call("POST", "/images/load", stream=f, length=os.path.getsize(path))
    assert b"Content-Length: 200000" in server.requests[1]
    assert server.requests[1].endswith(b"x" * 10)
