"""What a repository name, a tag and a digest may look like on the wire.

The registry accepts sha256 and sha512 digests (the spec's registered
algorithms). Blobs are stored in knarr's content store under their sha256;
a sha512 name is an alias to it (see storage.py).
"""

import hashlib
import re

from knarr.registry.errors import RegistryError

__all__ = ["check_name", "check_tag", "check_digest", "is_digest", "new_hash",
           "ALGORITHMS"]

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
ALGORITHMS = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+$")
MAX_NAME = 255


def check_name(name: str) -> str:
    """The repository name, or NAME_INVALID."""
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise RegistryError("NAME_INVALID", "invalid repository name", {"name": name})
    return name


def check_tag(tag: str) -> str:
    """The tag, or MANIFEST_INVALID naming it (the spec has no TAG_INVALID)."""
    if not _TAG.match(tag):
        raise RegistryError("MANIFEST_INVALID", "invalid tag", {"tag": tag})
    return tag


def is_digest(reference: str) -> bool:
    """True if a manifest reference is a digest rather than a tag."""
    return ":" in reference


def check_digest(digest: str) -> str:
    """The digest if well formed and of a supported algorithm, else DIGEST_INVALID."""
    match = _DIGEST.match(digest or "")
    if not match:
        raise RegistryError("DIGEST_INVALID", "invalid digest", {"digest": digest})
    algorithm, encoded = match.groups()
    if algorithm not in ALGORITHMS:
        raise RegistryError("DIGEST_INVALID", f"unsupported digest algorithm {algorithm}",
                            {"digest": digest})
    if len(encoded) != ALGORITHMS[algorithm] or not _HEX.match(encoded):
        raise RegistryError("DIGEST_INVALID", "invalid digest", {"digest": digest})
    return digest


def new_hash(digest: str):
    """A hashlib object of the digest's algorithm."""
    return hashlib.new(digest.split(":", 1)[0])


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The digest of bytes in memory, in the given algorithm."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
