"""Compact JSON through CPython's C codec, without the `json` package's start-up.

`import json` pulls in `re` and compiles patterns, which costs a short-lived
command like knarr-runtime more than parsing a config does. The C scanner and
encoder behind `json` do not need any of that; this module drives them
directly. Results are the same as json.loads and json.dumps with compact
separators; errors are ValueError (json.JSONDecodeError for bad documents).

It sits below every package (like knarr.errors): the runtime, the engine and the
API client all read and write JSON on their hot paths.
"""

import _json

__all__ = ["loads", "dumps"]

_SPACE = " \t\n\r"


class _Context:
    """The attributes _json.make_scanner reads from a json.JSONDecoder."""

    strict = True  # control characters inside strings are refused
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


class _LenientContext(_Context):
    strict = False  # control characters inside strings are taken as they are


_scan = _json.make_scanner(_Context())
_scan_lenient = _json.make_scanner(_LenientContext())


def _error(message: str, doc: str, pos: int) -> ValueError:
    from json import JSONDecodeError  # only on the error path

    return JSONDecodeError(message, doc, pos)


def loads(data: str | bytes, strict: bool = True) -> object:
    """Parse one JSON document (`strict=False` accepts control characters in strings,
    as json.loads(strict=False) does)."""
    if isinstance(data, bytes | bytearray):
        # utf-8-sig's meaning without its codec (an import on knarr-runtime's path)
        doc = (data[3:] if data[:3] == b"\xef\xbb\xbf" else data).decode()
    else:
        doc = data
    start = len(doc) - len(doc.lstrip(_SPACE))
    scan = _scan if strict else _scan_lenient
    try:
        value, end = scan(doc, start)
    except StopIteration as stop:
        raise _error("Expecting value", doc, stop.value) from None
    except SystemError:
        # The C scanner reports most errors through json.decoder.JSONDecodeError,
        # which it looks up only among modules already imported: import it, scan
        # again, and get the proper error.
        import json.decoder  # noqa: F401

        value, end = scan(doc, start)
    finally:
        _Context.memo.clear()
    if doc[end:].strip(_SPACE):
        raise _error("Extra data", doc, end)
    return value


def _unserialisable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _unserialisable, _json.encode_basestring_ascii, None, ":",
                             ",", False, False, True)
_encode_plain = _json.make_encoder(None, _unserialisable, _json.encode_basestring, None, ":",
                                   ",", False, False, True)


def dumps(value: object, ascii: bool = True) -> str:
    """Serialise `value` compactly (no spaces), as json.dumps(separators=(",", ":"));
    `ascii=False` keeps non-ASCII characters as they are (ensure_ascii=False)."""
    return "".join((_encode if ascii else _encode_plain)(value, 0))
