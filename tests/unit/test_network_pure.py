"""The pure parts of knarr.network: IPAM, the DNS codec, the nftables scripts."""

import ipaddress
import struct

import pytest

from knarr.errors import Conflict, InvalidArgument
from knarr.network import dns, firewall, ipam


def test_next_free_goes_round_robin_and_wraps():
    net = ipam.parse_subnet("10.1.2.0/29")
    taken = {"10.1.2.1"}
    assert ipam.next_free(net, taken) == "10.1.2.2"
    assert ipam.next_free(net, taken, after="10.1.2.4") == "10.1.2.5"
    assert ipam.next_free(net, taken | {"10.1.2.6"}, after="10.1.2.5") == "10.1.2.2"
    full = {f"10.1.2.{i}" for i in range(1, 7)}
    with pytest.raises(Conflict, match="no available IPv4 addresses"):
        ipam.next_free(net, full)


def test_subnets_and_addresses_are_checked():
    with pytest.raises(InvalidArgument, match="invalid CIDR address: nope"):
        ipam.parse_subnet("nope")
    net = ipam.parse_subnet("10.5.0.7/24")
    assert str(net) == "10.5.0.0/24" and ipam.default_gateway(net) == "10.5.0.1"
    assert ipam.check_address(net, "10.5.0.9") == "10.5.0.9"
    for bad in ("10.5.1.9", "10.5.0.0", "10.5.0.255"):
        with pytest.raises(InvalidArgument, match="no configured subnet"):
            ipam.check_address(net, bad)


def test_pick_subnet_skips_what_is_used():
    used = [ipaddress.ip_network("10.118.0.0/24"), ipaddress.ip_network("10.118.1.0/25")]
    assert ipam.pick_subnet("10.118.0.0/15", 24, used) == "10.118.2.0/24"
    with pytest.raises(Conflict, match="non-overlapping"):
        ipam.pick_subnet("10.118.0.0/24", 24, used)


def test_default_bridge_subnet_never_takes_the_user_networks_pool():
    user_pool = ipaddress.ip_network("10.118.0.0/15")
    assert ipam.bridge_subnet("10.117.0.0/16", "10.96.0.0/11", [user_pool]) == "10.117.0.0/16"
    # bridges of other daemons hold 10.96-10.117: the next one skips 10.118-10.119
    used = [ipaddress.ip_network(f"10.{n}.0.0/16") for n in range(96, 118)] + [user_pool]
    assert ipam.bridge_subnet("10.117.0.0/16", "10.96.0.0/11", used) == "10.120.0.0/16"


def _query(name: str, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + b"\0" + \
        struct.pack("!HH", qtype, 1)


def test_dns_answers_a_records_and_nxdomain():
    query = _query("web.app")
    ident, flags, name, qtype, qclass, end = dns.parse_query(query)
    assert (ident, name, qtype, qclass, end) == (0x1234, "web.app", 1, 1, len(query))
    reply = dns.answer(query, ["10.0.0.2", "10.0.0.3"])
    ident, flags, qd, an = struct.unpack_from("!HHHH", reply)
    assert (ident, flags & 0x8000, flags & 0xF, qd, an) == (0x1234, 0x8000, 0, 1, 2)
    assert reply.endswith(ipaddress.IPv4Address("10.0.0.3").packed)
    missing = dns.answer(query, None)
    assert struct.unpack_from("!H", missing, 2)[0] & 0xF == 3
    aaaa = dns.answer(_query("web.app", 28), ["10.0.0.2"])
    assert struct.unpack_from("!H", aaaa, 6)[0] == 0  # no IPv6 records: empty, not an error
    with pytest.raises(ValueError):
        dns.parse_query(b"\0" * 5)


def test_read_resolvers(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("# x\nsearch lan\nnameserver 10.0.0.53\nnameserver 127.0.0.53\n")
    assert dns.read_resolvers(str(path)) == ["10.0.0.53", "127.0.0.53"]
    assert dns.read_resolvers(str(tmp_path / "none")) == []


def test_network_rules_isolate_and_keep_internal_in():
    script = firewall.networks_script("knarr_t", [
        {"bridge": "kn-a", "subnet": "10.1.0.0/24"},
        {"bridge": "kn-b", "subnet": "10.2.0.0/24", "internal": True}])
    assert script.startswith("flush chain ip knarr_t postrouting\n")
    assert 'add element ip knarr_t bridges { "kn-a", "kn-b" }' in script
    assert 'ip saddr 10.1.0.0/24 oifname != "kn-a" oifname != @bridges masquerade' in script
    assert 'forward iifname "kn-a" oifname @bridges oifname != "kn-a" drop' in script
    assert 'forward iifname "kn-b" oifname != "kn-b" drop' in script
    assert "10.2.0.0/24" not in script  # an internal network is never masqueraded


def test_port_elements():
    ports = [{"host_ip": "", "host_port": 8080, "proto": "tcp", "ip": "10.1.0.2", "port": 80},
             {"host_ip": "127.0.0.1", "host_port": 53, "proto": "udp", "ip": "10.1.0.2",
              "port": 53}]
    assert firewall.ports_script("t", "add", ports) == (
        "add element ip t pub { tcp . 8080 : 10.1.0.2 . 80 }\n"
        "add element ip t pubip { 127.0.0.1 . udp . 53 : 10.1.0.2 . 53 }\n")
    assert firewall.ports_script("t", "delete", ports[:1]) == \
        "delete element ip t pub { tcp . 8080 }\n"
