"""Container routes: create, list, inspect, lifecycle, logs, attach, stats, top."""

import asyncio
import json
import os

from knarr.api import detach, schema
from knarr.api.http import take_socket
from knarr.engine.archives import stat_header
from knarr.engine.monitor_io import frame
from knarr.engine.timefmt import parse_since

__all__ = ["ROUTES", "pump", "stream_type"]

_ID = r"/containers/(?P<id>[^/]+)"
RAW = "application/vnd.docker.raw-stream"
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"


def stream_type(tty: bool) -> str:
    return RAW if tty else MULTIPLEXED


async def create(engine, request, responder) -> None:
    body = schema.with_legacy_host_config(await request.json_as(schema.CREATE,
                                                                "CreateRequest"))
    result = await engine.create(body, request.q("name"))
    await responder.json(201, result)


async def list_(engine, request, responder) -> None:
    limit = request.q_int("limit", -1)
    if request.q_bool("latest"):
        limit = 1
    out = engine.list(all_=request.q_bool("all"), limit=limit, size=request.q_bool("size"),
                      filters=request.q_json("filters"))
    await responder.json(200, out)


async def inspect(engine, request, responder) -> None:
    await responder.json(200, engine.inspect(request.params["id"], request.q_bool("size")))


async def start(engine, request, responder) -> None:
    await engine.start(request.params["id"])
    await responder.send(204)


async def stop(engine, request, responder) -> None:
    await engine.stop(request.params["id"], request.q_int("t"), request.q("signal"))
    await responder.send(204)


async def restart(engine, request, responder) -> None:
    await engine.restart(request.params["id"], request.q_int("t"), request.q("signal"))
    await responder.send(204)


async def kill(engine, request, responder) -> None:
    await engine.kill(request.params["id"], request.q("signal"))
    await responder.send(204)


async def wait(engine, request, responder) -> None:
    cid = engine.resolve(request.params["id"])
    condition = request.q("condition", "not-running")
    if condition not in ("not-running", "next-exit", "removed", ""):
        from knarr.errors import InvalidArgument

        raise InvalidArgument(f"invalid condition: {condition}")
    waiting = asyncio.get_running_loop().create_task(engine.wait(cid, condition))
    await asyncio.sleep(0)
    await responder.start_stream(200, "application/json")
    try:
        code = await waiting
        doc = {"StatusCode": code, "Error": None}
    except Exception as exc:  # noqa: BLE001 - reported in the body, headers are gone
        doc = {"StatusCode": -1, "Error": {"Message": str(exc)}}
    await responder.end(json.dumps(doc).encode() + b"\n")  # one write: one send


async def delete(engine, request, responder) -> None:
    await engine.delete(request.params["id"], request.q_bool("force"), request.q_bool("v"))
    await responder.send(204)


async def rename(engine, request, responder) -> None:
    await engine.rename(request.params["id"], request.q("name", ""))
    await responder.send(204)


async def pause(engine, request, responder) -> None:
    await engine.pause(request.params["id"])
    await responder.send(204)


async def unpause(engine, request, responder) -> None:
    await engine.unpause(request.params["id"])
    await responder.send(204)


async def top(engine, request, responder) -> None:
    await responder.json(200, await engine.top(request.params["id"], request.q("ps_args")))


async def resize(engine, request, responder) -> None:
    await engine.resize(request.params["id"], request.q_int("h", 0), request.q_int("w", 0))
    await responder.send(200, b"", "text/plain")


async def logs(engine, request, responder) -> None:
    record = engine.record(request.params["id"])
    stdout, stderr = request.q_bool("stdout"), request.q_bool("stderr")
    if not (stdout or stderr):
        from knarr.errors import InvalidArgument

        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    tty = record["Config"]["Tty"]
    frames = engine.logs(record["Id"], stdout=stdout, stderr=stderr,
                         follow=request.q_bool("follow"), since=parse_since(request.q("since")),
                         until=parse_since(request.q("until")),
                         timestamps=request.q_bool("timestamps"), tail=request.q("tail", "all"))
    first = await anext(frames, None)  # a failure before any output is still an error status
    await responder.start_stream(200, stream_type(tty))
    while first is not None:
        number, data = first
        await responder.chunk(data if tty else frame(number, data))
        first = await anext(frames, None)
    await responder.end()


