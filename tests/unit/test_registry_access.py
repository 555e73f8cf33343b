"""Registry access: htpasswd Basic auth, signed Bearer tokens and their scopes, TLS, read-only."""

import base64
import http.client
import json
import os
import ssl
import subprocess
import threading

import pytest

from knarr.registry.app import Registry
from knarr.registry.auth import TokenIssuer, apr1, parse_scope, verify_hash
from knarr.registry.http import Server

DIGEST = "sha256:" + "0" * 64


def serve(root, context=None, **kwargs):
    server = Server(("127.0.0.1", 0), Registry(str(root), tls=context is not None, **kwargs),
                    context)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server


@pytest.fixture
def stop():
    servers = []
    yield servers.append
    for server in servers:
        server.shutdown()
        server.server_close()


def request(port, method, path, body=None, headers=None, context=None):
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.headers, data


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def htpasswd(tmp_path):
    path = tmp_path / "htpasswd"
    lines = [f"alice:{apr1('secret', 'saltsalt')}"]
    try:
        out = subprocess.run(["htpasswd", "-nbB", "bob", "hunter2"], capture_output=True,
                             text=True, check=True).stdout.strip()
        lines.append(out)
    except (FileNotFoundError, subprocess.CalledProcessError):
        pass
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_apr1_matches_apache():
    # `htpasswd -nbm alice secret` with the salt DvjRG9q9
    assert apr1("secret", "DvjRG9q9") == "$apr1$DvjRG9q9$N7AeIsYPeBHDX1e3DlV/k."


def test_hash_formats():
    assert verify_hash("secret", "$apr1$DvjRG9q9$N7AeIsYPeBHDX1e3DlV/k.")
    assert verify_hash("secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=")
    bcrypt = "$2y$05$jvvysRMKmQWotqyIkI2x9.55.qARTwtI7Swa2pnjkV8e0P2uPx1eC"
    assert verify_hash("secret", bcrypt) and not verify_hash("wrong", bcrypt)
    assert not verify_hash("secret", "secret")


def test_basic_auth(tmp_path, stop, htpasswd):
    server = serve(tmp_path / "root", htpasswd=htpasswd)
    stop(server)
    port = server.server_address[1]
    status, headers, data = request(port, "GET", "/v2/")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    assert json.loads(data)["errors"][0]["code"] == "UNAUTHORIZED"
    assert request(port, "GET", "/v2/", headers=basic("alice", "wrong"))[0] == 401
    assert request(port, "GET", "/v2/", headers=basic("alice", "secret"))[0] == 200
    status, _, _ = request(port, "POST", f"/v2/r/blobs/uploads/?digest={DIGEST}", b"",
                           basic("alice", "secret"))
    assert status == 400  # authorised; the digest is simply wrong
    if "bob" in open(htpasswd).read():
        assert request(port, "GET", "/v2/", headers=basic("bob", "hunter2"))[0] == 200


def _token(port, scope, auth):
    status, _, data = request(port, "GET", f"/token?service=knarr-registry&scope={scope}",
                              headers=auth)
    assert status == 200, data
    return {"Authorization": "Bearer " + json.loads(data)["token"]}


def test_bearer_tokens_and_scopes(tmp_path, stop, htpasswd):
    server = serve(tmp_path / "root", htpasswd=htpasswd, token_key=b"k" * 32)
    stop(server)
    port = server.server_address[1]
    status, headers, data = request(port, "GET", "/v2/r/tags/list")
    assert status == 401
    challenge = headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="http://127.0.0.1:{port}/token"')
    assert 'service="knarr-registry"' in challenge and 'scope="repository:r:pull"' in challenge
    assert request(port, "GET", "/token?scope=repository:r:pull")[0] == 401
    assert request(port, "GET", "/token?scope=repository:r:pull",
                   headers=basic("alice", "nope"))[0] == 401
    pull = _token(port, "repository:r:pull", basic("alice", "secret"))
    assert request(port, "GET", "/v2/", headers=pull)[0] == 200
    assert request(port, "GET", "/v2/r/tags/list", headers=pull)[0] == 404  # allowed, empty
    status, _, data = request(port, "POST", "/v2/r/blobs/uploads/", headers=pull)
    assert (status, json.loads(data)["errors"][0]["code"]) == (403, "DENIED")
    status, headers, _ = request(port, "GET", "/v2/other/tags/list", headers=pull)
    assert status == 401 and "repository:other:pull" in headers["WWW-Authenticate"]
    push = _token(port, "repository:r:pull,push", basic("alice", "secret"))
    assert request(port, "POST", "/v2/r/blobs/uploads/", headers=push)[0] == 202
    assert request(port, "DELETE", f"/v2/r/blobs/{DIGEST}", headers=push)[0] == 403
    assert request(port, "GET", "/v2/_catalog", headers=push)[0] == 401
    catalog = _token(port, "registry:catalog:*", basic("alice", "secret"))
    assert request(port, "GET", "/v2/_catalog", headers=catalog)[0] == 200
    forged = {"Authorization": push["Authorization"][:-4] + "AAAA"}
    assert request(port, "POST", "/v2/r/blobs/uploads/", headers=forged)[0] == 401


def test_token_signature_and_expiry():
    issuer = TokenIssuer(b"key", ttl=-10)
    token, _ = issuer.issue("alice", [])
    assert issuer.check(token) is None
    good, _ = TokenIssuer(b"key").issue("alice", [])
    assert TokenIssuer(b"key").check(good)["sub"] == "alice"
    assert TokenIssuer(b"other").check(good) is None
    assert parse_scope("repository:a/b:pull,push") == ("repository", "a/b", ["pull", "push"])


def test_read_only_refuses_writes(tmp_path, stop):
    server = serve(tmp_path / "root", read_only=True)
    stop(server)
    port = server.server_address[1]
    assert request(port, "GET", "/v2/")[0] == 200
    for method, path in [("POST", "/v2/r/blobs/uploads/"), ("PUT", "/v2/r/manifests/t"),
                         ("DELETE", f"/v2/r/blobs/{DIGEST}")]:
        status, _, data = request(port, method, path, b"{}")
        assert (status, json.loads(data)["errors"][0]["code"]) == (405, "UNSUPPORTED")


def make_certs(directory) -> tuple[str, str, str]:
    """A test CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    d = str(directory)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=d)  # noqa: E731
    run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=knarr test CA")
    run("openssl", "req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.crt", "-days", "2", "-extfile", "san.ext")
    return (os.path.join(d, "ca.crt"), os.path.join(d, "srv.crt"), os.path.join(d, "srv.key"))


def test_tls(tmp_path, stop):
    ca, cert, key = make_certs(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = serve(tmp_path / "root", context, token_key=b"k" * 32)
    stop(server)
    port = server.server_address[1]
    client = ssl.create_default_context(cafile=ca)
    status, headers, _ = request(port, "GET", "/v2/", context=client)
    assert status == 401 and f'realm="https://127.0.0.1:{port}/token"' in headers[
        "WWW-Authenticate"]
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        request(port, "GET", "/v2/")  # plain HTTP on a TLS port gets nowhere
    assert request(port, "GET", "/v2/", context=client)[0] == 401  # still serving
