"""knarr network connect [OPTIONS] NETWORK CONTAINER"""

from knarr.cli import flags
from knarr.cli.common import quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `network connect`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] NETWORK CONTAINER",
                      "Connect a container to a network", min_args=2, max_args=2)
    c.add_argument("--alias", action="append", help="Add network-scoped alias for the container")
    c.add_argument("--ip", help="IPv4 address (e.g., \"172.30.100.104\")")
    c.add_argument("--link", action="append", help="Add link to another container")
    return c


def run(cli, args) -> int:
    """POST /networks/{id}/connect."""
    network, container = args.args
    config: dict = {"Aliases": args.alias or None}
    if args.ip:
        config["IPAMConfig"] = {"IPv4Address": args.ip}
    cli.client.post(f"/networks/{quote_path(network)}/connect", None,
                    {"Container": container, "EndpointConfig": config})
    return 0
