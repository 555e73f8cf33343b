"""Pull, push and load progress: the JSON message stream the daemon sends.

Off a terminal each change of a layer's status is one plain line and bars are
left out, as Docker's CLI does. On a terminal each layer keeps one line,
rewritten in place (cursor up, clear, write) as its status and bar move.
"""

from knarr.errors import KnarrError

__all__ = ["show", "errors_only"]


def errors_only(messages):
    """The messages, raising the first error among them."""
    for msg in messages:
        if msg.get("errorDetail") or msg.get("error"):
            detail = msg.get("errorDetail") or {}
            raise KnarrError(detail.get("message") or msg.get("error"), status=500)
        yield msg


def show(messages, out) -> None:
    """Print each message's status: in place on a terminal, one line per change otherwise."""
    tty = getattr(out, "isatty", lambda: False)()
    (_show_tty if tty else _show_plain)(messages, out)
    out.flush()


def _show_plain(messages, out) -> None:
    last: dict[str, str] = {}
    for msg in errors_only(messages):
        if "stream" in msg:
            out.write(msg["stream"])
            continue
        if msg.get("progressDetail") or msg.get("progress"):
            continue  # progress bars are left out, as Docker's CLI does off a terminal
        status = msg.get("status", "")
        ident = msg.get("id")
        if ident and last.get(ident) == status:
            continue
        if ident:
            last[ident] = status
            out.write(f"{ident}: {status}\n")
        elif status:
            out.write(status + "\n")


def _show_tty(messages, out) -> None:
    lines: dict[str, int] = {}
    for msg in errors_only(messages):
        if "stream" in msg:
            out.write(msg["stream"])
            continue
        status, ident = msg.get("status", ""), msg.get("id")
        if not status:
            continue
        text = f"{ident}: {status} {msg.get('progress', '')}".rstrip() if ident else status
        if ident and ident in lines:
            up = len(lines) - lines[ident]
            out.write(f"\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r")
        else:
            if ident:
                lines[ident] = len(lines)
            else:
                lines.clear()  # a plain line ends the block of layer lines
            out.write(text + "\n")
        out.flush()
