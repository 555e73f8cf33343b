"""knarr export [OPTIONS] CONTAINER: the container's file system as a tar archive."""

import os

from knarr.cli import flags
from knarr.cli.common import quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `export`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] CONTAINER",
                      "Export a container's filesystem as a tar archive", min_args=1,
                      max_args=1)
    c.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    return c


def run(cli, args) -> int:
    """GET /containers/{id}/export to -o or stdout."""
    from knarr.cli.cmd_save import _to_file, _write

    if not args.output and os.isatty(1):
        raise cli.fail("cowardly refusing to save to a terminal. Use the -o flag or redirect",
                       1)
    name = args.args[0]
    resp = cli.client.request("GET", f"/containers/{quote_path(name)}/export")
    try:
        if args.output:
            _to_file(resp, args.output)
        else:
            for chunk in resp.chunks():
                _write(1, chunk)
    finally:
        resp.conn.close()
    return 0
