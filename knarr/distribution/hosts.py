"""Where a registry is reached and how: endpoints, TLS, mirrors, insecure registries.

A registry domain maps to one or more endpoints, tried in order: the mirrors
(Docker Hub only, as Docker does), then the registry itself. `docker.io` is
served at `registry-1.docker.io`. TLS trust per registry follows Docker's
layout: `<certs_dir>/<host[:port]>/` holds `*.crt` CA certificates and
`*.cert`/`*.key` client certificate pairs. A registry named insecure (or a
loopback address, as Docker treats them) is tried over HTTPS without
verification first and then over plain HTTP.
"""

import dataclasses
import ipaddress
import os
import ssl

__all__ = ["Endpoint", "Hosts", "DEFAULT_CERTS_DIR", "DOCKER_HUB"]

DEFAULT_CERTS_DIR = "/etc/knarr/certs.d"
DOCKER_HUB = "docker.io"
_HUB_ENDPOINT = "registry-1.docker.io"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One way of reaching a registry: scheme, host[:port], TLS context, mirror or not."""

    scheme: str
    host: str
    context: ssl.SSLContext | None = None
    mirror: bool = False

    @property
    def base(self) -> str:
        """The URL prefix: `https://host:port`."""
        return f"{self.scheme}://{self.host}"


class Hosts:
    """The daemon's registry settings: certs dir, insecure registries, mirrors."""

    def __init__(self, certs_dir: str = DEFAULT_CERTS_DIR, insecure: list[str] | None = None,
                 mirrors: list[str] | None = None) -> None:
        self.certs_dir = certs_dir
        self.insecure = [_strip_scheme(i) for i in insecure or []]
        self.mirrors = [m.rstrip("/") for m in mirrors or []]
        self._contexts: dict[tuple, ssl.SSLContext] = {}

    def is_insecure(self, host: str) -> bool:
        """True when plain HTTP (or unverified TLS) is allowed for `host`."""
        if host in self.insecure:
            return True
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.endswith("]") or \
            "]:" in host else host
        name = name.strip("[]")
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return name == "localhost" or any(_in_cidr(name, cidr) for cidr in self.insecure)
        return address.is_loopback or any(_in_cidr(str(address), c) for c in self.insecure)

    def endpoints(self, domain: str) -> list[Endpoint]:
        """The endpoints of a registry domain, in the order to try them."""
        out = []
        if domain == DOCKER_HUB:
            for mirror in self.mirrors:
                scheme, _, host = mirror.partition("://")
                if not host:
                    scheme, host = "https", mirror
                out.append(Endpoint(scheme, host, self._context(host, scheme == "http"),
                                    mirror=True))
            domain = _HUB_ENDPOINT
        insecure = self.is_insecure(domain)
        out.append(Endpoint("https", domain, self._context(domain, insecure)))
        if insecure:
            out.append(Endpoint("http", domain))
        return out

    def context_for(self, host: str) -> ssl.SSLContext:
        """The TLS context for a host met outside a registry's endpoints (a token server)."""
        return self._context(host, self.is_insecure(host))

    def _context(self, host: str, unverified: bool) -> ssl.SSLContext:
        key = (host, unverified, _signature(os.path.join(self.certs_dir, host)))
        if key not in self._contexts:
            self._contexts[key] = self._make_context(host, unverified)
        return self._contexts[key]

    def _make_context(self, host: str, unverified: bool) -> ssl.SSLContext:
        context = ssl.create_default_context()
        folder = os.path.join(self.certs_dir, host)
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                path = os.path.join(folder, name)
                if name.endswith(".crt"):
                    context.load_verify_locations(path)
                elif name.endswith(".cert"):
                    key = path[:-len(".cert")] + ".key"
                    context.load_cert_chain(path, key if os.path.exists(key) else None)
        if unverified and not os.path.isdir(folder):  # a CA given for it is still checked
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _signature(folder: str) -> tuple:
    """What a certs folder holds now (names, sizes, times): a changed file makes a new
    context, without a daemon restart."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return ()
    return tuple((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries)


def _strip_scheme(text: str) -> str:
    return text.split("://", 1)[-1].rstrip("/")


def _in_cidr(address: str, cidr: str) -> bool:
    if "/" not in cidr:
        return False
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
