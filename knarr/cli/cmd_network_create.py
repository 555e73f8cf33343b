"""knarr network create [OPTIONS] NETWORK"""

import sys

from knarr.cli import flags, opts

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `network create`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] NETWORK", "Create a network",
                      min_args=1, max_args=1)
    a = c.add_argument
    a("-d", "--driver", default="bridge", help="Driver to manage the Network")
    a("--subnet", action="append", help="Subnet in CIDR format that represents a network "
      "segment")
    a("--gateway", action="append", help="IPv4 or IPv6 Gateway for the master subnet")
    a("--ip-range", action="append", help="Allocate container ip from a sub-range")
    a("--internal", action="store_true", help="Restrict external access to the network")
    a("--attachable", action="store_true", help="Enable manual container attachment")
    a("--label", action="append", help="Set metadata on a network")
    a("-o", "--opt", action="append", help="Set driver specific options")
    a("--ipv6", action="store_true", help="Enable IPv6 networking")
    return c


def run(cli, args) -> int:
    """POST /networks/create and print the new id."""
    config = []
    for i, subnet in enumerate(args.subnet):
        entry = {"Subnet": subnet}
        if i < len(args.gateway):
            entry["Gateway"] = args.gateway[i]
        if i < len(args.ip_range):
            entry["IPRange"] = args.ip_range[i]
        config.append(entry)
    if args.gateway and not args.subnet:
        raise cli.fail("Error response from daemon: every ip-range or gateway must have a "
                       "corresponding subnet", 1)
    body = {"Name": args.args[0], "CheckDuplicate": True, "Driver": args.driver,
            "Internal": args.internal, "Attachable": args.attachable,
            "EnableIPv6": args.ipv6, "Labels": opts.key_values(args.label),
            "Options": opts.key_values(args.opt),
            "IPAM": {"Driver": "default", "Config": config, "Options": {}}}
    result = cli.client.post("/networks/create", None, body) or {}
    sys.stdout.write(result.get("Id", "") + "\n")
    return 0
