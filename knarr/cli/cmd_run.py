"""knarr run [OPTIONS] IMAGE [COMMAND] [ARG...]: create, attach, start, wait.

Exit status as Docker's: 125 when the engine fails, 126 when the command
cannot be invoked, 127 when it is not found, else the container's own.
"""

import os
import sys
import time

from knarr.cli import cmd_create, flags, opts
from knarr.errors import KnarrError

__all__ = ["command", "run", "start_error_code"]


def command(name: str) -> flags.Command:
    """The declaration of `run`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] IMAGE [COMMAND] [ARG...]",
                      "Run a command in a new container", min_args=1, interspersed=False)
    cmd_create.declare(c)
    c.add_argument("-d", "--detach", action="store_true",
                   help="Run container in background and print container ID")
    c.add_argument("--rm", action="store_true",
                   help="Automatically remove the container when it exits")
    c.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    c.add_argument("--sig-proxy", action="store_true", default=True,
                   help="Proxy received signals to the process")
    return c


def start_error_code(message: str) -> int:
    """126/127 when the command could not be run, else 125."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def _attach_streams(args) -> tuple[bool, bool, bool]:
    if args.detach:
        return False, False, False
    if args.attach:
        wanted = {a.lower() for a in args.attach}
        return "stdin" in wanted, "stdout" in wanted, "stderr" in wanted
    return args.interactive, True, True


def run(cli, args) -> int:
    """Run the container; our exit status follows it."""
    if args.detach and args.attach:
        raise cli.fail("knarr: Conflicting options: -a and -d.\nSee 'knarr run --help'.", 125)
    attach = _attach_streams(args)
    try:
        body = cmd_create.create_body(args, attach)
        keys = opts.detach_keys(args.detach_keys or "ctrl-p,ctrl-q")
    except ValueError as exc:
        raise cli.fail(f"knarr: {exc}.\nSee 'knarr run --help'.", 125) from None
    if args.tty and attach[0] and not os.isatty(0):
        raise cli.fail("the input device is not a TTY", 1)
    tty_in = args.tty and attach[0]
    if tty_in:
        size = _terminal_size()
        if size:
            body["HostConfig"]["ConsoleSize"] = list(size)
    ahead = []  # the attached run's wait client, its connection opened while create runs
    opened: list[float] = []

    def meanwhile() -> None:
        from knarr.cli import attaching  # noqa: F401 - imported while the daemon works

        client = cli.client.clone()
        try:
            client.connect_ahead()
        except KnarrError:
            return  # the daemon's answer to the create says what went wrong
        ahead.append(client)
        opened.append(time.monotonic())

    try:
        cid = cmd_create.create_container(cli, args, body,
                                          None if args.detach else meanwhile)
    except KnarrError as exc:
        for client in ahead:
            client.close()
        raise cli.fail(cmd_create.run_error(cli, exc), 125) from None
    if ahead and time.monotonic() - opened[0] > 5:  # a pull came between: open afresh
        ahead.pop().close()
    if args.detach:
        _start(cli, cid)
        sys.stdout.write(cid + "\n")
        return 0
    return _run_attached(cli, args, cid, attach, keys, tty_in, ahead[0] if ahead else None)


def _terminal_size() -> tuple[int, int] | None:
    try:
        cols, rows = os.get_terminal_size(1 if os.isatty(1) else 0)
        return rows, cols
    except OSError:
        return None


def _start(cli, cid: str) -> None:
    try:
        cli.client.post(f"/containers/{cid}/start")
    except KnarrError as exc:
        raise cli.fail(cmd_create.run_error(cli, exc, help=False),
                       start_error_code(exc.message)) from None


def _run_attached(cli, args, cid: str, attach, keys: bytes, tty_in: bool,
                  wait_client=None) -> int:
    from knarr.cli import attaching

    client = cli.client
    # the wait goes out first, on its own connection, and is answered while the attach's
    # round trip runs; both are in place before the start
    waiter = attaching.Waiter(cli, cid, "removed" if args.rm else "next-exit", later=True,
                              client=wait_client)
    try:
        sock, leftover = client.hijack("POST", f"/containers/{cid}/attach", {
            "stream": 1, "stdin": int(attach[0]), "stdout": int(attach[1]),
            "stderr": int(attach[2]), "detachKeys": args.detach_keys or None})
    except BaseException:
        waiter.abandon()
        raise
    waiter.ready()
    _start(cli, cid)
    outcome = attaching.relay_container(cli, cid, sock, leftover, tty=args.tty,
                                        stdin=attach[0], keys=keys, tty_in=tty_in,
                                        sig_proxy=args.sig_proxy and not args.tty)
    if outcome == "detached":
        waiter.close()
        return 0
    return waiter.status()
