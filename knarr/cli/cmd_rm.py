"""knarr rm [OPTIONS] CONTAINER [CONTAINER...]"""

from knarr.cli import flags
from knarr.cli.common import each, quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `rm`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] CONTAINER [CONTAINER...]",
                      "Remove one or more containers", min_args=1)
    c.add_argument("-f", "--force", action="store_true",
                   help="Force the removal of a running container (uses SIGKILL)")
    c.add_argument("-v", "--volumes", action="store_true",
                   help="Remove anonymous volumes associated with the container")
    c.add_argument("-l", "--link", action="store_true", help="Remove the specified link")
    return c


def run(cli, args) -> int:
    """DELETE /containers/{id} for each."""
    query = {"force": args.force or None, "v": args.volumes or None, "link": args.link or None}

    def remove(name: str) -> None:
        cli.client.delete(f"/containers/{quote_path(name)}", query, what=("container", name))

    return each(cli, args.args, remove)
