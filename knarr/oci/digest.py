"""Content digests (`sha256:<64 hex>`) and the ids derived from them.

A digest names bytes: `algorithm:encoded`. knarr stores and verifies sha256
only; a well-formed digest of another registered algorithm is refused by
name, so that a caller learns why and not just that it failed.
"""

import hashlib
import re

from knarr.errors import InvalidArgument

__all__ = [
    "SHA256",
    "validate",
    "split",
    "hex_of",
    "sha256_of",
    "from_hex",
    "chain_id",
    "chain_ids",
]

SHA256 = "sha256"

_FORM = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_SHA256_HEX = re.compile(r"^[a-f0-9]{64}$")


def split(digest: object, what: str = "digest") -> tuple[str, str]:
    """Return (algorithm, hex) of a sha256 digest, or raise InvalidArgument naming it."""
    if not isinstance(digest, str):
        raise InvalidArgument(f"{what}: expected a string, got {type(digest).__name__}",
                              digest=digest)
    match = _FORM.match(digest)
    if not match:
        raise InvalidArgument(f"{what} {digest!r}: not of the form algorithm:hex", digest=digest)
    algorithm, encoded = match.groups()
    if algorithm != SHA256:
        raise InvalidArgument(f"{what} {digest!r}: unsupported algorithm {algorithm!r}",
                              digest=digest)
    if not _SHA256_HEX.match(encoded):
        raise InvalidArgument(f"{what} {digest!r}: sha256 needs 64 lower-case hex digits",
                              digest=digest)
    return algorithm, encoded


def validate(digest: object, what: str = "digest") -> str:
    """Return the digest unchanged if it is a well-formed sha256 digest."""
    split(digest, what)
    assert isinstance(digest, str)
    return digest


def hex_of(digest: str) -> str:
    """The hex part of a sha256 digest (what names a blob on disk)."""
    return split(digest)[1]


def from_hex(encoded: str) -> str:
    """`sha256:<hex>` from a bare hex string, validated."""
    return validate(f"{SHA256}:{encoded}")


def sha256_of(data: bytes) -> str:
    """The digest of some bytes held in memory."""
    return f"{SHA256}:{hashlib.sha256(data).hexdigest()}"


def chain_id(parent: str | None, diff_id: str) -> str:
    """The chain id of a layer stacked on `parent` (the chain id below it)."""
    validate(diff_id, "diff_id")
    if parent is None:
        return diff_id
    return sha256_of(f"{parent} {diff_id}".encode())


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Chain ids of every prefix of a layer stack, bottom first."""
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(chain_id(out[-1] if out else None, diff_id))
    return out
