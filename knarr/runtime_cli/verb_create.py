"""knarr-runtime create [--bundle DIR] [--console-socket S] [--pid-file F] ID"""

from knarr.runtime import container_create


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("create", help="create a container (its process waits for start)")
    add_create_flags(p)
    p.set_defaults(func=run)


def add_create_flags(p) -> None:
    """Flags shared by create and run."""
    p.add_argument("-b", "--bundle", default=".", help="path to the bundle (default: .)")
    p.add_argument("--console-socket", help="unix socket that receives the pty master")
    p.add_argument("--pid-file", help="write the container's init pid here")
    p.add_argument("--no-pivot", action="store_true", help="use MS_MOVE + chroot, not pivot_root")
    p.add_argument("--no-new-keyring", action="store_true", help="accepted, ignored")
    p.add_argument("--preserve-fds", type=int, default=0, help="pass N extra fds (from 3)")
    p.add_argument("id", metavar="ID")


def run(args) -> int:
    """Create the container."""
    container_create.create(args.root, args.id, args.bundle, console_socket=args.console_socket,
                            pid_file=args.pid_file, no_pivot=args.no_pivot,
                            preserve_fds=args.preserve_fds, systemd_cgroup=args.systemd_cgroup)
    return 0
