"""Requests to a Docker Engine API: version negotiation, JSON, streams, hijacking, errors.

The daemon's `{"message": ...}` error bodies become knarr.errors categories
(404 NotFound, 409 Conflict, 400 InvalidArgument, 503 Unavailable, anything
else KnarrError) carrying the HTTP status, so the CLI prints Docker's texts.
"""

from knarr.client import transport
from knarr.errors import Conflict, InvalidArgument, KnarrError, NotFound, Unavailable

__all__ = ["DEFAULT_HOST", "API_VERSION", "Client", "DaemonUnreachable", "quote", "encode_query"]

DEFAULT_HOST = "unix:///run/knarr/knarr.sock"
API_VERSION = "1.45"  # the newest version this client speaks
_FALLBACK_VERSION = "1.41"

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_BY_STATUS = {400: InvalidArgument, 404: NotFound, 409: Conflict, 503: Unavailable}


class DaemonUnreachable(Unavailable):
    """Nothing answers at the daemon's address."""


def quote(text: str, safe: str = "") -> str:
    """Percent-encode `text` for a URL path segment or query value."""
    keep = _SAFE | frozenset(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode("utf-8"))


def encode_query(query: dict | None) -> str:
    """`?a=1&b=x` from a dict, leaving out None values; booleans become 1/0; lists repeat."""
    if not query:
        return ""
    parts = []
    for key, value in query.items():
        if value is None:
            continue
        if value is True or value is False:
            value = int(value)
        for item in value if isinstance(value, list) else (value,):
            parts.append(f"{quote(key)}={quote(str(item))}")
    return "?" + "&".join(parts) if parts else ""


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


