"""IPv4 address management, pure: subnets, gateways, the next free address.

Allocations themselves are stored by the engine; this module only reasons
about them. Addresses go round-robin after the last one handed out, so one
released a moment ago (its veth maybe still being torn down) is not reused at
once.
"""

import ipaddress

from knarr.errors import Conflict, InvalidArgument

__all__ = ["parse_subnet", "default_gateway", "next_free", "check_address", "pick_subnet",
           "overlaps", "bridge_subnet"]


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """A subnet in CIDR form; Docker's message when it is not one."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid CIDR address: {text}", subnet=text) from None
    if net.version != 4:
        raise InvalidArgument(f"only IPv4 subnets are supported: {text}", subnet=text)
    if net.prefixlen > 30:
        raise InvalidArgument(f"subnet {text} is too small for containers", subnet=text)
    return net


def default_gateway(net: ipaddress.IPv4Network) -> str:
    """The first host address of the subnet."""
    return str(net.network_address + 1)


def check_address(net: ipaddress.IPv4Network, address: str, what: str = "address") -> str:
    """An address inside the subnet that is neither its network nor broadcast address."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {address}", address=address) from None
    if ip not in net or ip in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"no configured subnet or ip-range contain the IP address "
                              f"{address}", address=address)
    return str(ip)


def next_free(net: ipaddress.IPv4Network, taken: set[str], after: str | None = None) -> str:
    """The first free host address after `after` (wrapping round); Conflict if none."""
    first = int(net.network_address) + 1
    last = int(net.broadcast_address) - 1
    size = last - first + 1
    start = int(ipaddress.IPv4Address(after)) + 1 - first if after else 0
    for step in range(size):
        candidate = str(ipaddress.IPv4Address(first + (start + step) % size))
        if candidate not in taken:
            return candidate
    raise Conflict(f"no available IPv4 addresses on this network's address pools: {net}",
                   subnet=str(net))


def overlaps(net: ipaddress.IPv4Network, used: list[ipaddress.IPv4Network]) -> bool:
    """Whether `net` overlaps any of `used`."""
    return any(net.overlaps(u) for u in used)


def pick_subnet(pool: str, prefixlen: int, used: list[ipaddress.IPv4Network]) -> str:
    """The first subnet of `prefixlen` in `pool` that overlaps nothing in `used`."""
    for net in ipaddress.ip_network(pool).subnets(new_prefix=prefixlen):
        if not overlaps(net, used):
            return str(net)
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among "
                   "the defaults to assign to the network", pool=pool)


def bridge_subnet(preferred: str, fallback_pool: str,
                  used: list[ipaddress.IPv4Network]) -> str:
    """A default bridge's subnet: `preferred` when it is free, else the first free /16 of
    `fallback_pool` (`used` holds what must not be taken, the user networks' pool too)."""
    net = ipaddress.ip_network(preferred)
    return str(net) if not overlaps(net, used) else pick_subnet(fallback_pool, 16, used)
