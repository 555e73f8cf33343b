"""The registry client in-process against distribution 2.8: chunked uploads, redirects to
blob storage on another host, and zstd and uncompressed layers. No daemon: the pull and the
push run against an image store of the test's own."""

import hashlib
import http.client
import http.server
import json
import os
import subprocess
import threading

import pytest
from distribution_support import Distribution, manifest_digest, push_layout_raw, skopeo_copy
from test_registry_support import write_blob

from knarr.distribution import Hosts, Puller, Pusher
from knarr.images import ImageStore, builtin, unpack
from knarr.oci import reference

pytestmark = pytest.mark.privileged


@pytest.fixture()
def store(tmp_path):
    images = ImageStore(str(tmp_path / "store"))
    yield images
    images.close()


def _pull(store, ref: str, hosts=None):
    puller = Puller(hosts or Hosts(), store.content,
                    lambda s, label: unpack.extract_layer(store.snapshots, s, label=label),
                    store.snapshots.remove, store.snapshots.exists, max_concurrent=1)
    with store.content.lease("pull") as lease:
        pulled = puller.pull(reference.parse(ref), lease=lease)
        unpack.make_durable(store.root)
        return store.register(pulled.manifest, pulled.config, pulled.names,
                              extracted=pulled.extracted)


def test_chunked_push_and_pull_back(store, tmp_path):
    image_id = builtin.busybox(store)
    row = store.records.get(image_id)
    assert row["layers"][0]["size"] > 4 * 65536
    with Distribution(tmp_path / "reg") as reg:
        target = reference.parse(f"{reg.addr}/chunked/box:v1")
        events = []
        digest = Pusher(Hosts(), store.content, chunk_size=65536).push(target, row,
                                                                        emit=events.append)
        assert digest == row["manifest"] == manifest_digest(reg.addr, "chunked/box", "v1")
        assert {"progressDetail": {}, "aux": {"Tag": "v1", "Digest": digest,
                                              "Size": store.content.info(digest).size}} \
            in events
        skopeo_copy(f"docker://{target}", f"oci:{tmp_path / 'out'}:v1", "--src-tls-verify=false")
        other = ImageStore(str(tmp_path / "other"))
        try:
            assert _pull(other, str(target)) == image_id
        finally:
            other.close()


def test_push_of_a_layer_kept_as_a_recipe(store, tmp_path):
    """A loaded plain layer is kept as its snapshot and a layer recipe (no blob); made
    again and checked before a push (as the engine's push does), it pushes the digests the
    archive had, and pulls back to the same image. A snapshot changed since is refused
    before anything is sent."""
    import io

    from knarr.errors import FailedPrecondition
    from knarr.images import load
    big = os.urandom(6 << 20)
    layer = builtin.layer_tar([("d", "dir", 0o755, b""), ("d/big", "file", 0o644, big),
                               ("d/" + "n" * 140, "file", 0o600, b"long")])
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    members = {config_name: config, "l/layer.tar": layer,
               "manifest.json": json.dumps([{"Config": config_name, "RepoTags": ["r:1"],
                                             "Layers": ["l/layer.tar"]}]).encode()}
    archive = builtin.layer_tar([(name, "file", 0o644, data) for name, data in members.items()])
    image_id = load(store, io.BytesIO(archive))[0]["Id"]
    row = store.records.get(image_id)
    assert row["layers"][0]["digest"] == diff_id and not store.content.exists(diff_id)
    with Distribution(tmp_path / "reg") as reg:
        chain = store.chain_ids(image_id)[0]
        victim = os.path.join(store.snapshots.path(chain), "d", "big")
        with open(victim, "r+b") as f:
            f.write(b"X" if big[:1] != b"X" else b"Y")
        with pytest.raises(FailedPrecondition, match=f"layer {diff_id}: snapshot {chain}"):
            store.materialize(image_id)
        assert not store.content.exists(diff_id)
        with open(victim, "r+b") as f:
            f.write(big[:1])
        store.materialize(image_id)
        target = reference.parse(f"{reg.addr}/recipe/r:v1")
        digest = Pusher(Hosts(), store.content).push(target, row)
        assert digest == row["manifest"] == manifest_digest(reg.addr, "recipe/r", "v1")
        other = ImageStore(str(tmp_path / "other"))
        try:
            assert _pull(other, str(target)) == image_id
            assert other.get(image_id)["layers"][0]["digest"] == diff_id
            with other.content.open(diff_id) as blob:
                assert blob.read() == layer
        finally:
            other.close()


class _Redirector:
    """A registry front that answers blob GETs with 307 to the real registry (another host:
    port, as blob storage would be) and relays everything else; records the Authorization
    headers the redirected requests arrive with."""

    def __init__(self, upstream: str) -> None:
        owner = self
        self.redirects = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                if "/blobs/sha256:" in self.path:
                    owner.redirects += 1
                    self.send_response(307)
                    self.send_header("Location", f"http://{upstream}{self.path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request("GET", self.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                self.send_response(resp.status)
                for name, value in resp.getheaders():
                    if name.lower() not in ("content-length", "connection",
                                            "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                conn.close()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _layout_with(tmp_path, compressions: list[str]) -> tuple[str, str]:
    """An OCI layout with one layer per compression ("zstd", "gzip", "none")."""
    import io
    import tarfile

    layout = str(tmp_path / "layout")
    descs, diff_ids = [], []
    for i, kind in enumerate(compressions):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            data = f"layer {i} {kind}\n".encode() + os.urandom(200_000)
            info = tarfile.TarInfo(f"etc/layer-{i}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        plain = raw.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(plain).hexdigest())
        if kind == "zstd":
            blob = subprocess.run(["zstd", "-q", "-c"], input=plain, capture_output=True,
                                  check=True).stdout
            media = "application/vnd.oci.image.layer.v1.tar+zstd"
        elif kind == "gzip":
            import gzip

            blob, media = gzip.compress(plain), "application/vnd.oci.image.layer.v1.tar+gzip"
        else:
            blob, media = plain, "application/vnd.oci.image.layer.v1.tar"
        descs.append({"mediaType": media, **write_blob(layout, blob)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      **write_blob(layout, config)},
                           "layers": descs}).encode()
    mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             **write_blob(layout, manifest),
             "annotations": {"org.opencontainers.image.ref.name": "latest"}}
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
    return layout, mdesc["digest"]


def test_redirects_and_every_compression(store, tmp_path):
    layout, digest = _layout_with(tmp_path, ["zstd", "none", "gzip"])
    with Distribution(tmp_path / "reg") as reg:
        assert push_layout_raw(reg.addr, "mixed/img", "v1", layout) == digest
        front = _Redirector(reg.addr)
        try:
            image_id = _pull(store, f"{front.addr}/mixed/img:v1")
        finally:
            front.stop()
        assert front.redirects == 4  # the config and three layers
        row = store.records.get(image_id)
        assert row["manifest"] == digest == manifest_digest(reg.addr, "mixed/img", "v1")
        pushed = json.loads(store.content.read(row["manifest"]))
        assert [d["mediaType"].rsplit(".", 1)[-1] for d in pushed["layers"]] == \
            ["tar+zstd", "tar", "tar+gzip"]
        chain = store.chain_ids(image_id)[-1]
        top = store.snapshots.path(chain)
        assert open(os.path.join(top, "etc", "layer-2"), "rb").read().startswith(b"layer 2 gzip")
        lower = store.snapshots.path(store.chain_ids(image_id)[0])
        assert open(os.path.join(lower, "etc", "layer-0"), "rb").read().startswith(b"layer 0 zstd")
