"""knarr network ls [OPTIONS]: networks in Docker's table."""

import sys

from knarr.cli import flags, opts
from knarr.cli.table import Formatter

__all__ = ["command", "run"]

DEFAULT_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
           "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def command(name: str) -> flags.Command:
    """The declaration of `network ls`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS]", "List networks", max_args=0)
    c.add_argument("-f", "--filter", action="append", type=opts.filter_item,
                   help="Provide filter values (e.g. 'driver=bridge')")
    c.add_argument("--format", help="Pretty-print networks using a Go template")
    c.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    c.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")
    return c


class Row:
    """One network as the template sees it."""

    def __init__(self, net: dict, trunc: bool) -> None:
        self.n, self.trunc = net, trunc
        self.Name, self.Driver, self.Scope = net["Name"], net["Driver"], net["Scope"]
        self.IPv6 = str(bool(net.get("EnableIPv6"))).lower()
        self.Internal = str(bool(net.get("Internal"))).lower()
        self.CreatedAt = net.get("Created", "")

    @property
    def ID(self) -> str:
        return self.n["Id"][:12] if self.trunc else self.n["Id"]

    @property
    def Labels(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted((self.n.get("Labels") or {}).items()))

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in HEADERS}


def run(cli, args) -> int:
    """GET /networks and print it."""
    from knarr.client import jsonc

    filters = opts.filters(args.filter)
    nets = cli.client.get("/networks", {"filters": jsonc.dumps(filters) if filters else None})
    rows = [Row(n, not args.no_trunc) for n in sorted(nets or [], key=lambda n: n["Name"])]
    if args.quiet:
        sys.stdout.write("".join(r.ID + "\n" for r in rows))
        return 0
    fmt = args.format if args.format and args.format.strip() != "table" else DEFAULT_FORMAT
    sys.stdout.write(Formatter(fmt, HEADERS).render(rows))
    return 0