class Client:
    """A Docker Engine API client bound to one daemon address."""

    def __init__(self, host: str = DEFAULT_HOST, version: str | None = None,
                 timeout: float | None = None, tls: transport.TLSConfig | None = None) -> None:
        self.host, self.tls = host, tls
        self.address = transport.parse_host(host)
        if tls is not None and self.address.scheme == "tcp" and ":" not in host.split("//")[-1]:
            self.address.port = 2376
        self.version = version
        self.timeout = timeout
        self._idle: transport.Connection | None = None
        self._pinging: transport.Connection | None = None  # ping_early's, unanswered
        self.server_headers: dict[str, str] = {}

    def clone(self) -> "Client":
        """Another client for the same daemon and version, with its own connections."""
        return Client(self.host, self.version, self.timeout, self.tls)

    # -- connections ------------------------------------------------------

    def _connect(self) -> transport.Connection:
        if self._idle is not None:
            conn, self._idle = self._idle, None
            return conn
        try:
            return transport.connect(self.address, self.timeout, self.tls)
        except OSError as exc:
            if type(exc).__module__ == "ssl":
                raise Unavailable(f"error during connect: {exc}", host=str(self.address)) \
                    from exc
            raise DaemonUnreachable(
                f"Cannot connect to the knarr daemon at {self.address}. "
                "Is the knarr daemon running?", host=str(self.address), errno=exc.errno) from exc

    def close(self) -> None:
        """Close the idle connection, if any."""
        if self._idle is not None:
            self._idle.close()
            self._idle = None

    def _send(self, method: str, target: str, headers: dict, body: bytes | None,
              stream, length: int | None = None) -> transport.Response:
        reused = self._idle is not None
        conn = self._connect()
        try:
            conn.send_request(method, target, headers, body, stream, length)
            return conn.read_response(method)
        except (OSError, Unavailable) as exc:
            conn.close()
            if not reused or stream is not None:
                raise _broken(method, target, exc) from exc
        # an idle keep-alive connection the daemon had closed: once more, afresh
        conn = self._connect()
        try:
            conn.send_request(method, target, headers, body, stream, length)
            return conn.read_response(method)
        except (OSError, Unavailable) as exc:
            conn.close()
            raise _broken(method, target, exc) from exc

    # -- versions ---------------------------------------------------------

    def ping(self) -> dict[str, str]:
        """GET /_ping; the daemon's headers (Api-Version, Ostype, ...)."""
        return self._pinged(self._send("GET", "/_ping", {}, None, None))

    def _pinged(self, resp: transport.Response) -> dict[str, str]:
        resp.read()
        self._idle = resp.conn
        self.server_headers = resp.headers
        return resp.headers

    def ping_early(self) -> bool:
        """Send GET /_ping now and read its answer at the first request (`api_version`):
        the daemon answers while the caller gets on with its own work. False (and nothing
        sent) when the version is set already or no daemon listens."""
        if self.version is not None or self._pinging is not None:
            return False
        try:
            conn = transport.connect(self.address, self.timeout, self.tls)
        except OSError:
            return False
        try:
            conn.send_request("GET", "/_ping", {}, None, None)
        except (OSError, Unavailable):
            conn.close()
            return False
        self._pinging = conn
        return True

    def api_version(self) -> str:
        """The version every request uses: ours or the daemon's, whichever is older."""
        if self.version is None:
            headers = None
            if self._pinging is not None:
                conn, self._pinging = self._pinging, None
                try:
                    headers = self._pinged(conn.read_response("GET"))
                except (OSError, Unavailable):
                    conn.close()  # asked again below, as if it had not been
            if headers is None:
                headers = self.ping()
            server = headers.get("api-version", _FALLBACK_VERSION)
            ours = API_VERSION
            self.version = server if _version_tuple(server) < _version_tuple(ours) else ours
        return self.version

    # -- requests ---------------------------------------------------------

    def request(self, method: str, path: str, query: dict | None = None, body: object = None,
                data: bytes | None = None, stream=None, length: int | None = None,
                headers: dict | None = None,
                ok: tuple[int, ...] = (), what: tuple[str, str] | None = None
                ) -> transport.Response:
        """Send one request; raise the daemon's error for a status of 400 or more.

        `what` is (kind, name) of the object the path names: a 404 then says
        `No such container: name` the way Docker's client words it.
        """
        target = f"/v{self.api_version()}{path}{encode_query(query)}"
        hdrs = dict(headers or {})
        if body is not None:
            from knarr.client import jsonc

            data = jsonc.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        resp = self._send(method, target, hdrs, data, stream, length)
        if resp.status >= 400 and resp.status not in ok:
            raise _error(resp, what)
        return resp

    def send_only(self, method: str, path: str, query: dict | None = None,
                  body: object = None) -> tuple:
        """Send a request (with a JSON `body`, if given) on a connection of its own and
        return at once; read the answer with `answer`. Another request can go out, or
        other work be done, meanwhile (run's wait beside its attach)."""
        target = f"/v{self.api_version()}{path}{encode_query(query)}"
        headers, data = {}, None
        if body is not None:
            from knarr.client import jsonc

            data = jsonc.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connect()
        try:
            conn.send_request(method, target, headers, data, None)
        except (OSError, Unavailable) as exc:
            conn.close()
            raise _broken(method, target, exc) from exc
        return conn, method, target

    def answer(self, sent: tuple, what: tuple[str, str] | None = None) -> transport.Response:
        """The response to a `send_only` request; the daemon's error for a status >= 400."""
        conn, method, target = sent
        try:
            resp = conn.read_response(method)
        except (OSError, Unavailable) as exc:
            conn.close()
            raise _broken(method, target, exc) from exc
        if resp.status >= 400:
            raise _error(resp, what)
        return resp

    def answer_json(self, sent: tuple) -> object:
        """The parsed JSON answer to a `send_only` request (the daemon's error for a status
        >= 400); its connection is kept for the next request."""
        resp = self.answer(sent)
        raw = resp.read()
        self._idle = resp.conn
        from knarr.client import jsonc

        return jsonc.loads(raw) if raw.strip() else None

    def connect_ahead(self) -> None:
        """Open the connection the next request will use, now."""
        if self._idle is None:
            self._idle = self._connect()

    def call(self, method: str, path: str, query: dict | None = None, body: object = None,
             **kwargs) -> object:
        """A request whose answer is read whole: parsed JSON, or None when empty."""
        resp = self.request(method, path, query, body, **kwargs)
        raw = resp.read()
        self._idle = resp.conn
        if not raw.strip():
            return None
        if resp.headers.get("content-type", "").startswith("application/json"):
            from knarr.client import jsonc

            return jsonc.loads(raw)
        return raw

    def get(self, path: str, query: dict | None = None, **kwargs) -> object:
        """GET, parsed."""
        return self.call("GET", path, query, **kwargs)

    def post(self, path: str, query: dict | None = None, body: object = None,
             **kwargs) -> object:
        """POST, parsed."""
        return self.call("POST", path, query, body, **kwargs)

    def delete(self, path: str, query: dict | None = None, **kwargs) -> object:
        """DELETE, parsed."""
        return self.call("DELETE", path, query, **kwargs)

    def stream_json(self, method: str, path: str, query: dict | None = None,
                    body: object = None, **kwargs):
        """Streamed JSON (events, stats, pull, load): one parsed document per line."""
        from knarr.client import jsonc

        resp = self.request(method, path, query, body, **kwargs)
        try:
            for line in resp.lines():
                yield jsonc.loads(line)
        finally:
            resp.conn.close()

    def hijack(self, method: str, path: str, query: dict | None = None,
               body: object = None) -> tuple[object, bytes]:
        """Upgrade the connection to a raw stream (attach, exec start).

        Returns the socket and the bytes that came after the response headers.
        """
        resp = self.request(method, path, query, body,
                            headers={"Connection": "Upgrade", "Upgrade": "tcp"})
        if resp.status not in (101, 200):
            raise _error(resp)
        return resp.hijack()


def _broken(method: str, target: str, exc: Exception) -> KnarrError:
    """A request the connection failed under (reset, TLS refusal, daemon gone)."""
    if isinstance(exc, KnarrError):
        return exc
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return Unavailable(f"error during connect: {method} {target}: {reason}")


def _error(resp: transport.Response, what: tuple[str, str] | None = None) -> KnarrError:
    """The daemon's error as a knarr.errors category."""
    if what is not None and resp.status == 404:
        resp.conn.close()
        return NotFound(f"No such {what[0]}: {what[1]}", status=404, object=what[0])
    raw = resp.read()
    resp.conn.close()
    message = raw.decode("utf-8", "replace").strip()
    if raw.lstrip().startswith(b"{"):
        from knarr.client import jsonc

        try:
            message = str(jsonc.loads(raw).get("message", message))
        except (ValueError, AttributeError):
            pass
    if not message:
        message = f"{resp.status} {resp.reason}".strip()
    return _BY_STATUS.get(resp.status, KnarrError)(message, status=resp.status)
