"""knarr push [OPTIONS] NAME[:TAG]: upload an image to its registry."""

import sys

from knarr.cli import flags
from knarr.cli.common import quote_path

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `push`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] NAME[:TAG]",
                      "Upload an image to a registry", min_args=1, max_args=1)
    c.add_argument("-a", "--all-tags", action="store_true",
                   help="Push all tags of an image to the repository")
    c.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    return c


def run(cli, args) -> int:
    """POST /images/{name}/push with the registry's credentials; print its progress."""
    from knarr.cli import auth, progress
    from knarr.cli.cmd_create import image_ref

    ref = args.args[0]
    if not args.all_tags:
        ref = image_ref(ref)
    if args.all_tags or "@" in ref:
        name, tag = ref, ""
    else:
        name, _, tag = ref.rpartition(":")
    if not args.all_tags and not args.quiet and ref != args.args[0]:
        sys.stdout.write("Using default tag: latest\n")
    headers = auth.header_for(name)
    headers.setdefault("X-Registry-Auth", auth.encode({}))
    messages = cli.client.stream_json("POST", f"/images/{quote_path(name)}/push",
                                      {"tag": tag or None}, headers=headers)
    if args.quiet:
        for _ in progress.errors_only(messages):
            pass
        sys.stdout.write(ref + "\n")
        return 0
    progress.show(messages, sys.stdout)
    return 0
