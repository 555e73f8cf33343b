"""knarrd on TCP with mutual TLS, beside its unix socket."""

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import tempfile

import pytest
from test_api_support import Daemon

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _certs(d: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ca",
             "-keyout", f"{d}/ca-key.pem", "-out", f"{d}/ca.pem")
    with open(f"{d}/ext.cnf", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{d}/{name}-key.pem", "-out", f"{d}/{name}.csr")
        _openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey",
                 f"{d}/ca-key.pem", "-CAcreateserial", "-days", "1", "-out", f"{d}/{name}.pem",
                 "-extfile", f"{d}/ext.cnf")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mutual_tls_on_tcp():
    base = tempfile.mkdtemp(prefix="knarrd-")
    _certs(base)
    port = _free_port()
    daemon = Daemon(base).start("-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                                "--tlscacert", f"{base}/ca.pem", "--tlscert",
                                f"{base}/server.pem", "--tlskey", f"{base}/server-key.pem")
    try:
        context = ssl.create_default_context(cafile=f"{base}/ca.pem")
        context.load_cert_chain(f"{base}/client.pem", f"{base}/client-key.pem")
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        conn.request("GET", "/v1.41/_ping")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"OK"
        conn.close()
        anonymous = ssl.create_default_context(cafile=f"{base}/ca.pem")
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=anonymous, timeout=10)
            conn.request("GET", "/_ping")
            conn.getresponse().read()
        if shutil.which("docker"):
            env = dict(os.environ, DOCKER_CONFIG=f"{base}/docker-config")
            out = subprocess.run(["docker", "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                                  "--tlscacert", f"{base}/ca.pem", "--tlscert",
                                  f"{base}/client.pem", "--tlskey", f"{base}/client-key.pem",
                                  "run", "--rm", "hello-world"], capture_output=True, env=env,
                                 timeout=60)
            assert out.returncode == 0 and b"Hello from knarr!" in out.stdout, out.stderr
    finally:
        leftovers = daemon.teardown()
    assert not leftovers
