"""HTTP/1.1 plumbing: one thread per connection, bodies streamed both ways.

`Request` is the stdlib's BaseHTTPRequestHandler with what the handlers
need: the query, the body as a stream of chunks (Content-Length or chunked
transfer coding, never whole in memory), small bodies read with a limit,
responses with the registry's headers, and files sent with sendfile(2).
A refusal is a RegistryError, rendered as the spec's JSON error body; an
unread request body is drained (or the connection closed) so keep-alive
stays in step.
"""

import http.server
import json
import socket
import sys
import traceback
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

from knarr.registry.errors import RegistryError

__all__ = ["Request", "Server", "ClientGone"]

CHUNK = 1 << 20
_DRAIN_LIMIT = 16 << 20
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")


class ClientGone(Exception):
    """The client closed the connection before sending the whole body."""


class Server(http.server.ThreadingHTTPServer):
    """A threaded server that hands each request to `app.dispatch`."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app, ssl_context=None) -> None:
        self.app = app
        self.ssl_context = ssl_context
        super().__init__(address, Request)

    def handle_error(self, request, client_address) -> None:
        """A connection that failed outside a request (TLS handshake, reset) is not news."""
        if self.app.verbose:
            traceback.print_exc()


class Request(http.server.BaseHTTPRequestHandler):
    """One connection; each `do_*` is one request on it."""

    protocol_version = "HTTP/1.1"
    server_version = "knarr-registry"
    sys_version = ""
    timeout = 600

    def setup(self) -> None:
        """Wrap TLS here, in the connection's own thread, so a slow handshake blocks no one."""
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.ssl_context is not None:
            self.request.settimeout(self.timeout)
            self.request = self.server.ssl_context.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        """Access log on stderr only when asked for."""
        if self.server.app.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        """Every method goes to the application's router."""
        self._dispatch()

    do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        self._body_read = False
        self._body_started = False
        self._responded = False
        url = urlsplit(self.path)
        self.url_path = url.path
        self.query = parse_qs(url.query, keep_blank_values=True)
        try:
            self.server.app.dispatch(self)
        except RegistryError as exc:
            self.send_error_doc(exc)
        except (ClientGone, ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a bug must not kill the connection thread silently
            traceback.print_exc()
            if not self._responded:
                self.send_error_doc(RegistryError("UNSUPPORTED", "internal error", status=500))
            self.close_connection = True
        finally:
            self._finish_body()

    # request

    def arg(self, key: str) -> str | None:
        """The first value of a query parameter, or None."""
        values = self.query.get(key)
        return values[0] if values else None

    def content_length(self) -> int | None:
        """The declared body length; None when chunked or absent."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        value = self.headers.get("Content-Length")
        return int(value) if value and value.isdigit() else None

    def has_body(self) -> bool:
        """True if the request announces a body of more than zero bytes."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return True
        return bool(self.content_length())

    def body_chunks(self) -> Iterator[bytes]:
        """The body, piece by piece; ClientGone if it ends early."""
        self._body_started = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            yield from self._chunked()
        else:
            remaining = self.content_length() or 0
            while remaining:
                chunk = self.rfile.read(min(remaining, CHUNK))
                if not chunk:
                    raise ClientGone("body ended early")
                remaining -= len(chunk)
                yield chunk
        self._body_read = True

    def _chunked(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ClientGone("chunked body ended early")
            try:
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                self.close_connection = True
                raise RegistryError("BLOB_UPLOAD_INVALID", "malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return
            while size:
                chunk = self.rfile.read(min(size, CHUNK))
                if not chunk:
                    raise ClientGone("chunked body ended early")
                size -= len(chunk)
                yield chunk
            self.rfile.readline(16)

    def read_body(self, limit: int) -> bytes:
        """A small body whole; SIZE_INVALID (413) beyond `limit` bytes."""
        parts, total = [], 0
        for chunk in self.body_chunks():
            total += len(chunk)
            if total > limit:
                raise RegistryError("SIZE_INVALID", f"body larger than {limit} bytes",
                                    status=413)
            parts.append(chunk)
        return b"".join(parts)

    def _finish_body(self) -> None:
        if self._body_read or not self.has_body():
            return
        length = self.content_length()
        if self._body_started or length is None or length > _DRAIN_LIMIT:
            # part read already (where it stopped is lost) or too much to wade through
            self.close_connection = True
            return
        try:
            for _chunk in self.body_chunks():
                pass
        except (ClientGone, ConnectionError, TimeoutError, ValueError):
            self.close_connection = True

    # response

    def respond(self, status: int, headers: dict | None = None, body: bytes = b"",
                content_type: str | None = None, length: int | None = None) -> None:
        """Send a whole response; `length` overrides Content-Length (HEAD of a GET)."""
        self._responded = True
        self.send_response(status)
        self.send_header(*API_VERSION)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        if content_type:
            self.send_header("Content-Type", content_type)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body) if length is None else length))
        if self.close_connection or self._body_unread_and_big():
            self.send_header("Connection", "close")
            self.close_connection = True
        if self.command != "HEAD" and body:
            self._headers_buffer.append(b"\r\n")
            self._headers_buffer.append(body)
            self.wfile.write(b"".join(self._headers_buffer))
            self._headers_buffer = []
        else:
            self.end_headers()

    def _body_unread_and_big(self) -> bool:
        if self._body_read or not self.has_body():
            return False
        length = self.content_length()
        return self._body_started or length is None or length > _DRAIN_LIMIT

    def respond_json(self, status: int, doc: object, headers: dict | None = None,
                     content_type: str = "application/json") -> None:
        """Send a JSON document."""
        self.respond(status, headers, json.dumps(doc).encode(), content_type)

    def send_error_doc(self, exc: RegistryError) -> None:
        """The spec's error body for a refusal."""
        if self._responded:
            self.close_connection = True
            return
        self.respond_json(exc.status, exc.body(), exc.headers)

    def send_file(self, status: int, headers: dict, f, offset: int, count: int,
                  content_type: str) -> None:
        """Send headers then `count` bytes of an open file from `offset` (sendfile)."""
        self.respond(status, headers, content_type=content_type, length=count)
        if self.command != "HEAD" and count:
            self.connection.sendfile(f, offset, count)
