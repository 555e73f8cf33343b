"""knarr attach [OPTIONS] CONTAINER: join a running container's main process."""

import os

from knarr.cli import flags, opts
from knarr.cli.common import quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `attach`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] CONTAINER",
                      "Attach local standard input, output, and error streams to a running "
                      "container", min_args=1, max_args=1)
    c.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    c.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    c.add_argument("--sig-proxy", action="store_true", default=True,
                   help="Proxy all received signals to the process")
    return c


def run(cli, args) -> int:
    """Attach; when the stream ends, exit with the container's status."""
    from knarr.cli import attaching

    name = args.args[0]
    info = cli.client.get(f"/containers/{quote_path(name)}/json", what=("container", name))
    state, config = info.get("State") or {}, info.get("Config") or {}
    if not state.get("Running"):
        raise cli.fail("You cannot attach to a stopped container, start it first", 1)
    if state.get("Paused"):
        raise cli.fail("You cannot attach to a paused container, unpause it first", 1)
    try:
        keys = opts.detach_keys(args.detach_keys or "ctrl-p,ctrl-q")
    except ValueError as exc:
        raise cli.fail(f"Error: {exc}", 1) from None
    cid, tty = info["Id"], config.get("Tty", False)
    stdin = not args.no_stdin and config.get("OpenStdin", False)
    sock, leftover = cli.client.hijack("POST", f"/containers/{cid}/attach", {
        "stream": 1, "stdin": int(stdin), "stdout": 1, "stderr": 1,
        "detachKeys": args.detach_keys or None})
    outcome = attaching.relay_container(cli, cid, sock, leftover, tty=tty, stdin=stdin,
                                        keys=keys, tty_in=tty and stdin and os.isatty(0),
                                        sig_proxy=args.sig_proxy and not tty)
    if outcome == "detached":
        raise cli.fail("read escape sequence", 1)  # Docker's attach ends so, status 1
    result = cli.client.post(f"/containers/{cid}/wait") or {}
    return int(result.get("StatusCode", 0))
