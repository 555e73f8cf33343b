"""One registry, one repository: HTTP requests with auth, retries and redirects.

`Session` finds a working endpoint with a ping (`GET /v2/`), answers the
registry's challenge (Basic, or a Bearer token for the repository's scope,
fetched again when refused), follows redirects (blob storage elsewhere: the
registry's Authorization is not sent to another host), and retries
connection failures and 5xx answers with back-off. Connections are kept
alive per thread; a streamed response gets a connection of its own.
"""

import http.client
import logging
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable

from knarr import fastjson
from knarr.distribution import auth
from knarr.distribution.hosts import Endpoint, Hosts
from knarr.errors import InvalidArgument, KnarrError, NotFound, Unauthorized, Unavailable

__all__ = ["Session", "Response", "registry_error", "USER_AGENT"]

USER_AGENT = "knarr/0.1"
log = logging.getLogger("knarr.distribution")
_REDIRECTS = (301, 302, 303, 307, 308)
_TIMEOUT = 60.0
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


class Response:
    """A registry's answer: status, headers (lower-case names), and its body or stream."""

    def __init__(self, raw: http.client.HTTPResponse, conn, url: str, streamed: bool) -> None:
        self.raw = raw
        self.status = raw.status
        self.reason = raw.reason
        self.headers = {k.lower(): v for k, v in raw.getheaders()}
        self.url = url
        self.conn = conn
        self.streamed = streamed
        self.body = b"" if streamed else raw.read()

    def read(self, n: int) -> bytes:
        """Up to `n` more bytes of a streamed body."""
        return self.raw.read(n)

    def readinto(self, buffer) -> int:
        """Fill `buffer` from a streamed body; return how many bytes."""
        return self.raw.readinto(buffer)

    def close(self) -> None:
        """Drop a streamed response's connection."""
        self.raw.close()
        self.conn.close()

    def json(self) -> dict:
        """The body as JSON."""
        return fastjson.loads(self.body)


def registry_error(resp: Response, what: str) -> KnarrError:
    """The error a registry's refusal means, with its own code and message as Docker shows
    them (`manifest unknown: manifest unknown`)."""
    detail = _error_text(resp)
    message = f"{what}: {detail}" if what else detail
    if resp.status in (401, 403):
        return Unauthorized(message, status=resp.status)
    if resp.status == 404:
        return NotFound(message, status=resp.status)
    if resp.status >= 500 or resp.status == 429:
        return Unavailable(message, status=resp.status)
    return InvalidArgument(message, status=resp.status)


def _error_text(resp: Response) -> str:
    try:
        errors = fastjson.loads(resp.body).get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    parts = []
    for err in errors:
        code = str(err.get("code", "")).lower().replace("_", " ")
        parts.append(f"{code}: {err.get('message', '')}" if code else str(err.get("message")))
    if parts:
        return "; ".join(parts)
    if resp.status == 401:
        return "unauthorized: authentication required"
    return f"received unexpected HTTP status: {resp.status} {resp.reason}"


