"""Start-up stays cheap: common commands import no json, re, enum, socket, argparse, ...

Each command runs in a fresh `python -IS` against a stand-in daemon on a unix
socket (one thread per connection, answers chosen by path), then reports which
of the expensive modules it imported.
"""

import os
import socket
import subprocess
import sys
import threading

import pytest

from knarr.client import frames

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPENSIVE = {"json", "re", "enum", "socket", "argparse", "subprocess", "threading", "ssl",
             "platform", "selectors", "signal", "typing", "dataclasses", "urllib.parse"}


def _json(body: bytes, status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: "
            f"{len(body)}\r\n\r\n").encode() + body


ROUTES = [
    ("GET /_ping", b"HTTP/1.1 200 OK\r\nApi-Version: 1.43\r\nContent-Length: 2\r\n\r\nOK"),
    ("GET /v1.43/containers/json", _json(b'[{"Id":"' + b"a" * 64 + b'","Names":["/c"],'
                                         b'"Image":"busybox","Command":"sh","Created":1,'
                                         b'"Status":"Up 1 second","State":"running"}]')),
    ("GET /v1.43/images/json", _json(b'[{"Id":"sha256:' + b"b" * 64 + b'","RepoTags":'
                                     b'["busybox:latest"],"Created":1,"Size":100}]')),
    ("GET /v1.43/version", _json(b'{"Version":"x","ApiVersion":"1.43","Os":"linux"}')),
    ("GET /v1.43/containers/c/json", _json(b'{"Id":"c","State":{"Status":"running"}}')),
    ("POST /v1.43/containers/create", _json(b'{"Id":"' + b"c" * 64 + b'","Warnings":[]}',
                                            "201 Created")),
    ("POST /v1.43/containers/" + "c" * 64 + "/attach",
     b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
     + frames.encode(1, b"hi\n")),
    ("POST /v1.43/containers/" + "c" * 64 + "/wait", _json(b'{"StatusCode":0}')),
    ("POST /v1.43/containers/" + "c" * 64 + "/start",
     b"HTTP/1.1 204 No Content\r\n\r\n"),
    ("POST /v1.43/containers/c/stop", b"HTTP/1.1 204 No Content\r\n\r\n"),
    ("DELETE /v1.43/containers/c", b"HTTP/1.1 204 No Content\r\n\r\n"),
]


def _serve_connection(conn) -> None:
    try:
        _answer(conn)
    except (ConnectionResetError, BrokenPipeError):
        pass  # the CLI may exit with its early ping unread: a reset or a closed pipe, not a fault


def _answer(conn) -> None:
    with conn:
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    size = int(line.split(b":")[1])
                    while len(data) < size:
                        data += conn.recv(65536)
                    data = data[size:]
            request = head.split(b"\r\n")[0].decode()
            method, target = request.split()[:2]
            path = target.split("?")[0]
            answer = next((r for key, r in ROUTES if f"{method} {path}" == key),
                          _json(b'{"message":"not here"}', "404 Not Found"))
            conn.sendall(answer)
            if answer.startswith(b"HTTP/1.1 101"):
                conn.shutdown(socket.SHUT_WR)
                return


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("startup") / "d.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(16)

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=_serve_connection, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"unix://{path}"
    srv.close()


PROBE = """
import sys
sys.path.insert(0, {repo!r})
from knarr.cli import main
code = main.main({argv!r})
sys.stdout.flush()
sys.stderr.write("CODE=%d MODULES=%s\\n" % (code, ",".join(sorted({expensive!r} & set(sys.modules)))))
"""


@pytest.mark.parametrize("argv,out", [
    (["ps"], "c\n"), (["images"], "busybox"), (["version"], "Server:"),
    (["run", "--rm", "busybox", "true"], "hi\n"), (["stop", "c"], "c\n"), (["rm", "c"], "c\n"),
    (["inspect", "-f", "{{.State.Status}}", "c"], "running\n"),
    (["run", "--bogus", "x"], ""),
])
def test_commands_import_nothing_expensive(host, argv, out):
    code = PROBE.format(repo=REPO, argv=["-H", host, *argv], expensive=EXPENSIVE)
    result = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    report = result.stderr.decode().strip().splitlines()[-1]
    assert report.startswith("CODE="), result.stderr.decode()
    assert report.split(" MODULES=")[1] == "", report
    assert out in result.stdout.decode()
