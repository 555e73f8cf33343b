"""knarr volume create|ls|inspect|rm|prune: named volumes over the /volumes API."""

import sys

from knarr.cli import flags, opts
from knarr.cli.common import each, quote_path
from knarr.cli.table import Formatter

__all__ = ["command", "run"]

_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE",
            "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "CreatedAt": "CREATED"}
_PRUNE_WARNING = ("WARNING! This will remove anonymous local volumes not used by at least "
                  "one container.\nAre you sure you want to continue? [y/N] ")
_PRUNE_ALL_WARNING = ("WARNING! This will remove all local volumes not used by at least one "
                      "container.\nAre you sure you want to continue? [y/N] ")


def command(name: str) -> flags.Command:
    """The declaration of `volume VERB`."""
    verb = name.split()[-1]
    if verb == "create":
        c = flags.Command(name, f"knarr {name} [OPTIONS] [VOLUME]", "Create a volume",
                          max_args=1)
        c.add_argument("-d", "--driver", default="local", help="Specify volume driver name")
        c.add_argument("--label", action="append", help="Set metadata for a volume")
        c.add_argument("-o", "--opt", action="append", help="Set driver specific options")
        c.add_argument("--name", help="Specify volume name")
    elif verb in ("ls", "list"):
        c = flags.Command(name, f"knarr {name} [OPTIONS]", "List volumes", max_args=0)
        c.add_argument("-f", "--filter", action="append", type=opts.filter_item,
                       help="Provide filter values (e.g. 'dangling=true')")
        c.add_argument("--format", help="Format output using a custom template")
        c.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    elif verb == "inspect":
        c = flags.Command(name, f"knarr {name} [OPTIONS] VOLUME [VOLUME...]",
                          "Display detailed information on one or more volumes", min_args=1)
        c.add_argument("-f", "--format", help="Format output using a custom template")
    elif verb in ("rm", "remove"):
        c = flags.Command(name, f"knarr {name} [OPTIONS] VOLUME [VOLUME...]",
                          "Remove one or more volumes", min_args=1)
        c.add_argument("-f", "--force", action="store_true",
                       help="Force the removal of one or more volumes")
    else:
        c = flags.Command(name, f"knarr {name} [OPTIONS]", "Remove unused local volumes",
                          max_args=0)
        c.add_argument("-a", "--all", action="store_true",
                       help="Remove all unused volumes, not just anonymous ones")
        c.add_argument("--filter", action="append", type=opts.filter_item,
                       help="Provide filter values (e.g. 'label=<label>')")
        c.add_argument("-f", "--force", action="store_true",
                       help="Do not prompt for confirmation")
    return c


def run(cli, args) -> int:
    """Dispatch on the verb typed."""
    verb = cli.command.split()[-1]
    return {"create": _create, "ls": _ls, "list": _ls, "inspect": _inspect, "rm": _rm,
            "remove": _rm, "prune": _prune}[verb](cli, args)


def _create(cli, args) -> int:
    name = args.args[0] if args.args else (args.name or "")
    if args.args and args.name and args.name != args.args[0]:
        raise cli.fail("conflicting options: either specify --name or provide positional "
                       "arg, not both", 1)
    doc = cli.client.post("/volumes/create", body={
        "Name": name, "Driver": args.driver, "DriverOpts": opts.key_values(args.opt or []),
        "Labels": opts.key_values(args.label or [])})
    sys.stdout.write(doc["Name"] + "\n")
    return 0


def _ls(cli, args) -> int:
    from knarr.client import jsonc

    try:
        filters = opts.filters(args.filter or [])
    except ValueError as exc:
        raise cli.fail(str(exc), 125) from None
    result = cli.client.get("/volumes", {"filters": jsonc.dumps(filters) if filters else None})
    volumes = sorted(result.get("Volumes") or [], key=lambda v: v["Name"])
    if args.quiet:
        sys.stdout.write("".join(v["Name"] + "\n" for v in volumes))
        return 0
    fmt = args.format if args.format and args.format.strip() != "table" else \
        "table {{.Driver}}\t{{.Name}}"
    rows = [_Row(v) for v in volumes]
    sys.stdout.write(Formatter(fmt, _HEADERS).render(rows))
    return 0


class _Row:
    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.Driver, self.Name, self.Scope = doc["Driver"], doc["Name"], doc.get("Scope", "local")
        self.Mountpoint, self.CreatedAt = doc.get("Mountpoint", ""), doc.get("CreatedAt", "")
        self.Labels = ",".join(f"{k}={v}" for k, v in (doc.get("Labels") or {}).items())

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("Driver", "Labels", "Mountpoint", "Name",
                                               "Scope")}


def _inspect(cli, args) -> int:
    from knarr.cli.cmd_inspect import _templated
    from knarr.errors import KnarrError

    found, errors = [], []
    for name in args.args:
        try:
            found.append(cli.client.get(f"/volumes/{quote_path(name)}",
                                        what=("volume", name)))
        except KnarrError as exc:
            errors.append(cli.describe(exc))
    if args.format and args.format.strip() != "json":
        _templated(cli, args.format, found)
    else:
        from knarr.client import jsonc

        sys.stdout.write(jsonc.dumps_indent(found) + "\n" if found else "[]\n")
    for error in errors:
        sys.stderr.write(error + "\n")
    return 1 if errors else 0


def _rm(cli, args) -> int:
    def remove(name: str) -> None:
        cli.client.delete(f"/volumes/{quote_path(name)}", {"force": args.force or None},
                          what=("volume", name))

    return each(cli, args.args, remove)


def _prune(cli, args) -> int:
    from knarr.cli import units
    from knarr.client import jsonc

    if not args.force:
        sys.stdout.write(_PRUNE_ALL_WARNING if args.all else _PRUNE_WARNING)
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    try:
        filters = opts.filters(args.filter or []) or {}
    except ValueError as exc:
        raise cli.fail(str(exc), 125) from None
    if args.all:
        filters["all"] = ["true"]
    result = cli.client.post("/volumes/prune",
                             {"filters": jsonc.dumps(filters) if filters else None}) or {}
    deleted = result.get("VolumesDeleted") or []
    if deleted:
        sys.stdout.write("Deleted Volumes:\n" + "".join(n + "\n" for n in deleted) + "\n")
    sys.stdout.write(f"Total reclaimed space: "
                     f"{units.human_size(result.get('SpaceReclaimed', 0))}\n")
    return 0
