"""Access: htpasswd Basic auth and knarr's own signed Bearer tokens.

htpasswd lines are `user:hash`. Hashes verified: bcrypt (`$2y$`, `$2b$`,
`$2a$`, what `htpasswd -B` and distribution use), SHA-crypt (`$5$`, `$6$`)
and MD5-crypt (`$1$`) through the C library's crypt(3) (libxcrypt on Debian
12), Apache's `$apr1$` MD5 and `{SHA}`, computed here. Plain-text entries are
refused.

Tokens are JWTs signed with HMAC-SHA256 (`alg: HS256`) under a secret key
file that only the registry reads: the registry is both the token issuer and
the only party that checks them, so a shared secret is enough. The claims
carry `access`: a list of `{type: repository, name, actions}` granted for
the scopes the client asked for (`repository:<name>:pull,push,delete`,
`registry:catalog:*`), and `exp`.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
import warnings

__all__ = ["Htpasswd", "TokenIssuer", "parse_scope"]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt as _crypt
    except ImportError:  # Python 3.13 removed it; bcrypt entries then fail closed
        _crypt = None

_APR_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Htpasswd:
    """Users and password hashes from an htpasswd file, with a cache of good logins."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.users: dict[str, str] = {}
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and ":" in line:
                    user, hashed = line.split(":", 1)
                    self.users[user] = hashed
        self._good: set[tuple[str, bytes]] = set()
        self._lock = threading.Lock()

    def check(self, user: str, password: str) -> bool:
        """True if the password matches the user's hash."""
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = (user, hashlib.sha256(f"{hashed}\0{password}".encode()).digest())
        with self._lock:
            if key in self._good:
                return True
        ok = verify_hash(password, hashed)
        if ok:
            with self._lock:
                self._good.add(key)
        return ok


def verify_hash(password: str, hashed: str) -> bool:
    """Check a password against one htpasswd hash."""
    if hashed.startswith("$apr1$"):
        return hmac.compare_digest(apr1(password, hashed.split("$")[2]), hashed)
    if hashed.startswith("{SHA}"):
        digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        return hmac.compare_digest("{SHA}" + digest, hashed)
    if hashed.startswith(("$2y$", "$2b$", "$2a$", "$5$", "$6$", "$1$")) and _crypt:
        result = _crypt.crypt(password, hashed)
        return bool(result) and hmac.compare_digest(result, hashed)
    return False


def apr1(password: str, salt: str) -> str:
    """Apache's MD5 crypt variant, as `htpasswd -m` writes it."""
    pw, salt_b = password.encode(), salt[:8].encode()
    final = hashlib.md5(pw + salt_b + pw).digest()
    ctx = pw + b"$apr1$" + salt_b
    for i in range(len(pw), 0, -16):
        ctx += final[:min(16, i)]
    i = len(pw)
    while i:
        ctx += b"\0" if i & 1 else pw[:1]
        i >>= 1
    final = hashlib.md5(ctx).digest()
    for i in range(1000):
        step = (pw if i & 1 else final) + (salt_b if i % 3 else b"") + (pw if i % 7 else b"")
        step += final if i & 1 else pw
        final = hashlib.md5(step).digest()
    out = ""
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        out += _b64_24(final[a], final[b], final[c], 4)
    out += _b64_24(0, 0, final[11], 2)
    return f"$apr1${salt[:8]}${out}"


def _b64_24(b2: int, b1: int, b0: int, n: int) -> str:
    value = (b2 << 16) | (b1 << 8) | b0
    chars = []
    for _ in range(n):
        chars.append(_APR_ALPHABET[value & 0x3F])
        value >>= 6
    return "".join(chars)


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """`repository:name:pull,push` -> (type, name, actions); None if malformed."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
    return kind, name, [a for a in actions.split(",") if a]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues and checks HS256 tokens under one secret key."""

    def __init__(self, key: bytes, service: str = "knarr-registry", ttl: int = 300) -> None:
        self.key = key
        self.service = service
        self.ttl = ttl

    def issue(self, subject: str, access: list[dict]) -> tuple[str, int]:
        """A signed token granting `access`; return it and its lifetime in seconds."""
        now = int(time.time())
        header = {"alg": "HS256", "typ": "JWT"}
        claims = {"iss": self.service, "sub": subject, "aud": self.service,
                  "iat": now, "nbf": now - 5, "exp": now + self.ttl, "access": access}
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(self.key, signing.encode(), hashlib.sha256).digest()
        return f"{signing}.{_b64(signature)}", self.ttl

    def check(self, token: str) -> dict | None:
        """The claims of a valid, unexpired token of ours; None otherwise."""
        try:
            signing, signature = token.rsplit(".", 1)
            expected = hmac.new(self.key, signing.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(signature)):
                return None
            claims = json.loads(_unb64(signing.split(".")[1]))
        except (ValueError, IndexError):
            return None
        if claims.get("aud") != self.service or claims.get("exp", 0) < time.time():
            return None
        return claims


def granted(claims: dict, kind: str, name: str, action: str) -> bool:
    """True if the token's access list allows `action` on the resource."""
    for entry in claims.get("access", []):
        if entry.get("type") == kind and entry.get("name") == name:
            actions = entry.get("actions", [])
            if action in actions or "*" in actions:
                return True
    return False
