"""knarr restart [OPTIONS] CONTAINER [CONTAINER...]"""

from knarr.cli import flags
from knarr.cli.common import each, quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `restart`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] CONTAINER [CONTAINER...]",
                      "Restart one or more containers", min_args=1)
    c.add_argument("-t", "--time", type=int,
                   help="Seconds to wait for stop before killing the container (default 10)")
    return c


def run(cli, args) -> int:
    """POST /containers/{id}/restart for each."""
    return each(cli, args.args, lambda n: cli.client.post(
        f"/containers/{quote_path(n)}/restart", {"t": args.time}))
