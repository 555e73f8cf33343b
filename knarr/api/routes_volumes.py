"""Volume routes: /volumes list, create, inspect, remove, prune (Docker's JSON shapes)."""

import asyncio
import re

__all__ = ["ROUTES"]

_NAME = r"/volumes/(?P<name>[^/]+)"
_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)/")


def _api_version(request) -> tuple[int, int]:
    """The version the client asked for in the path; the newest when it named none."""
    match = _VERSIONED.match(request.path)
    return (int(match.group(1)), int(match.group(2))) if match else (1, 99)


async def list_(engine, request, responder) -> None:
    # the container records' SQLite connection belongs to the loop's thread
    volumes = engine.volume_list(request.q_json("filters"))
    await responder.json(200, {"Volumes": volumes, "Warnings": None})


async def create(engine, request, responder) -> None:
    doc = await asyncio.to_thread(engine.volume_create, await request.json())
    await responder.json(201, doc)


async def inspect(engine, request, responder) -> None:
    await responder.json(200, engine.volume_inspect(request.params["name"]))


async def remove(engine, request, responder) -> None:
    engine.volume_remove(request.params["name"], request.q_bool("force"))
    await responder.send(204, b"", "text/plain")


async def prune(engine, request, responder) -> None:
    # API 1.42 made prune take only anonymous volumes unless the filter all=true is given.
    result = engine.volume_prune(request.q_json("filters"), _api_version(request) >= (1, 42))
    await responder.json(200, result)


ROUTES = [
    ("GET", "/volumes", list_),
    ("POST", "/volumes/create", create),
    ("POST", "/volumes/prune", prune),
    ("GET", _NAME, inspect),
    ("DELETE", _NAME, remove),
]
