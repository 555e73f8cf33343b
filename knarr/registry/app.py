"""The registry application: routes, access control, read-only mode, the token endpoint.

Routes are matched on the path; a repository name may hold slashes, so each
route anchors on the fixed words after it (`/manifests/`, `/blobs/`, ...).
Every request under `/v2/` is authorised before its handler runs: with an
htpasswd file, Basic credentials; with a token key, a Bearer token whose
access list grants the action (GET/HEAD pull, DELETE delete, the rest push)
on the repository. `/token` issues those tokens to htpasswd users.
"""

import base64
import re
import time

from knarr.registry import blobs, manifests
from knarr.registry.auth import Htpasswd, TokenIssuer, granted, parse_scope
from knarr.registry.errors import RegistryError
from knarr.registry.storage import Storage
from knarr.registry.uploads import Uploads

__all__ = ["Registry"]

_NAME = r"(?P<name>[^?#]+?)"
ROUTES = [
    ("base", re.compile(r"^/v2/?$"), {"GET": None}),
    ("catalog", re.compile(r"^/v2/_catalog$"), {"GET": manifests.catalog}),
    ("repo", re.compile(rf"^/v2/{_NAME}/tags/list$"), {"GET": manifests.list_tags}),
    ("repo", re.compile(rf"^/v2/{_NAME}/manifests/(?P<reference>[^/]+)$"),
     {"GET": manifests.get_manifest, "PUT": manifests.put_manifest,
      "DELETE": manifests.delete_manifest}),
    ("repo", re.compile(rf"^/v2/{_NAME}/blobs/uploads/?$"), {"POST": blobs.start_upload}),
    ("repo", re.compile(rf"^/v2/{_NAME}/blobs/uploads/(?P<uuid>[^/]+)$"),
     {"GET": blobs.upload_status, "PATCH": blobs.patch_upload, "PUT": blobs.put_upload,
      "DELETE": blobs.cancel_upload}),
    ("repo", re.compile(rf"^/v2/{_NAME}/blobs/(?P<digest>[^/]+)$"),
     {"GET": blobs.get_blob, "DELETE": blobs.delete_blob}),
    ("repo", re.compile(rf"^/v2/{_NAME}/referrers/(?P<digest>[^/]+)$"),
     {"GET": manifests.referrers}),
]
_ACTION = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}
_WRITES = {"PUT", "POST", "PATCH", "DELETE"}


def _route(path: str):
    """(kind, match, handlers by method) of the route a path names."""
    for kind, pattern, methods in ROUTES:
        match = pattern.match(path)
        if match:
            return kind, match, methods
    raise RegistryError("NAME_UNKNOWN", "no such endpoint", {"path": path}, status=404)


def _names_repository(claims: dict, name: str) -> bool:
    return any(e.get("type") == "repository" and e.get("name") == name
               for e in claims.get("access", []))


class Registry:
    """Storage, upload sessions and access settings shared by every connection."""

    def __init__(self, root: str, htpasswd: str | None = None, token_key: bytes | None = None,
                 read_only: bool = False, verbose: bool = False, tls: bool = False,
                 service: str = "knarr-registry") -> None:
        self.storage = Storage(root)
        self.uploads = Uploads(self.storage)
        self.htpasswd = Htpasswd(htpasswd) if htpasswd else None
        self.tokens = TokenIssuer(token_key, service) if token_key else None
        self.read_only = read_only
        self.verbose = verbose
        self.tls = tls
        self.service = service
        # A mount without `from` finds a blob by digest in any repository. Every user who
        # passes auth may pull every repository here (tokens grant what is asked), so
        # this reveals nothing a user could not read anyway.
        self.anonymous_mount = True

    def dispatch(self, req) -> None:
        """Route one request, check access, run its handler."""
        if req.url_path == "/token":
            self._token(req)
            return
        method = "GET" if req.command == "HEAD" else req.command
        kind, match, methods = _route(req.url_path)
        if method not in methods:
            raise RegistryError("UNSUPPORTED", f"{req.command} is not allowed here", status=405)
        params = match.groupdict()
        if self.read_only and method in _WRITES:
            raise RegistryError("UNSUPPORTED", "the registry is read-only", status=405)
        self._authorise(req, kind, params.get("name"), method)
        handler = methods[method]
        if handler is None:
            req.respond_json(200, {})
            return
        handler(self, req, **params)

    # access

    def _authorise(self, req, kind: str, name: str | None, method: str) -> None:
        req.token_claims = None
        if self.tokens is not None:
            self._authorise_bearer(req, kind, name, method)
        elif self.htpasswd is not None and not self._basic_user(req):
            raise RegistryError("UNAUTHORIZED", "authentication required",
                                headers={"WWW-Authenticate": 'Basic realm="knarr-registry"'})

    def _basic_user(self, req) -> str | None:
        value = req.headers.get("Authorization", "")
        if not value.lower().startswith("basic "):
            return None
        try:
            user, password = base64.b64decode(value[6:].strip()).decode().split(":", 1)
        except (ValueError, UnicodeDecodeError):
            return None
        return user if self.htpasswd.check(user, password) else None

    def _authorise_bearer(self, req, kind: str, name: str | None, method: str) -> None:
        value = req.headers.get("Authorization", "")
        claims = self.tokens.check(value[7:].strip()) if value.lower().startswith(
            "bearer ") else None
        if kind == "base":
            scope, ok = "", claims is not None
        elif kind == "catalog":
            scope = "registry:catalog:*"
            ok = claims is not None and granted(claims, "registry", "catalog", "*")
        else:
            action = _ACTION.get(method, "push")
            actions = "pull" if action == "pull" else f"pull,{action}"
            scope = f"repository:{name}:{actions}"
            ok = claims is not None and granted(claims, "repository", name, action)
        if ok:
            req.token_claims = claims
            return
        realm = f'{"https" if self.tls else "http"}://{req.headers.get("Host", "localhost")}/token'
        challenge = f'Bearer realm="{realm}",service="{self.service}"'
        if scope:
            challenge += f',scope="{scope}"'
        if claims is not None and name and _names_repository(claims, name):
            # The client asked for this repository and was granted less: asking again
            # would not help, so this is a refusal, not a challenge.
            raise RegistryError("DENIED", "requested access to the resource is denied",
                                {"scope": scope})
        raise RegistryError("UNAUTHORIZED", "authentication required",
                            {"scope": scope} if scope else None,
                            headers={"WWW-Authenticate": challenge})

    def may(self, req, name: str, action: str) -> bool:
        """True if the request may do `action` on another repository (mount's `from`)."""
        if self.tokens is None:
            return True
        claims = getattr(req, "token_claims", None)
        return claims is not None and granted(claims, "repository", name, action)

    # the token endpoint

    def _token(self, req) -> None:
        if self.tokens is None:
            raise RegistryError("UNSUPPORTED", "no token service configured", status=404)
        user = "anonymous"
        if self.htpasswd is not None:
            user = self._basic_user(req)
            if user is None:
                raise RegistryError("UNAUTHORIZED", "authentication required", headers={
                    "WWW-Authenticate": f'Basic realm="{self.service}"'})
        access = []
        for scope in " ".join(req.query.get("scope", [])).split():
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            kind, name, actions = parsed
            allowed = {"pull"} if self.read_only else {"pull", "push", "delete", "*"}
            actions = [a for a in actions if a in allowed]
            if actions:
                access.append({"type": kind, "name": name, "actions": actions})
        token, ttl = self.tokens.issue(user, access)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        req.respond_json(200, {"token": token, "access_token": token, "expires_in": ttl,
                               "issued_at": issued})
