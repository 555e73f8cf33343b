"""knarr rmi [OPTIONS] IMAGE [IMAGE...]"""

import sys

from knarr.cli import flags
from knarr.cli.common import quote_path
from knarr.errors import KnarrError

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `rmi`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] IMAGE [IMAGE...]",
                      "Remove one or more images", min_args=1)
    c.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    c.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    return c


def run(cli, args) -> int:
    """DELETE /images/{name} for each; print what was untagged and deleted."""
    failed = False
    for name in args.args:
        try:
            items = cli.client.delete(f"/images/{quote_path(name)}",
                                      {"force": args.force or None,
                                       "noprune": args.no_prune or None},
                                      what=("image", name)) or []
        except KnarrError as exc:
            sys.stderr.write(cli.describe(exc) + "\n")
            failed = True
            continue
        for item in items:
            for key in ("Untagged", "Deleted"):
                if item.get(key):
                    sys.stdout.write(f"{key}: {item[key]}\n")
    return 1 if failed else 0
