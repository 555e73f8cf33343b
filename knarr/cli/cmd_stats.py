"""knarr stats [OPTIONS] [CONTAINER...]: a live table of resource usage."""

import sys
import time

from knarr.cli import flags
from knarr.cli.common import quote_path
from knarr.cli.statsrow import DEFAULT_FORMAT, HEADERS, StatsRow
from knarr.cli.table import Formatter
from knarr.errors import KnarrError

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `stats`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] [CONTAINER...]",
                      "Display a live stream of container(s) resource usage statistics")
    c.add_argument("-a", "--all", action="store_true",
                   help="Show all containers (default shows just running)")
    c.add_argument("--format", help="Pretty-print images using a Go template")
    c.add_argument("--no-stream", action="store_true",
                   help="Disable streaming stats and only pull the first result")
    c.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    return c


class _Sampler:
    """Latest sample of each container, fed by one streaming request per container."""

    def __init__(self, cli) -> None:
        self.cli, self.latest, self.threads = cli, {}, {}

    def follow(self, name: str, stream: bool) -> None:
        import threading

        if name in self.threads:
            return
        thread = threading.Thread(target=self._read, args=(name, stream), daemon=True)
        self.threads[name] = thread
        thread.start()

    def _read(self, name: str, stream: bool) -> None:
        client = self.cli.client.clone()
        try:
            for sample in client.stream_json("GET", f"/containers/{quote_path(name)}/stats",
                                             {"stream": int(stream)}):
                self.latest[name] = sample
        except (KnarrError, OSError) as exc:
            self.latest[name] = exc
        finally:
            if stream:
                self.threads.pop(name, None)
                self.latest.pop(name, None)


def _names(cli, args) -> list[str]:
    if args.args:
        return list(args.args)
    return [c["Id"] for c in cli.client.get("/containers/json", {"all": args.all or None}) or []]


def run(cli, args) -> int:
    """Print the table once (--no-stream) or redraw it every second."""
    fmt = args.format if args.format and args.format.strip() != "table" else DEFAULT_FORMAT
    formatter = Formatter(fmt, HEADERS)
    sampler = _Sampler(cli)
    cli.client.api_version()  # negotiate once, here, not in every sampler thread
    names = _names(cli, args)
    for name in names:
        sampler.follow(name, stream=not args.no_stream)
    if args.no_stream:
        for thread in list(sampler.threads.values()):
            thread.join()
        return _print(cli, formatter, sampler, names, args, clear=False)
    try:
        while True:
            time.sleep(1.0 if sampler.latest else 0.2)
            if not args.args:
                for name in _names(cli, args):
                    sampler.follow(name, stream=True)
            _print(cli, formatter, sampler, list(sampler.latest), args, clear=True)
    except KeyboardInterrupt:
        return 0


def _print(cli, formatter, sampler, names, args, clear: bool) -> int:
    rows, failed = [], 0
    for name in names:
        sample = sampler.latest.get(name)
        if isinstance(sample, Exception):
            if not clear:
                sys.stderr.write(cli.describe(sample) + "\n")
            failed = 1
        elif sample is not None:
            rows.append(StatsRow(sample, name if args.args else "", trunc=not args.no_trunc))
    text = formatter.render(rows) if (rows or (formatter.table and not failed)) else ""
    if clear:
        text = "\033[2J\033[H" + text
    sys.stdout.write(text)
    sys.stdout.flush()
    return failed
