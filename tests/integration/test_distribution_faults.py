"""Faults between knarr and a registry: a connection cut mid-layer (resumed with Range), a
byte flipped in a blob (refused by digest, nothing of that layer kept), and a registry
answering 401, 404 or 500 (each a clear message)."""

import http.server
import os
import sqlite3
import threading

import pytest
from distribution_support import Distribution, FaultProxy, make_htpasswd, skopeo_copy
from test_api_support import knarrd_fixture  # noqa: F401
from test_distribution_pull import _stream, knarr, layout  # noqa: F401

pytestmark = pytest.mark.privileged


@pytest.fixture()
def seeded(tmp_path, layout):  # noqa: F811
    with Distribution(tmp_path / "reg") as reg:
        skopeo_copy(f"oci:{layout[0]}:latest", f"docker://{reg.addr}/team/box:v1",
                    "--dest-tls-verify=false")
        yield reg


def _layers(layout_dir: str, digest: str) -> list[str]:
    import json

    with open(os.path.join(layout_dir, "blobs", "sha256", digest[7:])) as f:
        return [layer["digest"] for layer in json.load(f)["layers"]]


def test_a_cut_connection_resumes(knarrd, seeded, layout):  # noqa: F811
    proxy = FaultProxy(seeded.port, "cut", after=400_000).start()
    try:
        ref = f"{proxy.addr}/team/box:v1"
        out = knarr(knarrd, "pull", ref)
        assert proxy.faults == 1 and f"Digest: {layout[1]}" in out.stdout
        run = knarr(knarrd, "run", "--rm", ref, "/bin/busybox", "cat", "/etc/motd")
        assert run.stdout == "pulled from distribution\n"
        assert "resuming at byte" in knarrd.log_text()
    finally:
        proxy.stop()


def test_a_flipped_byte_fails_by_digest_and_keeps_nothing(knarrd, seeded, layout):  # noqa: F811
    proxy = FaultProxy(seeded.port, "flip", after=400_000).start()
    try:
        ref = f"{proxy.addr}/team/box"
        status, messages = _stream(knarrd, {"fromImage": ref, "tag": "v1"})
        assert proxy.faults == 1
        errors = [m["errorDetail"]["message"] for m in messages if "errorDetail" in m] \
            if status == 200 else [messages[0]["message"]]
        assert len(errors) == 1 and "digest mismatch" in errors[0], messages
        bad = [d for d in _layers(*layout) if d in errors[0]]
        assert len(bad) == 1, errors
        root = knarrd.root
        assert not os.path.exists(os.path.join(root, "content", "blobs", "sha256", bad[0][7:]))
        assert os.listdir(os.path.join(root, "content", "ingest")) == []
        db = sqlite3.connect(os.path.join(root, "snapshots", "metadata.db"))
        keys = [r[0] for r in db.execute("SELECT key FROM snapshots")]
        db.close()
        assert not [k for k in keys if k.startswith("extract-")], keys
        assert knarrd.client.get(f"/images/{ref}:v1/json").status == 404
        # the proxy flips only once: the next pull gets every byte right
        out = knarr(knarrd, "pull", f"{ref}:v1")
        assert f"Digest: {layout[1]}" in out.stdout
    finally:
        proxy.stop()


def test_401_404_and_500_are_clear(knarrd, tmp_path):
    htpasswd = make_htpasswd(tmp_path / "htpasswd")
    with Distribution(tmp_path / "reg", htpasswd=htpasswd) as reg:
        out = knarr(knarrd, "pull", f"{reg.addr}/team/box:v1", check=False)
        assert out.returncode == 1
        assert out.stderr.strip() == (f"Error response from daemon: manifest for {reg.addr}/"
                                      "team/box:v1: unauthorized: authentication required")
    with Distribution(tmp_path / "reg2") as reg:
        out = knarr(knarrd, "pull", f"{reg.addr}/team/none:v1", check=False)
        assert out.returncode == 1 and out.stderr.strip() == (
            f"Error response from daemon: manifest for {reg.addr}/team/none:v1 not found: "
            "manifest unknown: manifest unknown")
    server = _Broken()
    try:
        out = knarr(knarrd, "pull", f"{server.addr}/team/box:v1", check=False)
        assert out.returncode == 1 and out.stderr.strip() == (
            f"Error response from daemon: manifest for {server.addr}/team/box:v1: "
            "received unexpected HTTP status: 500 Internal Server Error")
        assert server.hits > 1  # retried with back-off before giving up
    finally:
        server.stop()


class _Broken:
    """A registry whose /v2/ answers and whose every other path fails with 500."""

    def __init__(self) -> None:
        owner = self
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                ok = self.path == "/v2/"
                if not ok:
                    owner.hits += 1
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
