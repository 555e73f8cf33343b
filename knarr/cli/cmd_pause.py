"""knarr pause CONTAINER [CONTAINER...]"""

from knarr.cli import flags
from knarr.cli.common import each, quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `pause`."""
    return flags.Command(name, f"knarr {name} CONTAINER [CONTAINER...]",
                         "Pause all processes within one or more containers", min_args=1)


def run(cli, args) -> int:
    """POST /containers/{id}/pause for each."""
    return each(cli, args.args, lambda n: cli.client.post(f"/containers/{quote_path(n)}/pause"))
