"""Shared by the engine's integration tests: a private knarrd and a raw API client.

Each test gets its own daemon with its own --root, --exec-root and socket, and
its own default bridge and nftables table (daemons of other tests run at the same
time); at the end every container is removed through the API, the daemon
stopped, and the test fails if any mount, cgroup, process, veth or network
namespace of it is left. The bridge and the table are then removed.
"""

import glob
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = f"import sys; sys.path.insert(0, {REPO!r}); from knarr.daemon.main import entry; entry()"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Response:
    def __init__(self, status: int, headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def message(self) -> str:
        return self.json()["message"]


class Client:
    """A small Engine API client over the daemon's unix socket."""

    def __init__(self, path: str, version: str = "v1.41") -> None:
        self.path = path
        self.prefix = f"/{version}" if version else ""

    def url(self, path: str, query: dict | None = None) -> str:
        query = {k: (json.dumps(v) if isinstance(v, dict) else v)
                 for k, v in (query or {}).items()}
        return self.prefix + path + ("?" + urllib.parse.urlencode(query) if query else "")

    def request(self, method: str, path: str, body=None, query: dict | None = None,
                timeout: float = 60) -> Response:
        conn = _UnixConnection(self.path, timeout)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, self.url(path, query), body=data, headers=headers)
        resp = conn.getresponse()
        out = Response(resp.status, resp.headers, resp.read())
        conn.close()
        return out

    def get(self, path: str, **query) -> Response:
        return self.request("GET", path, query=query)

    def post(self, path: str, body=None, **query) -> Response:
        return self.request("POST", path, body=body, query=query)

    def delete(self, path: str, **query) -> Response:
        return self.request("DELETE", path, query=query)

    def create(self, image: str, cmd: list[str] | None = None, name: str | None = None,
               **config) -> str:
        body = {"Image": image, **config}
        if cmd is not None:
            body["Cmd"] = cmd
        resp = self.request("POST", "/containers/create", body,
                            {"name": name} if name else None)
        assert resp.status == 201, resp.body
        return resp.json()["Id"]

    def run(self, image: str, cmd: list[str] | None = None, **config) -> str:
        cid = self.create(image, cmd, **config)
        resp = self.post(f"/containers/{cid}/start")
        assert resp.status == 204, resp.body
        return cid

    def inspect(self, cid: str) -> dict:
        resp = self.get(f"/containers/{cid}/json")
        assert resp.status == 200, resp.body
        return resp.json()

    def hijack(self, path: str, body=None, query: dict | None = None) -> tuple:
        """POST with Upgrade: tcp; return (socket, status line, headers text)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(self.path)
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"POST {self.url(path, query)} HTTP/1.1\r\nHost: localhost\r\n"
                f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        sock.sendall(head + data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        return sock, head.decode(), rest


def demux(data: bytes) -> dict[int, bytes]:
    """Split Docker's multiplexed stream into {stream: bytes}."""
    out: dict[int, bytes] = {1: b"", 2: b""}
    while len(data) >= 8:
        size = int.from_bytes(data[4:8], "big")
        out[data[0]] = out.get(data[0], b"") + data[8:8 + size]
        data = data[8 + size:]
    return out


def read_all(sock: socket.socket, initial: bytes = b"", timeout: float = 30) -> bytes:
    sock.settimeout(timeout)
    data = initial
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def cgroup_dirs(cid: str) -> list[str]:
    return glob.glob(f"/sys/fs/cgroup/*/knarr/{cid}") + \
        glob.glob(f"/sys/fs/cgroup/knarr/{cid}")


