"""HTTP/1.1 over a unix socket or TCP, on the `_socket` module alone.

`socket` imports `enum`, `selectors` and more; a CLI that makes two requests
should not pay for that. One Connection carries one request at a time; bodies
come back whole, as decoded chunks, or, for attach and exec, the connection is
handed over raw ("hijacked") with whatever bytes were read past the headers.
"""

import _socket

from knarr.errors import InvalidArgument, Unavailable

__all__ = ["Address", "TLSConfig", "Connection", "Response", "parse_host", "connect"]

_RECV = 65536
DEFAULT_PORT = 2375
USER_AGENT = "knarr-client/0.1.0 (linux)"


class Address:
    """Where a daemon listens: a unix socket path or a TCP host and port."""

    __slots__ = ("scheme", "path", "host", "port")

    def __init__(self, scheme: str, path: str = "", host: str = "", port: int = 0) -> None:
        self.scheme, self.path, self.host, self.port = scheme, path, host, port

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_host(value: str) -> Address:
    """`unix:///run/x.sock`, `tcp://h:2375`, `h:2375`, `http://h` → an Address."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "tcp", value
    if scheme == "unix":
        if not rest:
            raise InvalidArgument(f"invalid host {value!r}: empty socket path", host=value)
        return Address("unix", path=rest)
    if scheme not in ("tcp", "http", "https"):
        raise InvalidArgument(f"invalid host {value!r}: unsupported protocol {scheme!r}",
                              host=value)
    rest = rest.split("/", 1)[0]
    host, port = _split_port(rest, 443 if scheme == "https" else DEFAULT_PORT)
    return Address("tcp" if scheme == "http" else scheme, host=host or "127.0.0.1", port=port)


def _split_port(rest: str, default: int) -> tuple[str, int]:
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not port:
        return host, default
    if not port.isdigit():
        raise InvalidArgument(f"invalid host {rest!r}: bad port {port!r}", host=rest)
    return host, int(port)


class TLSConfig:
    """TLS for a TCP daemon: the CA to check it against (None: no check), our cert and key."""

    __slots__ = ("ca", "cert", "key", "verify")

    def __init__(self, ca: str | None = None, cert: str | None = None, key: str | None = None,
                 verify: bool = True) -> None:
        self.ca, self.cert, self.key, self.verify = ca, cert, key, verify

    def context(self):
        """An ssl.SSLContext for these settings (imports ssl only now)."""
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.verify:
            if self.ca:
                ctx.load_verify_locations(self.ca)
            else:
                ctx.load_default_certs()
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx


def _connect_tls(address: Address, timeout: float | None, tls: TLSConfig):
    """A TLS socket (ssl needs the full socket module; only TLS users pay for it)."""
    import socket

    raw = socket.create_connection((address.host, address.port), timeout=timeout)
    try:
        return tls.context().wrap_socket(raw, server_hostname=address.host)
    except BaseException:
        raw.close()
        raise


def connect(address: Address, timeout: float | None = None,
            tls: TLSConfig | None = None) -> "Connection":
    """A connected Connection; OSError when nothing listens there (ssl.SSLError is one)."""
    if address.scheme == "https" and tls is None:
        tls = TLSConfig()
    if tls is not None and address.scheme != "unix":
        return Connection(_connect_tls(address, timeout, tls))
    if address.scheme == "unix":
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        target: object = address.path
    else:
        family, kind, proto, _, target = _socket.getaddrinfo(
            address.host, address.port, 0, _socket.SOCK_STREAM)[0]
        sock = _socket.socket(family, kind, proto)
    try:
        sock.settimeout(timeout)
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return Connection(sock)


class Connection:
    """One client connection; requests are sent and answered one after another."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.buf = bytearray()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send_request(self, method: str, target: str, headers: dict[str, str],
                     body: bytes | None = None, stream=None, length: int | None = None) -> None:
        """Send a request; `stream` (a binary file) goes out with `length`, else chunked."""
        lines = [f"{method} {target} HTTP/1.1", "Host: docker", f"User-Agent: {USER_AGENT}"]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        elif stream is not None and length is not None:
            lines.append(f"Content-Length: {length}")
        elif stream is not None:
            lines.append("Transfer-Encoding: chunked")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + body if body else head)
        if stream is not None and length is not None:
            self._send_plain(stream, length)
        elif stream is not None:
            self._send_chunked(stream)

    def _send_plain(self, stream, length: int) -> None:
        while length > 0:
            data = stream.read(min(length, _RECV * 4))
            if not data:
                raise Unavailable("request body ended early")
            self.sock.sendall(data)
            length -= len(data)

    def _send_chunked(self, stream) -> None:
        if hasattr(stream, "write_chunks") and not hasattr(self.sock, "getpeercert"):
            self.sock.setblocking(True)  # a body that writes itself into the socket (cp)
            stream.write_chunks(self.sock.fileno())
            self.sock.sendall(b"0\r\n\r\n")
            return
        while True:
            data = stream.read(_RECV * 4)
            if not data:
                break
            self.sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
        self.sock.sendall(b"0\r\n\r\n")

    def read_response(self, method: str) -> "Response":
        """Read the status line and headers; the body is read through the Response."""
        line = self._readline()
        while line == b"":  # tolerate stray empty lines before the status line
            line = self._readline()
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise Unavailable(f"bad response from daemon: {line[:80]!r}")
        headers: dict[str, str] = {}
        while True:
            line = self._readline()
            if not line:
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        return Response(self, int(parts[1]), parts[2] if len(parts) > 2 else "", headers,
                        method)

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(_RECV)
        except OSError as exc:
            if type(exc).__name__ == "SSLEOFError":
                return False
            raise
        if not data:
            return False
        self.buf += data
        return True

    def _readline(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 2]
                return line
            if not self._fill():
                raise Unavailable("daemon closed the connection in the middle of a response")

    def _read_exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            if not self._fill():
                raise Unavailable("daemon closed the connection in the middle of a response")
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def _read_some(self) -> bytes:
        if not self.buf and not self._fill():
            return b""
        data = bytes(self.buf)
        self.buf.clear()
        return data


class Response:
    """Status, lower-cased headers, and a body read on demand."""

    def __init__(self, conn: Connection, status: int, reason: str, headers: dict[str, str],
                 method: str) -> None:
        self.conn, self.status, self.reason, self.headers = conn, status, reason, headers
        self._bodyless = method == "HEAD" or status in (101, 204, 304) or status < 200

    def chunks(self):
        """The body in pieces as they arrive (transfer encoding removed)."""
        if self._bodyless:
            return
        conn = self.conn
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(conn._readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while conn._readline():  # trailers
                        pass
                    return
                yield conn._read_exact(size)
                conn._readline()
        elif "content-length" in self.headers:
            left = int(self.headers["content-length"])
            while left > 0:
                if not conn.buf and not conn._fill():
                    raise Unavailable("daemon closed the connection in the middle of a body")
                data = bytes(conn.buf[:left])
                del conn.buf[:len(data)]
                left -= len(data)
                yield data
        else:
            while data := conn._read_some():
                yield data

    def read(self) -> bytes:
        """The whole body."""
        return b"".join(self.chunks())

    def lines(self):
        """The body split at newlines (streamed JSON: one document per line)."""
        pending = b""
        for chunk in self.chunks():
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.strip():
                    yield line
        if pending.strip():
            yield pending

    def hijack(self) -> tuple[object, bytes]:
        """The raw socket and the bytes already read past the headers."""
        leftover = bytes(self.conn.buf)
        self.conn.buf.clear()
        return self.conn.sock, leftover
