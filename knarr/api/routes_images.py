"""Image routes: list, inspect, history, tag, remove, load, save (get), create (pull)."""

import json
import os
import tempfile

__all__ = ["ROUTES"]

# Image names hold slashes and colons: the routes match everything up to the verb.
_NAME = r"/images/(?P<name>.+)"


async def list_(engine, request, responder) -> None:
    filters = request.q_json("filters")
    dangling = None
    if filters.get("dangling"):
        dangling = filters["dangling"][0] in ("true", "1")
    await responder.json(200, await engine.image_list(request.q_bool("all"), dangling))


async def inspect(engine, request, responder) -> None:
    await responder.json(200, await engine.image_inspect(request.params["name"]))


async def history(engine, request, responder) -> None:
    await responder.json(200, await engine.image_history(request.params["name"]))


async def tag(engine, request, responder) -> None:
    await engine.image_tag(request.params["name"], request.q("repo", ""), request.q("tag"))
    await responder.send(201, b"", "text/plain")


async def remove(engine, request, responder) -> None:
    out = await engine.image_remove(request.params["name"], request.q_bool("force"),
                                    request.q_bool("noprune"))
    await responder.json(200, out)


async def load(engine, request, responder) -> None:
    fd, path = tempfile.mkstemp(prefix="load-", dir=engine.root)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.body_chunks():
                f.write(chunk)
        loaded = await engine.image_load(path)
    finally:
        os.unlink(path)
    await responder.start_stream(200, "application/json")
    for image in loaded:
        names = image["Names"] or [image["Id"]]
        for name in names:
            shown = name.removeprefix("docker.io/library/").removeprefix("docker.io/")
            what = "Loaded image ID" if name == image["Id"] else "Loaded image"
            line = {"stream": f"{what}: {shown}\n"}
            await responder.chunk(json.dumps(line).encode() + b"\n")
    await responder.end()


async def _send_tarball(engine, responder, refs: list[str]) -> None:
    path = await engine.image_save(refs)
    try:
        await responder.start_stream(200, "application/x-tar")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                await responder.chunk(chunk)
        await responder.end()
    finally:
        os.unlink(path)


async def get_many(engine, request, responder) -> None:
    await _send_tarball(engine, responder, request.query.get("names", []))


async def get_one(engine, request, responder) -> None:
    await _send_tarball(engine, responder, [request.params["name"]])


async def import_(engine, request, responder) -> None:
    fd, path = tempfile.mkstemp(prefix="import-", dir=engine.root)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.body_chunks():
                f.write(chunk)
        image_id = await engine.import_tarball(path, request.q("repo"), request.q("tag"),
                                               request.q("message", ""),
                                               request.query.get("changes", []))
    finally:
        os.unlink(path)
    await responder.start_stream(200, "application/json")
    await responder.chunk(json.dumps({"status": image_id}).encode() + b"\n")
    await responder.end()


async def pull(engine, request, responder) -> None:
    if request.q("fromSrc"):
        if request.q("fromSrc") != "-":
            from knarr.errors import InvalidArgument

            raise InvalidArgument("importing from a URL is not supported yet")
        await import_(engine, request, responder)
        return
    from knarr.api.routes_registry import pull_image

    await pull_image(engine, request, responder)


async def prune(engine, request, responder) -> None:
    filters = request.q_json("filters")
    all_images = filters.get("dangling", ["true"])[0] in ("false", "0")
    result = await engine.in_image_thread(engine.images.prune, all_images)
    await responder.json(200, result)


async def search(engine, request, responder) -> None:
    term = request.q("term", "")
    if not term:
        from knarr.errors import InvalidArgument

        raise InvalidArgument("term is required")
    first, sep, _ = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        from knarr.api.routes_registry import search as registry_search

        await registry_search(engine, request, responder)  # a registry named in the term
        return
    # Docker asks Docker Hub's v1 index; knarr does not (yet) send a search there, so
    # this says so rather than pretending.
    await responder.json(501, {"message": f"search {term}: image search is not supported by "
                               "knarr: registries have no search API; pull by name instead"})


ROUTES = [
    ("GET", "/images/json", list_),
    ("GET", "/images/search", search),
    ("POST", "/images/load", load),
    ("GET", "/images/get", get_many),
    ("POST", "/images/create", pull),
    ("POST", "/images/prune", prune),
    ("GET", _NAME + "/json", inspect),
    ("GET", _NAME + "/history", history),
    ("POST", _NAME + "/tag", tag),
    ("GET", _NAME + "/get", get_one),
    ("DELETE", _NAME, remove),
]