def processes_under(path: str) -> list[int]:
    """Processes whose working directory or root is below `path` (monitors, containers)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for link in ("cwd", "root"):
            try:
                target = os.readlink(f"/proc/{pid}/{link}")
            except OSError:
                continue
            if target.startswith(path):
                found.append(int(pid))
                break
    return found


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


class Daemon:
    """A knarrd of the test's own."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.root = os.path.join(base, "root")
        self.exec_root = os.path.join(base, "run")
        self.sock = os.path.join(base, "knarr.sock")
        self.proc: subprocess.Popen | None = None
        self.client = Client(self.sock)
        self.ids: set[str] = set()
        # one tag per state root: a test that restarts a daemon on the same roots with a
        # new Daemon object keeps the one bridge (and teardown removes it)
        tag = hashlib.sha256(os.path.realpath(base).encode()).hexdigest()[:8]
        self.bridge, self.nft_table = f"kt{tag}", f"knarr_t{tag}"
        self.bridges = {self.bridge}

    def start(self, *extra: str) -> "Daemon":
        self.log = open(os.path.join(self.base, "knarrd.log"), "ab")
        net = [] if "--bridge" in extra else ["--bridge", self.bridge, "--nft-table",
                                               self.nft_table]
        self.proc = subprocess.Popen(
            [sys.executable, "-IS", "-c", LAUNCH, "--root", self.root, "--exec-root",
             self.exec_root, "-H", f"unix://{self.sock}", *net, *extra], stdout=self.log,
            stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.client.get("/_ping").status == 200:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"knarrd exited: {self.log_text()}")
            time.sleep(0.02)
        raise AssertionError(f"knarrd did not answer: {self.log_text()}")

    def log_text(self) -> str:
        if getattr(self, "log_saved", None) is not None:
            return self.log_saved
        with open(os.path.join(self.base, "knarrd.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def all_ids(self) -> set[str]:
        ids = set(self.ids)
        containers = os.path.join(self.root, "containers")
        if os.path.isdir(containers):
            ids.update(os.listdir(containers))
        return ids

    def _remove_networks(self) -> None:
        """User-defined networks a test left: removed (their bridges noted first)."""
        for net in self.client.get("/networks").json():
            if net["Name"] in ("bridge", "host", "none"):
                continue
            self.bridges.add(net["Options"].get("com.docker.network.bridge.name") or
                             "kn-" + net["Id"][:12])
            self.client.delete(f"/networks/{net['Id']}")

    def teardown(self) -> list[str]:
        """Remove every container, stop, and say what was left behind."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                for c in self.client.get("/containers/json", all=1).json():
                    resp = self.client.delete(f"/containers/{c['Id']}", force=1)
                    if resp.status != 204:
                        problems.append(f"remove {c['Id']}: {resp.status} {resp.body!r}")
                self._remove_networks()
            except (OSError, http.client.HTTPException, ValueError) as exc:
                problems.append(f"remove containers: {exc!r}")
        ids = self.all_ids()
        self.stop()
        leftovers = problems + [f"mount {m}" for m in mounts_under(self.base)]
        leftovers += [f"veth {v}" for b in self.bridges for v in bridge_ports(b)]
        leftovers += [f"netns {n}" for n in netns_files(self.exec_root)]
        drop_network(self.bridges, self.nft_table)
        leftovers += [f"cgroup {d}" for cid in ids for d in cgroup_dirs(cid)]
        leftovers += [f"process {p}" for p in processes_under(self.base)]
        self.log_saved = self.log_text()
        _force_clean(self.base, ids)
        return leftovers


def bridge_ports(bridge: str) -> list[str]:
    """The interfaces enslaved to a bridge (its veths)."""
    try:
        return sorted(os.listdir(f"/sys/class/net/{bridge}/brif"))
    except OSError:
        return []


def netns_files(exec_root: str) -> list[str]:
    """Network namespace files a daemon left under its exec root."""
    try:
        return sorted(os.listdir(os.path.join(exec_root, "netns")))
    except OSError:
        return []


def drop_network(bridges, nft_table: str) -> None:
    """Remove a test daemon's bridges and nftables table."""
    for bridge in bridges:
        if os.path.exists(f"/sys/class/net/{bridge}"):
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        for way in ("-i", "-o"):  # accepts knarrd adds when iptables' FORWARD drops
            rule = [way, bridge, "-m", "comment", "--comment", f"knarr {bridge}", "-j", "ACCEPT"]
            while subprocess.run(["iptables", "-w", "-D", "FORWARD", *rule],
                                 capture_output=True).returncode == 0:
                pass
    subprocess.run(["nft", "delete", "table", "ip", nft_table], capture_output=True)


def _force_clean(base: str, ids: set[str]) -> None:
    for pid in processes_under(base):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
    for mount in sorted(mounts_under(base), reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    for cid in ids:
        for d in sorted(cgroup_dirs(cid), reverse=True):
            for sub in sorted(glob.glob(d + "/**/", recursive=True), reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(name="knarrd")
def knarrd_fixture():
    """A running knarrd with private roots; every trace of it checked and removed after."""
    base = tempfile.mkdtemp(prefix="knarrd-")
    daemon = Daemon(base).start()
    try:
        yield daemon
    finally:
        try:
            leftovers = daemon.teardown()
        except BaseException:
            print(daemon.log_text())
            raise
    assert not leftovers, f"left behind: {leftovers}\n{daemon.log_text()}"


def wait_for(predicate, timeout: float = 10, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
