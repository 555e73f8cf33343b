"""Pull and load progress: the JSON message stream the daemon sends, as plain lines."""

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
    """Print each message's status (progress bars as one line per layer change)."""
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
    out.flush()
