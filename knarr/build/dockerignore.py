"""`.dockerignore`: which context paths a build leaves out, by Docker's rules.

One pattern a line; blank lines and lines starting with `#` are skipped;
a leading `!` makes an exception; patterns are cleaned like paths (a leading
`/` dropped). `*` matches within one path component, `?` one character,
`[...]` a class, `**` any number of components. A pattern that matches a
directory matches everything under it. The last pattern that matches a path
decides. Pure: `parse` takes the file's text.
"""

import posixpath
import re

__all__ = ["Matcher", "parse"]


class Matcher:
    """Compiled patterns; `excluded(path)` for a context-relative path."""

    def __init__(self, patterns: list[tuple[bool, re.Pattern, str]]) -> None:
        self.patterns = patterns

    def excluded(self, path: str) -> bool:
        """True if `path` (relative, `/`-separated) is left out of the context."""
        path = posixpath.normpath(path).lstrip("/")
        if not self.patterns or path in ("", "."):
            return False
        parents = _parents(path)
        result = False
        for exception, regex, _ in self.patterns:
            if regex.match(path) or any(regex.match(p) for p in parents):
                result = not exception
        return result

    def has_exceptions(self) -> bool:
        """Whether some pattern re-includes paths (so excluded dirs must still be walked)."""
        return any(exc for exc, _, _ in self.patterns)


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def parse(text: str) -> Matcher:
    """Compile the text of a .dockerignore file."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        if not line:
            continue
        cleaned = posixpath.normpath(line).lstrip("/")
        if cleaned in ("", "."):
            continue
        patterns.append((exception, re.compile(_regex(cleaned)), cleaned))
    return Matcher(patterns)


def _regex(pattern: str) -> str:
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out.append("(.*/)?")  # `**/x` matches x at any depth, the top included
                i += 1
            else:
                out.append(".*")
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return "".join(out)
