"""engine_stats: `CLI stats --no-stream C` of a running busybox `sleep 1000` container.

The same private engines and container as engine_exec. Docker's CLI waits for
two samples from the daemon (about a second apart) before printing CPU %;
podman and knarr compute it otherwise, which is why the goal is against podman.
Goal (issue 4): knarr no slower than podman.
"""

from __future__ import annotations

from pathlib import Path

from benchkit.benchmarks.engine_hello import prepare
from benchkit.registry import Goal, register


@register(
    "engine_stats",
    summary="wall time of `CLI stats --no-stream C` of a running busybox `sleep 1000`",
    goals=(Goal(knarr="knarr", peer="podman", max_ratio=1.0),),
)
def engine_stats(workdir: Path):
    """docker and podman as peers, knarr as knarr, one sleeping container each."""
    # no docker-nonet: its ~1.6 s per round (docker stats waits for two samples) would
    # space knarr's runs out past the 2 s its daemon keeps the last sample for, and
    # change what knarr's figure measures; networking has no part in stats
    engines = prepare(workdir, docker_nonet=False)
    try:
        ids = {e: engines.run_detached(e, f"kbstats{e.replace('@', '-')}", "sleep", "1000")
               for e in engines.available()}
    except BaseException:
        engines.stop()
        raise
    return [engines.subject(e, argv=lambda run_id, e=e: engines.argv(
                e, "stats", "--no-stream", ids[e]))
            for e in engines.engines()]
