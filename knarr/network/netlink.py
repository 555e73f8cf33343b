"""rtnetlink requests on a plain socket, messages encoded by pyroute2.

pyroute2's IPRoute runs an asyncio loop per call (about a millisecond each on
this machine); a container start makes half a dozen requests, so knarr sends
pyroute2's encoded messages itself and reads the kernel's acknowledgement.
The socket belongs to the network namespace it was opened in.
"""

import os
import socket
import struct

from knarr import installed

__all__ = ["Netlink", "IFF_UP"]

IFF_UP = 1
_NLMSG_ERROR = 2
_F_REQUEST, _F_ACK, _F_EXCL, _F_CREATE = 0x1, 0x4, 0x200, 0x400
_RTM_NEWLINK, _RTM_DELLINK, _RTM_NEWADDR, _RTM_NEWROUTE = 16, 17, 20, 24
_AF_INET = 2


def _messages():
    # Imported on first use: pyroute2 takes a third of a second to load.
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        # knarrd's launcher starts Python without site (-S)
        installed.add_site_packages()
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    return ifinfmsg, ifaddrmsg, rtmsg


class Netlink:
    """An rtnetlink socket in the calling thread's network namespace."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self.sock.bind((0, 0))
        self.seq = 0
        self.ifinfmsg, self.ifaddrmsg, self.rtmsg = _messages()

    def close(self) -> None:
        self.sock.close()

    def _request(self, msg, kind: int, flags: int, what: str) -> None:
        self.seq += 1
        header = msg["header"]
        header.update(type=kind, flags=flags | _F_REQUEST | _F_ACK, sequence_number=self.seq,
                      pid=0)
        msg.encode()
        self.sock.send(msg.data)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset < len(data):
                length, typ, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
                if typ == _NLMSG_ERROR and seq == self.seq:
                    err = struct.unpack_from("=i", data, offset + 16)[0]
                    if err:
                        raise OSError(-err, f"{what}: {os.strerror(-err)}")
                    return
                offset += (length + 3) & ~3
                if length == 0:
                    break

    def _link(self, index: int = 0, flags: int = 0, change: int = 0, attrs=()):
        msg = self.ifinfmsg()
        msg["index"], msg["flags"], msg["change"] = index, flags, change
        msg["attrs"] = list(attrs)
        return msg

    def add_bridge(self, name: str, mtu: int) -> None:
        """Create a bridge, up."""
        attrs = [["IFLA_IFNAME", name], ["IFLA_MTU", mtu],
                 ["IFLA_LINKINFO", {"attrs": [["IFLA_INFO_KIND", "bridge"]]}]]
        self._request(self._link(flags=IFF_UP, change=IFF_UP, attrs=attrs), _RTM_NEWLINK,
                      _F_CREATE | _F_EXCL, f"create bridge {name}")

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int, mac: str = "") -> None:
        """A veth pair `name` (here, up) and `peer` (moved to the namespace of the fd)."""
        peer_attrs = [["IFLA_IFNAME", peer], ["IFLA_NET_NS_FD", peer_netns_fd],
                      ["IFLA_MTU", mtu]]
        attrs = [["IFLA_IFNAME", name], ["IFLA_MTU", mtu]]
        if mac:
            attrs.append(["IFLA_ADDRESS", mac])
        attrs.append(["IFLA_LINKINFO", {"attrs": [
            ["IFLA_INFO_KIND", "veth"],
            ["IFLA_INFO_DATA", {"attrs": [["VETH_INFO_PEER", {"attrs": peer_attrs}]]}]]}])
        self._request(self._link(flags=IFF_UP, change=IFF_UP, attrs=attrs), _RTM_NEWLINK,
                      _F_CREATE | _F_EXCL, f"create veth {name}")

    def set_link(self, name: str, up: bool = True, master: int | None = None,
                 new_name: str = "") -> None:
        """Bring a link up (and enslave it to `master`, or rename it)."""
        attrs = []
        if master is not None:
            attrs.append(["IFLA_MASTER", master])
        if new_name:
            attrs.append(["IFLA_IFNAME", new_name])
        self._request(self._link(socket.if_nametoindex(name), IFF_UP if up else 0, IFF_UP,
                                 attrs), _RTM_NEWLINK, 0, f"set link {name}")

    def delete_link(self, name: str) -> None:
        """Remove a link (a veth takes its peer with it)."""
        self._request(self._link(socket.if_nametoindex(name)), _RTM_DELLINK, 0,
                      f"delete link {name}")

    def add_address(self, name: str, address: str, prefixlen: int) -> None:
        """Give a link an IPv4 address."""
        msg = self.ifaddrmsg()
        msg["family"], msg["prefixlen"], msg["index"] = _AF_INET, prefixlen, \
            socket.if_nametoindex(name)
        msg["attrs"] = [["IFA_LOCAL", address], ["IFA_ADDRESS", address]]
        self._request(msg, _RTM_NEWADDR, _F_CREATE | _F_EXCL,
                      f"add address {address}/{prefixlen} to {name}")

    def add_default_route(self, gateway: str, dev: str) -> None:
        """The default route through `gateway` on `dev`."""
        msg = self.rtmsg()
        msg["family"], msg["table"], msg["proto"], msg["scope"], msg["type"] = \
            _AF_INET, 254, 4, 0, 1
        msg["attrs"] = [["RTA_GATEWAY", gateway], ["RTA_OIF", socket.if_nametoindex(dev)]]
        self._request(msg, _RTM_NEWROUTE, _F_CREATE | _F_EXCL,
                      f"add default route via {gateway}")
