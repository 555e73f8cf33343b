"""Exec routes: create, start (hijacked), resize, inspect."""

from knarr.api import schema
from knarr.api.routes_containers import pump, stream_type
from knarr.engine.monitor_io import frame
from knarr.errors import KnarrError

__all__ = ["ROUTES"]

_EXEC = r"/exec/(?P<id>[^/]+)"


async def create(engine, request, responder) -> None:
    body = await request.json_as(schema.EXEC_CREATE, "ExecOptions") or {}
    exec_id = await engine.exec_create(request.params["id"], body)
    await responder.json(201, {"Id": exec_id})


async def start(engine, request, responder) -> None:
    body = await request.json_as(schema.EXEC_START, "ExecStartOptions") or {}
    exec_id = request.params["id"]
    x = engine.exec_startable(exec_id)
    detach = bool(body.get("Detach"))
    # The process gets a terminal if the exec was created with one; the start's Tty
    # says only how the stream is framed (Docker's daemon does the same).
    tty = body.get("Tty")
    tty = x["ProcessConfig"]["tty"] if tty is None else bool(tty)
    if detach:
        await engine.exec_start(exec_id, detach=True)
        await responder.send(200, b"", "application/json")
        return
    # The head goes out before the process starts, as Docker's does: a client that reads
    # the head through a buffer (docker-py) would lose output sent along with it.
    await responder.hijack(request, stream_type(tty))
    try:
        stream = await engine.exec_start(exec_id)
    except KnarrError as exc:  # the status is sent: the error goes in the stream
        text = str(exc).encode() + b"\r\n"
        responder.writer.write(text if tty else frame(1, text))
        await responder.writer.drain()
        return
    await pump(request, responder, stream, tty, x["OpenStdin"], x["DetachKeys"] or None,
               drain_after_detach=True)


async def resize(engine, request, responder) -> None:
    await engine.exec_resize(request.params["id"], request.q_int("h", 0), request.q_int("w", 0))
    await responder.send(200, b"", "text/plain")


async def inspect(engine, request, responder) -> None:
    await responder.json(200, engine.exec_inspect(request.params["id"]))


ROUTES = [
    ("POST", r"/containers/(?P<id>[^/]+)/exec", create),
    ("POST", _EXEC + "/start", start),
    ("POST", _EXEC + "/resize", resize),
    ("GET", _EXEC + "/json", inspect),
]
