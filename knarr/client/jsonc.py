"""JSON for the client: knarr.fastjson (the C codec without the `json` package's
start-up), lenient about control characters, plus Docker's indented output and
Go's escaping of <, > and &.
"""

from knarr import fastjson

__all__ = ["loads", "dumps", "dumps_indent", "go_escape"]

dumps = fastjson.dumps


def loads(data: str | bytes) -> object:
    """Parse one JSON document from a daemon (control characters in strings allowed)."""
    return fastjson.loads(data, strict=False)


def go_escape(text: str) -> str:
    """Escape <, > and & as Go's encoding/json does (they occur only inside strings)."""
    if "<" in text or ">" in text or "&" in text:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def dumps_indent(value: object, indent: str = "    ") -> str:
    """Serialise `value` with one item per line, as Docker's inspect prints it."""
    out: list[str] = []
    _pretty(value, indent, "", out)
    return "".join(out)


def _pretty(value: object, indent: str, prefix: str, out: list[str]) -> None:
    inner = prefix + indent
    if isinstance(value, dict) and value:
        out.append("{\n")
        for i, (key, item) in enumerate(value.items()):
            out.append(f"{inner}{dumps(str(key), ascii=False)}: ")
            _pretty(item, indent, inner, out)
            out.append(",\n" if i < len(value) - 1 else "\n")
        out.append(prefix + "}")
    elif isinstance(value, list) and value:
        out.append("[\n")
        for i, item in enumerate(value):
            out.append(inner)
            _pretty(item, indent, inner, out)
            out.append(",\n" if i < len(value) - 1 else "\n")
        out.append(prefix + "]")
    else:
        out.append(dumps(value, ascii=False))
