"""Start the kernel's wait for the first cgroup move early, in a thread.

Moving a process between cgroups (a write to cgroup.procs) takes a global
percpu rwsem for writing, and the first such write after a quiet spell waits
for an RCU grace period (~10 ms here) before it can; writes made within a grace
period of the last one do not wait. `start` writes this process's pid into the
cgroup it is already in (a move to where it is: nothing changes) from a
thread, again every few milliseconds, until `stop`: the wait then falls while
the main thread imports and prepares, not when create moves the container's
init. Any failure (no cgroup fs, no permission) just ends the thread.
"""

import _thread
import os
import time

__all__ = ["start", "stop"]

_INTERVAL = 0.003  # well within a grace period
_LIMIT = 2.0  # seconds; a create that takes longer is not waiting on this
_running = [False]


def start() -> None:
    """Begin priming in a daemon thread; a no-op where there is nothing to write to."""
    path = _own_procs()
    if path is None:
        return
    _running[0] = True
    try:
        _thread.start_new_thread(_prime, (path,))
    except RuntimeError:
        _running[0] = False


def stop() -> None:
    """End the priming (the thread exits at its next wake-up)."""
    _running[0] = False


def _own_procs() -> str | None:
    try:
        with open("/proc/self/cgroup", "rb") as f:
            lines = f.read().decode().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        name = controllers.removeprefix("name=") or "unified"
        for base in (f"/sys/fs/cgroup/{name}", "/sys/fs/cgroup"):
            candidate = f"{base}{path.rstrip('/')}/cgroup.procs"
            if (controllers or base == "/sys/fs/cgroup") and os.access(candidate, os.W_OK):
                return candidate
    return None


def _prime(path: str) -> None:
    pid = str(os.getpid()).encode()
    deadline = time.monotonic() + _LIMIT
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        while _running[0] and time.monotonic() < deadline:
            os.write(fd, pid)
            time.sleep(_INTERVAL)
    except OSError:
        pass
    finally:
        os.close(fd)
