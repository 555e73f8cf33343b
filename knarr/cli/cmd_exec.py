"""knarr exec [OPTIONS] CONTAINER COMMAND [ARG...]: run one more program in a container."""

import os
import sys

from knarr.cli import flags, opts
from knarr.cli.common import quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `exec`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] CONTAINER COMMAND [ARG...]",
                      "Run a command in a running container", min_args=2, interspersed=False)
    c.add_argument("-d", "--detach", action="store_true",
                   help="Detached mode: run command in the background")
    c.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    c.add_argument("-e", "--env", action="append", help="Set environment variables")
    c.add_argument("--env-file", action="append", help="Read in a file of environment variables")
    c.add_argument("-i", "--interactive", action="store_true",
                   help="Keep STDIN open even if not attached")
    c.add_argument("--privileged", action="store_true",
                   help="Give extended privileges to the command")
    c.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    c.add_argument("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    c.add_argument("-w", "--workdir", help="Working directory inside the container")
    return c


def _body(args) -> dict:
    env = []
    for path in args.env_file:
        env += opts.read_env_file(path)
    env += opts.env_list(args.env)
    attach = not args.detach
    body = {"AttachStdin": args.interactive and attach, "AttachStdout": attach,
            "AttachStderr": attach, "Tty": args.tty, "Cmd": args.args[1:], "Env": env or None,
            "User": args.user or "", "WorkingDir": args.workdir or "",
            "Privileged": args.privileged}
    if args.detach_keys:
        body["DetachKeys"] = args.detach_keys
    if args.tty and os.isatty(1):
        try:
            cols, rows = os.get_terminal_size(1)
            body["ConsoleSize"] = [rows, cols]
        except OSError:
            pass
    return body


def run(cli, args) -> int:
    """POST /containers/{id}/exec, then /exec/{id}/start; our status is the program's."""
    from knarr.cli import attaching

    try:
        body = _body(args)
        keys = opts.detach_keys(args.detach_keys or "ctrl-p,ctrl-q")
    except ValueError as exc:
        raise cli.fail(f"Error: {exc}", 125) from None
    name = args.args[0]
    client = cli.client
    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        client.get(f"/containers/{quote_path(name)}/json", what=("container", name))
        raise cli.fail("the input device is not a TTY", 1)
    exec_id = client.post(f"/containers/{quote_path(name)}/exec", None, body,
                          what=("container", name))["Id"]
    if args.detach:
        client.post(f"/exec/{exec_id}/start", None, {"Detach": True, "Tty": args.tty})
        return 0
    sock, leftover = client.hijack("POST", f"/exec/{exec_id}/start", None,
                                   {"Detach": False, "Tty": args.tty})
    tty_in = args.tty and args.interactive and os.isatty(0)
    outcome = attaching.relay_container(cli, name, sock, leftover, tty=args.tty,
                                        stdin=args.interactive, keys=keys, tty_in=tty_in,
                                        sig_proxy=False, path=f"/exec/{exec_id}")
    if outcome == "detached":
        return 0
    sys.stdout.flush()
    info = client.get(f"/exec/{exec_id}/json")
    code = info.get("ExitCode")
    return 126 if code is None else int(code)
