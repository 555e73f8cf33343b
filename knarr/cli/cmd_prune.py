"""knarr system prune / container prune / image prune: remove what is unused."""

import sys

from knarr.cli import flags, opts, units

__all__ = ["command", "run"]

_WARNINGS = {
    "system": "WARNING! This will remove:\n  - all stopped containers\n  - all networks not "
              "used by at least one container\n  - all {images}\n  - all {cache}build cache\n",
    "container": "WARNING! This will remove all stopped containers.\n",
    "image": "WARNING! This will remove all {images}.\n",
    "network": "WARNING! This will remove all custom networks not used by at least one "
               "container.\n",
}


def command(name: str) -> flags.Command:
    """The declaration of the prune commands."""
    c = flags.Command(name, f"knarr {name} [OPTIONS]", "Remove unused data", max_args=0)
    c.add_argument("-a", "--all", action="store_true",
                   help="Remove all unused images not just dangling ones")
    c.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    c.add_argument("--filter", action="append", type=opts.filter_item, help="Provide filter values (e.g. 'until=<ts>')")
    c.add_argument("--volumes", action="store_true", help="Prune anonymous volumes")
    return c


def _confirm(scope: str, all_images: bool) -> bool:
    images = "images without at least one container associated to them" if all_images \
        else "dangling images"
    sys.stdout.write(_WARNINGS[scope].format(images=images,
                                             cache="" if all_images else "dangling "))
    sys.stdout.write("\nAre you sure you want to continue? [y/N] " if scope == "system"
                     else "Are you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def run(cli, args) -> int:
    """POST the prune endpoints the scope covers; print what went and the space freed."""
    from knarr.client import jsonc

    scope = cli.command.split()[0] if " " in cli.command else "system"
    if not args.force and not _confirm(scope, args.all):
        if scope not in ("system", "network"):
            sys.stdout.write("Total reclaimed space: 0B\n")
        return 0
    filters = opts.filters(args.filter) or {}
    freed = 0
    if scope in ("system", "container"):
        result = cli.client.post("/containers/prune", {"filters": jsonc.dumps(filters) if
                                                       filters else None}) or {}
        freed += _report("Deleted Containers:", result.get("ContainersDeleted"), result)
    if scope in ("system", "network"):
        result = cli.client.post("/networks/prune", {"filters": jsonc.dumps(filters) if
                                                     filters and scope == "network" else None})
        result = result or {}
        _report("Deleted Networks:", result.get("NetworksDeleted"), result)
        if scope == "network":
            return 0
    if scope in ("system", "image"):
        image_filters = dict(filters, dangling=["false" if args.all else "true"])
        result = cli.client.post("/images/prune", {"filters": jsonc.dumps(image_filters)}) or {}
        deleted = [f"{k.lower()}: {v}" for item in result.get("ImagesDeleted") or []
                   for k, v in item.items()]
        freed += _report("Deleted Images:", deleted, result)
    sys.stdout.write(f"Total reclaimed space: {units.human_size(freed, 4)}\n")
    return 0


def _report(title: str, items, result: dict) -> int:
    if items:
        sys.stdout.write(title + "\n" + "".join(f"{i}\n" for i in items) + "\n")
    return int(result.get("SpaceReclaimed") or 0)
