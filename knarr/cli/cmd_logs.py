"""knarr logs [OPTIONS] CONTAINER: the container's stdout and stderr."""

from knarr.cli import flags, units
from knarr.cli.common import quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `logs`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] CONTAINER", "Fetch the logs of a container",
                      min_args=1, max_args=1)
    c.add_argument("--details", action="store_true", help="Show extra details provided to logs")
    c.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    c.add_argument("--since",
                   help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative "
                        "(e.g. 42m for 42 minutes)")
    c.add_argument("-n", "--tail", default="all",
                   help="Number of lines to show from the end of the logs")
    c.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    c.add_argument("--until",
                   help="Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative "
                        "(e.g. 42m for 42 minutes)")
    return c


def run(cli, args) -> int:
    """GET /containers/{id}/logs, demultiplexed unless the container has a TTY."""
    from knarr.cli import streams
    from knarr.client import frames

    name = args.args[0]
    path = f"/containers/{quote_path(name)}"
    info = cli.client.get(f"{path}/json", what=("container", name))
    try:
        since = units.parse_timestamp(args.since) if args.since else None
        until = units.parse_timestamp(args.until) if args.until else None
    except ValueError as exc:
        raise cli.fail(f"Error: {exc}", 1) from None
    resp = cli.client.request("GET", f"{path}/logs", {
        "stdout": 1, "stderr": 1, "follow": args.follow or None, "since": since,
        "until": until, "timestamps": args.timestamps or None, "details": args.details or None,
        "tail": args.tail})
    tty = (info.get("Config") or {}).get("Tty", False)
    demux = None if tty else frames.Demuxer()
    try:
        for chunk in resp.chunks():
            streams._output(chunk, demux, 1, 2)
    finally:
        resp.conn.close()
    return 0
