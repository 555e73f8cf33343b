"""knarr kill [OPTIONS] CONTAINER [CONTAINER...]"""

from knarr.cli import flags
from knarr.cli.common import each, quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `kill`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] CONTAINER [CONTAINER...]",
                      "Kill one or more running containers", min_args=1)
    c.add_argument("-s", "--signal", default="KILL", help="Signal to send to the container")
    return c


def run(cli, args) -> int:
    """POST /containers/{id}/kill for each."""
    return each(cli, args.args, lambda n: cli.client.post(
        f"/containers/{quote_path(n)}/kill", {"signal": args.signal}))
