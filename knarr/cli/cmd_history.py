"""knarr history [OPTIONS] IMAGE: the layers an image was built from."""

import sys
import time

from knarr.cli import flags, units
from knarr.cli.cmd_ps import ellipsis
from knarr.cli.common import quote_path
from knarr.cli.table import Formatter

__all__ = ["command", "run", "Row"]

DEFAULT_FORMAT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
           "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


def command(name: str) -> flags.Command:
    """The declaration of `history`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] IMAGE", "Show the history of an image",
                      min_args=1, max_args=1)
    c.add_argument("--format", help="Pretty-print images using a Go template")
    c.add_argument("-H", "--human", action="store_true", default=True,
                   help="Print sizes and dates in human readable format")
    c.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    c.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    return c


class Row:
    """One history entry's template fields."""

    def __init__(self, entry: dict, trunc: bool, human: bool, now: float) -> None:
        self.e, self.trunc, self.human, self.now = entry, trunc, human, now
        self.Comment = entry.get("Comment", "")

    @property
    def ID(self) -> str:
        ident = self.e.get("Id", "")
        if ident == "<missing>" or not self.trunc:
            return ident
        return ident.removeprefix("sha256:")[:12]

    @property
    def CreatedSince(self) -> str:
        if not self.human:
            return self.CreatedAt
        return units.since_ago(self.e.get("Created", 0), self.now)

    @property
    def CreatedAt(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.e.get("Created", 0)))

    @property
    def CreatedBy(self) -> str:
        text = self.e.get("CreatedBy", "").replace("\t", " ")
        return ellipsis(text, 45) if self.trunc else text

    @property
    def Size(self) -> str:
        size = self.e.get("Size", 0)
        return units.human_size(size) if self.human else str(size)

    def as_dict(self) -> dict:
        """What `{{json .}}` prints."""
        return {k: getattr(self, k) for k in ("Comment", "CreatedAt", "CreatedBy",
                                               "CreatedSince", "ID", "Size")}


def run(cli, args) -> int:
    """GET /images/{name}/history as a table."""
    name = args.args[0]
    entries = cli.client.get(f"/images/{quote_path(name)}/history") or []
    now = time.time()
    rows = [Row(e, not args.no_trunc, args.human, now) for e in entries]
    fmt = "{{.ID}}" if args.quiet else args.format or DEFAULT_FORMAT
    sys.stdout.write(Formatter(fmt, HEADERS).render(rows))
    return 0