async def attach(engine, request, responder) -> None:
    record = engine.record(request.params["id"])
    want_stdin = request.q_bool("stdin")
    keys = request.q("detachKeys")
    detach.parse_keys(keys)  # a bad spec is refused before the hijack
    stream = await engine.attach(record["Id"], want_stdin, request.q_bool("stdout"),
                                 request.q_bool("stderr"), request.q_bool("logs"),
                                 request.q_bool("stream"))
    tty = record["Config"]["Tty"]
    await responder.hijack(request, stream_type(tty))
    await pump(request, responder, stream, tty, want_stdin, keys)


async def pump(request, responder, stream, tty: bool, stdin: bool,
               detach_keys: str | None = None, drain_after_detach: bool = False) -> None:
    """Copy a hijacked connection's input to the stream and its frames back; the
    detach keys in the input end the session (the process runs on; an exec's
    stream is still read to its end, for its exit code)."""
    writer = responder.writer
    detector = detach.Detector(detach.parse_keys(detach_keys))
    detached = []

    async def copy_input() -> None:
        try:
            while data := await request.reader.read(65536):
                data, seen = detector.feed(data)
                if data:
                    await stream.write(data)
                if seen:
                    detached.append(True)
                    writer.close()
                    if not drain_after_detach:
                        stream.close()
                    return
        except (ConnectionError, OSError):
            pass
        stream.close_input()

    feeder = asyncio.get_running_loop().create_task(copy_input()) if stdin else None
    first = True
    try:
        while (item := await stream.read()) is not None:
            if first and not detached:
                await _after_the_head(request, responder)
                first = False
            if detached:  # (also while we waited above or in drain: the client is gone)
                continue
            number, data = item
            writer.write(data if tty else frame(number, data))
            try:
                await writer.drain()
            except ConnectionError:
                if not detached:
                    raise
    finally:
        if feeder is not None:
            feeder.cancel()
        stream.close()
        responder.keep_alive = False


# docker-py reads a hijacked response's head through a buffered reader and then reads the
# raw socket: bytes that came in the same read as the head are lost to it. Docker's
# daemon is slow enough that they never do; output that is ready at once (logs=1, a
# quick exec) waits this long after the head. The docker CLI and ours read on from the
# same buffer: they get it at once.
HEAD_GAP = 0.05
_READS_ON = ("knarr-client/", "Docker-Client/")


async def _after_the_head(request, responder) -> None:
    if request.headers.get("user-agent", "").startswith(_READS_ON):
        return
    wait = responder.hijacked_at + HEAD_GAP - asyncio.get_running_loop().time()
    if wait > 0:
        await asyncio.sleep(wait)


async def stats(engine, request, responder) -> None:
    stream = request.q_bool("stream", True)
    docs = engine.stats(request.params["id"], stream=stream,
                        one_shot=request.q_bool("one-shot"))
    first = await anext(docs)
    if not stream:
        await responder.json(200, first)
        return
    await responder.start_stream(200, "application/json")
    while first is not None:
        await responder.chunk(json.dumps(first).encode() + b"\n")
        first = await anext(docs, None)
    await responder.end()


async def changes(engine, request, responder) -> None:
    await responder.json(200, engine.changes(request.params["id"]))


async def export(engine, request, responder) -> None:
    path = await engine.export(request.params["id"])
    try:
        await responder.start_stream(200, "application/x-tar")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                await responder.chunk(chunk)
        await responder.end()
    finally:
        os.unlink(path)


async def commit(engine, request, responder) -> None:
    body = await request.json_as(schema.CONFIG, "Config") or {}
    overrides = {k: v for k, v in body.items() if v not in (None, "", [], {}) and
                 k in ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Labels",
                       "ExposedPorts", "StopSignal", "Healthcheck", "Volumes")}
    image_id = await engine.commit(request.q("container", ""), request.q("repo"),
                                   request.q("tag"), request.q("comment", ""),
                                   request.q("author", ""), overrides,
                                   request.query.get("changes", []),
                                   request.q_bool("pause", True))
    await responder.json(201, {"Id": image_id})


