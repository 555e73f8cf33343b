"""Network routes: create, list, inspect, remove, prune, connect, disconnect."""

from knarr.errors import InvalidArgument

__all__ = ["ROUTES"]

_ID = r"/networks/(?P<id>[^/]+)"


async def list_(engine, request, responder) -> None:
    await responder.json(200, engine.network_list(request.q_json("filters")))


async def inspect(engine, request, responder) -> None:
    await responder.json(200, engine.network_inspect(request.params["id"]))


async def create(engine, request, responder) -> None:
    body = await request.json()
    if not isinstance(body, dict):
        raise InvalidArgument("network config cannot be empty")
    await responder.json(201, await engine.network_create(body))


async def remove(engine, request, responder) -> None:
    await engine.network_remove(request.params["id"])
    await responder.send(204)


async def prune(engine, request, responder) -> None:
    deleted = await engine.network_prune(request.q_json("filters"))
    await responder.json(200, {"NetworksDeleted": deleted})


async def connect(engine, request, responder) -> None:
    body = await request.json() or {}
    if not body.get("Container"):
        raise InvalidArgument("container is required")
    await engine.network_connect(request.params["id"], body["Container"],
                                 body.get("EndpointConfig"))
    await responder.send(200, b"OK", "text/plain; charset=utf-8")


async def disconnect(engine, request, responder) -> None:
    body = await request.json() or {}
    if not body.get("Container"):
        raise InvalidArgument("container is required")
    await engine.network_disconnect(request.params["id"], body["Container"],
                                    bool(body.get("Force")))
    await responder.send(200, b"OK", "text/plain; charset=utf-8")


ROUTES = [
    ("GET", "/networks", list_),
    ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune),
    ("GET", _ID, inspect),
    ("DELETE", _ID, remove),
    ("POST", _ID + "/connect", connect),
    ("POST", _ID + "/disconnect", disconnect),
]
