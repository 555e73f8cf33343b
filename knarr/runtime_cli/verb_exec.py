"""knarr-runtime exec [flags] ID [COMMAND ARGS...] | --process FILE ID"""

import json

from knarr.errors import InvalidArgument, NotFound
from knarr.runtime import container as containers
from knarr.runtime import container_exec
from knarr.runtime_cli.flags import REMAINDER


def add_parser(sub) -> None:
    """Register the verb."""
    p = sub.add_parser("exec", help="run a new process inside a container")
    p.add_argument("-p", "--process", help="process.json with the whole process spec")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pty")
    p.add_argument("--console-socket")
    p.add_argument("--pid-file")
    p.add_argument("--cwd")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user", help="UID[:GID]")
    p.add_argument("-g", "--additional-gids", action="append", type=int, default=[])
    p.add_argument("-c", "--cap", action="append", default=[], help="add a capability")
    p.add_argument("--no-new-privs", action="store_true")
    p.add_argument("--apparmor", help="ignored")
    p.add_argument("--process-label", help="ignored")
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("--ignore-paused", action="store_true")
    p.add_argument("id", metavar="ID")
    p.add_argument("command", nargs=REMAINDER)
    p.set_defaults(func=run)


def _from_file(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"exec: process file {path} not found", path=path) from None
    except ValueError as exc:
        raise InvalidArgument(f"exec: process file {path} is not valid JSON: {exc}") from exc


def _from_flags(args) -> dict:
    c = containers.load(args.root, args.id)
    base = dict(c.record["process"])
    if not args.command:
        raise InvalidArgument("exec: no command given (use --process or ID COMMAND...)")
    base.update(args=args.command, terminal=args.tty, env=base.get("env", []) + args.env)
    if args.cwd:
        base["cwd"] = args.cwd
    if args.user:
        uid, _, gid = args.user.partition(":")
        base["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if args.additional_gids:
        base.setdefault("user", {})["additionalGids"] = args.additional_gids
    if args.cap:
        caps = {k: list(v) for k, v in base.get("capabilities", {}).items()}
        for kind in ("bounding", "effective", "permitted", "ambient"):
            caps.setdefault(kind, []).extend(c for c in args.cap if c not in caps[kind])
        base["capabilities"] = caps
    if args.no_new_privs:
        base["noNewPrivileges"] = True
    return base


def run(args) -> int:
    """Start the process; exit with its status unless detached."""
    proc = _from_file(args.process) if args.process else _from_flags(args)
    result = container_exec.exec_process(args.root, args.id, proc, detach=args.detach,
                                         console_socket=args.console_socket,
                                         pid_file=args.pid_file,
                                         preserve_fds=args.preserve_fds)
    return 0 if args.detach else result



