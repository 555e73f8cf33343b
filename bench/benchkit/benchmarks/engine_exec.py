"""engine_exec: `CLI exec C true` into a running busybox `sleep 1000` container.

The same private engines as engine_hello (engines.py). Each engine gets one
container, `run -d busybox sleep 1000`, made before the first clock starts and
removed at the end with the daemons. Goal (issue 4): knarr within 0.5x docker.
"""

from __future__ import annotations

from pathlib import Path

from benchkit.benchmarks.engine_hello import prepare
from benchkit.registry import Goal, register


@register(
    "engine_exec",
    summary="wall time of `CLI exec C true` into a running busybox `sleep 1000` container",
    goals=(Goal(knarr="knarr", peer="docker", max_ratio=0.5),),
)
def engine_exec(workdir: Path):
    """docker and podman as peers, knarr as knarr, one sleeping container each."""
    engines = prepare(workdir)
    try:
        ids = {e: engines.run_detached(e, f"kbexec{e.replace('@', '-')}", "sleep", "1000")
               for e in engines.available()}
    except BaseException:
        engines.stop()
        raise
    return [engines.subject(e, argv=lambda run_id, e=e: engines.argv(e, "exec", ids[e], "true"))
            for e in engines.engines()]
