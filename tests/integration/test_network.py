"""Networking for real: published ports, user networks with names, isolation, DNS,
the predefined modes, teardown, live restore; the docker CLI against knarrd.

Every daemon here has its own bridge, nftables table and subnets (other tests
run daemons at the same time), and all traffic stays on this machine: the
host talks to containers, containers to each other and to a DNS server this
test runs on a loopback address.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request

import pytest
from test_api_support import (  # noqa: F401
    REPO,
    Daemon,
    bridge_ports,
    knarrd_fixture,
    wait_for,
)

pytestmark = pytest.mark.privileged

HTTPD = ["sh", "-c", "echo hello-$HOSTNAME > /tmp/index.html; exec httpd -f -p 80 -h /tmp"]
# busybox has no UDP server: a UDP echo in the host's python, run by chroot inside the
# container's network namespace (CAP_SYS_CHROOT is one of Docker's default capabilities)
UDP_ECHO = ["chroot", "/host", "python3", "-c",
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "s.bind(('0.0.0.0',53))\nwhile 1:\n d,a=s.recvfrom(512); s.sendto(d,a)"]


def free_port(proto: int = socket.SOCK_STREAM) -> int:
    sock = socket.socket(socket.AF_INET, proto)
    sock.bind(("0.0.0.0", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def knarr(daemon, *args, check=True, timeout=60) -> subprocess.CompletedProcess:
    """The knarr CLI against the test's daemon."""
    code = f"import sys; sys.path.insert(0, {REPO!r}); from knarr.cli.main import entry; entry()"
    proc = subprocess.run([sys.executable, "-IS", "-c", code, "-H", f"unix://{daemon.sock}",
                           *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def host_address(daemon) -> str:
    """One of the host's own non-loopback IPv4 addresses (not a knarr bridge's)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        dev, address = line.split()[1], line.split()[3].split("/")[0]
        if not dev.startswith(("kt", "kn-", "knarr", "docker", "cni", "br-", "veth")):
            return address
    return knarr(daemon, "network", "inspect", "-f",
                 "{{(index .IPAM.Config 0).Gateway}}", "bridge").stdout.strip()


def http_get(url: str) -> str:
    return urllib.request.urlopen(url, timeout=5).read().decode()


def udp_echo(address: str, port: int, payload: bytes) -> bytes:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    try:
        for _ in range(10):  # the server may still be starting
            sock.sendto(payload, (address, port))
            try:
                return sock.recvfrom(512)[0]
            except TimeoutError:
                continue
    finally:
        sock.close()
    return b""


def sh(daemon, network: str, script: str, *extra: str) -> subprocess.CompletedProcess:
    return knarr(daemon, "run", "--rm", "--network", network, *extra, "busybox", "sh", "-c",
                 script, check=False)


def test_published_ports_tcp_udp_and_random(knarrd):
    tcp_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    knarr(knarrd, "run", "-d", "--name", "web", "-p", f"{tcp_port}:80", "busybox", *HTTPD)
    name = knarr(knarrd, "inspect", "-f", "{{.Config.Hostname}}", "web").stdout.strip()
    for address in ("127.0.0.1", host_address(knarrd)):
        url = f"http://{address}:{tcp_port}/index.html"
        assert wait_for(lambda url=url: _try(http_get, url), timeout=10) == f"hello-{name}\n"
    knarr(knarrd, "run", "-d", "--name", "echo", "-v", "/:/host:ro", "-p",
          f"{udp_port}:53/udp", "busybox", *UDP_ECHO)
    assert udp_echo("127.0.0.1", udp_port, b"ping-1") == b"ping-1"
    assert udp_echo(host_address(knarrd), udp_port, b"ping-2") == b"ping-2"

    knarr(knarrd, "run", "-d", "--name", "all", "-P", "--expose", "80", "--expose", "81/udp",
          "busybox", *HTTPD)
    ports = knarr(knarrd, "port", "all").stdout.split("\n")
    tcp = [p for p in ports if p.startswith("80/tcp -> 0.0.0.0:")]
    assert tcp and any(p.startswith("81/udp -> 0.0.0.0:") for p in ports), ports
    public = int(tcp[0].rpartition(":")[2])
    assert public >= 32768
    assert knarr(knarrd, "port", "all", "80").stdout.strip() == f"0.0.0.0:{public}"
    assert wait_for(lambda: _try(http_get, f"http://127.0.0.1:{public}/index.html"))
    ps = knarr(knarrd, "ps", "--format", "{{.Ports}}", "-f", "name=web").stdout
    assert f"0.0.0.0:{tcp_port}->80/tcp" in ps

    taken = knarr(knarrd, "run", "-d", "-p", f"{tcp_port}:80", "busybox", "true", check=False)
    assert taken.returncode != 0 and "port is already allocated" in taken.stderr

    info = knarrd.client.inspect("web")["NetworkSettings"]
    assert info["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(tcp_port)}]
    bridge = info["Networks"]["bridge"]
    assert info["IPAddress"] == bridge["IPAddress"] and info["Gateway"] == bridge["Gateway"]
    assert info["MacAddress"] == bridge["MacAddress"] and info["SandboxKey"]
    hosts = knarr(knarrd, "exec", "web", "cat", "/etc/hosts").stdout
    assert f"{info['IPAddress']}\t{name}" in hosts


def _try(fn, *args):
    try:
        return fn(*args)
    except OSError:
        return None


def test_user_networks_names_aliases_isolation_internal(knarrd):
    knarr(knarrd, "network", "create", "--label", "team=a", "front")
    knarr(knarrd, "network", "create", "back")
    knarr(knarrd, "network", "create", "--internal", "vault")
    knarr(knarrd, "run", "-d", "--name", "api", "--network", "front", "--network-alias",
          "service", "busybox", *HTTPD)
    api = knarrd.client.inspect("api")
    ip = api["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    assert "service" in api["NetworkSettings"]["Networks"]["front"]["Aliases"]
    out = sh(knarrd, "front", "wget -qO- http://api/index.html && wget -qO- "
             "http://service/index.html && nslookup service && cat /etc/resolv.conf")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("hello-") == 2 and ip in out.stdout
    assert "nameserver 127.0.0.11" in out.stdout

    # another network: neither the name nor the address reaches api
    other = sh(knarrd, "back", f"nslookup api; wget -T 2 -qO- http://{ip}/index.html")
    assert other.returncode != 0 and "hello-" not in other.stdout
    default = sh(knarrd, "bridge", f"wget -T 2 -qO- http://{ip}/index.html")
    assert default.returncode != 0 and "hello-" not in default.stdout

    # --internal: no route out of the network, the host's address unreachable
    host = host_address(knarrd)
    vault = sh(knarrd, "vault", f"ping -c1 -W1 {host} 2>&1; ip route | grep -c default")
    assert "Network is unreachable" in vault.stdout and vault.stdout.endswith("\n0\n")

    # connect a running container to a second network; disconnect it again
    knarr(knarrd, "network", "connect", "--alias", "worker", "back", "api")
    assert sh(knarrd, "back", "wget -qO- http://worker/index.html").stdout.startswith("hello-")
    knarr(knarrd, "network", "disconnect", "back", "api")
    assert sh(knarrd, "back", "nslookup worker").returncode != 0

    listed = knarr(knarrd, "network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout
    assert {"bridge bridge", "host host", "none null", "front bridge"} <= set(listed.split("\n"))
    assert knarr(knarrd, "network", "ls", "-q", "-f", "label=team=a").stdout.count("\n") == 1
    inspect = json.loads(knarr(knarrd, "network", "inspect", "front").stdout)[0]
    assert api["Id"] in inspect["Containers"] and inspect["Labels"] == {"team": "a"}
    busy = knarr(knarrd, "network", "rm", "front", check=False)
    assert busy.returncode == 1 and "has active endpoints" in busy.stderr
    pre = knarr(knarrd, "network", "rm", "bridge", check=False)
    assert "pre-defined network and cannot be removed" in pre.stderr
    knarr(knarrd, "rm", "-f", "api")
    pruned = knarr(knarrd, "network", "prune", "-f").stdout
    assert {"front", "back", "vault"} <= set(pruned.split())
    assert knarr(knarrd, "network", "ls", "-q").stdout.count("\n") == 3


def test_none_host_and_container_modes(knarrd):
    none = sh(knarrd, "none", "ls /sys/class/net")
    assert none.stdout.split() == ["lo"]
    host = sh(knarrd, "host", "ls /sys/class/net")
    # other tests come and go with veths of their own: the steady interfaces must be there
    steady = {n for n in os.listdir("/sys/class/net")
              if not n.startswith(("kv", "veth", "kt", "kn-", "kb", "docker", "br-"))}
    seen = set(host.stdout.split())
    assert steady | {knarrd.bridge} <= seen, (steady, seen)
    knarr(knarrd, "run", "-d", "--name", "peer", "busybox", *HTTPD)
    joined = sh(knarrd, "container:peer", "wget -qO- http://127.0.0.1/index.html")
    assert joined.stdout.startswith("hello-")
    missing = knarr(knarrd, "run", "--rm", "--network", "nope", "busybox", "true", check=False)
    assert "network nope not found" in missing.stderr


class _DNS(threading.Thread):
    """A DNS server on a loopback address of this host: knarr's upstream in the test."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.queries = []

    def run(self) -> None:
        from knarr.network import dns

        while True:
            try:
                data, addr = self.sock.recvfrom(512)
            except OSError:
                return
            name = dns.parse_query(data)[2]
            self.queries.append(name)
            known = name.rstrip(".") == "upstream.knarr.test"
            self.sock.sendto(dns.answer(data, ["10.9.8.7"] if known else None), addr)


def test_dns_forwards_to_the_hosts_resolvers(tmp_path):
    # a loopback address of its own: another test run on this host may serve DNS at once
    upstream = f"127.0.{os.getpid() % 200 + 20}.{os.urandom(1)[0] % 200 + 20}"
    server = _DNS(upstream)
    server.start()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {upstream}\n")
    daemon = Daemon(tempfile.mkdtemp(prefix="knarrd-")).start()
    daemon.stop()
    daemon = Daemon(daemon.base)
    daemon.start("--bridge", daemon.bridge, "--nft-table", daemon.nft_table,
                 "--resolv-conf", str(resolv))
    try:
        knarr(daemon, "network", "create", "dnsnet")
        out = sh(daemon, "dnsnet", "nslookup upstream.knarr.test; nslookup nothing.knarr.test")
        assert "10.9.8.7" in out.stdout, out
        assert "upstream.knarr.test" in server.queries
        assert "nothing.knarr.test" in server.queries
    finally:
        server.sock.close()
        leftovers = daemon.teardown()
    assert not leftovers


def test_cycles_with_published_ports_leave_nothing(knarrd):
    knarr(knarrd, "network", "create", "--subnet", "10.217.33.0/24", "cycle")
    bridge = "kn-" + knarrd.client.get("/networks/cycle").json()["Id"][:12]
    knarrd.bridges.add(bridge)
    client = knarrd.client
    for _ in range(100):
        cid = client.create("busybox", ["true"], HostConfig={
            "NetworkMode": "cycle", "PortBindings": {"80/tcp": [{"HostPort": ""}],
                                                    "53/udp": [{"HostPort": ""}]}})
        assert client.post(f"/containers/{cid}/start").status == 204
        client.post(f"/containers/{cid}/wait")
        assert client.delete(f"/containers/{cid}").status == 204
    # the veths go in the background, right after each container (other tests' daemons
    # have veths of their own on this host: only this network's bridge is looked at)
    assert wait_for(lambda: bridge_ports(bridge) == []), bridge_ports(bridge)
    assert client.delete("/networks/cycle").status == 204
    assert wait_for(lambda: not os.path.exists(f"/sys/class/net/{bridge}"))
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"master {bridge} " not in links
    addresses = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True)
    assert "10.217.33." not in addresses.stdout
    ruleset = subprocess.run(["nft", "list", "table", "ip", knarrd.nft_table],
                             capture_output=True, text=True).stdout
    assert bridge not in ruleset and "elements" not in ruleset, ruleset
    assert os.listdir(os.path.join(knarrd.exec_root, "netns")) == []


def test_live_restore_keeps_ports_and_names(knarrd):
    port = free_port()
    knarr(knarrd, "network", "create", "keep")
    knarr(knarrd, "run", "-d", "--name", "kept", "--network", "keep", "-p", f"{port}:80",
          "busybox", *HTTPD)
    url = f"http://127.0.0.1:{port}/index.html"
    assert wait_for(lambda: _try(http_get, url))
    ip = knarrd.client.inspect("kept")["NetworkSettings"]["Networks"]["keep"]["IPAddress"]
    knarrd.kill9()
    assert _try(http_get, url)  # the kernel forwards without the daemon
    knarrd.start()
    assert knarrd.client.inspect("kept")["NetworkSettings"]["Networks"]["keep"]["IPAddress"] \
        == ip
    assert sh(knarrd, "keep", "wget -qO- http://kept/index.html").stdout.startswith("hello-")
    knarr(knarrd, "rm", "-f", "kept")
    assert wait_for(lambda: _try(http_get, url) is None)


DOCKERS = [d for d in ("/usr/bin/docker", "/usr/local/bin/docker") if os.path.exists(d)]


@pytest.mark.parametrize("docker", DOCKERS)
def test_docker_cli_creates_and_uses_networks(knarrd, docker):
    def run(*args, check=True):
        proc = subprocess.run([docker, "-H", f"unix://{knarrd.sock}", *args],
                              capture_output=True, text=True, timeout=60)
        assert not check or proc.returncode == 0, (args, proc.stderr)
        return proc

    run("network", "create", "--subnet", "10.217.44.0/24", "dnet")
    run("run", "-d", "--name", "dweb", "--network", "dnet", "--ip", "10.217.44.10",
        "--network-alias", "www", "-p", "127.0.0.1::80", "busybox", *HTTPD)
    port = run("port", "dweb", "80").stdout.strip()
    assert port.startswith("127.0.0.1:")
    assert wait_for(lambda: _try(http_get, f"http://{port}/index.html"))
    out = run("run", "--rm", "--network", "dnet", "busybox", "wget", "-qO-",
              "http://www/index.html").stdout
    assert out.startswith("hello-")
    info = json.loads(run("network", "inspect", "dnet").stdout)[0]
    assert info["IPAM"]["Config"][0]["Subnet"] == "10.217.44.0/24"
    assert [c["IPv4Address"] for c in info["Containers"].values()] == ["10.217.44.10/24"]
    assert "dnet" in run("network", "ls").stdout
    run("rm", "-f", "dweb")
    run("network", "rm", "dnet")
    assert "dnet" not in run("network", "ls").stdout


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose missing")
def test_docker_compose_up_down_with_a_network(knarrd, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "version: '3'\nservices:\n  web:\n    image: busybox\n"
        f"    command: {json.dumps(HTTPD)}\n    networks: [inner]\n"
        "  probe:\n    image: busybox\n    command: ['sleep', '300']\n    networks: [inner]\n"
        "networks:\n  inner: {}\n")
    env = dict(os.environ, DOCKER_HOST=f"unix://{knarrd.sock}")

    def compose(*args):
        proc = subprocess.run(["docker-compose", "-p", "kn", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc

    compose("up", "-d")
    assert knarrd.client.get("/networks/kn_inner").status == 200
    out = wait_for(lambda: knarr(knarrd, "exec", "kn_probe_1", "wget", "-qO-",
                                 "http://web/index.html", check=False).stdout)
    assert out.startswith("hello-")
    compose("down")
    assert knarrd.client.get("/networks/kn_inner").status == 404
