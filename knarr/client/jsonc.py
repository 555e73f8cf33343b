"""Compact JSON through CPython's C codec, without the `json` package's start-up.

`import json` pulls in `re` and compiles patterns, which costs a short-lived
command line more than the JSON it reads. The C scanner and encoder behind
`json` need none of that; this module drives them directly. Results match
json.loads and json.dumps; errors are ValueError.
"""

import _json

__all__ = ["loads", "dumps", "dumps_indent", "go_escape"]

_SPACE = " \t\n\r"


class _Context:
    """The attributes _json.make_scanner reads from a json.JSONDecoder."""

    strict = False
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_Context())


def loads(data: str | bytes) -> object:
    """Parse one JSON document."""
    doc = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    start = len(doc) - len(doc.lstrip(_SPACE))
    try:
        value, end = _scan(doc, start)
    except StopIteration as stop:
        raise ValueError(f"invalid JSON at offset {stop.value}") from None
    except SystemError:
        # The C scanner reports most errors through json.decoder.JSONDecodeError,
        # which it finds only if json.decoder is already imported.
        import json.decoder  # noqa: F401

        value, end = _scan(doc, start)
    finally:
        _Context.memo.clear()
    if doc[end:].strip(_SPACE):
        raise ValueError(f"extra data after JSON at offset {end}")
    return value


def _unserialisable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _unserialisable, _json.encode_basestring_ascii, None, ":",
                             ",", False, False, True)
_encode_plain = _json.make_encoder(None, _unserialisable, _json.encode_basestring, None, ":",
                                   ",", False, False, True)


def dumps(value: object, ascii: bool = True) -> str:
    """Serialise `value` compactly (no spaces), as json.dumps(separators=(",", ":"))."""
    return "".join((_encode if ascii else _encode_plain)(value, 0))


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
