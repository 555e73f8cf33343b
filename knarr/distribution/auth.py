"""Registry authentication: `WWW-Authenticate` challenges, Basic, and Bearer tokens.

A registry answers 401 with a challenge. `Basic realm=...` wants the user's
credentials on every request; `Bearer realm=...,service=...,scope=...`
sends the client to a token server, which is asked (with the credentials, if
any, as Basic) for a token valid for the scope; the token is then sent as
`Authorization: Bearer`. Tokens are kept per scope until they expire and
fetched again when a registry refuses one (refresh).
"""

import base64
import dataclasses
import re
import time
import urllib.parse

from knarr import fastjson

__all__ = ["Credentials", "Challenge", "parse_challenge", "basic_header", "TokenCache"]

_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What a user gave for a registry: user and password, or an identity token."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @classmethod
    def from_auth_config(cls, doc: dict | None) -> "Credentials":
        """From the X-Registry-Auth document (Docker's AuthConfig)."""
        doc = doc or {}
        user, password = doc.get("username") or "", doc.get("password") or ""
        if not user and doc.get("auth"):
            user, _, password = base64.b64decode(doc["auth"]).decode().partition(":")
        return cls(user, password, doc.get("identitytoken") or "",
                   doc.get("registrytoken") or "")

    def __bool__(self) -> bool:
        return bool(self.username or self.identity_token or self.registry_token)


@dataclasses.dataclass(frozen=True)
class Challenge:
    """A parsed `WWW-Authenticate` header."""

    scheme: str
    params: dict


def parse_challenge(header: str) -> Challenge:
    """Parse `Bearer realm="...",service="...",scope="..."` (or Basic)."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              .replace('\\"', '"') for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def basic_header(creds: Credentials) -> str:
    """The `Authorization` value for Basic auth."""
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class TokenCache:
    """Bearer tokens by (realm, service, scope), with their expiry."""

    def __init__(self) -> None:
        self.tokens: dict[tuple, tuple[str, float]] = {}

    def get(self, key: tuple) -> str | None:
        """A token still valid for `key`, or None."""
        found = self.tokens.get(key)
        if found and found[1] > time.monotonic():
            return found[0]
        return None

    def put(self, key: tuple, token: str, expires_in: float) -> None:
        """Keep a token (refreshed 10 s early)."""
        self.tokens[key] = (token, time.monotonic() + max(expires_in - 10, 1))

    def drop(self, key: tuple) -> None:
        """Forget a token a registry refused."""
        self.tokens.pop(key, None)


def token_url(challenge: Challenge, scopes: list[str]) -> str:
    """The token server URL for a challenge and the scopes wanted."""
    query = [("service", challenge.params["service"])] if challenge.params.get("service") else []
    query += [("scope", s) for s in scopes]
    realm = challenge.params.get("realm", "")
    return realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query) \
        if query else realm


def parse_token(body: bytes) -> tuple[str, float]:
    """(token, seconds valid) from a token server's answer."""
    doc = fastjson.loads(body)
    token = doc.get("token") or doc.get("access_token") or ""
    return token, float(doc.get("expires_in") or 60)
