"""knarr network rm NETWORK [NETWORK...]"""

from knarr.cli import flags
from knarr.cli.common import each, quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `network rm`."""
    c = flags.Command(name, f"knarr {name} NETWORK [NETWORK...]", "Remove one or more networks",
                      min_args=1)
    c.add_argument("-f", "--force", action="store_true",
                   help="Do not error if the network does not exist")
    return c


def run(cli, args) -> int:
    """DELETE /networks/{id} for each."""
    from knarr.errors import NotFound

    def remove(name: str) -> None:
        try:
            cli.client.delete(f"/networks/{quote_path(name)}")
        except NotFound:
            if not args.force:
                raise

    return each(cli, args.args, remove)
