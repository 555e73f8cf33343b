"""HTTP/1.1 on asyncio streams, as much as the Engine API needs: requests with
Content-Length or chunked bodies, JSON and chunked streaming responses, and
hijacking a connection for attach and exec."""

import asyncio
import json
import os
import urllib.parse

__all__ = ["Request", "read_request", "Responder", "BadRequest", "REASONS", "take_socket"]

REASONS = {101: "UPGRADED", 200: "OK", 201: "Created", 204: "No Content",
           304: "Not Modified", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable"}
_MAX_HEAD = 64 * 1024


class BadRequest(Exception):
    """The bytes on the wire are not an HTTP request we can read."""


class Request:
    """One parsed request; the body is read on demand."""

    def __init__(self, method: str, target: str, version: str, headers: dict,
                 reader: asyncio.StreamReader) -> None:
        self.method = method
        split = urllib.parse.urlsplit(target)
        self.path = urllib.parse.unquote(split.path)
        self.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        self.version = version
        self.headers = headers
        self.reader = reader
        self.params: dict[str, str] = {}
        self._body: bytes | None = None

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def q_bool(self, name: str, default: bool = False) -> bool:
        value = self.q(name)
        if value is None:
            return default
        return value.lower() not in ("", "0", "false", "no")

    def q_int(self, name: str, default: int | None = None) -> int | None:
        value = self.q(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise BadRequest(f"invalid value for {name}: {value!r}") from None

    def q_json(self, name: str) -> dict:
        value = self.q(name)
        if not value:
            return {}
        try:
            parsed = json.loads(value)
        except ValueError:
            raise BadRequest(f"invalid {name}: {value!r}") from None
        if not isinstance(parsed, dict):
            raise BadRequest(f"invalid {name}: {value!r}: expected a JSON object")
        # Docker accepts {"key": ["v"]} and the older {"key": {"v": true}}.
        out = {}
        for key, values in parsed.items():
            values = list(values) if isinstance(values, (list, dict)) else [values]
            if not all(isinstance(v, str) for v in values):
                raise BadRequest(f"invalid {name}: {key}: values must be strings")
            out[key] = values
        return out

    @property
    def wants_upgrade(self) -> bool:
        return "upgrade" in self.headers.get("connection", "").lower()

    async def body(self) -> bytes:
        if self._body is None:
            chunks = [c async for c in self.body_chunks()]
            self._body = b"".join(chunks)
        return self._body

    async def json(self):
        raw = await self.body()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"invalid JSON: {exc}") from exc

    async def json_as(self, schema: dict, struct: str):
        """The JSON body, its fields' types checked against `schema` (knarr.api.schema)."""
        from knarr.api.schema import check

        return check(await self.json(), schema, struct)

    async def body_chunks(self):
        if self._body is not None:
            yield self._body
            return
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await self.reader.readline()
                try:
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise BadRequest(f"invalid chunk size {size_line[:40]!r}") from None
                if size < 0:
                    raise BadRequest(f"invalid chunk size {size_line[:40]!r}")
                if size == 0:
                    await self.reader.readline()
                    return
                yield await self.reader.readexactly(size)
                await self.reader.readexactly(2)
        length = int(self.headers.get("content-length") or 0)
        while length > 0:
            chunk = await self.reader.read(min(length, 1 << 20))
            if not chunk:
                raise BadRequest("body ended early")
            length -= len(chunk)
            yield chunk


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a connection; None when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        raise BadRequest(f"malformed request line {lines[0]!r}") from None
    if not target or not method.isascii() or not method.replace("-", "").isalnum():
        raise BadRequest(f"malformed request line {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length", "0")
    if not length or length.strip("0123456789"):  # str.isdigit() takes "\u00b2" too
        raise BadRequest(f"invalid content-length {headers['content-length'][:40]!r}")
    try:
        return Request(method, target, version, headers, reader)
    except ValueError as exc:  # urlsplit: "//[" is an invalid IPv6 host
        raise BadRequest(f"malformed request target {target[:80]!r}: {exc}") from None


class Responder:
    """Writes one response (or the start of a stream) on a connection."""

    def __init__(self, writer: asyncio.StreamWriter, base_headers: dict) -> None:
        self.writer = writer
        self.base = base_headers
        self.started = False
        self.keep_alive = True

    def _head(self, status: int, headers: dict) -> bytes:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
        for name, value in {**self.base, **headers}.items():
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send(self, status: int, body: bytes = b"", content_type: str | None = None,
                   headers: dict | None = None) -> None:
        extra = dict(headers or {})
        if content_type:
            extra["Content-Type"] = content_type
        if status not in (101, 204, 304):
            extra["Content-Length"] = str(len(body))
        self.started = True
        self.writer.write(self._head(status, extra) + body)
        await self.writer.drain()

    async def json(self, status: int, doc) -> None:
        await self.send(status, json.dumps(doc).encode() + b"\n", "application/json")

    async def start_stream(self, status: int, content_type: str,
                           headers: dict | None = None) -> None:
        """Begin a chunked response; `chunk` sends pieces, `end` finishes."""
        extra = {"Content-Type": content_type, "Transfer-Encoding": "chunked",
                 **(headers or {})}
        self.started = True
        self.writer.write(self._head(status, extra))
        await self.writer.drain()

    async def chunk(self, data: bytes) -> None:
        if data:
            self.writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await self.writer.drain()

    async def end(self, data: bytes = b"") -> None:
        """Finish a chunked response, with a last piece `data` in the same write."""
        last = f"{len(data):x}\r\n".encode() + data + b"\r\n" if data else b""
        self.writer.write(last + b"0\r\n\r\n")
        await self.writer.drain()

    async def hijack(self, request: Request, content_type: str) -> None:
        """Take the connection over for raw bytes both ways (101 if the client asked)."""
        self.started = True
        self.keep_alive = False
        self.hijacked_at = asyncio.get_running_loop().time()
        if request.wants_upgrade:
            head = self._head(101, {"Content-Type": content_type, "Connection": "Upgrade",
                                    "Upgrade": "tcp"})
        else:
            head = self._head(200, {"Content-Type": content_type})
        self.writer.write(head)
        await self.writer.drain()


def take_socket(request: Request, responder: "Responder") -> tuple[int, bytes]:
    """The connection's socket for whoever reads the body itself (a copy process, a build
    thread): reading paused, a dup of the fd, the bytes the server had already read; the
    server closes the connection after the response. (-1, b"") if there is no socket."""
    transport = responder.writer.transport
    sock = transport.get_extra_info("socket")
    if sock is None:
        return -1, b""
    transport.pause_reading()
    buffered = request.reader._buffer  # noqa: SLF001 - what asyncio read ahead of us
    held = bytes(buffered)
    buffered.clear()
    responder.keep_alive = False
    return os.dup(sock.fileno()), held
