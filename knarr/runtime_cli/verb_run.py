"""knarr-runtime run [-d] [--bundle DIR] ID: create + start (+ wait + delete)"""

from knarr.runtime import container_run
from knarr.runtime_cli.verb_create import add_create_flags


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("run", help="create and start a container, and wait for it")
    add_create_flags(p)
    p.add_argument("-d", "--detach", action="store_true", help="leave it running, return at once")
    p.add_argument("--keep", action="store_true", help="do not delete the container when it exits")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run it; our exit status is the container's."""
    return container_run.run(args.root, args.id, args.bundle, detach=args.detach,
                             console_socket=args.console_socket, pid_file=args.pid_file,
                             no_pivot=args.no_pivot, preserve_fds=args.preserve_fds,
                             keep=args.keep)
