"""knarr diff CONTAINER: files changed in the container's file system."""

import sys

from knarr.cli import flags
from knarr.cli.common import quote_path

__all__ = ["command", "run"]

_KINDS = {0: "C", 1: "A", 2: "D"}


def command(name: str) -> flags.Command:
    """The declaration of `diff`."""
    return flags.Command(name, f"knarr {name} CONTAINER",
                         "Inspect changes to files or directories on a container's filesystem",
                         min_args=1, max_args=1)


def run(cli, args) -> int:
    """GET /containers/{id}/changes: one `A|C|D path` line each."""
    name = args.args[0]
    changes = cli.client.get(f"/containers/{quote_path(name)}/changes") or []
    sys.stdout.write("".join(f"{_KINDS.get(c.get('Kind'), '?')} {c.get('Path')}\n"
                             for c in changes))
    return 0
