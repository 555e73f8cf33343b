"""Signal numbers and handlers for the runtime's hot path.

The `signal` module wraps `_signal` in enums, and importing `enum` costs a
short-lived knarr-runtime more than all it does with signals; the numbers and
functions are the same.
"""

import _signal

__all__ = ["SIGKILL", "SIGTERM", "FORWARDED", "SIGWINCH", "handle", "reset_for_exec"]

SIGKILL = _signal.SIGKILL
SIGTERM = _signal.SIGTERM
SIGWINCH = _signal.SIGWINCH

# What `run` and `exec` pass on to the container's process.
FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT,
             _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGWINCH)


def handle(signum: int, handler) -> None:
    """Install `handler(signum, frame)` for `signum`."""
    _signal.signal(signum, handler)


def reset_for_exec() -> None:
    """Undo what the Python interpreter did to signals, which exec would keep."""
    for signum in (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGINT):
        _signal.signal(signum, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
