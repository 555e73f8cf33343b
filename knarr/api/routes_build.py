"""POST /build: a Dockerfile build from a context tarball, progress streamed as JSON lines.

Docker's query parameters: t (repeatable), dockerfile, buildargs and labels
(JSON objects), target, nocache, pull, q, rm, forcerm, networkmode. The
response is always 200 with a stream: `{"stream": ...}` progress, an `aux`
message with the image id, and a failure as `{"errorDetail": ..., "error": ...}`.
"""

import json
import os

from knarr.api.http import take_socket
from knarr.build import BuildError, Options
from knarr.errors import InvalidArgument, KnarrError

__all__ = ["ROUTES"]


def _json_object(request, name: str) -> dict:
    raw = request.q(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid {name} parameter: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {name} parameter: not a JSON object")
    return value


def _options(request) -> Options:
    args = _json_object(request, "buildargs")
    labels = _json_object(request, "labels")
    network = request.q("networkmode") or "none"
    if network == "default":
        network = "none"
    return Options(dockerfile=request.q("dockerfile") or "Dockerfile",
                   tags=[t for t in request.query.get("t", []) if t],
                   build_args={k: (None if v is None else str(v)) for k, v in args.items()},
                   labels={k: str(v) for k, v in labels.items()},
                   target=request.q("target") or None, no_cache=request.q_bool("nocache"),
                   pull=request.q_bool("pull"), quiet=request.q_bool("q"), network=network)


async def build(engine, request, responder) -> None:
    options = _options(request)
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    length = int(request.headers.get("content-length") or 0)
    # a sized body is read by the build thread straight off the socket
    fd, held = take_socket(request, responder) if length and not chunked else (-1, b"")
    await responder.start_stream(200, "application/json")

    async def emit(message: dict) -> None:
        await responder.chunk(json.dumps(message).encode() + b"\r\n")

    try:
        if fd >= 0:
            await engine.build(None, options, emit, socket=(fd, held, length))
        else:
            await engine.build(request.body_chunks(), options, emit)
    except KnarrError as exc:
        message = str(exc)
        detail: dict = {"message": message}
        if isinstance(exc, BuildError):
            detail["code"] = exc.code
        await emit({"errorDetail": detail, "error": message})
    finally:
        if fd >= 0:
            os.close(fd)
    await responder.end()


ROUTES = [("POST", "/build", build)]
