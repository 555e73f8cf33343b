"""A container's network at start and stop: namespace, endpoints, ports, DNS.

The kernel work runs on one thread of its own (`net` executor): it moves
between network namespaces, which only that thread ever does. Allocations
(addresses, host ports) are made on the event loop and written to networks.db
before the kernel is touched, so a crash leaves records the next daemon
cleans up.
"""

import asyncio
import concurrent.futures
import logging
import os
import socket
import threading
import time

from knarr.engine.networks import PREDEFINED
from knarr.errors import Conflict, FailedPrecondition, InvalidArgument, KnarrError, NotFound
from knarr.network import ipam

__all__ = ["NetAttachMixin", "network_mode_kind"]

log = logging.getLogger("knarr.engine")
_PORT_RANGE = (32768, 60999)


def network_mode_kind(mode: str) -> str:
    """host, none, container or network (a bridge network by name)."""
    if mode in ("host", "none"):
        return mode
    if mode.startswith("container:"):
        return "container"
    return "network"


def _host_port_free(host_ip: str, port: int, proto: str) -> bool:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.bind((host_ip if host_ip not in ("", "::") else "0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


class NetAttachMixin:
    """Start-time attachment of containers to networks, and its undoing."""

    def net_boot(self) -> None:
        """The network thread; pyroute2 warmed on it in the background."""
        self.net_thread = concurrent.futures.ThreadPoolExecutor(1, "net")
        self.net_ready: set[str] = set()
        self.net_rules: list[dict] | None = None
        self.net_dns: dict[str, list] = {}
        self.net_pending: set[asyncio.Future] = set()
        self.net_next_port = _PORT_RANGE[0]
        # Teardowns (a veth's removal waits for RCU: tens of ms) run on a thread of their
        # own, so a start never queues behind another container's end; veth names are
        # random, and a container's own start waits for its own teardown (same netns path).
        self.net_teardown_thread = concurrent.futures.ThreadPoolExecutor(1, "net-teardown")
        self.net_teardowns: dict[str, asyncio.Future] = {}
        # set-ups under way (net_start began them, net_finish ends them): (future, began)
        self.net_attaching: dict[str, tuple[asyncio.Future, float]] = {}
        self._net_local = threading.local()
        self._host_ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.net_thread.submit(self._t_init)

    def _t_init(self) -> None:
        """A netlink socket in the host's namespace for the calling thread."""
        if getattr(self._net_local, "nl", None) is not None:
            return
        from knarr.network.netlink import Netlink

        try:
            self._net_local.nl = Netlink()
        except Exception as exc:  # noqa: BLE001 - reported again by the first real use
            log.warning("network: %s", exc)
            raise

    @property
    def _nl(self):
        return self._net_local.nl

    async def _net_call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.net_thread, fn, *args)

    def netns_path(self, cid: str) -> str:
        """The container's namespace file."""
        return os.path.join(self.exec_root, "netns", cid)

    # -- which networks ---------------------------------------------------------

    def resolve_network_mode(self, host: dict, networking: dict | None) -> dict:
        """The container's wanted networks {network id: endpoint config} from its
        HostConfig.NetworkMode and NetworkingConfig; checks they exist."""
        mode = host.get("NetworkMode") or "default"
        kind = network_mode_kind(mode)
        if kind != "network":
            return {}
        name = "bridge" if mode == "default" else mode
        doc = self.network(name)
        wanted = {}
        endpoints = (networking or {}).get("EndpointsConfig") or {}
        for ref, config in endpoints.items():
            # docker 25+ names the endpoint of `--network default` "default"
            other = self.network(name if ref == "default" else ref)
            wanted[other["Id"]] = _endpoint_config(config, other)
        primary = _endpoint_config(endpoints.get(name) or endpoints.get(doc["Id"]) or
                                   wanted.get(doc["Id"]) or {}, doc)
        return {doc["Id"]: primary, **{k: v for k, v in wanted.items() if k != doc["Id"]}}

    # -- start ------------------------------------------------------------------

    async def net_start(self, record: dict) -> tuple[str | None, asyncio.Future | None]:
        """Begin the container's network: (the namespace path for its OCI config, or None
        when the runtime makes an empty one or the host's is shared; a future done once
        that namespace exists, or None when there is nothing to wait for).

        The interfaces, addresses, routes and ports are set up after the namespace, on the
        network thread, while the container is being created: `net_finish` waits for them.
        """
        host = record["HostConfig"]
        kind = network_mode_kind(host.get("NetworkMode") or "default")
        if kind == "container":
            return self._joined_netns(host["NetworkMode"].partition(":")[2]), None
        wanted = record.get("_networks") or {}
        if kind != "network" or not wanted:
            return None, None
        cid = record["Id"]
        if cid in self.sandboxes:
            await self.net_stop(cid)
        if cid in self.net_teardowns:
            await asyncio.gather(self.net_teardowns[cid], return_exceptions=True)
        path = self.netns_path(cid)
        endpoints = []
        try:
            for index, (nid, config) in enumerate(wanted.items()):
                endpoints.append(self._allocate(record, nid, config, f"eth{index}", index == 0))
            ports = self._allocate_ports(record, endpoints[0])
            sandbox = {"path": path, "ports": ports, "dns": _upstream(host)}
            self.sandboxes[cid] = sandbox
            self.netstore.put_sandbox(cid, sandbox)
            # before the runtime bind-mounts it: a rename later would not reach the container
            self._write_hosts(record, endpoints[0]["IPAddress"])
        except BaseException:
            await self.net_stop(cid)
            raise
        loop = asyncio.get_running_loop()
        made = loop.create_future()
        made.add_done_callback(_retrieved)  # its error is the set-up's too, raised from there

        def namespace_made(exc: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, made, exc)

        self.net_attaching[cid] = (loop.run_in_executor(
            self.net_thread, self._t_attach, path, True, endpoints, ports, namespace_made),
            time.perf_counter())
        return path, made

    async def net_finish(self, cid: str) -> None:
        """Wait for the set-up `net_start` began; a failure releases the network and is
        raised."""
        attaching, began = self.net_attaching.pop(cid, (None, 0.0))
        if attaching is None:
            return
        try:
            socks = await attaching
        except BaseException:
            await self.net_stop(cid)
            raise
        self._serve_dns(cid, socks)
        log.debug("network of %s set up in %.1f ms", cid[:12], (time.perf_counter() - began) * 1e3)

    def _joined_netns(self, ref: str) -> str:
        try:
            other = self.record(ref)
        except NotFound:
            raise NotFound(f"No such container: {ref}", container=ref) from None
        state = self.state(other["Id"])
        if not state["Running"]:
            raise Conflict(f"cannot join network of a non running container: {other['Id']}",
                           id=other["Id"])
        if other["Id"] in self.sandboxes:
            return self.sandboxes[other["Id"]]["path"]
        if other["HostConfig"].get("NetworkMode") == "host":
            return "/proc/1/ns/net"
        return f"/proc/{state['Pid']}/ns/net"

    def _allocate(self, record: dict, nid: str, config: dict, ifname: str,
                  primary: bool) -> dict:
        cid = record["Id"]
        doc = self.nets.get(nid)
        if doc is None:
            raise NotFound(f"network {config.get('_name', nid)} not found", network=nid)
        net, gateway = self.subnet_of(doc)
        taken = {ep["IPAddress"] for (_c, n), ep in self.endpoints.items() if n == nid}
        taken.add(gateway)
        wanted_ip = (config.get("IPAMConfig") or {}).get("IPv4Address") or ""
        if wanted_ip:
            if doc["Name"] == "bridge":
                raise InvalidArgument("user specified IP address is supported on user defined "
                                      "networks only")
            ip = ipam.check_address(net, wanted_ip)
            if ip in taken:
                raise Conflict("Address already in use", address=ip)
        else:
            ip = ipam.next_free(net, taken, self.net_last.get(nid))
            self.net_last[nid] = ip
        aliases = list(config.get("Aliases") or [])
        user = doc["Name"] not in PREDEFINED
        ep = {"IPAMConfig": config.get("IPAMConfig"), "Links": None,
              "Aliases": (aliases + [cid[:12]]) if user else (aliases or None),
              "MacAddress": _mac(config, record, ip, primary),
              "DriverOpts": None, "NetworkID": nid, "EndpointID": self.new_id(),
              "Gateway": gateway if not doc["Internal"] else "", "IPAddress": ip,
              "IPPrefixLen": net.prefixlen, "IPv6Gateway": "", "GlobalIPv6Address": "",
              "GlobalIPv6PrefixLen": 0, "DNSNames": None,
              "_ifname": ifname, "_veth": f"kv{os.urandom(5).hex()}{ifname[3:]}",
              "_bridge": self.bridge_of(doc), "_mtu": self.mtu_of(doc),
              "_route": primary and not doc["Internal"], "_dns": user}
        if user:
            ep["DNSNames"] = [record["Name"].lstrip("/"), cid[:12], *aliases]
        self.endpoints[(cid, nid)] = ep
        self.netstore.put_endpoint(cid, nid, ep)
        return ep

    def _allocate_ports(self, record: dict, ep: dict) -> list[dict]:
        host = record["HostConfig"]
        bindings = {k: list(v or []) for k, v in (host.get("PortBindings") or {}).items()}
        if host.get("PublishAllPorts"):
            for port in record["Config"].get("ExposedPorts") or {}:
                bindings.setdefault(port, [{"HostIp": "", "HostPort": ""}])
                if not bindings[port]:
                    bindings[port] = [{"HostIp": "", "HostPort": ""}]
        mine = {(p["host_ip"], p["proto"], p["host_port"]) for s in self.sandboxes.values()
                for p in s.get("ports", [])}
        out = []
        for key, items in bindings.items():
            port, _, proto = key.partition("/")
            proto = proto or "tcp"
            for b in items:
                host_ip = b.get("HostIp") or ""
                if ":" in host_ip:
                    continue  # IPv6 host addresses: not supported, as with --ipv6=false
                host_port = self._host_port(ep, host_ip, proto, b.get("HostPort") or "", mine)
                entry = {"host_ip": host_ip, "host_port": host_port, "proto": proto,
                         "ip": ep["IPAddress"], "port": int(port), "key": f"{port}/{proto}"}
                mine.add((host_ip, proto, host_port))
                out.append(entry)
        return out

    def _host_port(self, ep: dict, host_ip: str, proto: str, text: str, mine: set) -> int:
        def usable(p: int) -> bool:
            return all((h, proto, p) not in mine for h in {host_ip, ""}) and \
                _host_port_free(host_ip, p, proto)

        if text and "-" not in text:
            port = int(text)
            if not usable(port):
                raise Conflict(f"driver failed programming external connectivity on endpoint "
                               f"{ep['EndpointID'][:12]}: Bind for "
                               f"{host_ip or '0.0.0.0'}:{port} failed: port is already "
                               "allocated", port=port)
            return port
        low, high = _PORT_RANGE
        if text:
            low, high = (int(x) for x in text.split("-", 1))
        candidates = range(low, high + 1)
        start = self.net_next_port if not text else low
        for step in range(len(candidates)):
            port = low + (start - low + step) % len(candidates)
            if usable(port):
                if not text:
                    self.net_next_port = port + 1 if port < high else low
                return port
        raise Conflict(f"Bind for {host_ip or '0.0.0.0'}: all ports are allocated",
                       port=text)

    # -- the network thread ---------------------------------------------------------

    def _t_prepare(self, endpoints: list[dict]) -> None:
        from knarr.network import firewall, links

        self._t_init()

        new = [ep for ep in endpoints if ep["_bridge"] not in self.net_ready]
        if self.net_rules is None:
            firewall.ensure_table(self.net_opts["nft_table"])
        for ep in new:
            doc = self.nets[ep["NetworkID"]]
            net, gateway = self.subnet_of(doc)
            links.ensure_bridge(self._nl, ep["_bridge"], gateway, net.prefixlen, ep["_mtu"])
            firewall.allow_forward(ep["_bridge"])
            self.net_ready.add(ep["_bridge"])
        self._t_rules()

    def _t_rules(self) -> None:
        from knarr.network import firewall

        rules = []
        for doc in self.nets.values():
            if doc["Driver"] != "bridge" or self.bridge_of(doc) not in self.net_ready:
                continue
            rules.append({"bridge": self.bridge_of(doc), "subnet": str(self.subnet_of(doc)[0]),
                          "internal": doc["Internal"]})
        if rules != self.net_rules:
            firewall.set_networks(self.net_opts["nft_table"], rules)
            self.net_rules = rules

    def _t_attach(self, path: str, new: bool, endpoints: list[dict], ports: list[dict],
                  made=None):
        """Give the namespace at `path` (made first if `new`; `made(None or the error)`
        then says so) its endpoints' interfaces and its ports."""
        from knarr.network import firewall, links, netns

        if new:
            try:
                self._t_init()
                with netns.Entered(self._host_ns, path, create=True):
                    pass
            except BaseException as exc:
                if made is not None:
                    made(exc)
                raise
            if made is not None:
                made(None)
        socks = []
        try:
            self._t_prepare(endpoints)
            for ep in endpoints:
                spec = {"ifname": ep["_ifname"], "veth": ep["_veth"], "bridge": ep["_bridge"],
                        "ip": ep["IPAddress"], "prefixlen": ep["IPPrefixLen"],
                        "gateway": ep["Gateway"] if ep["_route"] else None,
                        "mac": ep["MacAddress"], "mtu": ep["_mtu"]}
                sock = links.attach(self._nl, self._host_ns, path, False, spec, ep["_dns"],
                                    lo_up=new)
                new = False
                if sock is not None:
                    socks.append(sock)
            firewall.add_ports(self.net_opts["nft_table"], ports)
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        return socks

    def _t_teardown(self, path: str | None, veths: list[str], ports: list[dict]) -> None:
        from knarr.network import firewall, links

        self._t_init()

        firewall.delete_ports(self.net_opts["nft_table"], ports)
        if path is None:
            for veth in veths:
                links.detach(self._nl, veth)
        else:
            links.remove_sandbox(self._nl, path, veths)

    def _t_dns_socket(self, path: str):
        from knarr.network import links

        self._t_init()

        return links.enter_dns_socket(self._host_ns, path)

    # -- DNS ----------------------------------------------------------------------

    def _serve_dns(self, cid: str, socks: list) -> None:
        from knarr.network.dns import DNSServer

        loop = asyncio.get_running_loop()
        for sock in socks:
            server = DNSServer(lambda name, cid=cid: self._dns_lookup(cid, name),
                               lambda cid=cid: self._dns_upstream(cid))
            transport = loop._make_datagram_transport(sock, server)  # noqa: SLF001
            self.net_dns.setdefault(cid, []).append(transport)

    def _dns_lookup(self, cid: str, name: str) -> list[str] | None:
        mine = {n for (c, n) in self.endpoints if c == cid}
        found = []
        for (_other, nid), ep in self.endpoints.items():
            if nid in mine and ep.get("_dns") and name in [n.lower() for n in
                                                           ep.get("DNSNames") or []]:
                found.append(ep["IPAddress"])
        return found or None

    def _dns_upstream(self, cid: str) -> list[str]:
        from knarr.network.dns import read_resolvers

        sandbox = self.sandboxes.get(cid) or {}
        return sandbox.get("dns") or read_resolvers(self.net_opts["resolv_conf"])

    # -- stop -----------------------------------------------------------------------

    async def net_stop(self, cid: str) -> None:
        """Release a container's addresses and ports and tear its namespace down
        (in the background: the next start does not wait for it)."""
        attaching, _began = self.net_attaching.pop(cid, (None, 0.0))
        if attaching is not None:  # a start that failed half-way: let its set-up end first
            done = await asyncio.gather(attaching, return_exceptions=True)
            for sock in done[0] if isinstance(done[0], list) else []:
                sock.close()
        for transport in self.net_dns.pop(cid, []):
            transport.close()
        sandbox = self.sandboxes.pop(cid, None)
        veths = []
        for key in [k for k in self.endpoints if k[0] == cid]:
            veths.append(self.endpoints.pop(key)["_veth"])
            self.netstore.remove_endpoint(*key)
        if sandbox is None:
            return
        self.netstore.remove_sandbox(cid)
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def submit() -> None:
            try:
                work = loop.run_in_executor(self.net_teardown_thread, self._t_teardown,
                                            sandbox["path"], veths, sandbox.get("ports") or [])
            except RuntimeError as exc:  # the executor is shut down: the daemon is ending
                future.set_exception(exc)
                return
            work.add_done_callback(lambda done: _copy_outcome(done, future))

        # The kernel work starts two loop rounds later: what this release woke (`run
        # --rm`'s wait: engine.wait's step, then the wait route's) answers first, its
        # Python (and its socket writes, which let go of the GIL) not kept waiting for
        # the GIL by the teardown thread's.
        loop.call_soon(loop.call_soon, submit)
        self.net_pending.add(future)
        self.net_teardowns[cid] = future
        future.add_done_callback(lambda f, cid=cid: self._teardown_done(cid, f))

    def _teardown_done(self, cid: str, future: asyncio.Future) -> None:
        self.net_pending.discard(future)
        if self.net_teardowns.get(cid) is future:
            del self.net_teardowns[cid]
        if not future.cancelled() and future.exception() is not None:
            log.warning("network teardown: %s", future.exception())

    async def net_settle(self) -> None:
        """Wait for the teardowns under way."""
        if self.net_pending:
            await asyncio.gather(*list(self.net_pending), return_exceptions=True)

    async def net_forget(self, doc: dict) -> None:
        """A network is gone: its bridge and rules too."""
        from knarr.network import firewall, links

        await self.net_settle()
        bridge = self.bridge_of(doc)
        self.net_ready.discard(bridge)

        def work():
            self._t_init()
            links.delete_bridge(self._nl, bridge)
            firewall.disallow_forward(bridge)
            if self.net_rules is not None:
                self._t_rules()
        await self._net_call(work)

    # -- daemon restart -------------------------------------------------------------

    async def net_restore(self, running: set[str]) -> None:
        """After a restart: serve DNS again for running containers, release the rest,
        and remove namespaces nobody owns."""
        for cid in list(self.sandboxes):
            if cid not in running:
                await self.net_stop(cid)
        for cid in {c for (c, _n) in self.endpoints} - set(self.sandboxes):
            await self.net_stop(cid)
        for cid, sandbox in list(self.sandboxes.items()):
            eps = [ep for (c, _n), ep in self.endpoints.items() if c == cid]
            try:  # a network's trouble must not keep the daemon (and the rest) from starting
                await self._net_call(self._t_prepare, eps)
                if any(ep.get("_dns") for ep in eps):
                    sock = await self._net_call(self._t_dns_socket, sandbox["path"])
                    self._serve_dns(cid, [sock] if sock else [])
            except (OSError, KnarrError) as exc:
                log.warning("restore the network of %s: %s", cid, exc)
        base = os.path.join(self.exec_root, "netns")
        owned = {os.path.basename(s["path"]) for s in self.sandboxes.values()}
        if os.path.isdir(base):
            for name in os.listdir(base):
                if name not in owned:
                    try:
                        await self._net_call(self._t_teardown, os.path.join(base, name), [],
                                             [])
                    except (OSError, KnarrError) as exc:
                        log.warning("remove network namespace %s: %s", name, exc)
        await self.net_settle()

    # -- documents --------------------------------------------------------------------

    def network_settings(self, record: dict) -> dict:
        """NetworkSettings of container inspect."""
        cid = record["Id"]
        sandbox = self.sandboxes.get(cid)
        ports = _ports_doc(record, sandbox)
        networks = {}
        for nid, config in (record.get("_networks") or {}).items():
            doc = self.nets.get(nid)
            name = doc["Name"] if doc else config.get("_name", nid)
            ep = self.endpoints.get((cid, nid))
            networks[name] = _public(ep) if ep else _idle_endpoint(config, nid)
        mode = record["HostConfig"].get("NetworkMode", "default")
        if not networks and network_mode_kind(mode) in ("host", "none"):
            networks[mode] = _idle_endpoint({}, self._id_of(mode))
        out = {"Bridge": "", "SandboxID": cid if sandbox else "", "HairpinMode": False,
               "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": ports,
               "SandboxKey": sandbox["path"] if sandbox else "",
               "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
               "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
               "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
               "MacAddress": "", "Networks": networks}
        bridge = networks.get("bridge")
        if bridge and bridge.get("IPAddress"):
            for key in ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress"):
                out[key] = bridge[key]
        return out

    def _id_of(self, name: str) -> str:
        try:
            return self.network(name)["Id"]
        except KnarrError:
            return ""

    def port_list(self, cid: str) -> list[dict]:
        """The Ports of a container list entry."""
        sandbox = self.sandboxes.get(cid) or {}
        return [{"IP": p["host_ip"] or "0.0.0.0", "PrivatePort": p["port"],
                 "PublicPort": p["host_port"], "Type": p["proto"]}
                for p in sandbox.get("ports") or []]

    def _write_hosts(self, record: dict, ip: str) -> None:
        from knarr.engine import oci_config

        config, host = record["Config"], record["HostConfig"]
        text = oci_config.hosts_file(config["Hostname"], host.get("ExtraHosts"), ip)
        path = os.path.join(self.container_dir(record["Id"]), "hosts")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)

    # -- connect and disconnect ---------------------------------------------------------

    async def network_connect(self, ref: str, container: str, config: dict | None) -> None:
        """Attach a container to a network (now, if it runs; else at its next start)."""
        doc = self.network(ref)
        record = self.record(container)
        cid = record["Id"]
        mode = record["HostConfig"].get("NetworkMode") or "default"
        if network_mode_kind(mode) != "network" or doc["Name"] in ("host", "none"):
            raise FailedPrecondition("container cannot be disconnected from host network or "
                                     "connected to host network", network=doc["Name"])
        wanted = dict(record.get("_networks") or {})
        if doc["Id"] in wanted:
            raise FailedPrecondition(f"endpoint with name {record['Name'].lstrip('/')} "
                                     f"already exists in network {doc['Name']}",
                                     network=doc["Name"])
        wanted[doc["Id"]] = _endpoint_config(config or {}, doc)
        if cid in self.sandboxes:
            index = len([k for k in self.endpoints if k[0] == cid])
            ep = self._allocate(record, doc["Id"], wanted[doc["Id"]], f"eth{index}", False)
            try:
                socks = await self._net_call(self._t_attach, self.sandboxes[cid]["path"], False,
                                             [ep], [])
            except BaseException:
                self.endpoints.pop((cid, doc["Id"]), None)
                self.netstore.remove_endpoint(cid, doc["Id"])
                raise
            if not self.net_dns.get(cid):
                self._serve_dns(cid, socks)
            else:
                for sock in socks:
                    sock.close()
        elif self.state(cid)["Running"]:
            raise FailedPrecondition(f"container {cid} has no network namespace of knarr's "
                                     "to connect", id=cid)
        record["_networks"] = wanted
        self.save_record(record)
        self.events.publish("network", "connect", doc["Id"],
                            {"container": cid, "name": doc["Name"], "type": "bridge"})

    async def network_disconnect(self, ref: str, container: str, force: bool = False) -> None:
        """Detach a container from a network."""
        doc = self.network(ref)
        record = self.record(container)
        cid = record["Id"]
        wanted = dict(record.get("_networks") or {})
        if doc["Id"] not in wanted:
            raise FailedPrecondition(f"container {cid} is not connected to network "
                                     f"{doc['Name']}", network=doc["Name"])
        ep = self.endpoints.pop((cid, doc["Id"]), None)
        if ep is not None:
            self.netstore.remove_endpoint(cid, doc["Id"])
            await self._net_call(self._t_teardown, None, [ep["_veth"]], [])
        del wanted[doc["Id"]]
        record["_networks"] = wanted
        self.save_record(record)
        self.events.publish("network", "disconnect", doc["Id"],
                            {"container": cid, "name": doc["Name"], "type": "bridge"})