async def archive_head(engine, request, responder) -> None:
    doc = await engine.path_stat(request.params["id"], _archive_path(request))
    await responder.send(200, b"", "application/x-tar",
                         {"X-Docker-Container-Path-Stat": stat_header(doc),
                          "Content-Length": "0"})


_take_socket = take_socket  # api/http.py: shared with the build's context


async def archive_get(engine, request, responder) -> None:
    if request.method == "HEAD":
        await archive_head(engine, request, responder)
        return
    if responder.writer.transport.get_write_buffer_size() == 0:
        head = responder._head(200, {  # noqa: SLF001
            "Content-Type": "application/x-tar", "X-Docker-Container-Path-Stat": "@STAT@",
            "Connection": "close"}).decode("latin-1")
        fd, _held = _take_socket(request, responder)
        if fd >= 0:
            try:
                await engine.archive_get_to_socket(request.params["id"],
                                                   _archive_path(request), fd, head)
                responder.started = True
            finally:
                os.close(fd)
            return
    doc, pieces = await engine.archive_get(request.params["id"], _archive_path(request))
    try:
        await responder.start_stream(200, "application/x-tar",
                                     {"X-Docker-Container-Path-Stat": stat_header(doc)})
        async for piece in pieces:
            await responder.chunk(piece)
        await responder.end()
    finally:
        await pieces.aclose()


async def archive_put(engine, request, responder) -> None:
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    length = int(request.headers.get("content-length") or 0)
    fd, held = _take_socket(request, responder) if chunked or length else (-1, b"")
    if fd < 0:
        await engine.archive_put(request.params["id"], _archive_path(request),
                                 request.body_chunks(), request.q_bool("copyUIDGID", False),
                                 request.q_bool("noOverwriteDirNonDir", False))
    else:
        try:
            await engine.archive_put_from_socket(
                request.params["id"], _archive_path(request), fd, held,
                ("chunked",) if chunked else ("length", length),
                request.q_bool("copyUIDGID", False),
                request.q_bool("noOverwriteDirNonDir", False))
        finally:
            os.close(fd)
    await responder.send(200, b"", "text/plain")


def _archive_path(request) -> str:
    path = request.q("path")
    if not path:
        from knarr.errors import InvalidArgument

        raise InvalidArgument("path must not be empty")
    return path


async def update(engine, request, responder) -> None:
    body = await request.json_as(schema.UPDATE, "UpdateConfig") or {}
    warnings = await engine.update(request.params["id"], body)
    await responder.json(200, {"Warnings": warnings})


async def prune(engine, request, responder) -> None:
    deleted, reclaimed = [], 0
    for summary in engine.list(all_=True, size=True, filters=request.q_json("filters")):
        if summary["State"] in ("exited", "created", "dead"):
            await engine.delete(summary["Id"])
            deleted.append(summary["Id"])
            reclaimed += summary.get("SizeRw") or 0
    await responder.json(200, {"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed})


ROUTES = [
    ("POST", "/containers/create", create),
    ("GET", "/containers/json", list_),
    ("POST", "/containers/prune", prune),
    ("GET", _ID + "/json", inspect),
    ("POST", _ID + "/start", start),
    ("POST", _ID + "/stop", stop),
    ("POST", _ID + "/restart", restart),
    ("POST", _ID + "/kill", kill),
    ("POST", _ID + "/wait", wait),
    ("DELETE", _ID, delete),
    ("POST", _ID + "/rename", rename),
    ("POST", _ID + "/pause", pause),
    ("POST", _ID + "/unpause", unpause),
    ("GET", _ID + "/top", top),
    ("POST", _ID + "/resize", resize),
    ("GET", _ID + "/logs", logs),
    ("POST", _ID + "/attach", attach),
    ("GET", _ID + "/stats", stats),
    ("GET", _ID + "/changes", changes),
    ("GET", _ID + "/export", export),
    ("POST", "/commit", commit),
    ("POST", _ID + "/update", update),
    ("GET", _ID + "/archive", archive_get),
    ("HEAD", _ID + "/archive", archive_head),
    ("PUT", _ID + "/archive", archive_put),
]
