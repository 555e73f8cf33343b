"""knarr network disconnect [OPTIONS] NETWORK CONTAINER"""

from knarr.cli import flags
from knarr.cli.common import quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `network disconnect`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] NETWORK CONTAINER",
                      "Disconnect a container from a network", min_args=2, max_args=2)
    c.add_argument("-f", "--force", action="store_true",
                   help="Force the container to disconnect from a network")
    return c


def run(cli, args) -> int:
    """POST /networks/{id}/disconnect."""
    network, container = args.args
    cli.client.post(f"/networks/{quote_path(network)}/disconnect", None,
                    {"Container": container, "Force": args.force})
    return 0
