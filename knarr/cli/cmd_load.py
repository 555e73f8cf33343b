"""knarr load [OPTIONS]: images from a tar archive on stdin or -i FILE."""

import os
import sys

from knarr.cli import flags

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `load`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS]",
                      "Load an image from a tar archive or STDIN", max_args=0)
    c.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    c.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    return c


def run(cli, args) -> int:
    """POST /images/load with the archive; print the daemon's messages."""
    from knarr.cli import progress

    if args.input:
        try:
            source = open(args.input, "rb")
        except OSError as exc:
            raise cli.fail(f"open {args.input}: {(exc.strerror or str(exc)).lower()}", 1) \
                from None
    else:
        if os.isatty(0):
            raise cli.fail("requested load from stdin, but stdin is empty", 1)
        source = os.fdopen(0, "rb", closefd=False)
    with source:
        st = os.fstat(source.fileno())
        length = st.st_size if (st.st_mode & 0o170000) == 0o100000 else None
        messages = cli.client.stream_json(
            "POST", "/images/load", {"quiet": int(args.quiet)}, stream=source, length=length,
            headers={"Content-Type": "application/x-tar"})
        progress.show(messages, sys.stdout)
    return 0
