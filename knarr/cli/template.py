"""A small subset of Go's text/template, enough for Docker's --format strings.

Supported: `{{.Field.Sub}}`, `{{.}}`, `{{$}}`, string and number literals,
pipelines (`{{.Name | upper}}`), the functions Docker adds (`json`, `join`,
`split`, `lower`, `upper`, `title`, `truncate`, `pad`, `println`) plus `index`,
`len`, `printf`, `print`, and `if`/`else`/`range`/`with` ... `end`, `-`
trimming. Fields are looked up as dict keys, then attributes.
"""

__all__ = ["Template", "TemplateError", "render", "go_string"]


class TemplateError(ValueError):
    """The template cannot be parsed or executed."""


class _NoValue:
    def __str__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


def go_string(value: object) -> str:
    """How Go's fmt prints a value decoded from JSON."""
    if value is None:
        return "<nil>"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, dict):
        items = " ".join(f"{k}:{go_string(v)}" for k, v in sorted(value.items()))
        return f"map[{items}]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_string(v) for v in value) + "]"
    return str(value)


def _tokens(text: str) -> list[tuple[str, str]]:
    """Split into ("text", s) and ("action", s) pieces, applying {{- -}} trimming."""
    out: list[tuple[str, str]] = []
    i = 0
    while True:
        start = text.find("{{", i)
        if start < 0:
            out.append(("text", text[i:]))
            return out
        end = text.find("}}", start)
        if end < 0:
            raise TemplateError("unclosed action")
        body = text[start + 2:end]
        piece = text[i:start]
        if body.startswith("-") and body[1:2] in (" ", "\t", "\n"):
            piece, body = piece.rstrip(), body[1:]
        out.append(("text", piece))
        trim_after = body.endswith("-") and body[-2:-1] in (" ", "\t", "\n")
        if trim_after:
            body = body[:-1]
        out.append(("action", body.strip()))
        i = end + 2
        if trim_after:
            while i < len(text) and text[i] in " \t\r\n":
                i += 1


def _words(action: str) -> list[str]:
    """Split an action at spaces, keeping quoted strings and parentheses whole."""
    words, cur, i = [], "", 0
    while i < len(action):
        c = action[i]
        if c in "\"`":
            j = i + 1
            while j < len(action) and action[j] != c:
                j += 2 if action[j] == "\\" and c == '"' else 1
            cur += action[i:j + 1]
            i = j + 1
            continue
        if c in " \t\n":
            if cur:
                words.append(cur)
            cur = ""
        elif c == "|":
            if cur:
                words.append(cur)
            words.append("|")
            cur = ""
        else:
            cur += c
        i += 1
    if cur:
        words.append(cur)
    return words


def _parse(tokens: list, i: int, stop: tuple[str, ...]) -> tuple[list, int, str]:
    """Nodes up to one of `stop`; returns (nodes, next index, the stopping keyword)."""
    nodes: list = []
    while i < len(tokens):
        kind, body = tokens[i]
        i += 1
        if kind == "text":
            if body:
                nodes.append(("text", body))
            continue
        head = body.split(None, 1)[0] if body else ""
        if head in stop:
            return nodes, i, head
        if head in ("if", "range", "with"):
            inner, i, end = _parse(tokens, i, ("else", "end"))
            other: list = []
            if end == "else":
                other, i, end = _parse(tokens, i, ("end",))
            if end != "end":
                raise TemplateError(f"unexpected EOF in {head}")
            nodes.append((head, _words(body)[1:], inner, other))
        elif head.startswith("/*"):
            continue
        else:
            nodes.append(("action", _words(body)))
    if stop:
        raise TemplateError("unexpected EOF")
    return nodes, i, ""


