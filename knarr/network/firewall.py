"""knarr's nftables table: NAT for published ports and outbound traffic, isolation.

One table per daemon (`ip knarr` by default); nothing outside it is touched.
Published ports are elements of two maps (by protocol and port, and by host
address, protocol and port), so a container start adds elements and never
rewrites rules; the per-network rules are rewritten whole, in one transaction,
when a network comes or goes.
"""

from knarr.network import nft

__all__ = ["ensure_table", "set_networks", "add_ports", "delete_ports", "drop_table",
           "networks_script", "ports_script"]

_WILDCARD = ("", "0.0.0.0", "::")


def _base_script(table: str) -> str:
    t = f"ip {table}"
    return f"""add table {t}
add map {t} pub {{ type inet_proto . inet_service : ipv4_addr . inet_service ; }}
add map {t} pubip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ; }}
add set {t} bridges {{ type ifname ; }}
add chain {t} ports
add chain {t} prerouting {{ type nat hook prerouting priority dstnat ; policy accept ; }}
add chain {t} output {{ type nat hook output priority -100 ; policy accept ; }}
add chain {t} postrouting {{ type nat hook postrouting priority srcnat ; policy accept ; }}
add chain {t} forward {{ type filter hook forward priority filter ; policy accept ; }}
flush chain {t} ports
flush chain {t} prerouting
flush chain {t} output
add rule {t} ports dnat ip to ip daddr . meta l4proto . th dport map @pubip
add rule {t} ports dnat ip to meta l4proto . th dport map @pub
add rule {t} prerouting fib daddr type local jump ports
add rule {t} output fib daddr type local jump ports
"""


def ensure_table(table: str) -> None:
    """Create the table, its maps and chains if missing (idempotent)."""
    nft.run(_base_script(table), f"create nftables table ip {table}")


def networks_script(table: str, networks: list[dict]) -> str:
    """The per-network rules: each network is {bridge, subnet, internal}."""
    t = f"ip {table}"
    lines = [f"flush chain {t} postrouting", f"flush chain {t} forward",
             f"flush set {t} bridges"]
    if networks:
        names = ", ".join(f'"{n["bridge"]}"' for n in networks)
        lines.append(f"add element {t} bridges {{ {names} }}")
    for n in networks:
        br, subnet = f'"{n["bridge"]}"', n["subnet"]
        # published ports reached from 127.0.0.1 (route_localnet) or from the same bridge
        lines.append(f"add rule {t} postrouting oifname {br} ip saddr 127.0.0.0/8 masquerade")
        lines.append(f"add rule {t} postrouting oifname {br} iifname {br} ct status dnat "
                     "masquerade")
        if n.get("internal"):
            lines.append(f"add rule {t} forward iifname {br} oifname != {br} drop")
            lines.append(f"add rule {t} forward oifname {br} iifname != {br} drop")
            continue
        lines.append(f"add rule {t} postrouting ip saddr {subnet} oifname != {br} "
                     "oifname != @bridges masquerade")
        lines.append(f"add rule {t} forward iifname {br} oifname @bridges oifname != {br} drop")
    return "\n".join(lines) + "\n"


def set_networks(table: str, networks: list[dict]) -> None:
    """Rewrite the per-network rules in one transaction."""
    nft.run(networks_script(table, networks), f"update nftables table ip {table}")


def _element(port: dict) -> tuple[str, str]:
    key = f'{port["proto"]} . {port["host_port"]}'
    value = f'{port["ip"]} . {port["port"]}'
    if port["host_ip"] not in _WILDCARD:
        return "pubip", f"{port['host_ip']} . {key} : {value}"
    return "pub", f"{key} : {value}"


def ports_script(table: str, verb: str, ports: list[dict]) -> str:
    """add/delete elements for published ports: {host_ip, host_port, proto, ip, port}."""
    lines = []
    for port in ports:
        name, element = _element(port)
        if verb == "delete":
            element = element.partition(" : ")[0]
        lines.append(f"{verb} element ip {table} {name} {{ {element} }}")
    return "\n".join(lines) + "\n"


def add_ports(table: str, ports: list[dict]) -> None:
    """Publish ports (DNAT from the host's addresses)."""
    if ports:
        nft.run(ports_script(table, "add", ports), "publish ports")


def delete_ports(table: str, ports: list[dict]) -> None:
    """Withdraw published ports; each element is deleted on its own, so a missing one
    does not keep the rest."""
    for port in ports:
        try:
            nft.run(ports_script(table, "delete", [port]), "unpublish port")
        except Exception:  # noqa: BLE001 - already gone
            pass


def drop_table(table: str) -> None:
    """Delete the whole table (if it exists)."""
    nft.run(f"delete table ip {table}\n",
            f"delete nftables table ip {table}")


# An accept in knarr's own forward chain does not outvote a drop elsewhere: with
# dockerd's FORWARD policy DROP in iptables' filter table (and br_netfilter passing
# bridged packets through it), a knarr bridge's traffic is dropped there. Only then,
# knarr adds an accept for its bridge to that built-in chain, marked as knarr's, and
# takes it out with the bridge. Docker's own chains are never touched.

def _iptables(*args: str):
    import subprocess

    try:
        return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)
    except FileNotFoundError:
        return None


def forward_policy_drops() -> bool:
    """Whether iptables' FORWARD chain drops by default (dockerd sets it so)."""
    proc = _iptables("-S", "FORWARD")
    return proc is not None and proc.returncode == 0 and "-P FORWARD DROP" in proc.stdout


def _forward_rules(bridge: str) -> list[list[str]]:
    comment = ["-m", "comment", "--comment", f"knarr {bridge}", "-j", "ACCEPT"]
    return [["-i", bridge, *comment], ["-o", bridge, *comment]]


def allow_forward(bridge: str) -> None:
    """Accept the bridge's traffic in iptables' FORWARD chain when its policy drops."""
    if not forward_policy_drops():
        return
    for rule in _forward_rules(bridge):
        check = _iptables("-C", "FORWARD", *rule)
        if check is not None and check.returncode != 0:
            _iptables("-I", "FORWARD", "1", *rule)


def disallow_forward(bridge: str) -> None:
    """Take knarr's accepts for the bridge out of iptables' FORWARD chain, if any."""
    for rule in _forward_rules(bridge):
        while True:
            proc = _iptables("-D", "FORWARD", *rule)
            if proc is None or proc.returncode != 0:
                break
