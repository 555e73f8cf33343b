"""knarr port CONTAINER [PRIVATE_PORT[/PROTO]]: the container's published ports."""

import sys

from knarr.cli import flags
from knarr.cli.common import quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `port`."""
    return flags.Command(name, f"knarr {name} CONTAINER [PRIVATE_PORT[/PROTO]]",
                         "List port mappings or a specific mapping for the container",
                         min_args=1, max_args=2)


def run(cli, args) -> int:
    """From the container's NetworkSettings.Ports."""
    name = args.args[0]
    info = cli.client.get(f"/containers/{quote_path(name)}/json", what=("container", name))
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if len(args.args) == 2:
        wanted = args.args[1] if "/" in args.args[1] else args.args[1] + "/tcp"
        bindings = ports.get(wanted)
        if not bindings:
            raise cli.fail(f"Error: No public port '{wanted}' published for {name}", 1)
        sys.stdout.write("".join(f"{b.get('HostIp')}:{b.get('HostPort')}\n" for b in bindings))
        return 0
    for private, bindings in sorted(ports.items()):
        for b in bindings or []:
            sys.stdout.write(f"{private} -> {b.get('HostIp')}:{b.get('HostPort')}\n")
    return 0
