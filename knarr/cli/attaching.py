"""What run, start -a and attach share: relaying a container's stream, waiting for its exit."""

import os
import sys

from knarr.cli import streams
from knarr.errors import KnarrError

__all__ = ["Waiter", "relay_container", "resize"]


class Waiter:
    """POST /containers/{id}/wait, sent now (before start) and answered at exit.

    With `later`, only sent: `ready()` (before the start) reads the head that says the
    daemon is waiting, so another request (run's attach) can go out in between.
    `client`: the client (of its own) to send it with, else a clone of the CLI's.
    """

    def __init__(self, cli, cid: str, condition: str, later: bool = False,
                 client=None) -> None:
        self.cli = cli
        self._own = client or cli.client.clone()  # a client of its own (maybe connected)
        self._sent = self._own.send_only("POST", f"/containers/{cid}/wait",
                                         {"condition": condition})
        self.resp = None
        if not later:
            self.ready()

    def ready(self) -> None:
        """Read the head of the wait's answer (sent once the daemon waits)."""
        if self.resp is None:
            self.resp = self._own.answer(self._sent)

    def status(self) -> int:
        """The container's exit code (125 if the wait failed)."""
        from knarr.client import jsonc

        try:
            result = jsonc.loads(self.resp.read())
        except (KnarrError, OSError, ValueError) as exc:
            sys.stderr.write(f"knarr: error waiting for container: {exc}\n")
            return 125
        finally:
            self.resp.conn.close()
        error = (result.get("Error") or {}).get("Message") if result.get("Error") else None
        if error:
            sys.stderr.write(f"knarr: error waiting for container: {error}\n")
            return 125
        return int(result.get("StatusCode", 0))

    def close(self) -> None:
        """Stop waiting (after a detach)."""
        self.resp.conn.close()

    def abandon(self) -> None:
        """Drop a wait whose head was never read (the attach before the start failed)."""
        self._sent[0].close()


def resize(cli, path: str, terminal: streams.Terminal) -> bool:
    """POST {path}/resize with the terminal's size; whether the daemon took it."""
    size = terminal.size()
    if not size:
        return True
    try:
        cli.client.post(f"{path}/resize", {"h": size[0], "w": size[1]})
    except KnarrError:
        return False
    return True


def relay_container(cli, cid: str, sock, leftover: bytes, tty: bool, stdin: bool,
                    keys: bytes, tty_in: bool, sig_proxy: bool,
                    path: str | None = None) -> str:
    """Relay until the stream ends or the user detaches; "detached" or "ended"."""
    path = path or f"/containers/{cid}"
    try:
        if tty_in:
            with streams.Terminal(0) as term:
                sized = resize(cli, path, term)
                return streams.relay(sock, leftover, tty, stdin, keys, term,
                                     lambda: resize(cli, path, term), resize_pending=not sized)
        if tty and os.isatty(1):
            term = streams.Terminal(0)
            resize(cli, path, term)
        if sig_proxy:
            _proxy_signals(cli, cid)
        return streams.relay(sock, leftover, tty, stdin, keys)
    finally:
        sock.close()


def _proxy_signals(cli, cid: str) -> None:
    """Forward SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 to the container."""
    import _signal

    client = cli.client.clone()  # its own connection: the handler may run mid-request

    def forward(signum, _frame) -> None:
        try:
            client.post(f"/containers/{cid}/kill", {"signal": str(signum)})
        except (KnarrError, OSError):
            pass  # a signal handler must not raise into the relay

    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT,
                _signal.SIGUSR1, _signal.SIGUSR2):
        _signal.signal(sig, forward)
