"""knarr pull [OPTIONS] NAME[:TAG|@DIGEST]: fetch an image from a registry."""

import sys

from knarr.cli import flags

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `pull`."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] NAME[:TAG|@DIGEST]",
                      "Download an image from a registry", min_args=1, max_args=1)
    c.add_argument("-a", "--all-tags", action="store_true",
                   help="Download all tagged images in the repository")
    c.add_argument("--platform", help="Set platform if server is multi-platform capable")
    c.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    return c


def run(cli, args) -> int:
    """POST /images/create?fromImage=...; print progress and the reference pulled."""
    from knarr.cli import progress
    from knarr.cli.cmd_create import image_ref

    ref = args.args[0] if args.all_tags else image_ref(args.args[0])
    if "@" in ref:
        name, tag = ref, None
    else:
        name, _, tag = ref.rpartition(":") if not args.all_tags else (ref, "", None)
    if not args.all_tags and not args.quiet and ref != args.args[0]:
        sys.stdout.write("Using default tag: latest\n")
    from knarr.cli import auth

    messages = cli.client.stream_json("POST", "/images/create", {
        "fromImage": name, "tag": tag, "platform": args.platform or None},
        headers=auth.header_for(name))
    if args.quiet:
        for _ in progress.errors_only(messages):
            pass
        sys.stdout.write(ref + "\n")
        return 0
    progress.show(messages, sys.stdout)
    sys.stdout.write(_canonical(ref) + "\n")
    return 0


def _canonical(ref: str) -> str:
    """`busybox:latest` → `docker.io/library/busybox:latest`, as Docker's pull ends."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"
