"""Docker's JSON progress messages: statuses, sizes and bars as the docker CLI draws them."""

import time
from collections.abc import Callable

__all__ = ["Progress", "human_size", "bar", "short_id"]

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
_WIDTH = 50
_INTERVAL = 0.1

Emit = Callable[[dict], None]


def human_size(n: float) -> str:
    """A size as Docker prints it: decimal units, four significant digits (`32.77kB`)."""
    unit = 0
    while n >= 1000 and unit < len(_UNITS) - 1:
        n /= 1000.0
        unit += 1
    return f"{n:.4g}{_UNITS[unit]}"


def bar(current: int, total: int) -> str:
    """`[=====>     ]  1.2MB/3.4MB`, or just the count when the total is unknown."""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(_WIDTH, current * _WIDTH // total)
    arrow = ">" if filled < _WIDTH else "="
    body = "=" * max(filled - 1, 0) + (arrow if filled else "") + " " * (_WIDTH - filled)
    return f"[{body}] {human_size(current):>8}/{human_size(total)}"


def short_id(digest: str) -> str:
    """The 12-hex id Docker shows for a layer."""
    return digest.split(":", 1)[-1][:12]


class Progress:
    """Sends progress messages, at most one `current` update per id every 100 ms."""

    def __init__(self, emit: Emit | None) -> None:
        self.emit = emit or (lambda msg: None)
        self.last: dict[str, float] = {}

    def status(self, text: str, ident: str | None = None) -> None:
        """A status line (with an id: the line of that layer)."""
        msg: dict = {"status": text}
        if ident:
            msg["progressDetail"] = {}
            msg["id"] = ident
        self.emit(msg)

    def bytes(self, text: str, ident: str, current: int, total: int,
              force: bool = False) -> None:
        """A progress bar update (dropped when the last one was too recent)."""
        now = time.monotonic()
        if not force and now - self.last.get(ident, 0.0) < _INTERVAL:
            return
        self.last[ident] = now
        self.emit({"status": text, "progressDetail": {"current": current, "total": total},
                   "progress": bar(current, total), "id": ident})

    def aux(self, doc: dict) -> None:
        """An `aux` message (the push's tag, digest and size)."""
        self.emit({"progressDetail": {}, "aux": doc})
