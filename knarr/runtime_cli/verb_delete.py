"""knarr-runtime delete [-f] ID..."""

from knarr.runtime import container_delete


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("delete", help="delete a stopped container (-f: any container)")
    p.add_argument("-f", "--force", action="store_true", help="kill it first if it runs")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(func=run)


def run(args) -> int:
    """Delete each container named."""
    for container_id in args.ids:
        container_delete.delete(args.root, container_id, force=args.force)
    return 0
