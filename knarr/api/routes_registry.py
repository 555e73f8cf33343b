"""Registry routes: pull (/images/create's fromImage), push, /auth; and the progress stream.

Docker's stream answers 200 with its first message; a failure before any
message is an HTTP error with the status of its kind, one after is an
`errorDetail` message in the stream, which the docker CLI prints and exits 1.
"""

import asyncio
import json

from knarr.errors import KnarrError

__all__ = ["ROUTES", "stream_progress", "pull_image"]

_NAME = r"/images/(?P<name>.+)"


async def stream_progress(responder, run) -> None:
    """Run `run(emit)`, streaming what it emits as JSON lines (started on the first one)."""
    queue: asyncio.Queue = asyncio.Queue()
    task = asyncio.ensure_future(run(queue.put_nowait))
    started = False
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            if not started:
                await responder.start_stream(200, "application/json")
                started = True
            await responder.chunk(json.dumps(getter.result()).encode() + b"\n")
        while not queue.empty():
            if not started:
                await responder.start_stream(200, "application/json")
                started = True
            await responder.chunk(json.dumps(queue.get_nowait()).encode() + b"\n")
        try:
            task.result()
        except KnarrError as exc:
            if not started:
                raise
            await responder.chunk(json.dumps({"errorDetail": {"message": exc.message},
                                              "error": exc.message}).encode() + b"\n")
        if not started:
            await responder.start_stream(200, "application/json")
        await responder.end()
    finally:
        if not task.done():
            task.cancel()


async def pull_image(engine, request, responder) -> None:
    """POST /images/create?fromImage=NAME&tag=TAG|DIGEST[&platform=]."""
    name = request.q("fromImage", "")
    tag = request.q("tag")
    if tag and tag.startswith("sha256:"):
        ref = f"{name}@{tag}"
    elif tag and "@" not in name:
        ref = f"{name}:{tag}"
    else:
        ref = name
    platform = request.q("platform") or None
    auth = request.headers.get("x-registry-auth")

    async def run(emit) -> None:
        if not tag and "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
            await engine.pull_all_tags(ref, platform, auth, emit)
        else:
            await engine.pull_stream(ref, platform, auth, emit)

    await stream_progress(responder, run)


async def push(engine, request, responder) -> None:
    """POST /images/{name}/push?tag=TAG with X-Registry-Auth."""
    name, tag = request.params["name"], request.q("tag") or None
    auth = request.headers.get("x-registry-auth")

    async def run(emit) -> None:
        await engine.push_stream(name, tag, auth, emit)

    await stream_progress(responder, run)


async def auth(engine, request, responder) -> None:
    """POST /auth: check credentials with the registry."""
    doc = await request.json()
    await responder.json(200, await engine.registry_login(doc if isinstance(doc, dict) else {}))


async def search(engine, request, responder) -> None:
    """GET /images/search?term=REGISTRY/...&limit= (routes_images.search sends it here)."""
    limit = int(request.q("limit") or 25)
    found = await engine.registry_search(request.q("term", ""), limit,
                                         request.headers.get("x-registry-auth"))
    await responder.json(200, found)


ROUTES = [
    ("POST", _NAME + "/push", push),
    ("POST", "/auth", auth),
]