def _copy_outcome(source: asyncio.Future, target: asyncio.Future) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())


def _retrieved(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _settle(future: asyncio.Future, exc: BaseException | None) -> None:
    if not future.done():
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)


def _endpoint_config(config: dict, doc: dict) -> dict:
    out = {"_name": doc["Name"], "Aliases": list((config or {}).get("Aliases") or [])}
    ipam_config = (config or {}).get("IPAMConfig") or {}
    if ipam_config.get("IPv4Address"):
        out["IPAMConfig"] = {"IPv4Address": ipam_config["IPv4Address"]}
    if (config or {}).get("MacAddress"):
        out["MacAddress"] = config["MacAddress"]
    return out


def _mac(config: dict, record: dict, ip: str, primary: bool) -> str:
    from knarr.network.links import mac_for

    wanted = config.get("MacAddress") or (record["Config"].get("MacAddress") if primary else "")
    return wanted or mac_for(ip)


def _upstream(host: dict) -> list[str]:
    return [d for d in host.get("Dns") or [] if d]


def _public(ep: dict) -> dict:
    return {k: v for k, v in ep.items() if not k.startswith("_")}


def _idle_endpoint(config: dict, nid: str) -> dict:
    return {"IPAMConfig": config.get("IPAMConfig"), "Links": None,
            "Aliases": config.get("Aliases") or None, "MacAddress": config.get("MacAddress", ""),
            "DriverOpts": None, "NetworkID": nid, "EndpointID": "", "Gateway": "",
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DNSNames": None}


def _ports_doc(record: dict, sandbox: dict | None) -> dict:
    out: dict = {}
    for port in record["Config"].get("ExposedPorts") or {}:
        out[port if "/" in port else port + "/tcp"] = None
    for key in (record["HostConfig"].get("PortBindings") or {}):
        out.setdefault(key if "/" in key else key + "/tcp", None)
    if sandbox is None:
        return out
    for p in sandbox.get("ports") or []:
        entry = {"HostIp": p["host_ip"] or "0.0.0.0", "HostPort": str(p["host_port"])}
        out[p["key"]] = (out.get(p["key"]) or []) + [entry]
    return out
