"""knarr logout [SERVER]: forget the credentials kept for a registry."""

import sys

from knarr.cli import flags

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `logout`."""
    return flags.Command(name, f"knarr {name} [SERVER]", "Log out from a registry", max_args=1)


def run(cli, args) -> int:
    """Remove the server's entry from the config file."""
    from knarr.cli import auth

    server = args.args[0] if args.args else auth.INDEX
    if auth.erase(server):
        sys.stdout.write(f"Removing login credentials for {server}\n")
    else:
        sys.stdout.write(f"Not logged in to {server}\n")
    return 0
