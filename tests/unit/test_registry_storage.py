"""Registry storage: sessions across restarts, partial uploads, atomic records, gc."""

import hashlib
import http.client
import json
import os
import socket
import threading
import time

from knarr.registry.app import Registry
from knarr.registry.gc import collect
from knarr.registry.http import Server
from knarr.registry.storage import Storage


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Running:
    """A registry served from a thread; `stop` is a restart's first half."""

    def __init__(self, root) -> None:
        self.server = Server(("127.0.0.1", 0), Registry(str(root)))
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def __call__(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, resp.headers, data

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        # what a dead process would drop: its open ingests and their locks
        for session in list(self.server.app.uploads._open.values()):
            session.writer.close()


def test_upload_session_survives_a_restart(tmp_path):
    data = os.urandom(300_000)
    first = Running(tmp_path)
    location = first("POST", "/v2/r/blobs/uploads/")[1]["Location"]
    assert first("PATCH", location, data[:100_000], {"Content-Range": "0-99999"})[0] == 202
    first.stop()
    second = Running(tmp_path)
    try:
        status, headers, _ = second("GET", location)
        assert status == 204 and headers["Range"] == "0-99999"
        assert second("PATCH", location, data[100_000:],
                      {"Content-Range": f"100000-{len(data) - 1}"})[0] == 202
        assert second("PUT", f"{location}?digest={sha(data)}")[0] == 201
        assert second("GET", f"/v2/r/blobs/{sha(data)}")[2] == data
    finally:
        second.stop()


def test_client_gone_mid_upload_leaves_no_blob(tmp_path):
    reg = Running(tmp_path)
    try:
        data = os.urandom(200_000)
        sock = socket.create_connection(("127.0.0.1", reg.port))
        sock.sendall((f"POST /v2/r/blobs/uploads/?digest={sha(data)} HTTP/1.1\r\n"
                      f"Host: x\r\nContent-Length: {len(data)}\r\n\r\n").encode())
        sock.sendall(data[:50_000])
        sock.close()
        time.sleep(0.3)
        assert reg("HEAD", f"/v2/r/blobs/{sha(data)}")[0] == 404
        store = reg.server.app.storage.content
        assert list(store.walk()) == []
        assert reg("GET", "/v2/")[0] == 200
    finally:
        reg.stop()


def test_records_are_written_whole(tmp_path):
    storage = Storage(str(tmp_path))
    storage.set_tag("r", "t", sha(b"m"))
    tags_dir = os.path.join(storage.repos, "r", "_manifests", "tags")
    assert os.listdir(tags_dir) == ["t"]  # no temp file left behind
    assert storage.tag("r", "t") == sha(b"m")


def _push(reg, repo, data):
    return reg("POST", f"/v2/{repo}/blobs/uploads/?digest={sha(data)}", data)[0]


def test_gc_removes_only_unlinked_blobs(tmp_path):
    reg = Running(tmp_path)
    try:
        assert _push(reg, "one", b"shared") == 201
        assert _push(reg, "two", b"shared") == 201
        assert _push(reg, "one", b"only one") == 201
        config = sha(b"shared")
        manifest = json.dumps({"schemaVersion": 2,
                               "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": config, "size": 6},
                               "layers": []}).encode()
        assert reg("PUT", "/v2/one/manifests/t", manifest)[0] == 201
        reg("DELETE", f"/v2/one/blobs/{sha(b'only one')}")
        reg("DELETE", f"/v2/one/blobs/{config}")
        location = reg("POST", "/v2/one/blobs/uploads/")[1]["Location"]
        reg("PATCH", location, b"in flight")
        result = collect(str(tmp_path), upload_age=3600)
        assert result["blobs"] == [sha(b"only one")]
        store = reg.server.app.storage.content
        assert store.exists(config) and store.exists(sha(manifest))
        assert reg("GET", "/v2/one/manifests/t")[0] == 200
        assert reg("PUT", f"{location}?digest={sha(b'in flight')}")[0] == 201
        reg("DELETE", f"/v2/two/blobs/{config}")
        reg("DELETE", f"/v2/one/manifests/{sha(manifest)}")
        reg("DELETE", f"/v2/one/blobs/{sha(b'in flight')}")
        assert sorted(collect(str(tmp_path))["blobs"]) == sorted(
            [config, sha(manifest), sha(b"in flight")])
        assert list(store.walk()) == []
    finally:
        reg.stop()


def test_gc_waits_for_a_push_between_commit_and_link(tmp_path):
    storage = Storage(str(tmp_path))
    done = threading.Event()
    with storage.gc_lock():  # what a push holds from commit to link
        stored = storage.content.put(b"just committed")
        worker = threading.Thread(target=lambda: (collect(str(tmp_path)), done.set()))
        worker.start()
        time.sleep(0.3)
        assert not done.is_set()
        storage.link_blob("r", stored, stored)
    worker.join(10)
    assert done.is_set() and storage.content.exists(stored)


def test_gc_drops_stale_upload_sessions(tmp_path):
    reg = Running(tmp_path)
    location = reg("POST", "/v2/r/blobs/uploads/")[1]["Location"]
    reg("PATCH", location, b"abandoned")
    reg.stop()
    assert collect(str(tmp_path), upload_age=3600)["uploads"] == []
    assert len(collect(str(tmp_path), upload_age=0)["uploads"]) == 1
    assert Storage(str(tmp_path)).content.ingests() == []


def test_gc_refuses_an_engine_root(tmp_path, capsys):
    from knarr.registry.main import main

    (tmp_path / "metadata.db").write_bytes(b"")
    assert main(["gc", "--root", str(tmp_path)]) == 1
    assert "engine's image store" in capsys.readouterr().err


def test_gc_command_line_reports(tmp_path, capsys):
    from knarr.registry.main import main

    storage = Storage(str(tmp_path))
    storage.content.put(b"orphan")
    assert main(["gc", "--root", str(tmp_path), "--dry-run"]) == 0
    assert "would remove 1 blobs (6 bytes)" in capsys.readouterr().out
    assert main(["gc", "--root", str(tmp_path)]) == 0
    assert "removed 1 blobs" in capsys.readouterr().out
    assert list(storage.content.walk()) == []


def test_gc_unlinks_old_blobs_no_manifest_names(tmp_path):
    reg = Running(tmp_path)
    try:
        for data in (b"config", b"named layer", b"abandoned layer"):
            assert _push(reg, "r", data) == 201
        manifest = json.dumps({"schemaVersion": 2,
                               "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": sha(b"config"), "size": 6},
                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                           "digest": sha(b"named layer"), "size": 11}]}).encode()
        assert reg("PUT", "/v2/r/manifests/t", manifest)[0] == 201
        assert _push(reg, "other", b"abandoned layer") == 201
        young = collect(str(tmp_path))  # a day's grace: a push may still be under way
        assert young["orphans"] == [] and young["blobs"] == []
        result = collect(str(tmp_path), orphan_age=0)
        assert sorted(result["orphans"]) == [f"other@{sha(b'abandoned layer')}",
                                             f"r@{sha(b'abandoned layer')}"]
        assert result["blobs"] == [sha(b"abandoned layer")]
        assert reg("HEAD", f"/v2/r/blobs/{sha(b'abandoned layer')}")[0] == 404
        assert reg("HEAD", f"/v2/r/blobs/{sha(b'named layer')}")[0] == 200
        assert reg("GET", "/v2/r/manifests/t")[0] == 200
    finally:
        reg.stop()
