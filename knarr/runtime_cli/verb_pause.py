"""knarr-runtime pause ID"""

from knarr.runtime import container_pause


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("pause", help="freeze every process of a container")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=run)


def run(args) -> int:
    """Pause it."""
    container_pause.pause(args.root, args.id)
    return 0
