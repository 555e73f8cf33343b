"""knarr inspect [OPTIONS] NAME|ID [NAME|ID...]: low-level JSON of containers and images."""

import sys

from knarr.cli import flags
from knarr.cli.common import quote_path
from knarr.errors import KnarrError, NotFound

__all__ = ["command", "run"]


def command(name: str) -> flags.Command:
    """The declaration of `inspect` (also `container inspect` and `image inspect`)."""
    c = flags.Command(name, f"knarr {name} [OPTIONS] NAME|ID [NAME|ID...]",
                      "Return low-level information on Docker objects", min_args=1)
    c.add_argument("-f", "--format", help="Format the output using the given Go template")
    c.add_argument("-s", "--size", action="store_true",
                   help="Display total file sizes if the type is container")
    c.add_argument("--type", help="Return JSON for specified type")
    return c


def _kinds(cli, args) -> tuple[str, ...]:
    if cli.command.startswith("container"):
        return ("container",)
    if cli.command.startswith("image"):
        return ("image",)
    if cli.command.startswith("network"):
        return ("network",)
    if args.type in ("container", "image", "network"):
        return (args.type,)
    if args.type:
        raise cli.fail(f'"{args.type}" is not a valid value for --type', 1)
    return ("container", "image", "network")


def _fetch(cli, kind: str, name: str, size: bool) -> dict:
    if kind == "container":
        return cli.client.get(f"/containers/{quote_path(name)}/json", {"size": size or None},
                              what=("container", name))
    if kind == "network":
        return cli.client.get(f"/networks/{quote_path(name)}", what=("network", name))
    return cli.client.get(f"/images/{quote_path(name)}/json", what=("image", name))


def _one(cli, kinds: tuple[str, ...], name: str, size: bool) -> dict:
    for kind in kinds:
        try:
            return _fetch(cli, kind, name, size)
        except NotFound:
            continue
    word = kinds[0] if len(kinds) == 1 else "object"
    raise NotFound(f"No such {word}: {name}", object=word)


def run(cli, args) -> int:
    """Print the objects as a JSON array, or each through --format."""
    kinds = _kinds(cli, args)
    found, errors = [], []
    for name in args.args:
        try:
            found.append(_one(cli, kinds, name, args.size))
        except KnarrError as exc:
            errors.append(cli.describe(exc))
    if args.format and args.format.strip() != "json":
        _templated(cli, args.format, found)
    else:
        from knarr.client import jsonc

        sys.stdout.write(jsonc.dumps_indent(found) + "\n" if found else "[]\n")
    sys.stdout.flush()
    for error in errors:
        sys.stderr.write(error + "\n")
    return 1 if errors else 0


def _templated(cli, fmt: str, found: list[dict]) -> None:
    from knarr.cli.template import Template, TemplateError

    try:
        template = Template(fmt.replace("\\t", "\t").replace("\\n", "\n"))
        for obj in found:
            sys.stdout.write(template.render(obj) + "\n")
    except TemplateError as exc:
        raise cli.fail(f"template parsing error: {exc}", 1) from None
