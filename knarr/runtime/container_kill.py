"""kill: send a signal to a container's init, or to all its processes."""

import signal

from knarr.errors import InvalidArgument
from knarr.runtime import container as containers
from knarr.runtime import state

__all__ = ["kill", "parse_signal"]


def parse_signal(name: str) -> int:
    """Accept 9, KILL or SIGKILL (any case)."""
    text = name.strip().upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < 65:
            return number
    else:
        try:
            return int(getattr(signal.Signals, text if text.startswith("SIG") else "SIG" + text))
        except AttributeError:
            pass
    raise InvalidArgument(f"invalid signal {name!r}", signal=name)


def kill(root: str, container_id: str, sig: int, all_processes: bool = False) -> None:
    """Signal a created, running or paused container."""
    c = containers.load(root, container_id)
    status = c.status()
    if status == state.Status.STOPPED and not all_processes:
        raise c.refuse("kill", status)
    c.signal(sig, all_processes=all_processes)
