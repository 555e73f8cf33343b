"""Start knarrd in the background when nothing listens on the default socket."""

import os
import sys
import time

from knarr.errors import Unavailable

__all__ = ["start_daemon", "find_knarrd"]

WAIT = 15.0


def find_knarrd() -> str | None:
    """`knarrd` next to the running `knarr` launcher, else on PATH."""
    here = os.path.dirname(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    candidates = [os.path.join(here, "knarrd")] if here else []
    candidates += [os.path.join(d, "knarrd") for d in os.environ.get("PATH", "").split(":") if d]
    for path in candidates:
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


def start_daemon(client) -> None:
    """Start knarrd detached, say so in one line, and wait until /_ping answers."""
    from knarr.client.api import DaemonUnreachable

    knarrd = find_knarrd()
    if knarrd is None:
        raise Unavailable(f"Cannot connect to the knarr daemon at {client.address}, and no "
                          "knarrd was found to start one")
    sys.stderr.write(f"knarr: no daemon at {client.address}; starting {knarrd} in the "
                     "background\n")
    sys.stderr.flush()
    _spawn(knarrd, str(client.address))
    deadline = time.monotonic() + WAIT
    while True:
        try:
            client.api_version()
            return
        except DaemonUnreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _spawn(path: str, host: str) -> None:
    """Fork twice so knarrd is nobody's child, in its own session, stdio on a log file
    (knarrd.log beside the socket)."""
    from knarr.client.api import DEFAULT_HOST

    argv = [path] if host == DEFAULT_HOST else [path, "--host", host]
    rundir = os.path.dirname(host[len("unix://"):]) if host.startswith("unix://") else "/run/knarr"
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open("/dev/null", os.O_RDWR)
        try:
            os.makedirs(rundir, exist_ok=True)
            out = os.open(os.path.join(rundir, "knarrd.log"),
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError:
            out = null
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.execv(path, argv)
    finally:
        os._exit(127)
