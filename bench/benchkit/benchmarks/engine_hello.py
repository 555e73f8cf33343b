"""engine_hello: `CLI run --rm hello-world`, for docker, podman and knarr.

docker is Docker as its users have it, with its default bridge networking (as
knarr's and podman's `run` have theirs); docker-nonet is a dockerd with
`--bridge=none --iptables=false`, whose containers get no network at all,
shown beside it (engines.py).

Each engine is private to the run (engines.py): knarr's CLI against a knarrd
of its own, the docker CLI against a dockerd of its own, podman on a root of
its own. hello-world is knarr's built-in image, `knarr save`d and loaded into
docker and podman, so all three run the same bytes. Each run gets a fresh
`--name` (the run id), which is what a failed run's `rm -f` removes. The
daemons start before the first clock starts and stop at the end.
Goal (issue 4): knarr within 0.15x docker.
"""

from __future__ import annotations

from pathlib import Path

from benchkit.benchmarks.engines import Engines
from benchkit.registry import Goal, register


def prepare(workdir: Path, docker_nonet: bool = True) -> Engines:
    """Start the engines (docker-nonet too, unless not asked for); return them (stopped
    again if starting failed)."""
    engines = Engines(workdir, docker_nonet)
    try:
        engines.start()
    except BaseException:
        engines.stop()
        raise
    return engines


@register(
    "engine_hello",
    summary="wall time of `CLI run --rm hello-world` (docker, docker-nonet, podman, knarr; "
            "private daemons)",
    goals=(Goal(knarr="knarr", peer="docker", max_ratio=0.15),),
)
def engine_hello(workdir: Path):
    """docker and podman as peers, knarr's CLI and knarrd as knarr."""
    engines = prepare(workdir)

    def subject(engine: str):
        return engines.subject(
            engine,
            argv=lambda run_id: engines.argv(engine, "run", "--rm", "--name", run_id,
                                             "hello-world"),
            cleanup=lambda run_id: engines.argv(engine, "rm", "-f", run_id))

    return [subject(e) for e in engines.engines()]
