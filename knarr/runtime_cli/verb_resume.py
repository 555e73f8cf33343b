"""knarr-runtime resume ID"""

from knarr.runtime import container_pause


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("resume", help="thaw a paused container")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=run)


def run(args) -> int:
    """Resume it."""
    container_pause.resume(args.root, args.id)
    return 0
