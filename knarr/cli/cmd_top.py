"""knarr top CONTAINER [ps OPTIONS]"""

import sys

from knarr.cli import flags
from knarr.cli.common import quote_path
from knarr.cli.table import tabwrite

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `top`."""
    return flags.Command(name, f"knarr {name} CONTAINER [ps OPTIONS]",
                         "Display the running processes of a container", min_args=1,
                         interspersed=False)


def run(cli, args) -> int:
    """GET /containers/{id}/top, as a table."""
    name, *ps_args = args.args
    result = cli.client.get(f"/containers/{quote_path(name)}/top",
                            {"ps_args": " ".join(ps_args) or None})
    lines = ["\t".join(result.get("Titles") or [])]
    lines += ["\t".join(row) for row in result.get("Processes") or []]
    sys.stdout.write(tabwrite(lines, minwidth=20, padding=3))
    return 0
