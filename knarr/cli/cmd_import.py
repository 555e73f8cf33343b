"""knarr import [OPTIONS] file|-  [REPOSITORY[:TAG]]: an image from a file system tarball."""

import os
import sys

from knarr.cli import flags
from knarr.cli.cmd_tag import split_ref

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `import`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                      "Import the contents from a tarball to create a filesystem image",
                      min_args=1, max_args=2)
    c.add_argument("-c", "--change", action="append",
                   help="Apply Dockerfile instruction to the created image")
    c.add_argument("-m", "--message", help="Set commit message for imported image")
    c.add_argument("--platform", help="Set platform if server is multi-platform capable")
    return c


def run(cli, args) -> int:
    """POST /images/create?fromSrc=- with the tarball; print the new image's id."""
    source_name = args.args[0]
    repo = tag = None
    if len(args.args) == 2:
        repo, tag = split_ref(args.args[1])
    query = {"fromSrc": "-", "repo": repo, "tag": tag, "message": args.message or None,
             "changes": args.change or None, "platform": args.platform or None}
    if source_name == "-":
        source = os.fdopen(0, "rb", closefd=False)
    else:
        try:
            source = open(source_name, "rb")
        except OSError as exc:
            raise cli.fail(f"open {source_name}: {(exc.strerror or str(exc)).lower()}", 1) \
                from None
    with source:
        st = os.fstat(source.fileno())
        length = st.st_size if (st.st_mode & 0o170000) == 0o100000 else None
        for msg in cli.client.stream_json("POST", "/images/create", query, stream=source,
                                          length=length,
                                          headers={"Content-Type": "application/x-tar"}):
            if msg.get("error"):
                raise cli.fail(f"Error response from daemon: {msg['error']}", 1)
            status = msg.get("status", "")
            if status:
                sys.stdout.write(status.strip() + "\n")
    return 0
