"""knarr ps [OPTIONS]: list containers in Docker's table (or --format)."""

import sys
import time

from knarr.cli import flags, opts, units
from knarr.cli.table import Formatter

__all__ = ["command", "run", "Row", "HEADERS", "DEFAULT_FORMAT", "ellipsis", "go_quote"]

DEFAULT_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t" \
                 "{{.Ports}}\t{{.Names}}"
HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
           "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
           "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
           "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
           "Networks": "NETWORKS"}


def command(name: str) -> flags.Command:
    """The declaration of `ps`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS]", "List containers", max_args=0)
    c.add_argument("-a", "--all", action="store_true",
                   help="Show all containers (default shows just running)")
    c.add_argument("-f", "--filter", action="append", type=opts.filter_item, help="Filter output based on conditions")
    c.add_argument("--format", help="Pretty-print containers using a Go template")
    c.add_argument("-n", "--last", type=int, default=-1,
                   help="Show n last created containers (includes all states)")
    c.add_argument("-l", "--latest", action="store_true",
                   help="Show the latest created container (includes all states)")
    c.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    c.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    c.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    return c


def ellipsis(text: str, width: int) -> str:
    """Cut `text` to `width` characters, the last one an ellipsis."""
    return text if len(text) <= width else text[:width - 1] + "…"


def go_quote(text: str) -> str:
    """Go's strconv.Quote for ordinary text."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") \
        .replace("\t", "\\t").replace("\r", "\\r")
    return f'"{body}"'


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _group(key: tuple[str, str], first: int, last: int) -> str:
    ip, kind = key
    ports = str(first) if first == last else f"{first}-{last}"
    return f"{ip}:{ports}->{ports}/{kind}" if ip else f"{ports}/{kind}"


def displayable_ports(ports: list[dict]) -> str:
    """Docker's PORTS column: runs of consecutive ports grouped, mappings after them."""
    def order(p: dict) -> tuple:
        return (p.get("PrivatePort", 0), p.get("PublicPort", 0), p.get("Type", ""),
                p.get("IP", ""))

    groups: dict[tuple[str, str], list[int]] = {}
    result, mappings = [], []
    for p in sorted(ports, key=order):
        private, kind, ip = p.get("PrivatePort", 0), p.get("Type", "tcp"), p.get("IP", "")
        if ip and p.get("PublicPort") != private:
            mappings.append(f"{_host_port(ip, p.get('PublicPort', 0))}->{private}/{kind}")
            continue
        key = (ip, kind)
        group = groups.get(key)
        if group is None:
            groups[key] = [private, private]
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_group(key, *group))
            groups[key] = [private, private]
    result += [_group(key, *group) for key, group in groups.items()]
    return ", ".join(result + mappings)


class Row:
    """One container as Docker's formatter shows it; attributes are template fields."""

    size_digits = 0  # `system df -v` shows the writable layer alone, four digits

    def __init__(self, c: dict, trunc: bool = True, now: float | None = None) -> None:
        self.c, self.trunc = c, trunc
        self.now = time.time() if now is None else now

    @property
    def ID(self) -> str:
        return self.c.get("Id", "")[:12] if self.trunc else self.c.get("Id", "")

    @property
    def Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self.c.get("Names") or []]
        if self.trunc:
            names = [n for n in names if "/" not in n][:1] or names[:1]
        return ",".join(names)

    @property
    def Image(self) -> str:
        image = self.c.get("Image", "")
        if self.trunc and image.startswith("sha256:"):
            return image[7:19]
        if self.trunc and "@sha256:" in image:
            return image.split("@", 1)[0]
        return image

    @property
    def Command(self) -> str:
        cmd = self.c.get("Command", "")
        return go_quote(ellipsis(cmd, 20) if self.trunc else cmd)

    @property
    def CreatedAt(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(self.c.get("Created", 0)))

    @property
    def RunningFor(self) -> str:
        return units.since_ago(self.c.get("Created", 0), self.now)

    @property
    def Ports(self) -> str:
        return displayable_ports(self.c.get("Ports") or [])

    @property
    def State(self) -> str:
        return self.c.get("State", "")

    @property
    def Status(self) -> str:
        return self.c.get("Status", "")

    @property
    def Size(self) -> str:
        rw, root = self.c.get("SizeRw") or 0, self.c.get("SizeRootFs") or 0
        if self.size_digits:
            return units.human_size(rw, self.size_digits)
        text = units.human_size(rw)
        return f"{text} (virtual {units.human_size(root)})" if root else text

    @property
    def Labels(self) -> str:
        return ",".join(f"{k}={v}" for k, v in (self.c.get("Labels") or {}).items())

    def Label(self, name: str) -> str:
        return (self.c.get("Labels") or {}).get(name, "")

    @property
    def Mounts(self) -> str:
        out = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source", "")
            out.append(ellipsis(name, 15) if self.trunc else name)
        return ",".join(out)

    @property
    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    @property
    def Networks(self) -> str:
        nets = ((self.c.get("NetworkSettings") or {}).get("Networks") or {})
        return ",".join(sorted(nets))

    def as_dict(self) -> dict:
        """What `{{json .}}` prints."""
        return {k: getattr(self, k) for k in ("Command", "CreatedAt", "ID", "Image", "Labels",
                                               "LocalVolumes", "Mounts", "Names", "Networks",
                                               "Ports", "RunningFor", "Size", "State", "Status")}


def _format(args) -> str:
    if args.quiet:
        return "{{.ID}}"
    if args.format and args.format.strip() != "table":
        return args.format
    return DEFAULT_FORMAT + ("\t{{.Size}}" if args.size else "")


def run(cli, args) -> int:
    """GET /containers/json and print it."""

    try:
        filters = opts.filters(args.filter)
    except ValueError as exc:
        raise cli.fail(f"{exc}", 125) from None
    query: dict = {"all": args.all or args.latest or args.last > 0 or None,
                   "limit": 1 if args.latest else (args.last if args.last > 0 else None),
                   "size": args.size or ".Size" in (args.format or "") or None}
    if filters:
        from knarr.client import jsonc

        query["filters"] = jsonc.dumps(filters)
    containers = cli.client.get("/containers/json", query) or []
    now = time.time()
    rows = [Row(c, trunc=not args.no_trunc, now=now) for c in containers]
    from knarr.cli.template import TemplateError

    try:
        sys.stdout.write(Formatter(_format(args), HEADERS).render(rows))
    except TemplateError as exc:
        raise cli.fail(f"template: {exc}", 1) from None
    return 0
