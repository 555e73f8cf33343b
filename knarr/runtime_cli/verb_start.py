"""knarr-runtime start ID"""

from knarr.runtime import container_start


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("start", help="start a created container")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=run)


def run(args) -> int:
    """Start it."""
    container_start.start(args.root, args.id)
    return 0
