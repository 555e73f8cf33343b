"""The registry under load and faults: concurrent pushes, killed clients, a killed server.

The server runs as its own process (`knarr-registry serve`), so a kill -9 is
a real crash; clients are threads and processes speaking plain HTTP.
"""

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

from test_registry_support import RegistryProcess, wait_for

from knarr.content import ContentStore

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def call(port, method, path, body=None, headers=None, chunked=False):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def push_blob(port, repo, data):
    """POST, one streamed PATCH (chunked transfer coding), PUT: the docker client's way."""
    status, headers, body = call(port, "POST", f"/v2/{repo}/blobs/uploads/")
    assert status == 202, body
    pieces = (data[i:i + 65536] for i in range(0, len(data), 65536))
    status, headers, body = call(port, "PATCH", headers["Location"], pieces, chunked=True)
    assert status == 202, body
    status, _, body = call(port, "PUT", f"{headers['Location']}?digest={sha(data)}")
    assert status == 201, body
    return sha(data)


def push_image(port, repo, layers, tag="latest"):
    config = json.dumps({"architecture": "amd64", "os": "linux", "repo": repo}).encode()
    descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
              "digest": push_blob(port, repo, layer), "size": len(layer)} for layer in layers]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": push_blob(port, repo, config),
                                      "size": len(config)},
                           "layers": descs}).encode()
    status, _, body = call(port, "PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                           {"Content-Type": OCI_MANIFEST})
    assert status == 201, body
    return manifest


def check_image(port, repo, manifest, tag="latest"):
    """Everything an image names comes back byte for byte."""
    status, _, body = call(port, "GET", f"/v2/{repo}/manifests/{tag}")
    assert (status, body) == (200, manifest)
    doc = json.loads(manifest)
    for desc in [doc["config"], *doc["layers"]]:
        status, _, blob = call(port, "GET", f"/v2/{repo}/blobs/{desc['digest']}")
        assert status == 200 and sha(blob) == desc["digest"] and len(blob) == desc["size"]


def test_twenty_concurrent_pushes_sharing_layers(tmp_path):
    shared = [os.urandom(3 << 20), os.urandom(1 << 20)]
    results, errors = {}, []
    with RegistryProcess(str(tmp_path)) as reg:
        def push(i):
            try:
                results[i] = push_image(reg.port, f"team/app{i}",
                                        [*shared, f"unique layer {i}".encode() * 1000])
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append((i, exc))

        threads = [threading.Thread(target=push, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == [] and len(results) == 20
        for i, manifest in results.items():
            check_image(reg.port, f"team/app{i}", manifest)
        catalog = json.loads(call(reg.port, "GET", "/v2/_catalog")[2])["repositories"]
        assert len(catalog) == 20
    store = ContentStore(str(tmp_path))
    blobs = {info.digest for info in store.walk()}
    assert len(blobs) == 2 + 20 * 3  # shared layers once; per image: layer, config, manifest
    assert all(sha(layer) in blobs for layer in shared)
    assert store.verify_all() == []
    assert store.ingests() == []


CLIENT = r"""
import http.client, sys, time
port, path, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)
conn.putrequest("PATCH", path)
conn.putheader("Content-Length", str(size))
conn.endheaders()
sent = 0
while True:
    conn.send(b"x" * 65536)
    sent += 65536
    if sent == 1 << 20:
        print("sent", flush=True)
    time.sleep(0.01)
"""


def test_client_killed_mid_upload_leaves_no_blob(tmp_path):
    with RegistryProcess(str(tmp_path)) as reg:
        location = call(reg.port, "POST", "/v2/r/blobs/uploads/")[1]["Location"]
        client = subprocess.Popen([sys.executable, "-c", CLIENT, str(reg.port), location,
                                   str(64 << 20)], stdout=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "sent"
        client.send_signal(signal.SIGKILL)
        client.wait()
        client.stdout.close()

        def settled():
            status, headers, _ = call(reg.port, "GET", location)
            return status == 204 and int(headers["Range"].split("-")[1]) >= (1 << 20) - 1
        assert wait_for(settled)
        assert list(ContentStore(str(tmp_path)).walk()) == []
        # what arrived is kept for a resume, and still refused under a digest it does not have
        status, _, body = call(reg.port, "PUT", f"{location}?digest={sha(b'other')}")
        assert status == 400 and json.loads(body)["errors"][0]["code"] == "DIGEST_INVALID"
        assert list(ContentStore(str(tmp_path)).walk()) == []


def test_registry_killed_mid_push_serves_every_completed_image(tmp_path):
    reg = RegistryProcess(str(tmp_path)).start()
    done = {f"app{i}": push_image(reg.port, f"app{i}", [os.urandom(200_000), b"common"])
            for i in range(3)}
    status, headers, _ = call(reg.port, "POST", "/v2/app9/blobs/uploads/")
    big = os.urandom(8 << 20)

    def slow_pieces():
        for i in range(0, len(big), 1 << 18):
            yield big[i:i + (1 << 18)]
            time.sleep(0.02)

    def push_in_flight():
        try:
            call(reg.port, "PATCH", headers["Location"], slow_pieces(), chunked=True)
        except (OSError, http.client.HTTPException):
            pass

    flight = threading.Thread(target=push_in_flight)
    flight.start()
    time.sleep(0.3)
    reg.stop(signal.SIGKILL)
    flight.join(30)
    reg = RegistryProcess(str(tmp_path), port=reg.port).start()
    try:
        for repo, manifest in done.items():
            check_image(reg.port, repo, manifest)
        assert call(reg.port, "HEAD", f"/v2/app9/blobs/{sha(big)}")[0] == 404
        status, hdrs, _ = call(reg.port, "GET", headers["Location"])
        assert status == 204  # the session outlived the crash, with what had arrived
        store = ContentStore(str(tmp_path))
        assert store.verify_all() == [] and not store.exists(sha(big))
    finally:
        reg.stop()


def test_wrong_size_or_digest_is_refused(tmp_path):
    with RegistryProcess(str(tmp_path)) as reg:
        location = call(reg.port, "POST", "/v2/r/blobs/uploads/")[1]["Location"]
        status, _, body = call(reg.port, "PATCH", location, b"y" * 50,
                               {"Content-Range": "0-99"})
        assert status == 416
        assert call(reg.port, "GET", location)[1]["Range"] == "0-0"
        data = b"z" * 100
        status, _, body = call(reg.port, "PUT", f"{location}?digest={sha(data + b'z')}", data)
        assert status == 400 and json.loads(body)["errors"][0]["code"] == "DIGEST_INVALID"
        assert list(ContentStore(str(tmp_path)).walk()) == []
        push_blob(reg.port, "r", b"config")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": sha(b"config"), "size": 6},
                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                           "digest": sha(b"missing"), "size": 7}]}).encode()
        status, _, body = call(reg.port, "PUT", "/v2/r/manifests/t", manifest,
                               {"Content-Type": OCI_MANIFEST})
        assert status == 400
        assert json.loads(body)["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"


def test_gc_running_during_pushes_takes_nothing_they_need(tmp_path):
    gc_runs, stop = [], threading.Event()

    def collect_in_a_loop():
        while not stop.is_set():
            done = subprocess.run([sys.executable, "-m", "knarr.registry", "gc", "--root",
                                   str(tmp_path)], capture_output=True, text=True)
            gc_runs.append(done.returncode)

    with RegistryProcess(str(tmp_path)) as reg:
        # garbage for the collector to find: a blob linked nowhere any more
        orphan = push_blob(reg.port, "junk", os.urandom(100_000))
        call(reg.port, "DELETE", f"/v2/junk/blobs/{orphan}")
        collector = threading.Thread(target=collect_in_a_loop)
        collector.start()
        try:
            shared = os.urandom(1 << 20)
            pushed = {f"app{i}": push_image(reg.port, f"app{i}", [shared, os.urandom(50_000)])
                      for i in range(8)}
        finally:
            stop.set()
            collector.join(60)
        assert gc_runs and set(gc_runs) == {0}
        for repo, manifest in pushed.items():
            check_image(reg.port, repo, manifest)
        assert not ContentStore(str(tmp_path)).exists(orphan)
