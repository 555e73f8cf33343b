"""Image references: parse, normalise and print them.

A reference is `[domain[:port]/]path[:tag][@digest]`. Normalising fills in
what Docker leaves implicit: the domain `docker.io`, the `library/`
namespace of single-name Docker Hub images, and the tag `latest` when no
digest pins the image. So `busybox` is `docker.io/library/busybox:latest`,
and `familiar()` turns it back into `busybox:latest` for display.

The first path component is a domain when it holds a `.` or a `:`, is
`localhost`, or has an upper-case letter (repository paths are lower-case,
so it could not be a path).
"""

import dataclasses
import re

from knarr.errors import InvalidArgument
from knarr.oci import digest as digests

__all__ = ["Reference", "parse", "DEFAULT_DOMAIN", "DEFAULT_TAG", "looks_like_id"]

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
_LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")
_OFFICIAL_NAMESPACE = "library"
_MAX_NAME = 255

_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


@dataclasses.dataclass(frozen=True)
class Reference:
    """A normalised reference; `tag` and `digest` may both be set."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository: `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as Docker prints it: `busybox`, `localhost:5000/a/b`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        prefix = f"{_OFFICIAL_NAMESPACE}/"
        if self.path.startswith(prefix) and "/" not in self.path[len(prefix):]:
            return self.path[len(prefix):]
        return self.path

    def __str__(self) -> str:
        return self.name + self._suffix()

    def familiar(self) -> str:
        """The whole reference as Docker prints it: `busybox:latest`."""
        return self.familiar_name + self._suffix()

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag else ""
        return out + (f"@{self.digest}" if self.digest else "")

    def with_tag(self, tag: str) -> "Reference":
        """The same repository with another tag and no digest."""
        if not _TAG.match(tag):
            raise InvalidArgument(f"reference {self}: invalid tag {tag!r}", reference=str(self))
        return dataclasses.replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> "Reference":
        """The same repository pinned to a digest, without its tag."""
        digests.validate(digest, f"reference {self}: digest")
        return dataclasses.replace(self, tag=None, digest=digest)


def looks_like_id(text: str) -> bool:
    """True for a full image id as Docker prints it (`sha256:<hex>` or bare hex)."""
    return bool(_HEX64.match(text.removeprefix("sha256:")))


def parse(text: object, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference; raise InvalidArgument naming it when malformed."""
    if not isinstance(text, str) or not text:
        raise InvalidArgument(f"reference {text!r}: empty or not a string", reference=text)
    rest, digest = _split_digest(text)
    rest, tag = _split_tag(text, rest)
    domain, path = _split_domain(text, rest)
    _check_path(text, path)
    if len(domain) + 1 + len(path) > _MAX_NAME:
        _fail(text, f"repository name longer than {_MAX_NAME} characters")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def _fail(text: str, problem: str):
    raise InvalidArgument(f"reference {text!r}: {problem}", reference=text)


def _split_digest(text: str) -> tuple[str, str | None]:
    if "@" not in text:
        return text, None
    rest, digest = text.split("@", 1)
    try:
        digests.validate(digest)
    except InvalidArgument as exc:
        _fail(text, f"invalid digest ({exc})")
    return rest, digest


def _split_tag(text: str, rest: str) -> tuple[str, str | None]:
    colon = rest.rfind(":")
    if colon < 0 or "/" in rest[colon:]:
        return rest, None
    tag = rest[colon + 1:]
    if not _TAG.match(tag):
        _fail(text, f"invalid tag {tag!r}")
    return rest[:colon], tag


def _split_domain(text: str, rest: str) -> tuple[str, str]:
    first, slash, remainder = rest.partition("/")
    is_domain = slash and (any(c in first for c in ".:") or first == "localhost"
                           or first != first.lower())
    if not is_domain:
        if _HEX64.match(rest):
            _fail(text, "a 64-hex-digit repository name would be mistaken for an image id")
        domain, path = DEFAULT_DOMAIN, rest
    else:
        if not _DOMAIN.match(first):
            _fail(text, f"invalid domain {first!r}")
        domain, path = first, remainder
    if domain in _LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{_OFFICIAL_NAMESPACE}/{path}"
    return domain, path


def _check_path(text: str, path: str) -> None:
    if not path:
        _fail(text, "empty repository name")
    for component in path.split("/"):
        if not _PATH_COMPONENT.match(component):
            hint = " (repository names are lower-case)" if component.lower() != component else ""
            _fail(text, f"invalid repository path component {component!r}{hint}")
