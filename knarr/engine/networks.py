"""Networks: the predefined bridge, host and none, and user-defined bridge networks.

Docker's network documents and verbs (create, list, inspect, remove, prune,
connect, disconnect). The kernel side (bridges, veths, nftables, DNS) is in
`knarr.network`, driven from `netattach`.
"""

import fcntl
import ipaddress
import os
import time

from knarr.engine import filtering, names
from knarr.engine.merge import rfc3339
from knarr.engine.netstore import NetStore
from knarr.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound
from knarr.network import ipam

__all__ = ["NetworksMixin", "DEFAULT_NET_OPTIONS", "PREDEFINED"]

DEFAULT_NET_OPTIONS = {"bridge": "knarr0", "bridge_subnet": "", "nft_table": "knarr",
                       "pool": "10.118.0.0/15", "resolv_conf": "/etc/resolv.conf", "mtu": 1500}
PREDEFINED = ("bridge", "host", "none")
_DEFAULT_BRIDGE_SUBNETS = "10.117.0.0/16"
_BRIDGE_FALLBACK_POOL = "10.96.0.0/11"
_LOCK = "/run/knarr-network.lock"
_BRIDGE_NAME = "com.docker.network.bridge.name"
_MTU = "com.docker.network.driver.mtu"


def host_routes() -> list[ipaddress.IPv4Network]:
    """The IPv4 destinations the host routes to (not its default route)."""
    return [net for _iface, net in host_routes_by_device()]


def host_routes_by_device() -> list[tuple[str, ipaddress.IPv4Network]]:
    """(device, destination) of the host's IPv4 routes, the default route left out."""
    out = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                dest, mask = int(fields[1], 16), int(fields[7], 16)
                if mask == 0:
                    continue
                ip = ipaddress.IPv4Address(dest.to_bytes(4, "little"))
                prefix = bin(mask).count("1")
                out.append((fields[0], ipaddress.ip_network(f"{ip}/{prefix}", strict=False)))
    except (OSError, StopIteration, ValueError):
        pass
    return out


