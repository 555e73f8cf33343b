"""The embedded DNS server of user-defined networks.

Each container on such a network gets a UDP socket bound to 127.0.0.11:53 in
its own network namespace, owned and served by the daemon (as Docker does).
Names of containers on the container's networks (name, aliases, short id)
are answered here; everything else is relayed to the host's resolvers.
"""

import asyncio
import ipaddress
import logging
import random
import struct

__all__ = ["parse_query", "answer", "DNSServer", "read_resolvers", "DNS_ADDRESS"]

DNS_ADDRESS = "127.0.0.11"
_A, _AAAA, _IN = 1, 28, 1
_TTL = 600
log = logging.getLogger("knarr.network.dns")


def parse_query(packet: bytes) -> tuple[int, int, str, int, int, int]:
    """(id, flags, name, qtype, qclass, end of the question) of a query; ValueError if bad."""
    if len(packet) < 12:
        raise ValueError("short dns packet")
    ident, flags, qdcount = struct.unpack_from("!HHH", packet)
    if qdcount != 1:
        raise ValueError("one question expected")
    labels, offset = [], 12
    while True:
        if offset >= len(packet):
            raise ValueError("truncated name")
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(packet[offset:offset + length].decode("ascii", "replace"))
        offset += length
    qtype, qclass = struct.unpack_from("!HH", packet, offset)
    return ident, flags, ".".join(labels), qtype, qclass, offset + 4


def answer(packet: bytes, addresses: list[str] | None) -> bytes:
    """The response to `packet`: A records for `addresses`, NXDOMAIN for None."""
    ident, flags, name, qtype, _qclass, end = parse_query(packet)
    rd = flags & 0x0100
    rcode = 3 if addresses is None else 0
    records = [a for a in addresses or [] if qtype == _A]
    header = struct.pack("!HHHHHH", ident, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1,
                         len(records), 0, 0)
    body = packet[12:end]
    for address in records:
        body += struct.pack("!HHHIH", 0xC00C, _A, _IN, _TTL, 4) + \
            ipaddress.IPv4Address(address).packed
    return header + body


def read_resolvers(path: str) -> list[str]:
    """The nameserver addresses of a resolv.conf."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    out.append(parts[1])
    except OSError:
        pass
    return out


class _Relay(asyncio.DatagramProtocol):
    def __init__(self, future: asyncio.Future, ident: int) -> None:
        self.future, self.ident = future, ident

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) >= 2 and struct.unpack_from("!H", data)[0] == self.ident and \
                not self.future.done():
            self.future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


async def relay(packet: bytes, servers: list[str], timeout: float = 2.0) -> bytes | None:
    """Ask the upstream servers in turn; their answer with the client's id, or None."""
    loop = asyncio.get_running_loop()
    ident = struct.unpack_from("!H", packet)[0]
    ours = random.getrandbits(16)
    query = struct.pack("!H", ours) + packet[2:]
    for server in servers:
        host, _, port = server.partition("#")
        future = loop.create_future()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda future=future: _Relay(future, ours), remote_addr=(host, int(port or 53)))
        except OSError:
            continue
        try:
            transport.sendto(query)
            reply = await asyncio.wait_for(future, timeout)
            return struct.pack("!H", ident) + reply[2:]
        except (TimeoutError, OSError):
            continue
        finally:
            transport.close()
    return None


class DNSServer(asyncio.DatagramProtocol):
    """Serves one container's socket; `lookup(name)` gives addresses or None."""

    def __init__(self, lookup, upstream) -> None:
        self.lookup, self.upstream = lookup, upstream
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            _ident, _flags, name, qtype, _qclass, _end = parse_query(data)
        except (ValueError, struct.error):
            return
        addresses = self.lookup(name.rstrip(".").lower())
        if addresses is not None:
            self.transport.sendto(answer(data, addresses if qtype == _A else []), addr)
            return
        asyncio.get_running_loop().create_task(self._forward(data, addr))

    async def _forward(self, data: bytes, addr) -> None:
        reply = await relay(data, self.upstream())
        if reply is None:
            reply = answer(data, None)
            reply = reply[:3] + bytes([(reply[3] & 0xF0) | 2]) + reply[4:]  # SERVFAIL
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)