class Session:
    """Requests to one repository of one registry, authenticated for `actions`."""

    def __init__(self, hosts: Hosts, domain: str, repository: str,
                 creds: auth.Credentials | None = None, actions: str = "pull",
                 retries: int = 4, backoff: float = 0.2) -> None:
        self.hosts = hosts
        self.domain = domain
        self.repository = repository
        self.creds = creds or auth.Credentials()
        self.scopes = [f"repository:{repository}:{actions}"]
        self.retries = retries
        self.backoff = backoff
        self.endpoint: Endpoint | None = None
        self.challenge: auth.Challenge | None = None
        self.tokens = auth.TokenCache()
        self.local = threading.local()
        self.lock = threading.Lock()

    # -- endpoint and auth --------------------------------------------------

    def ping(self) -> Endpoint:
        """Find the first endpoint that answers `GET /v2/`; learn its challenge."""
        if self.endpoint is not None:
            return self.endpoint
        problems = []
        for endpoint in self.hosts.endpoints(self.domain):
            try:
                resp = self._send(endpoint, "GET", f"{endpoint.base}/v2/", {}, None, False)
            except _NETWORK_ERRORS as exc:
                problems.append(f"{endpoint.base}: {_describe(exc)}")
                continue
            if resp.status == 401 and "www-authenticate" in resp.headers:
                self.challenge = auth.parse_challenge(resp.headers["www-authenticate"])
            elif resp.status >= 400 and not endpoint.mirror:
                problems.append(f"{endpoint.base}/v2/: {_error_text(resp)}")
                continue
            elif resp.status >= 400:
                continue
            self.endpoint = endpoint
            return endpoint
        raise Unavailable(f"registry {self.domain}: no endpoint answered: "
                          + "; ".join(problems), registry=self.domain)

    def add_scope(self, scope: str) -> None:
        """Ask for one more scope (a mount source's pull) in the next token."""
        if scope not in self.scopes:
            self.scopes.append(scope)

    def _authorization(self, refresh: bool = False) -> str | None:
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if not self.creds:
                return None
            return auth.basic_header(self.creds)
        if challenge.scheme != "bearer":
            return None
        if self.creds.registry_token:
            return f"Bearer {self.creds.registry_token}"
        key = (challenge.params.get("realm"), challenge.params.get("service"),
               tuple(self.scopes))
        with self.lock:
            token = None if refresh else self.tokens.get(key)
            if token is None:
                token, expires = self._fetch_token(challenge)
                self.tokens.put(key, token, expires)
        return f"Bearer {token}"

    def _fetch_token(self, challenge: auth.Challenge) -> tuple[str, float]:
        url = auth.token_url(challenge, self.scopes)
        headers = {}
        method, body = "GET", None
        if self.creds.identity_token:
            method = "POST"
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode({
                "grant_type": "refresh_token", "refresh_token": self.creds.identity_token,
                "service": challenge.params.get("service", ""), "client_id": "knarr",
                "scope": " ".join(self.scopes)}).encode()
            url = challenge.params.get("realm", "")
        elif self.creds:
            headers["Authorization"] = auth.basic_header(self.creds)
        resp = self._plain_request(method, url, headers, body)
        if resp.status != 200:
            raise registry_error(resp, f"get a token from {challenge.params.get('realm')}")
        return auth.parse_token(resp.body)

    def _plain_request(self, method: str, url: str, headers: dict, body) -> Response:
        """A request to a token server (any host): retries, no registry auth."""
        parsed = urllib.parse.urlsplit(url)
        endpoint = self._endpoint_for(parsed)
        return self._with_retries(lambda: self._send(endpoint, method, url, headers, body,
                                                     False), url)

    def _endpoint_for(self, parsed) -> Endpoint:
        own = self.endpoint
        if own is not None and (parsed.scheme, parsed.netloc) == (own.scheme, own.host):
            return own
        context = self.hosts.context_for(parsed.netloc) if parsed.scheme == "https" else None
        return Endpoint(parsed.scheme, parsed.netloc, context)

    # -- requests -----------------------------------------------------------

    def request(self, method: str, path: str, headers: dict | None = None,
                body: bytes | Callable | None = None, stream: bool = False,
                ok: tuple[int, ...] = (200,), what: str = "") -> Response:
        """A request to `path` under the endpoint (or a full URL); raise unless the status
        is in `ok` (then the caller reads a streamed body and closes it)."""
        endpoint = self.ping()
        url = path if "://" in path else endpoint.base + path
        resp = self._authorised(method, url, dict(headers or {}), body, stream)
        if resp.status not in ok:
            if stream:
                resp.body = _read_some(resp)
                resp.close()
            raise registry_error(resp, what)
        return resp

    def _authorised(self, method, url, headers, body, stream) -> Response:
        refreshed = False
        while True:
            token = self._authorization(refresh=refreshed)
            if token:
                headers["Authorization"] = token
            resp = self._follow(method, url, headers, body, stream)
            if resp.status != 401 or refreshed:
                return resp
            header = resp.headers.get("www-authenticate")
            if stream:
                resp.body = _read_some(resp)
                resp.close()
            if not header:
                return resp
            self.challenge = auth.parse_challenge(header)  # a new scope, or a refused token
            refreshed = True

    def _follow(self, method, url, headers, body, stream) -> Response:
        for _ in range(10):
            parsed = urllib.parse.urlsplit(url)
            endpoint = self._endpoint_for(parsed)
            resp = self._with_retries(
                lambda e=endpoint, m=method, u=url, h=headers, b=body:
                self._send(e, m, u, h, b, stream), url)
            if resp.status not in _REDIRECTS or "location" not in resp.headers:
                return resp
            if stream:
                resp.close()
            target = urllib.parse.urljoin(url, resp.headers["location"])
            if urllib.parse.urlsplit(target).netloc != parsed.netloc:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if resp.status == 303:
                method, body = "GET", None
            url = target
        raise Unavailable(f"{method} {url}: too many redirects", url=url)

    def _with_retries(self, send: Callable[[], Response], url: str) -> Response:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = send()
            except _NETWORK_ERRORS as exc:
                if last or isinstance(exc, ssl.SSLCertVerificationError):
                    raise Unavailable(f"{url}: {_describe(exc)}", url=url) from exc
                log.info("%s: %s; retrying in %.1fs", url, _describe(exc), delay)
            else:
                if resp.status < 500 or last:
                    return resp
                if resp.streamed:
                    resp.close()
                log.info("%s: status %d; retrying in %.1fs", url, resp.status, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def _send(self, endpoint: Endpoint, method: str, url: str, headers: dict, body,
              stream: bool) -> Response:
        conn = self._connection(endpoint, fresh=stream)
        parsed = urllib.parse.urlsplit(url)
        target = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        data = body() if callable(body) else body
        all_headers = {"User-Agent": USER_AGENT, **headers}
        if data is None and method in ("PUT", "POST", "PATCH"):
            all_headers.setdefault("Content-Length", "0")
        try:
            conn.request(method, target, body=data, headers=all_headers)
            raw = conn.getresponse()
            resp = Response(raw, conn, url, streamed=stream)
        except BaseException:
            conn.close()
            self._forget(endpoint, conn)
            raise
        if not stream and raw.will_close:
            conn.close()
            self._forget(endpoint, conn)
        return resp

    def _connection(self, endpoint: Endpoint, fresh: bool) -> http.client.HTTPConnection:
        if fresh:
            return _open(endpoint)
        pool = getattr(self.local, "pool", None)
        if pool is None:
            pool = self.local.pool = {}
        key = (endpoint.scheme, endpoint.host)
        if key not in pool:
            pool[key] = _open(endpoint)
        return pool[key]

    def _forget(self, endpoint: Endpoint, conn) -> None:
        pool = getattr(self.local, "pool", {})
        if pool.get((endpoint.scheme, endpoint.host)) is conn:
            del pool[(endpoint.scheme, endpoint.host)]

    def close(self) -> None:
        """Close this thread's kept-alive connections."""
        for conn in getattr(self.local, "pool", {}).values():
            conn.close()
        self.local.pool = {}


def _open(endpoint: Endpoint) -> http.client.HTTPConnection:
    if endpoint.scheme == "https":
        return http.client.HTTPSConnection(endpoint.host, timeout=_TIMEOUT,
                                           context=endpoint.context, blocksize=1 << 16)
    return http.client.HTTPConnection(endpoint.host, timeout=_TIMEOUT, blocksize=1 << 16)


def _read_some(resp: Response) -> bytes:
    try:
        return resp.raw.read(1 << 16)
    except _NETWORK_ERRORS:
        return b""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    return str(exc) or type(exc).__name__
