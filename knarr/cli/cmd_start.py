"""knarr start [OPTIONS] CONTAINER [CONTAINER...]"""

import os

from knarr.cli import flags, opts
from knarr.cli.common import each, quote_path
from knarr.errors import KnarrError

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `start`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] CONTAINER [CONTAINER...]",
                      "Start one or more stopped containers", min_args=1)
    c.add_argument("-a", "--attach", action="store_true",
                   help="Attach STDOUT/STDERR and forward signals")
    c.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    c.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    return c


def run(cli, args) -> int:
    """Start each; with -a or -i, attach to the one container and follow it to its end."""
    if not (args.attach or args.interactive):
        return each(cli, args.args, lambda n: cli.client.post(
            f"/containers/{quote_path(n)}/start", ok=(304,)), "failed to start containers")
    if len(args.args) > 1:
        raise cli.fail("Error: you cannot start and attach multiple containers at once", 1)
    return _attached(cli, args, args.args[0])


def _attached(cli, args, name: str) -> int:
    from knarr.cli import attaching

    path = f"/containers/{quote_path(name)}"
    info = cli.client.get(f"{path}/json", what=("container", name))
    config = info.get("Config") or {}
    cid, tty = info["Id"], config.get("Tty", False)
    stdin = args.interactive and config.get("OpenStdin", False)
    try:
        keys = opts.detach_keys(args.detach_keys or "ctrl-p,ctrl-q")
    except ValueError as exc:
        raise cli.fail(f"Error: {exc}", 1) from None
    sock, leftover = cli.client.hijack("POST", f"/containers/{cid}/attach", {
        "stream": 1, "stdin": int(stdin), "stdout": 1, "stderr": 1,
        "detachKeys": args.detach_keys or None})
    waiter = attaching.Waiter(cli, cid, "next-exit")
    try:
        cli.client.post(f"/containers/{cid}/start", ok=(304,))
    except KnarrError as exc:
        sock.close()
        raise cli.fail(cli.describe(exc) + f"\nError: failed to start containers: {name}",
                       1) from None
    outcome = attaching.relay_container(cli, cid, sock, leftover, tty=tty, stdin=stdin,
                                        keys=keys, tty_in=tty and stdin and os.isatty(0),
                                        sig_proxy=not tty)
    if outcome == "detached":
        waiter.close()
        return 0
    return waiter.status()