class _HostLock:
    """A host-wide lock while a subnet is picked and its bridge made (daemons race)."""

    def __enter__(self):
        self.fd = os.open(_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


class NetworksMixin:
    """The engine's networks."""

    def networks_init(self, options: dict | None) -> None:
        """Load the networks and make the predefined ones."""
        self.net_opts = dict(DEFAULT_NET_OPTIONS, **(options or {}))
        self.netstore = NetStore(self.root)
        self.nets = {doc["Id"]: doc for doc in self.netstore.networks()}
        self.endpoints = {(c, n): doc for c, n, doc in self.netstore.endpoints()}
        self.sandboxes = self.netstore.sandboxes()
        self.net_last: dict[str, str] = {}
        by_name = {d["Name"]: d for d in self.nets.values()}
        for name, driver in (("host", "host"), ("none", "null")):
            if name not in by_name:
                self._add_network(self._network_doc(name, driver, [], {}, {}))
        bridge = by_name.get("bridge")
        if bridge is None or bridge["Options"].get(_BRIDGE_NAME) != self.net_opts["bridge"] or \
                (self.net_opts["bridge_subnet"] and
                 bridge["IPAM"]["Config"][0]["Subnet"] != self.net_opts["bridge_subnet"]):
            if bridge is not None:
                self.netstore.remove_network(bridge["Id"])
                del self.nets[bridge["Id"]]
            self._add_network(self._default_bridge_doc(bridge))

    def _default_bridge_doc(self, old: dict | None) -> dict:
        subnet = self.net_opts["bridge_subnet"]
        if not subnet:
            # Picked and claimed (the bridge made with its address) under one host-wide
            # lock, so that daemons starting together never pick the same subnet.
            with _HostLock():
                subnet = self._pick_default_subnet()
        net = ipam.parse_subnet(subnet)
        options = {"com.docker.network.bridge.default_bridge": "true",
                   "com.docker.network.bridge.enable_icc": "true",
                   "com.docker.network.bridge.enable_ip_masquerade": "true",
                   "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                   _BRIDGE_NAME: self.net_opts["bridge"],
                   _MTU: str(self.net_opts["mtu"])}
        doc = self._network_doc("bridge", "bridge", [{"Subnet": str(net),
                                                     "Gateway": ipam.default_gateway(net)}],
                                options, {})
        if old is not None:
            doc["Id"], doc["Created"] = old["Id"], old["Created"]
        return doc

    def _pick_default_subnet(self) -> str:
        bridge = self.net_opts["bridge"]
        routes = host_routes_by_device()
        for device, net in routes:
            if device == bridge:
                return str(net)  # the bridge is there already: keep its subnet
        used = [net for _d, net in routes] + [ipaddress.ip_network(c["Subnet"]) for n in
                                               self.nets.values() for c in n["IPAM"]["Config"]]
        # the fallback pool holds the user networks' pool: a default bridge must not take it
        used.append(ipaddress.ip_network(self.net_opts["pool"]))
        subnet = ipam.bridge_subnet(_DEFAULT_BRIDGE_SUBNETS, _BRIDGE_FALLBACK_POOL, used)
        # `ip` rather than netlink here: this runs once, at start-up, where loading
        # pyroute2 on the main thread would delay the daemon's first answer
        import subprocess

        net = ipaddress.ip_network(subnet)
        for argv in (["link", "add", bridge, "mtu", str(self.net_opts["mtu"]), "type",
                      "bridge"],
                     ["addr", "add", f"{ipam.default_gateway(net)}/{net.prefixlen}", "dev",
                      bridge],
                     ["link", "set", bridge, "up"]):
            subprocess.run(["ip", *argv], capture_output=True)
        return subnet

    def _network_doc(self, name: str, driver: str, config: list, options: dict, labels: dict,
                     internal: bool = False, attachable: bool = False) -> dict:
        return {"Name": name, "Id": names.new_id(), "Created": rfc3339(time.time()),
                "Scope": "local", "Driver": driver, "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": None if name in PREDEFINED else {},
                         "Config": config},
                "Internal": internal, "Attachable": attachable, "Ingress": False,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": options,
                "Labels": labels}

    def _add_network(self, doc: dict) -> None:
        self.netstore.add_network(doc)
        self.nets[doc["Id"]] = doc

    # -- lookup ---------------------------------------------------------------

    def network(self, ref: str) -> dict:
        """A network by name, id or unique id prefix; Docker's NotFound otherwise."""
        for doc in self.nets.values():
            if doc["Name"] == ref or doc["Id"] == ref:
                return doc
        found = [d for d in self.nets.values() if ref and d["Id"].startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(found)} matches found "
                                  "on name)", network=ref)
        raise NotFound(f"network {ref} not found", network=ref)

    def bridge_of(self, doc: dict) -> str:
        """The Linux bridge of a bridge network."""
        return doc["Options"].get(_BRIDGE_NAME) or "kn-" + doc["Id"][:12]

    def mtu_of(self, doc: dict) -> int:
        try:
            return int(doc["Options"].get(_MTU) or self.net_opts["mtu"])
        except ValueError:
            return self.net_opts["mtu"]

    def subnet_of(self, doc: dict) -> tuple[ipaddress.IPv4Network, str]:
        config = doc["IPAM"]["Config"][0]
        net = ipaddress.ip_network(config["Subnet"])
        return net, config.get("Gateway") or ipam.default_gateway(net)

    # -- documents ------------------------------------------------------------

    def network_inspect(self, ref: str) -> dict:
        """Docker's network inspect document, with its containers."""
        doc = self.network(ref)
        out = {k: v for k, v in doc.items() if not k.startswith("_")}
        containers = {}
        for (cid, nid), ep in self.endpoints.items():
            if nid != doc["Id"]:
                continue
            try:
                name = self.records.get(cid)["Name"].lstrip("/")
            except NotFound:
                continue
            containers[cid] = {"Name": name, "EndpointID": ep["EndpointID"],
                               "MacAddress": ep["MacAddress"],
                               "IPv4Address": f"{ep['IPAddress']}/{ep['IPPrefixLen']}",
                               "IPv6Address": ""}
        out["Containers"] = containers
        return out

    def network_list(self, filters: dict | None = None) -> list[dict]:
        """Docker's network list (inspect documents, Containers empty as Docker sends)."""
        out = []
        for doc in sorted(self.nets.values(), key=lambda d: d["Created"]):
            if _passes(doc, filters or {}, self._network_in_use(doc["Id"])):
                entry = {k: v for k, v in doc.items() if not k.startswith("_")}
                entry["Containers"] = {}
                out.append(entry)
        return out

    def _network_in_use(self, nid: str) -> bool:
        """Docker's rule: a network is in use while a running container is attached."""
        return any(n == nid for _c, n in self.endpoints)

    # -- create and remove ----------------------------------------------------

    async def network_create(self, body: dict) -> dict:
        """POST /networks/create: a bridge network, its bridge made now; {Id, Warning}."""
        name = (body or {}).get("Name") or ""
        if not name:
            raise InvalidArgument("network name is required")
        if name in PREDEFINED:
            raise FailedPrecondition(f"{name} is a pre-defined network and cannot be created",
                                     network=name)
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            raise NotFound(f"plugin \"{driver}\" not found", driver=driver)
        if any(d["Name"] == name for d in self.nets.values()):
            raise AlreadyExists(f"network with name {name} already exists", network=name)
        if body.get("EnableIPv6"):
            raise InvalidArgument("IPv6 networks are not supported by knarr yet", network=name)
        options = dict(body.get("Options") or {})
        if _BRIDGE_NAME in options:
            bridge = options[_BRIDGE_NAME]
            if any(self.bridge_of(d) == bridge for d in self.nets.values()):
                raise Conflict(f"bridge name {bridge} is used by another network")
        requested = (body.get("IPAM") or {}).get("Config") or []
        doc = self._network_doc(name, "bridge", [], options, dict(body.get("Labels") or {}),
                                bool(body.get("Internal")), bool(body.get("Attachable")))
        # Subnet picked and bridge made under one host-wide lock: daemons race for subnets.
        await self._net_call(self._t_create_network, doc, requested)
        self._add_network(doc)
        self.events.publish("network", "create", doc["Id"], {"name": name, "type": "bridge"})
        return {"Id": doc["Id"], "Warning": ""}

    def _t_create_network(self, doc: dict, requested: list[dict]) -> None:
        from knarr.network import firewall, links

        self._t_init()
        with _HostLock():
            doc["IPAM"]["Config"] = self._ipam_config(requested)
            net, gateway = self.subnet_of(doc)
            links.ensure_bridge(self._nl, self.bridge_of(doc), gateway, net.prefixlen,
                                self.mtu_of(doc))
        firewall.allow_forward(self.bridge_of(doc))
        self.net_ready.add(self.bridge_of(doc))

    def _ipam_config(self, requested: list[dict]) -> list[dict]:
        used = [ipaddress.ip_network(c["Subnet"]) for n in self.nets.values()
                for c in n["IPAM"]["Config"]]
        if len(requested) > 1:
            raise InvalidArgument("knarr supports one IPAM config per network")
        if requested and requested[0].get("Subnet"):
            net = ipam.parse_subnet(requested[0]["Subnet"])
            if ipam.overlaps(net, used):
                raise Conflict("Pool overlaps with other one on this address space",
                               subnet=str(net))
            gateway = requested[0].get("Gateway") or ipam.default_gateway(net)
            ipam.check_address(net, gateway, "gateway")
            out = {"Subnet": str(net), "Gateway": gateway}
            if requested[0].get("IPRange"):
                out["IPRange"] = requested[0]["IPRange"]
            return [out]
        subnet = ipam.pick_subnet(self.net_opts["pool"], 24, used + host_routes())
        net = ipaddress.ip_network(subnet)
        return [{"Subnet": subnet, "Gateway": ipam.default_gateway(net)}]

    async def network_remove(self, ref: str) -> None:
        """DELETE /networks/{id}: refused for predefined or used networks."""
        doc = self.network(ref)
        if doc["Name"] in PREDEFINED:
            raise FailedPrecondition(f"{doc['Name']} is a pre-defined network and cannot be "
                                     "removed", network=doc["Name"])
        if self._network_in_use(doc["Id"]):
            raise FailedPrecondition(f"error while removing network: network {doc['Name']} "
                                     f"id {doc['Id']} has active endpoints", network=doc["Id"])
        self.netstore.remove_network(doc["Id"])
        del self.nets[doc["Id"]]
        await self.net_forget(doc)
        self.events.publish("network", "destroy", doc["Id"],
                            {"name": doc["Name"], "type": "bridge"})

    async def network_prune(self, filters: dict | None = None) -> list[str]:
        """Remove every unused user-defined network; their names."""
        deleted = []
        for doc in list(self.nets.values()):
            if doc["Name"] in PREDEFINED or self._network_in_use(doc["Id"]):
                continue
            if not _passes(doc, {k: v for k, v in (filters or {}).items()
                                 if k in ("label", "until")}, False):
                continue
            await self.network_remove(doc["Id"])
            deleted.append(doc["Name"])
        return deleted


def _passes(doc: dict, filters: dict, in_use: bool) -> bool:
    labels = doc.get("Labels") or {}
    checks = {
        "name": lambda v: v in doc["Name"],
        "id": lambda v: doc["Id"].startswith(v),
        "driver": lambda v: v == doc["Driver"],
        "scope": lambda v: v == "local",
        "type": lambda v: v == ("builtin" if doc["Name"] in PREDEFINED else "custom"),
        "label": lambda v: filtering.label_matches(labels, v),
        "dangling": lambda v: (v.lower() in ("true", "1")) == (not in_use and
                                                              doc["Name"] not in PREDEFINED),
        "until": lambda v: True,
    }
    return filtering.matches(checks, filters)
