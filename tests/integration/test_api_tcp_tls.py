"""knarrd on TCP with mutual TLS beside its unix socket; plain TCP only when asked for.

Certificates come from scripts/make-certs, the documented way to make them.
"""

import os
import socket
import ssl
import subprocess
import sys
import tempfile

import docker
import pytest
import requests
from test_api_support import LAUNCH, REPO, Daemon

pytestmark = [pytest.mark.privileged]
CLIS = ("/usr/bin/docker", "/usr/local/bin/docker")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tls_daemon():
    """A knarrd on a unix socket and on tcp://127.0.0.1:PORT with --tlsverify."""
    base = tempfile.mkdtemp(prefix="knarrd-")
    certs = os.path.join(base, "certs")
    subprocess.run([os.path.join(REPO, "scripts", "make-certs"), certs], check=True,
                   capture_output=True)
    port = _free_port()
    daemon = Daemon(base).start("-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                                "--tlscacert", f"{certs}/ca.pem", "--tlscert",
                                f"{certs}/server-cert.pem", "--tlskey",
                                f"{certs}/server-key.pem")
    daemon.certs, daemon.port = certs, port
    try:
        yield daemon
    finally:
        leftovers = daemon.teardown()
    assert not leftovers


@pytest.mark.parametrize("cli", CLIS)
def test_docker_cli_over_mutual_tls(tls_daemon, cli):
    d = tls_daemon
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=f"tcp://127.0.0.1:{d.port}", DOCKER_TLS_VERIFY="1",
               DOCKER_CERT_PATH=d.certs, DOCKER_CONFIG=f"{d.base}/docker-config")
    out = subprocess.run([cli, "run", "--rm", "hello-world"], capture_output=True, env=env,
                         timeout=60)
    assert out.returncode == 0 and b"Hello from knarr!" in out.stdout, out.stderr
    flags = subprocess.run([cli, "-H", f"tcp://127.0.0.1:{d.port}", "--tlsverify",
                            "--tlscacert", f"{d.certs}/ca.pem", "--tlscert",
                            f"{d.certs}/cert.pem", "--tlskey", f"{d.certs}/key.pem", "run",
                            "--rm", "-i", "busybox", "cat"], input=b"over tls\n",
                           capture_output=True, env={"PATH": env["PATH"],
                                                     "DOCKER_CONFIG": env["DOCKER_CONFIG"]},
                           timeout=60)
    assert flags.returncode == 0 and flags.stdout == b"over tls\n", flags.stderr
    env.pop("DOCKER_CERT_PATH")
    env["HOME"] = d.base  # no ~/.docker/{ca,cert,key}.pem there: no client certificate
    bare = subprocess.run([cli, "--tls", "ps"], capture_output=True, env={**env,
                          "DOCKER_TLS_VERIFY": ""}, timeout=60)
    assert bare.returncode != 0


def test_docker_py_over_mutual_tls(tls_daemon, monkeypatch):
    d = tls_daemon
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests lets these win over
        monkeypatch.delenv(name, raising=False)          # the session's own CA
    tls = docker.tls.TLSConfig(client_cert=(f"{d.certs}/cert.pem", f"{d.certs}/key.pem"),
                               ca_cert=f"{d.certs}/ca.pem", verify=True)
    client = docker.DockerClient(base_url=f"https://127.0.0.1:{d.port}", tls=tls,
                                 version="auto")
    try:
        assert client.ping() is True
        out = client.containers.run("busybox", ["echo", "hello over tls"], remove=True)
        assert out == b"hello over tls\n"
        assert client.version()["ApiVersion"] == "1.50"
    finally:
        client.close()
    anonymous = docker.tls.TLSConfig(ca_cert=f"{d.certs}/ca.pem", verify=True)
    stranger = docker.DockerClient(base_url=f"https://127.0.0.1:{d.port}", tls=anonymous,
                                   version="1.41")
    with pytest.raises(requests.exceptions.SSLError):
        stranger.ping()
    stranger.close()


def test_a_certificate_from_another_ca_is_refused(tls_daemon, tmp_path):
    d = tls_daemon
    other = str(tmp_path / "other")
    subprocess.run([os.path.join(REPO, "scripts", "make-certs"), other], check=True,
                   capture_output=True)
    context = ssl.create_default_context(cafile=f"{d.certs}/ca.pem")
    context.load_cert_chain(f"{other}/cert.pem", f"{other}/key.pem")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            if not tls.recv(100):
                raise ConnectionError("closed")
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as raw:
        raw.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP on the TLS port
        try:
            assert b"200 OK" not in raw.recv(100)
        except ConnectionError:
            pass


def _knarrd(base: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-IS", "-c", LAUNCH, "--root", f"{base}/root",
                             "--exec-root", f"{base}/run", "-H", f"unix://{base}/k.sock",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_plain_tcp_needs_the_insecure_flag(tmp_path):
    port = _free_port()
    refused = _knarrd(str(tmp_path / "a"), "-H", f"tcp://127.0.0.1:{port}")
    out, _ = refused.communicate(timeout=30)
    assert refused.returncode != 0
    assert b"refusing to listen on tcp://127.0.0.1:%d without TLS" % port in out
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    daemon = Daemon(str(tmp_path / "b"))
    os.makedirs(daemon.base)
    daemon.start("-H", f"tcp://127.0.0.1:{port}", "--insecure-tcp")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /v1.41/_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert b"200 OK" in s.recv(4096)
        assert "without TLS (--insecure-tcp)" in daemon.log_text()
    finally:
        leftovers = daemon.teardown()
    assert not leftovers
