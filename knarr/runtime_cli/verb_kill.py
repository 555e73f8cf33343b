"""knarr-runtime kill [--all] ID [SIGNAL]"""

from knarr.runtime import container_kill


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("kill", help="send a signal (default SIGTERM) to a container")
    p.add_argument("-a", "--all", action="store_true", help="signal every process in it")
    p.add_argument("id", metavar="ID")
    p.add_argument("signal", nargs="?", default="SIGTERM")
    p.set_defaults(func=run)


def run(args) -> int:
    """Send the signal."""
    container_kill.kill(args.root, args.id, container_kill.parse_signal(args.signal), args.all)
    return 0
