"""The registry against the OCI distribution spec v1.1, endpoint by endpoint.

Written from the spec: every endpoint, the statuses it answers with, its
headers (Location, Docker-Content-Digest, Range, OCI-Subject, Link) and the
JSON error codes. The server runs in this process on a free port, each test
with its own root.
"""

import hashlib
import http.client
import json
import os
import threading

import pytest

from knarr.registry.app import Registry
from knarr.registry.http import Server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


class Client:
    """Plain HTTP/1.1 requests, one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def __call__(self, method, path, body=None, headers=None, chunked=False):
        headers = dict(headers or {})
        try:
            self.conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
            resp = self.conn.getresponse()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
            resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data

    def error_code(self, data: bytes) -> str:
        return json.loads(data)["errors"][0]["code"]


def sha(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def serve(root, **kwargs):
    app = Registry(str(root), **kwargs)
    server = Server(("127.0.0.1", 0), app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return server


@pytest.fixture
def server(tmp_path):
    srv = serve(tmp_path / "root")
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def c(server):
    return Client(server.server_address[1])


def push_blob(c, repo, data, algorithm="sha256"):
    digest = sha(data, algorithm)
    status, headers, body = c("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
    assert status == 201, body
    return digest


def manifest_for(c, repo, layers=(b"layer-a",), config=b"{}", media_type=OCI_MANIFEST,
                 **extra):
    cfg = push_blob(c, repo, config)
    descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
              "digest": push_blob(c, repo, layer), "size": len(layer)} for layer in layers]
    doc = {"schemaVersion": 2, "mediaType": media_type,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": cfg, "size": len(config)},
           "layers": descs, **extra}
    return json.dumps(doc).encode()


def put_manifest(c, repo, ref, body, media_type=OCI_MANIFEST):
    return c("PUT", f"/v2/{repo}/manifests/{ref}", body, {"Content-Type": media_type})


# base


def test_base_endpoint_answers_200_with_the_api_version(c):
    status, headers, _ = c("GET", "/v2/")
    assert status == 200
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_unknown_path_is_404(c):
    assert c("GET", "/nothing")[0] == 404


# blob uploads


def test_monolithic_post_creates_the_blob(c):
    data = os.urandom(3000)
    digest = sha(data)
    status, headers, _ = c("POST", f"/v2/a/b/blobs/uploads/?digest={digest}", data)
    assert status == 201
    assert headers["Location"] == f"/v2/a/b/blobs/{digest}"
    assert headers["Docker-Content-Digest"] == digest
    status, headers, body = c("GET", headers["Location"])
    assert (status, body, headers["Docker-Content-Digest"]) == (200, data, digest)
    status, headers, body = c("HEAD", f"/v2/a/b/blobs/{digest}")
    assert (status, body, headers["Content-Length"]) == (200, b"", "3000")


def test_post_then_put(c):
    data = b"post then put"
    status, headers, _ = c("POST", "/v2/r/blobs/uploads/")
    assert status == 202
    location = headers["Location"]
    assert headers["Range"] == "0-0" and headers["Docker-Upload-UUID"] in location
    status, headers, _ = c("PUT", f"{location}?digest={sha(data)}", data)
    assert status == 201 and headers["Docker-Content-Digest"] == sha(data)
    assert c("GET", f"/v2/r/blobs/{sha(data)}")[2] == data


def test_chunked_patches_with_content_range_and_status(c):
    data = os.urandom(5000)
    location = c("POST", "/v2/r/blobs/uploads/")[1]["Location"]
    for start in range(0, 5000, 2000):
        chunk = data[start:start + 2000]
        status, headers, _ = c("PATCH", location, chunk,
                               {"Content-Range": f"{start}-{start + len(chunk) - 1}"})
        assert status == 202
        assert headers["Range"] == f"0-{start + len(chunk) - 1}"
        location = headers["Location"]
    status, headers, _ = c("GET", location)
    assert status == 204 and headers["Range"] == "0-4999"
    assert c("PUT", f"{location}?digest={sha(data)}")[0] == 201
    assert c("GET", f"/v2/r/blobs/{sha(data)}")[2] == data


def test_out_of_order_chunk_is_416_and_the_upload_goes_on(c):
    data = os.urandom(3000)
    location = c("POST", "/v2/r/blobs/uploads/")[1]["Location"]
    c("PATCH", location, data[:1000], {"Content-Range": "0-999"})
    status, headers, body = c("PATCH", location, data[2000:], {"Content-Range": "2000-2999"})
    assert status == 416
    assert headers["Location"] == location and headers["Range"] == "0-999"
    assert c.error_code(body) == "BLOB_UPLOAD_INVALID"
    assert c("PATCH", location, data[:500], {"Content-Range": "0-499"})[0] == 416
    assert c("PATCH", location, data[1000:2000], {"Content-Range": "1000-1999"})[0] == 202
    status, _, _ = c("PUT", f"{location}?digest={sha(data)}", data[2000:],
                     {"Content-Range": "2000-2999"})
    assert status == 201
    assert c("GET", f"/v2/r/blobs/{sha(data)}")[2] == data


def test_streamed_patch_with_chunked_transfer_coding(c):
    pieces = [os.urandom(70000) for _ in range(5)]
    data = b"".join(pieces)
    location = c("POST", "/v2/r/blobs/uploads/")[1]["Location"]
    status, headers, _ = c("PATCH", location, iter(pieces), chunked=True)
    assert status == 202 and headers["Range"] == f"0-{len(data) - 1}"
    assert c("PUT", f"{headers['Location']}?digest={sha(data)}")[0] == 201
    assert c("GET", f"/v2/r/blobs/{sha(data)}")[2] == data


def test_sha512_blobs(c):
    data = os.urandom(1000)
    digest = push_blob(c, "r", data, "sha512")
    assert digest.startswith("sha512:")
    status, headers, body = c("GET", f"/v2/r/blobs/{digest}")
    assert (status, body, headers["Docker-Content-Digest"]) == (200, data, digest)
    location = c("POST", "/v2/r/blobs/uploads/")[1]["Location"]
    c("PATCH", location, data, {"Content-Range": "0-999"})
    assert c("PUT", f"{location}?digest={sha(data + b'x', 'sha512')}")[0] == 400


def test_wrong_digest_is_refused_and_leaves_no_blob(c, server):
    data = b"the real bytes"
    wrong = sha(b"other bytes")
    status, _, body = c("POST", f"/v2/r/blobs/uploads/?digest={wrong}", data)
    assert (status, c.error_code(body)) == (400, "DIGEST_INVALID")
    assert c("HEAD", f"/v2/r/blobs/{wrong}")[0] == 404
    assert c("HEAD", f"/v2/r/blobs/{sha(data)}")[0] == 404
    store = server.app.storage.content
    assert not store.exists(sha(data)) and not store.exists(wrong)


@pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "0" * 32, "nonsense"])
def test_malformed_digest_is_digest_invalid(c, digest):
    status, _, body = c("POST", f"/v2/r/blobs/uploads/?digest={digest}", b"x")
    assert (status, c.error_code(body)) == (400, "DIGEST_INVALID")


def test_put_without_digest_is_digest_invalid(c):
    location = c("POST", "/v2/r/blobs/uploads/")[1]["Location"]
    status, _, body = c("PUT", location, b"x")
    assert (status, c.error_code(body)) == (400, "DIGEST_INVALID")


def test_cancel_upload_then_it_is_unknown(c):
    location = c("POST", "/v2/r/blobs/uploads/")[1]["Location"]
    c("PATCH", location, b"some", {"Content-Range": "0-3"})
    assert c("DELETE", location)[0] == 204
    status, _, body = c("GET", location)
    assert (status, c.error_code(body)) == (404, "BLOB_UPLOAD_UNKNOWN")
    status, _, body = c("PATCH", "/v2/r/blobs/uploads/" + "0" * 32, b"x")
    assert (status, c.error_code(body)) == (404, "BLOB_UPLOAD_UNKNOWN")
    assert c("GET", "/v2/r/blobs/uploads/not-a-uuid")[0] == 404


def test_upload_belongs_to_its_repository(c):
    location = c("POST", "/v2/one/blobs/uploads/")[1]["Location"]
    other = location.replace("/v2/one/", "/v2/two/")
    assert c("GET", other)[0] == 404


def test_empty_blob(c):
    digest = push_blob(c, "r", b"")
    status, headers, body = c("GET", f"/v2/r/blobs/{digest}")
    assert (status, body, headers["Content-Length"]) == (200, b"", "0")


# blob reads


@pytest.mark.parametrize("spec,status,part", [
    ("bytes=500-1499", 206, slice(500, 1500)),
    ("bytes=500-", 206, slice(500, None)),
    ("bytes=-500", 206, slice(1548, None)),
    ("bytes=2000-5000", 206, slice(2000, None)),
    ("bytes=500-0", 416, None),
    ("bytes=5000-10000", 416, None),
])
def test_blob_range_requests(c, spec, status, part):
    data = os.urandom(2048)
    digest = push_blob(c, "r", data)
    got, headers, body = c("GET", f"/v2/r/blobs/{digest}", headers={"Range": spec})
    assert got == status
    if status == 206:
        assert body == data[part]
        start = part.start
        assert headers["Content-Range"] == f"bytes {start}-{start + len(body) - 1}/2048"
        assert headers["Content-Length"] == str(len(body))


def test_unknown_blob_is_blob_unknown(c):
    digest = sha(b"never pushed")
    status, _, body = c("GET", f"/v2/r/blobs/{digest}")
    assert (status, c.error_code(body)) == (404, "BLOB_UNKNOWN")
    assert c("HEAD", f"/v2/r/blobs/{digest}")[0] == 404


def test_blob_is_visible_only_in_repositories_that_link_it(c):
    digest = push_blob(c, "one", b"private to one")
    assert c("HEAD", f"/v2/two/blobs/{digest}")[0] == 404


def test_delete_blob(c):
    digest = push_blob(c, "r", b"to delete")
    assert c("DELETE", f"/v2/r/blobs/{digest}")[0] == 202
    assert c("HEAD", f"/v2/r/blobs/{digest}")[0] == 404
    status, _, body = c("DELETE", f"/v2/r/blobs/{digest}")
    assert (status, c.error_code(body)) == (404, "BLOB_UNKNOWN")


# mounts


def test_cross_repository_mount(c):
    digest = push_blob(c, "src", b"shared layer")
    status, headers, _ = c("POST", f"/v2/dst/blobs/uploads/?mount={digest}&from=src")
    assert status == 201
    assert headers["Location"] == f"/v2/dst/blobs/{digest}"
    assert headers["Docker-Content-Digest"] == digest
    assert c("GET", f"/v2/dst/blobs/{digest}")[2] == b"shared layer"


def test_mount_of_a_missing_blob_starts_an_upload(c):
    digest = sha(b"nowhere")
    status, headers, _ = c("POST", f"/v2/dst/blobs/uploads/?mount={digest}&from=src")
    assert status == 202 and "/blobs/uploads/" in headers["Location"]


def test_anonymous_mount_finds_the_blob_by_digest(c):
    digest = push_blob(c, "src", b"anon", "sha512")
    status, _, _ = c("POST", f"/v2/dst/blobs/uploads/?mount={digest}")
    assert status == 201
    assert c("GET", f"/v2/dst/blobs/{digest}")[2] == b"anon"


# manifests


def test_manifest_put_get_head_by_tag_and_digest(c):
    body = manifest_for(c, "r")
    status, headers, _ = put_manifest(c, "r", "v1", body)
    digest = sha(body)
    assert status == 201
    assert headers["Location"] == f"/v2/r/manifests/{digest}"
    assert headers["Docker-Content-Digest"] == digest
    for ref in ("v1", digest):
        status, headers, got = c("GET", f"/v2/r/manifests/{ref}")
        assert (status, got) == (200, body)
        assert headers["Content-Type"] == OCI_MANIFEST
        assert headers["Docker-Content-Digest"] == digest
        status, headers, got = c("HEAD", f"/v2/r/manifests/{ref}")
        assert (status, got, headers["Content-Length"]) == (200, b"", str(len(body)))


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST, OCI_MANIFEST])
def test_manifest_content_type_follows_the_media_type(c, media_type):
    body = manifest_for(c, "r", media_type=media_type)
    assert put_manifest(c, "r", "t", body, media_type)[0] == 201
    assert c("GET", "/v2/r/manifests/t")[1]["Content-Type"] == media_type


def test_manifest_without_media_type_keeps_the_content_type(c):
    doc = json.loads(manifest_for(c, "r"))
    del doc["mediaType"]
    body = json.dumps(doc).encode()
    assert put_manifest(c, "r", "t", body, DOCKER_MANIFEST)[0] == 201
    assert c("GET", "/v2/r/manifests/t")[1]["Content-Type"] == DOCKER_MANIFEST


def test_media_type_mismatch_is_manifest_invalid(c):
    body = manifest_for(c, "r")
    status, _, data = put_manifest(c, "r", "t", body, DOCKER_MANIFEST)
    assert (status, c.error_code(data)) == (400, "MANIFEST_INVALID")


@pytest.mark.parametrize("list_type", [OCI_INDEX, DOCKER_LIST])
def test_index_and_manifest_list(c, list_type):
    child = manifest_for(c, "r", media_type=DOCKER_MANIFEST if list_type == DOCKER_LIST
                         else OCI_MANIFEST)
    child_type = json.loads(child)["mediaType"]
    assert put_manifest(c, "r", sha(child), child, child_type)[0] == 201
    index = json.dumps({"schemaVersion": 2, "mediaType": list_type, "manifests": [
        {"mediaType": child_type, "digest": sha(child), "size": len(child),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    assert put_manifest(c, "r", "multi", index, list_type)[0] == 201
    status, headers, body = c("GET", "/v2/r/manifests/multi")
    assert (status, body, headers["Content-Type"]) == (200, index, list_type)


def test_index_naming_a_missing_manifest_is_refused(c):
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(b"missing"), "size": 7}]}).encode()
    status, _, data = put_manifest(c, "r", "multi", index, OCI_INDEX)
    assert (status, c.error_code(data)) == (400, "MANIFEST_BLOB_UNKNOWN")


def test_manifest_naming_a_missing_blob_is_manifest_blob_unknown(c):
    doc = json.loads(manifest_for(c, "r"))
    doc["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                          "digest": sha(b"not pushed"), "size": 10})
    status, _, data = put_manifest(c, "r", "t", json.dumps(doc).encode())
    assert (status, c.error_code(data)) == (400, "MANIFEST_BLOB_UNKNOWN")
    assert json.loads(data)["errors"][0]["detail"]["digest"] == sha(b"not pushed")
    assert c("GET", "/v2/r/manifests/t")[0] == 404


def test_non_distributable_layers_need_not_be_pushed(c):
    doc = json.loads(manifest_for(c, "r"))
    doc["layers"].append({
        "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "digest": sha(b"elsewhere"), "size": 9, "urls": ["https://example.com/x"]})
    assert put_manifest(c, "r", "t", json.dumps(doc).encode())[0] == 201


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"schemaVersion": 2, "layers": 3}'])
def test_malformed_manifest_is_manifest_invalid(c, body):
    status, _, data = put_manifest(c, "r", "t", body)
    assert (status, c.error_code(data)) == (400, "MANIFEST_INVALID")


def test_manifest_put_by_a_digest_it_does_not_have(c):
    body = manifest_for(c, "r")
    status, _, data = put_manifest(c, "r", sha(body + b"  "), body)
    assert (status, c.error_code(data)) == (400, "DIGEST_INVALID")
    status, _, data = put_manifest(c, "r", "sha256:baddigeststring", body)
    assert (status, c.error_code(data)) == (400, "DIGEST_INVALID")


def test_sha512_manifest_by_digest(c):
    doc = json.loads(manifest_for(c, "r"))
    body = json.dumps(doc).encode()
    digest = sha(body, "sha512")
    status, headers, _ = put_manifest(c, "r", digest, body)
    assert status == 201 and headers["Docker-Content-Digest"] == digest
    status, headers, got = c("GET", f"/v2/r/manifests/{digest}")
    assert (status, got, headers["Docker-Content-Digest"]) == (200, body, digest)


def test_tag_parameters_on_a_digest_push(c):
    body = manifest_for(c, "r")
    status, headers, _ = put_manifest(c, "r", f"{sha(body)}?tag=a&tag=b", body)
    assert status == 201 and headers["OCI-Tag"] == "a, b"
    assert json.loads(c("GET", "/v2/r/tags/list")[2])["tags"] == ["a", "b"]


def test_missing_manifest_repository_and_bad_name(c):
    status, _, data = c("GET", "/v2/nothing/manifests/latest")
    assert (status, c.error_code(data)) == (404, "NAME_UNKNOWN")
    put_manifest(c, "r", "v1", manifest_for(c, "r"))
    status, _, data = c("GET", "/v2/r/manifests/missing")
    assert (status, c.error_code(data)) == (404, "MANIFEST_UNKNOWN")
    status, _, data = c("GET", f"/v2/r/manifests/{sha(b'x')}")
    assert (status, c.error_code(data)) == (404, "MANIFEST_UNKNOWN")
    status, _, data = c("GET", "/v2/Bad_Name/manifests/latest")
    assert (status, c.error_code(data)) == (400, "NAME_INVALID")
    status, _, data = put_manifest(c, "r", "bad:tag:", b"{}")
    assert status == 400


def test_delete_tag_then_manifest(c):
    body = manifest_for(c, "r")
    put_manifest(c, "r", "v1", body)
    put_manifest(c, "r", "v2", body)
    assert c("DELETE", "/v2/r/manifests/v1")[0] == 202
    assert c("HEAD", "/v2/r/manifests/v1")[0] == 404
    assert c("HEAD", "/v2/r/manifests/v2")[0] == 200
    assert c("DELETE", f"/v2/r/manifests/{sha(body)}")[0] == 202
    assert c("HEAD", f"/v2/r/manifests/{sha(body)}")[0] == 404
    assert c("HEAD", "/v2/r/manifests/v2")[0] == 404
    status, _, data = c("DELETE", f"/v2/r/manifests/{sha(body)}")
    assert (status, c.error_code(data)) == (404, "MANIFEST_UNKNOWN")


def test_large_manifest_up_to_4_mib(c):
    doc = json.loads(manifest_for(c, "r"))
    doc["annotations"] = {f"a{i}": "A" * 10000 for i in range(400)}
    body = json.dumps(doc).encode()
    assert put_manifest(c, "r", "big", body)[0] == 201
    assert c("GET", "/v2/r/manifests/big")[2] == body


# listing


def test_tags_list_paginates_with_link(c):
    body = manifest_for(c, "r")
    for tag in ["c", "a", "b", "d"]:
        put_manifest(c, "r", tag, body)
    status, headers, data = c("GET", "/v2/r/tags/list")
    assert (status, json.loads(data)) == (200, {"name": "r", "tags": ["a", "b", "c", "d"]})
    assert "Link" not in headers
    status, headers, data = c("GET", "/v2/r/tags/list?n=2")
    assert json.loads(data)["tags"] == ["a", "b"]
    assert headers["Link"] == '</v2/r/tags/list?n=2&last=b>; rel="next"'
    status, headers, data = c("GET", "/v2/r/tags/list?n=2&last=b")
    assert json.loads(data)["tags"] == ["c", "d"] and "Link" not in headers
    assert json.loads(c("GET", "/v2/r/tags/list?last=c")[2])["tags"] == ["d"]
    assert json.loads(c("GET", "/v2/r/tags/list?n=0")[2])["tags"] == []
    status, _, data = c("GET", "/v2/none/tags/list")
    assert (status, c.error_code(data)) == (404, "NAME_UNKNOWN")


def test_catalog_paginates_with_link(c):
    for repo in ["x/b", "a", "x/a"]:
        push_blob(c, repo, b"anything")
    assert json.loads(c("GET", "/v2/_catalog")[2]) == {"repositories": ["a", "x/a", "x/b"]}
    status, headers, data = c("GET", "/v2/_catalog?n=1")
    assert json.loads(data)["repositories"] == ["a"]
    assert headers["Link"] == '</v2/_catalog?n=1&last=a>; rel="next"'
    assert json.loads(c("GET", "/v2/_catalog?n=5&last=a")[2])["repositories"] == ["x/a", "x/b"]


# referrers


def test_referrers_list_filter_and_subject_header(c):
    subject = manifest_for(c, "r")
    put_manifest(c, "r", "image", subject)
    subject_desc = {"mediaType": OCI_MANIFEST, "digest": sha(subject), "size": len(subject)}
    empty = push_blob(c, "r", b"{}")
    artifacts = []
    for kind in ("application/vnd.example.sbom", "application/vnd.example.sig"):
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
               "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty,
                          "size": 2},
               "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty,
                           "size": 2}],
               "subject": subject_desc, "annotations": {"k": kind}}
        body = json.dumps(doc).encode()
        status, headers, _ = put_manifest(c, "r", sha(body), body)
        assert status == 201 and headers["OCI-Subject"] == sha(subject)
        artifacts.append(body)
    status, headers, data = c("GET", f"/v2/r/referrers/{sha(subject)}")
    assert status == 200 and headers["Content-Type"] == OCI_INDEX
    index = json.loads(data)
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    assert {m["digest"] for m in index["manifests"]} == {sha(a) for a in artifacts}
    assert {m["artifactType"] for m in index["manifests"]} == {
        "application/vnd.example.sbom", "application/vnd.example.sig"}
    status, headers, data = c(
        "GET", f"/v2/r/referrers/{sha(subject)}?artifactType=application/vnd.example.sig")
    assert headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in json.loads(data)["manifests"]] == [sha(artifacts[1])]
    c("DELETE", f"/v2/r/manifests/{sha(artifacts[0])}")
    data = c("GET", f"/v2/r/referrers/{sha(subject)}")[2]
    assert [m["digest"] for m in json.loads(data)["manifests"]] == [sha(artifacts[1])]


def test_referrers_of_an_unknown_subject_is_an_empty_index(c):
    status, _, data = c("GET", f"/v2/nothing/referrers/{sha(b'x')}")
    assert status == 200 and json.loads(data)["manifests"] == []
    status, _, data = c("GET", "/v2/nothing/referrers/sha256:nope")
    assert (status, c.error_code(data)) == (400, "DIGEST_INVALID")


def test_method_not_allowed_is_unsupported(c):
    status, _, data = c("PATCH", "/v2/r/tags/list", b"")
    assert (status, c.error_code(data)) == (405, "UNSUPPORTED")


def test_malformed_chunked_body_is_refused(server):
    import socket

    port = server.server_address[1]
    c = Client(port)
    location = c("POST", "/v2/r/blobs/uploads/")[1]["Location"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((f"PATCH {location} HTTP/1.1\r\nHost: x\r\n"
                      "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n").encode())
        reply = sock.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 400") and "BLOB_UPLOAD_INVALID" in reply
    assert c("GET", location)[0] == 204


def test_size_invalid_for_an_oversized_manifest_and_an_unsatisfiable_range(c):
    status, _, data = put_manifest(c, "r", "huge", b" " * (8 << 20) + b"{}")
    assert (status, c.error_code(data)) == (413, "SIZE_INVALID")
    digest = push_blob(c, "r", b"short")
    status, headers, data = c("GET", f"/v2/r/blobs/{digest}", headers={"Range": "bytes=10-20"})
    assert (status, c.error_code(data)) == (416, "SIZE_INVALID")
    assert headers["Content-Range"] == "bytes */5"
