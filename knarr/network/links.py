"""Bridges and container endpoints (veth pairs), configured over rtnetlink.

Every function here runs on the engine's network thread: the ones that enter a
container's namespace move that thread and bring it back.
"""

import errno
import ipaddress
import os
import socket

from knarr.network import netns
from knarr.network.dns import DNS_ADDRESS
from knarr.network.netlink import Netlink

__all__ = ["ensure_bridge", "delete_bridge", "attach", "detach", "mac_for", "link_exists",
           "dns_socket"]


def mac_for(address: str) -> str:
    """Docker's MAC for an address: 02:42 and the four bytes of the IPv4 address."""
    packed = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def link_exists(name: str) -> bool:
    """Whether a link of that name exists in the calling thread's namespace."""
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def _sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        pass


def ensure_bridge(nl: Netlink, name: str, gateway: str | None, prefixlen: int,
                  mtu: int) -> None:
    """The bridge `name`, up, with the gateway address (made if missing)."""
    if not link_exists(name):
        try:
            nl.add_bridge(name, mtu)
        except FileExistsError:
            pass
    nl.set_link(name, up=True)
    if gateway:
        try:
            nl.add_address(name, gateway, prefixlen)
        except FileExistsError:
            pass
    # 127.0.0.1:PORT DNAT'd to a container needs loopback sources routed out the bridge
    _sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")


def delete_bridge(nl: Netlink, name: str) -> None:
    """Remove a bridge (gone already is fine)."""
    try:
        nl.delete_link(name)
    except OSError as exc:
        if exc.errno not in (errno.ENODEV, errno.ENOENT):
            raise


def dns_socket() -> socket.socket:
    """A UDP socket on 127.0.0.11:53 in the calling thread's namespace."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((DNS_ADDRESS, 53))
    sock.setblocking(False)
    return sock


def attach(host: Netlink, host_fd: int, path: str, new: bool, endpoint: dict,
           want_dns: bool, lo_up: bool = False) -> socket.socket | None:
    """Make the namespace at `path` (if `new`) and give it an interface on a bridge;
    its loopback is brought up too if `new` or `lo_up` (a namespace made just before).

    `endpoint`: {ifname, veth, bridge, ip, prefixlen, gateway (None: no default
    route), mac, mtu}. Returns the DNS socket if `want_dns`.
    """
    sock = None
    with netns.Entered(host_fd, path, create=new):
        inner = Netlink()
        try:
            if new or lo_up:
                inner.set_link("lo", up=True)
            inner.add_veth(endpoint["ifname"], endpoint["veth"], host_fd, endpoint["mtu"],
                           endpoint["mac"])
            inner.add_address(endpoint["ifname"], endpoint["ip"], endpoint["prefixlen"])
            if endpoint.get("gateway"):
                inner.add_default_route(endpoint["gateway"], endpoint["ifname"])
            if want_dns:
                sock = _bind_dns()
        finally:
            inner.close()
    host.set_link(endpoint["veth"], up=True, master=socket.if_nametoindex(endpoint["bridge"]))
    return sock


def _bind_dns() -> socket.socket | None:
    try:
        return dns_socket()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:  # another network's endpoint already serves it
            return None
        raise


def enter_dns_socket(host_fd: int, path: str) -> socket.socket | None:
    """Bind the DNS socket again in an existing namespace (after a daemon restart)."""
    with netns.Entered(host_fd, path):
        return _bind_dns()


def detach(host: Netlink, veth: str) -> None:
    """Remove a container's interface by its host end (gone already is fine)."""
    try:
        host.delete_link(veth)
    except OSError as exc:
        if exc.errno not in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
            raise


def remove_sandbox(host: Netlink, path: str, veths: list[str]) -> None:
    """Tear down a container's namespace: its veths first (at once, not when the
    kernel gets round to the namespace), then the namespace file."""
    for veth in veths:
        detach(host, veth)
    netns.remove(path)
    if os.path.exists(path):
        os.unlink(path)
