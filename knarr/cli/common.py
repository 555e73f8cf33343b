"""Helpers the container commands share: acting on several containers, quoting names."""

import sys

from knarr.errors import KnarrError

__all__ = ["each", "quote_path"]


def quote_path(name: str) -> str:
    """A container or image name as one URL path segment."""
    from knarr.client.api import quote

    return quote(name, safe=":@")


def each(cli, names: list[str], action, summary: str | None = None) -> int:
    """Run action(name) for every name, printing the name after each success.

    Failures are printed as Docker prints them and the status is 1; `summary`
    (`failed to start containers`) adds Docker's closing line for some verbs.
    """
    failed = []
    for name in names:
        try:
            action(name)
        except KnarrError as exc:
            sys.stderr.write(cli.describe(exc) + "\n")
            failed.append(name)
            continue
        sys.stdout.write(name + "\n")
    if failed and summary:
        sys.stderr.write(f"Error: {summary}: {', '.join(failed)}\n")
    return 1 if failed else 0
