"""The Engine API server: routes, versioned paths, errors as Docker renders them.

Each resource's routes live in their own module and get the engine; this
module reads requests off a unix socket, finds the route (with or without a
`/v1.NN` prefix), and turns failures into `{"message": ...}` with the status
`errors.status_of` picks.
"""

import asyncio
import logging
import os
import re
import time

from knarr.api import (
    errors,
    http,
    routes_build,
    routes_containers,
    routes_exec,
    routes_images,
    routes_networks,
    routes_registry,
    routes_system,
    routes_volumes,
)
from knarr.api.routes_system import MIN_API_VERSION
from knarr.engine import API_VERSION, VERSION

__all__ = ["Server", "MIN_API_VERSION"]

_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
log = logging.getLogger("knarr.api")


def _version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def _version_refusal(wanted: str) -> str | None:
    """Docker's text for a /vX.Y/ prefix outside the versions served, else None."""
    if _version_tuple(wanted) > _version_tuple(API_VERSION):
        return (f"client version {wanted} is too new. Maximum supported API version is "
                f"{API_VERSION}")
    if _version_tuple(wanted) < _version_tuple(MIN_API_VERSION):
        return (f"client version {wanted} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version")
    return None


class Server:
    """Routes requests to the engine."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.routes: list[tuple[str, re.Pattern, object]] = []
        for module in (routes_system, routes_containers, routes_exec, routes_images,
                       routes_registry, routes_build, routes_networks, routes_volumes):
            for method, pattern, handler in module.ROUTES:
                self.routes.append((method, re.compile("^" + pattern + "$"), handler))
        self.base_headers = {"Api-Version": API_VERSION, "Docker-Experimental": "false",
                             "Ostype": "linux", "Server": f"knarr/{VERSION} (linux)"}
        # asyncio's stream protocol drops its reference to a connection's task when the
        # client goes; a task still at work (draining a detached exec for its exit code)
        # is then reachable from nothing, and the garbage collector destroyed it mid-way
        self._tasks: set[asyncio.Task] = set()

    async def serve_unix(self, path: str, group: str = "knarr") -> asyncio.AbstractServer:
        """Listen on a unix socket: root and `group` 0660, root only (0600) without one."""
        if os.path.exists(path):
            os.unlink(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        old = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self.handle, path, limit=1 << 20)
        finally:
            os.umask(old)
        gid = group_gid(group) if group else None
        if gid is not None:
            os.chown(path, 0, gid)
            os.chmod(path, 0o660)
        return server

    async def serve_tcp(self, host: str, port: int, ssl_context=None) -> asyncio.AbstractServer:
        """Listen on TCP, with TLS when given a context (mutual TLS if it verifies clients)."""
        if ssl_context is not None:
            from knarr.api.tlsbridge import serve_tls

            return await serve_tls(self.handle, host, port, ssl_context)
        return await asyncio.start_server(self.handle, host or None, port, limit=1 << 20)

    def find(self, method: str, path: str):
        """(handler, params) for a request; LookupError(405 or 404) if none."""
        allowed = False
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if match:
                if route_method == method or (method == "HEAD" and route_method == "GET"):
                    return handler, match.groupdict()
                allowed = True
        raise LookupError(405 if allowed else 404)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection: requests until the client closes or a stream takes it."""
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            while True:
                try:
                    request = await http.read_request(reader)
                except http.BadRequest as exc:
                    await http.Responder(writer, self.base_headers).json(
                        400, {"message": str(exc)})
                    break
                if request is None:
                    break
                responder = http.Responder(writer, self.base_headers)
                await self.dispatch(request, responder)
                if not responder.keep_alive or \
                        request.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            try:
                writer.close()
            except RuntimeError:
                pass

    async def dispatch(self, request: http.Request, responder: http.Responder) -> None:
        """Run the route for one request; render any failure as Docker does."""
        path = request.path
        versioned = _VERSIONED.match(path)
        if versioned:
            wanted = f"{versioned.group(1)}.{versioned.group(2)}"
            path = versioned.group(3)
            refusal = _version_refusal(wanted)
            if refusal:
                await responder.json(400, {"message": refusal})
                return
        try:
            handler, params = self.find(request.method, path.rstrip("/") or "/")
        except LookupError as exc:
            status = exc.args[0]
            message = "page not found" if status == 404 else "method not allowed"
            await responder.json(status, {"message": message})
            return
        request.params = params
        started = time.monotonic()
        try:
            await handler(self.engine, request, responder)
        except (ConnectionError, asyncio.IncompleteReadError):
            responder.keep_alive = False
        except Exception as exc:  # noqa: BLE001 - every failure becomes a response
            await self._fail(request, responder, exc)
        finally:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s %.1f ms", request.method, request.path,
                          (time.monotonic() - started) * 1000)

    async def _fail(self, request: http.Request, responder: http.Responder,
                    exc: Exception) -> None:
        status = 400 if isinstance(exc, http.BadRequest) else errors.status_of(exc)
        if status == 500:
            log.error("%s %s: %s", request.method, request.path, exc, exc_info=exc)
        if responder.started:
            responder.keep_alive = False
            return
        if status == 304:
            await responder.send(304)
            return
        if request.method == "HEAD":  # no body: a client would read it as the next response
            await responder.send(status, b"", "application/json", {"Content-Length": "0"})
            return
        await responder.json(status, {"message": str(exc)})


def group_gid(name: str) -> int | None:
    """The gid of a group named in /etc/group, None if there is none."""
    try:
        with open("/etc/group") as f:
            for line in f:
                fields = line.split(":")
                if fields[0] == name:
                    return int(fields[2])
    except OSError:
        pass
    return None
