"""Helpers for the registry client tests: distribution 2.8 (Debian's docker-registry) on
127.0.0.1 with its own config and storage, a Bearer token server of the tests' own, fault
proxies, and images to seed it with. Holds no tests itself.
"""

import asyncio
import base64
import hashlib
import http.client
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

DISTRIBUTION = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Distribution:
    """docker-registry serve on 127.0.0.1:<free port>; optional TLS, htpasswd or token auth."""

    def __init__(self, base, *, tls: dict | None = None, htpasswd: str | None = None,
                 token: "TokenServer | None" = None) -> None:
        self.base = str(base)
        os.makedirs(self.base, exist_ok=True)
        self.port = free_port()
        self.tls, self.htpasswd, self.token = tls, htpasswd, token
        self.proc = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> str:
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.base}/data",
                 "  delete:", "    enabled: true", "http:", f"  addr: {self.addr}"]
        if self.tls:
            lines += ["  tls:", f"    certificate: {self.tls['cert']}",
                      f"    key: {self.tls['key']}"]
        if self.htpasswd:
            lines += ["auth:", "  htpasswd:", "    realm: knarr-test",
                      f"    path: {self.htpasswd}"]
        elif self.token:
            lines += ["auth:", "  token:", f"    realm: {self.token.url}/token",
                      "    service: knarr-test-registry", "    issuer: knarr-test-issuer",
                      f"    rootcertbundle: {self.token.cert}"]
        return "\n".join(lines) + "\n"

    def start(self) -> "Distribution":
        path = os.path.join(self.base, "config.yml")
        with open(path, "w") as f:
            f.write(self._config())
        self.log = open(os.path.join(self.base, "registry.log"), "wb")
        self.proc = subprocess.Popen([DISTRIBUTION, "serve", path], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"docker-registry did not listen: {self.log_text()}")

    def log_text(self) -> str:
        with open(os.path.join(self.base, "registry.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()

    def __enter__(self) -> "Distribution":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def skopeo_copy(src: str, dest: str, *flags: str) -> None:
    proc = subprocess.run(["skopeo", "copy", "--quiet", *flags, src, dest],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def manifest_digest(addr: str, repo: str, ref: str, *flags: str) -> str:
    proc = subprocess.run(["skopeo", "inspect", "--raw", *(flags or ["--tls-verify=false"]),
                           f"docker://{addr}/{repo}:{ref}"], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


# -- a Bearer token server ---------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues RS256 JWTs distribution accepts (x5c chain = its own self-signed cert) to
    user alice (password secret) for any scope, and to anyone for pull of `public/*`."""

    def __init__(self, base) -> None:
        self.base = str(base)
        self.key = os.path.join(self.base, "token.key")
        self.cert = os.path.join(self.base, "token.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", self.key, "-out", self.cert, "-days", "2",
                        "-subj", "/CN=knarr test token issuer"], check=True,
                       capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.issued: list[dict] = []
        self.refused = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                server.answer(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "TokenServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, handler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        user = None
        header = handler.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (name, password) != ("alice", "secret"):
                self.refused += 1
                handler.send_response(401)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            user = name
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = actions.split(",") if user else \
                [a for a in actions.split(",") if a == "pull" and name.startswith("public/")]
            access.append({"type": kind, "name": name, "actions": allowed})
        token = self.sign({"iss": "knarr-test-issuer", "sub": user or "",
                           "aud": query.get("service", [""])[0], "exp": int(time.time()) + 300,
                           "nbf": int(time.time()) - 10, "iat": int(time.time()),
                           "jti": os.urandom(8).hex(), "access": access})
        self.issued.append({"user": user, "access": access})
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def sign(self, claims: dict) -> str:
        head = _b64(json.dumps({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}).encode())
        signing = f"{head}.{_b64(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                             input=signing.encode(), check=True, capture_output=True).stdout
        return f"{signing}.{_b64(sig)}"


# -- TLS and htpasswd ------------------------------------------------------------

def make_certs(d) -> dict:
    """A test CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    d = str(d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=knarr distribution test CA")
    run("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.crt", "-days", "2", "-extfile", "san.ext")
    return {"cert": os.path.join(d, "srv.crt"), "key": os.path.join(d, "srv.key"),
            "ca": os.path.join(d, "ca.pem")}


def make_htpasswd(path) -> str:
    line = subprocess.run(["htpasswd", "-nbB", "alice", "secret"], capture_output=True,
                          text=True, check=True).stdout.strip()
    with open(path, "w") as f:
        f.write(line + "\n")
    return str(path)


# -- fault proxies -----------------------------------------------------------------

class FaultProxy:
    """A TCP proxy in front of a registry, in a thread with its own event loop.

    mode "cut": the first response carrying more than `after` body bytes of a blob
    is cut there (the connection closed); later connections pass untouched.
    mode "flip": one byte of the first big response, `after` bytes in, is inverted.
    """

    def __init__(self, upstream_port: int, mode: str, after: int = 300_000) -> None:
        self.upstream = upstream_port
        self.mode, self.after = mode, after
        self.port = free_port()
        self.faults = 0
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "FaultProxy":
        self.thread.start()
        self.ready.wait(10)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()
        self.server.close()

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        upward = asyncio.ensure_future(self._pipe(reader, up_writer, None))
        try:
            await self._pipe(up_reader, writer, self._fault)
        finally:
            upward.cancel()
            for w in (writer, up_writer):
                try:
                    w.close()
                except Exception:  # noqa: BLE001
                    pass

    async def _pipe(self, reader, writer, fault) -> None:
        seen = 0
        armed = fault is not None and self.faults == 0
        while True:
            data = await reader.read(65536)
            if not data:
                return
            if armed and self.faults == 0 and seen + len(data) > self.after:
                cut = self.after - seen
                if self.mode == "cut":
                    self.faults += 1
                    writer.write(data[:max(cut, 0)])
                    await writer.drain()
                    writer.transport.abort()
                    return
                data = bytearray(data)
                data[max(cut, 0)] ^= 0xFF
                data = bytes(data)
                self.faults += 1
            seen += len(data)
            writer.write(data)
            await writer.drain()

    def _fault(self):
        return True


def http_get(addr: str, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(addr, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read()


_ = ssl


def push_layout_raw(addr: str, repo: str, tag: str, layout: str) -> str:
    """Upload an OCI layout's single image byte for byte (skopeo would compress plain
    layers); return the manifest digest."""
    with open(os.path.join(layout, "index.json")) as f:
        mdesc = json.load(f)["manifests"][0]

    def blob(digest: str) -> bytes:
        with open(os.path.join(layout, "blobs", "sha256", digest[7:]), "rb") as f:
            return f.read()

    manifest = json.loads(blob(mdesc["digest"]))
    for desc in [manifest["config"], *manifest["layers"]]:
        conn = http.client.HTTPConnection(addr, timeout=30)
        conn.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
        resp = conn.getresponse()
        resp.read()
        location = urllib.parse.urlsplit(resp.getheader("Location"))
        target = f"{location.path}?{location.query}&digest={desc['digest']}"
        conn.request("PUT", target, body=blob(desc["digest"]),
                     headers={"Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 201, resp.status
        conn.close()
    conn = http.client.HTTPConnection(addr, timeout=30)
    conn.request("PUT", f"/v2/{repo}/manifests/{tag}", body=blob(mdesc["digest"]),
                 headers={"Content-Type": mdesc["mediaType"]})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 201, resp.status
    return mdesc["digest"]
