"""The Dockerfile parser: text in, instructions out; pure, no I/O.

What it understands, as Docker's does: parser directives at the very top
(`# syntax=...`, `# escape=`` ` ``), comment lines (also inside a
continuation), line continuations with the escape character, instruction
names in any case, leading `--flag=value` options, JSON (exec) and shell
forms, and heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`) for RUN, COPY and ADD.
Every error names its line: `dockerfile parse error line 3: unknown
instruction: FOO`. Variable substitution happens later, per step, with the
environment of that step (`knarr.build.words`).
"""

import dataclasses
import json
import re

from knarr.errors import InvalidArgument

__all__ = ["Instruction", "Dockerfile", "parse", "parse_line", "ParseError", "KEYWORDS"]

KEYWORDS = {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
            "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
            "WORKDIR"}
_JSON_FORMS = {"RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME", "COPY", "ADD"}
_HEREDOC_FORMS = {"RUN", "COPY", "ADD"}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


class ParseError(InvalidArgument):
    """A Dockerfile that cannot be parsed; `line` is where (1-based)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"dockerfile parse error line {line}: {message}", line=line)
        self.line = line
        self.reason = message


@dataclasses.dataclass
class Heredoc:
    """A here-document: its name, its text, and whether `$VAR` is expanded in it."""

    name: str
    content: str
    expand: bool = True


@dataclasses.dataclass
class Instruction:
    """One instruction. `rest` is what follows the flags (trimmed), `json` its exec form
    when it has one, `line` its first line in the file (1-based)."""

    keyword: str
    rest: str
    line: int
    flags: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    json: list[str] | None = None
    heredocs: list[Heredoc] = dataclasses.field(default_factory=list)
    original: str = ""

    def flag(self, name: str, default: str | None = None) -> str | None:
        """The last value given for `--name`, or `default`."""
        values = self.flags.get(name)
        return values[-1] if values else default


@dataclasses.dataclass
class Dockerfile:
    """A parsed Dockerfile: its directives, escape character and instructions."""

    instructions: list[Instruction]
    directives: dict[str, str]
    escape: str = "\\"


def parse(text: str) -> Dockerfile:
    """Parse a whole Dockerfile."""
    lines = text.replace("\r\n", "\n").split("\n")
    directives, start = _directives(lines)
    escape = directives.get("escape", "\\")
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    instructions: list[Instruction] = []
    i = start
    while i < len(lines):
        first = i
        stripped = lines[i].strip()
        i += 1
        if not stripped or stripped.startswith("#"):
            continue
        logical, ended = _strip_continuation(lines[first].lstrip(), continuation)
        while not ended and i < len(lines):
            nxt = lines[i]
            i += 1
            if nxt.strip().startswith("#") or not nxt.strip():
                continue
            part, ended = _strip_continuation(nxt, continuation)
            logical += part
        instruction = parse_line(logical, first + 1, escape)
        if instruction.keyword in _HEREDOC_FORMS and instruction.json is None:
            i = _read_heredocs(instruction, lines, i)
        instructions.append(instruction)
    return Dockerfile(instructions, directives, escape)


def _strip_continuation(line: str, continuation: re.Pattern) -> tuple[str, bool]:
    if continuation.search(line):
        return continuation.sub("", line), False
    return line, True


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    found: dict[str, str] = {}
    for number, line in enumerate(lines):
        match = _DIRECTIVE.match(line.strip())
        if not match:
            return found, number
        name, value = match.group(1).lower(), match.group(2)
        if name not in ("syntax", "escape", "check"):
            return found, number  # an unknown directive is a comment, and ends the directives
        if name in found:
            raise ParseError(number + 1, f"only one {name} parser directive can be used")
        if name == "escape" and value not in ("\\", "`"):
            raise ParseError(number + 1, f"invalid escape token '{value}' does not match "
                                         "` or \\")
        found[name] = value
    return found, len(lines)


def parse_line(text: str, line: int, escape: str = "\\") -> Instruction:
    """Parse one logical line (continuations already joined) into an instruction."""
    text = text.strip()
    keyword, _, rest = _split_first(text)
    upper = keyword.upper()
    if upper not in KEYWORDS:
        raise ParseError(line, f"unknown instruction: {keyword}")
    flags, rest = _flags(rest, line, upper)
    instruction = Instruction(upper, rest, line, flags, original=text)
    if upper in _JSON_FORMS and rest.startswith("["):
        instruction.json = _json_array(rest)
    if upper == "ONBUILD":
        _check_onbuild(rest, line, escape)
    if upper == "SHELL" and instruction.json is None:
        raise ParseError(line, "SHELL requires the arguments to be in JSON form")
    return instruction


def _split_first(text: str) -> tuple[str, str, str]:
    match = re.match(r"(\S+)\s*(.*)$", text, re.S)
    if not match:
        return "", "", ""
    return match.group(1), " ", match.group(2).strip()


def _flags(rest: str, line: int, keyword: str) -> tuple[dict[str, list[str]], str]:
    flags: dict[str, list[str]] = {}
    if keyword in ("ONBUILD",):
        return flags, rest
    while rest.startswith("--"):
        word, _, after = _split_first(rest)
        if word == "--":
            rest = after
            break
        name, eq, value = word[2:].partition("=")
        if not name:
            raise ParseError(line, f"{keyword}: invalid flag {word!r}")
        flags.setdefault(name, []).append(_unquote(value) if eq else "true")
        rest = after
    return flags, rest


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _json_array(rest: str) -> list[str] | None:
    try:
        value = json.loads(rest)
    except ValueError:
        return None  # not JSON: the shell form, as Docker takes it
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _check_onbuild(rest: str, line: int, escape: str) -> None:
    if not rest:
        raise ParseError(line, "ONBUILD requires at least one argument")
    inner = parse_line(rest, line, escape)
    if inner.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
        raise ParseError(line, f"{inner.keyword} isn't allowed as an ONBUILD trigger")


def _read_heredocs(instruction: Instruction, lines: list[str], i: int) -> int:
    for match in _HEREDOC.finditer(instruction.rest):
        strip_tabs, quote, name = match.group(1) == "-", match.group(2), match.group(3)
        body = []
        while True:
            if i >= len(lines):
                raise ParseError(instruction.line, f"unterminated heredoc {name}")
            text = lines[i]
            i += 1
            if strip_tabs:
                text = text.lstrip("\t")
            if text == name:
                break
            body.append(text + "\n")
        instruction.heredocs.append(Heredoc(name, "".join(body), expand=not quote))
    return i
