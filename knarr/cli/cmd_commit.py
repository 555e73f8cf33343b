"""knarr commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]: a new image from a container's changes."""

import sys

from knarr.cli import flags
from knarr.cli.cmd_tag import split_ref

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `commit`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
                      "Create a new image from a container's changes", min_args=1, max_args=2)
    c.add_argument("-a", "--author", help='Author (e.g., "John Hannibal Smith '
                                          '<hannibal@a-team.com>")')
    c.add_argument("-c", "--change", action="append",
                   help="Apply Dockerfile instruction to the created image")
    c.add_argument("-m", "--message", help="Commit message")
    c.add_argument("-p", "--pause", action="store_true", default=True,
                   help="Pause container during commit")
    return c


def run(cli, args) -> int:
    """POST /commit; print the new image's id."""
    repo = tag = None
    if len(args.args) == 2:
        repo, tag = split_ref(args.args[1])
    result = cli.client.post("/commit", {
        "container": args.args[0], "repo": repo, "tag": tag, "author": args.author or None,
        "comment": args.message or None, "pause": args.pause, "changes": args.change or None},
        {})
    sys.stdout.write(result.get("Id", "") + "\n")
    return 0
