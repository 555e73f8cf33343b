"""knarr events [OPTIONS]: the daemon's event stream."""

import sys
import time

from knarr.cli import flags, opts, units

__all__ = ["command", "run", "event_line"]


def command(name: str) -> flags.Command:
    """The declaration of `events`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS]", "Get real time events from the server",
                      max_args=0)
    c.add_argument("-f", "--filter", action="append", type=opts.filter_item, help="Filter output based on conditions")
    c.add_argument("--format", help="Format the output using the given Go template")
    c.add_argument("--since", help="Show all events created since timestamp")
    c.add_argument("--until", help="Stream events until this timestamp")
    return c


def event_line(event: dict) -> str:
    """`2024-01-02T03:04:05.000000000Z container start ID (image=busybox, name=c1)`."""
    nano = event.get("timeNano") or event.get("time", 0) * 1_000_000_000
    secs, frac = divmod(int(nano), 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    text = f"{stamp} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    if attrs:
        text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())) + ")"
    return text


def run(cli, args) -> int:
    """GET /events, one line per event until interrupted (or --until)."""
    from knarr.client import jsonc

    try:
        filters = opts.filters(args.filter)
        since = units.parse_timestamp(args.since) if args.since else None
        until = units.parse_timestamp(args.until) if args.until else None
    except ValueError as exc:
        raise cli.fail(f"Error: {exc}", 125) from None
    template = None
    if args.format:
        from knarr.cli.template import Template

        template = Template(args.format)
    query = {"since": since, "until": until, "filters": jsonc.dumps(filters) if filters else None}
    try:
        for event in cli.client.stream_json("GET", "/events", query):
            line = template.render(event) if template else event_line(event)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    return 0
