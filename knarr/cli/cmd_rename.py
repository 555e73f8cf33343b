"""knarr rename CONTAINER NEW_NAME"""

from knarr.cli import flags
from knarr.cli.common import quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `rename`."""
    return flags.Command(name, f"knarr {name} CONTAINER NEW_NAME", "Rename a container",
                         min_args=2, max_args=2)


def run(cli, args) -> int:
    """POST /containers/{id}/rename?name=NEW."""
    old, new = args.args
    if not new.strip():
        raise cli.fail("Error: Neither old nor new names may be empty", 1)
    from knarr.errors import KnarrError

    try:
        cli.client.post(f"/containers/{quote_path(old)}/rename", {"name": new})
    except KnarrError as exc:
        raise cli.fail(f"{cli.describe(exc)}\nError: failed to rename container named {old}",
                       1) from None
    return 0
