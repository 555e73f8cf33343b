"""The engine: the daemon's core (containers, monitors, exec, logs, stats, events).

`Engine` holds the state under a root and an exec root; `forkhelper.start` forks
the helper that forks each container's monitor (`monitor.py`). The names here
load on first use, so that importing `knarr.engine.forkhelper` (done by the
daemon before anything else, to keep the helper small) pulls in no asyncio.
"""

__all__ = ["API_VERSION", "VERSION", "Engine", "NotModified"]


def __getattr__(name: str):
    if name in ("API_VERSION", "VERSION", "Engine"):
        from knarr.engine import core

        return getattr(core, name)
    if name == "NotModified":
        from knarr.engine.lifecycle import NotModified

        return NotModified
    raise AttributeError(f"module 'knarr.engine' has no attribute {name!r}")
