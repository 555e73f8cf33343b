"""knarr wait CONTAINER [CONTAINER...]: block until each stops, print its exit code."""

import sys

from knarr.cli import flags
from knarr.cli.common import quote_path
from knarr.errors import KnarrError

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `wait`."""
    return flags.Command(name, f"knarr {name} CONTAINER [CONTAINER...]",
                         "Block until one or more containers stop, then print their exit codes",
                         min_args=1)


def run(cli, args) -> int:
    """POST /containers/{id}/wait for each, in turn."""
    failed = False
    for name in args.args:
        try:
            result = cli.client.post(f"/containers/{quote_path(name)}/wait")
        except KnarrError as exc:
            sys.stderr.write(cli.describe(exc) + "\n")
            failed = True
            continue
        sys.stdout.write(f"{result.get('StatusCode', 0)}\n")
        sys.stdout.flush()
    return 1 if failed else 0