class Template:
    """A parsed template; `render(data)` executes it."""

    def __init__(self, text: str, funcs: dict | None = None) -> None:
        self.nodes, _, _ = _parse(_tokens(text), 0, ())
        self.funcs = {**FUNCS, **(funcs or {})}

    def render(self, data: object) -> str:
        """The template's output for `data` as `.` and `$`."""
        out: list[str] = []
        self._run(self.nodes, data, data, out)
        return "".join(out)

    def _run(self, nodes: list, dot: object, root: object, out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                value = self._pipeline(node[1], dot, root)
                out.append(value if isinstance(value, str) else go_string(value))
            elif kind == "if":
                value = self._pipeline(node[1], dot, root)
                self._run(node[2] if _truth(value) else node[3], dot, root, out)
            elif kind == "with":
                value = self._pipeline(node[1], dot, root)
                self._run(node[2] if _truth(value) else node[3],
                          value if _truth(value) else dot, root, out)
            elif kind == "range":
                self._range(node, dot, root, out)

    def _range(self, node: tuple, dot: object, root: object, out: list[str]) -> None:
        words = node[1]
        names: list[str] = []
        if ":=" in words:
            at = words.index(":=")
            names = [w.strip(",") for w in words[:at] if w.strip(",")]
            words = words[at + 1:]
        value = self._pipeline(words, dot, root)
        items = sorted(value.items()) if isinstance(value, dict) else \
            list(enumerate(value or []))
        if not items:
            self._run(node[3], dot, root, out)
        for key, item in items:
            values = (key, item)[-len(names):] if names else ()
            scope = {"$" + n.lstrip("$"): v for n, v in zip(names[-2:], values, strict=False)}
            self._run(node[2], _Scoped(item, scope) if scope else item, root, out)

    def _pipeline(self, words: list[str], dot: object, root: object) -> object:
        value: object = NO_VALUE
        first = True
        while words:
            cmd = words[:words.index("|")] if "|" in words else words
            words = words[len(cmd) + 1:]
            value = self._command(cmd, dot, root, None if first else value)
            first = False
        return value

    def _command(self, cmd: list[str], dot: object, root: object, piped: object) -> object:
        if not cmd:
            raise TemplateError("missing command")
        head = cmd[0]
        if head in self.funcs:
            args = [self._arg(w, dot, root) for w in cmd[1:]]
            if piped is not None:
                args.append(piped)
            try:
                return self.funcs[head](*args)
            except TemplateError:
                raise
            except Exception as exc:
                raise TemplateError(f"error calling {head}: {exc}") from None
        value = self._arg(head, dot, root)
        if callable(value) and head.startswith("."):  # a method: {{.Label "name"}}
            args = [self._arg(w, dot, root) for w in cmd[1:]]
            return value(*args, *(() if piped is None else (piped,)))
        if len(cmd) > 1 or piped is not None:
            raise TemplateError(f"can't give argument to non-function {head}")
        return value

    def _arg(self, word: str, dot: object, root: object) -> object:
        if word.startswith('"') or word.startswith("`"):
            return _unquote(word)
        if word[:1].isdigit() or (word[:1] == "-" and word[1:2].isdigit()):
            return float(word) if "." in word else int(word)
        if word in ("true", "false"):
            return word == "true"
        if word.startswith("(") and word.endswith(")"):
            return self._pipeline(_words(word[1:-1]), dot, root)
        if word == ".":
            return _unwrap(dot)
        if word.startswith("$"):
            name, _, path = word.partition(".")
            base = root if name == "$" else _variable(dot, name)
            return _lookup(base, path) if path else _unwrap(base)
        if word.startswith("."):
            return _lookup(dot, word[1:])
        raise TemplateError(f'function "{word}" not defined')


class _Scoped:
    """`.` inside a range with variables declared."""

    def __init__(self, value: object, scope: dict) -> None:
        self.value, self.scope = value, scope


def _unwrap(value: object) -> object:
    return value.value if isinstance(value, _Scoped) else value


def _variable(dot: object, name: str) -> object:
    if isinstance(dot, _Scoped) and name in dot.scope:
        return dot.scope[name]
    raise TemplateError(f"undefined variable: {name}")


def _lookup(value: object, path: str) -> object:
    value = _unwrap(value)
    for name in path.split("."):
        if not name:
            continue
        if isinstance(value, dict):
            value = value.get(name, NO_VALUE)
        elif value is None or value is NO_VALUE:
            raise TemplateError(f"nil pointer evaluating .{name}")
        else:
            try:
                value = getattr(value, name)
            except AttributeError:
                raise TemplateError(f"can't evaluate field {name}") from None
    return value


def _truth(value: object) -> bool:
    return bool(value) and value is not NO_VALUE


def _unquote(word: str) -> str:
    if word.startswith("`"):
        return word[1:-1]
    body = word[1:-1]
    return body.replace('\\"', '"').replace("\\n", "\n").replace("\\t", "\t") \
        .replace("\\\\", "\\")


def _json(value: object) -> str:
    from knarr.client import jsonc

    if hasattr(value, "as_dict"):
        # a table row marshals itself with Go's json.Marshal, which escapes <, >, &
        return jsonc.go_escape(jsonc.dumps(value.as_dict(), ascii=False))
    return jsonc.dumps(None if value is NO_VALUE else value, ascii=False)


def _index(value: object, *keys: object) -> object:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, NO_VALUE)
        else:
            value = value[key]
    return value


def _printf(fmt: str, *args: object) -> str:
    fmt = fmt.replace("%v", "%s").replace("%q", '"%s"')
    return fmt % tuple(a if isinstance(a, int | float) else go_string(a) for a in args)


def _truncate(value: str, length: int) -> str:
    return value[:length]


FUNCS = {
    "json": _json,
    "index": _index,
    "len": lambda v: len(v),
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "title": lambda s: str(s).title(),
    "join": lambda items, sep: sep.join(go_string(i) for i in items),
    "split": lambda s, sep: s.split(sep),
    "truncate": _truncate,
    "pad": lambda s, left, right: " " * left + str(s) + " " * right,
    "println": lambda *a: " ".join(go_string(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_string(x) for x in a),
    "printf": _printf,
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda a: not _truth(a),
    "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
}


def render(text: str, data: object) -> str:
    """Parse and execute `text` once."""
    return Template(text).render(data)
