"""knarr tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]"""

from knarr.cli import flags
from knarr.cli.common import quote_path

__all__ = ["command", "run", "split_ref"]


def command(name: str) -> flags.Command:
    """The declaration of `tag`."""
    return flags.Command(name, f"knarr {name} SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
                         "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
                         min_args=2, max_args=2)


def split_ref(ref: str) -> tuple[str, str]:
    """`repo/name:tag` → (`repo/name`, `tag`); the tag defaults to latest."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return name, tag


def run(cli, args) -> int:
    """POST /images/{source}/tag?repo=&tag=."""
    source, target = args.args
    repo, tag = split_ref(target)
    cli.client.post(f"/images/{quote_path(source)}/tag", {"repo": repo, "tag": tag})
    return 0
