"""knarr search [OPTIONS] TERM: search a registry for images (where it has a search API)."""

import sys

from knarr.cli import flags

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `search`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] TERM", "Search Docker Hub for images",
                      min_args=1, max_args=1)
    c.add_argument("--limit", type=int, default=25, help="Max number of search results")
    c.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    c.add_argument("--format", help="Pretty-print search using a Go template")
    return c


def run(cli, args) -> int:
    """GET /images/search; print Docker's table."""
    from knarr.cli import auth
    from knarr.cli.table import tabwrite

    term = args.args[0]
    found = cli.client.get("/images/search", {"term": term, "limit": args.limit},
                           headers=auth.header_for(term)) or []
    lines = ["NAME\tDESCRIPTION\tSTARS\tOFFICIAL\tAUTOMATED"]
    for item in found:
        text = " ".join((item.get("description") or "").split())
        if not args.no_trunc and len(text) > 45:
            text = text[:44] + "…"
        lines.append("\t".join([item.get("name", ""), text, str(item.get("star_count", 0)),
                                "[OK]" if item.get("is_official") else "",
                                "[OK]" if item.get("is_automated") else ""]))
    sys.stdout.write(tabwrite(lines))
    return 0
