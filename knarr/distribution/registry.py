"""The distribution-spec operations on a repository: manifests, blobs, uploads, tags.

Every document fetched is checked against the digest it was asked by (or the
`Docker-Content-Digest` the registry sent); a blob is read as a stream that
resumes with `Range` where a connection broke, so a cut costs only a retry.
"""

import hashlib
import logging
import time
import urllib.parse

from knarr.distribution.session import Session
from knarr.errors import InvalidArgument, NotFound, Unavailable
from knarr.oci import digest as digests
from knarr.oci import image_spec

__all__ = ["MANIFEST_ACCEPT", "get_manifest", "BlobStream", "blob_exists", "tags",
           "put_manifest", "MAX_MANIFEST"]

log = logging.getLogger("knarr.distribution")
MAX_MANIFEST = 4 << 20
MANIFEST_ACCEPT = ", ".join([image_spec.OCI_INDEX, image_spec.DOCKER_MANIFEST_LIST,
                             image_spec.OCI_MANIFEST, image_spec.DOCKER_MANIFEST])
_RESUMES = 5


def _repo(session: Session) -> str:
    return f"/v2/{session.repository}"


def get_manifest(session: Session, ref: str) -> tuple[bytes, str, str]:
    """(bytes, media type, digest) of the manifest or index a tag or digest names."""
    what = f"manifest for {session.domain}/{session.repository}"
    what += f"@{ref}" if ref.startswith("sha256:") else f":{ref}"
    try:
        resp = session.request("GET", f"{_repo(session)}/manifests/{ref}",
                               {"Accept": MANIFEST_ACCEPT}, what=what)
    except NotFound as exc:
        raise NotFound(exc.message.replace(what, f"{what} not found", 1),
                       reference=ref) from None
    body = resp.body
    if len(body) > MAX_MANIFEST:
        raise InvalidArgument(f"{what}: larger than {MAX_MANIFEST} bytes", reference=ref)
    digest = digests.sha256_of(body)
    expected = ref if ref.startswith("sha256:") else resp.headers.get("docker-content-digest")
    if expected and expected.startswith("sha256:") and expected != digest:
        raise InvalidArgument(f"{what}: digest mismatch: expected {expected}, got {digest}",
                              digest=expected, actual=digest)
    media_type = resp.headers.get("content-type", "").split(";")[0].strip()
    if not (image_spec.is_manifest(media_type) or image_spec.is_index(media_type)):
        media_type = _sniff_media_type(body, what)
    return body, media_type, digest


def _sniff_media_type(body: bytes, what: str) -> str:
    from knarr import fastjson

    try:
        doc = fastjson.loads(body)
    except ValueError as exc:
        raise InvalidArgument(f"{what}: not JSON: {exc}") from exc
    if isinstance(doc, dict) and doc.get("mediaType"):
        return doc["mediaType"]
    if isinstance(doc, dict) and "manifests" in doc:
        return image_spec.OCI_INDEX
    if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
        raise InvalidArgument(f"{what}: schema 1 manifests are not supported")
    return image_spec.OCI_MANIFEST


def get_blob(session: Session, desc: dict, what: str, limit: int = MAX_MANIFEST) -> bytes:
    """A small blob (a config), checked against its descriptor."""
    if desc.get("size", 0) > limit:
        raise InvalidArgument(f"{what}: {desc['size']} bytes is too large", digest=desc["digest"])
    resp = session.request("GET", f"{_repo(session)}/blobs/{desc['digest']}", what=what)
    actual = digests.sha256_of(resp.body)
    if actual != desc["digest"]:
        raise InvalidArgument(f"{what} {desc['digest']}: digest mismatch: got {actual}",
                              digest=desc["digest"], actual=actual)
    return resp.body


class BlobStream:
    """A blob read front to back, resuming with Range after a broken connection.

    At most `size` bytes are read (a registry sending more is cut off; one sending
    fewer fails after the resumes). The digest is checked by whoever stores the bytes.
    """

    def __init__(self, session: Session, desc: dict, label: str) -> None:
        self.session = session
        self.digest = desc["digest"]
        self.size = int(desc.get("size", 0))
        self.label = label
        self.offset = 0
        self.resumes = 0
        self.resp = None

    def _open(self) -> None:
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        resp = self.session.request("GET", f"{_repo(self.session)}/blobs/{self.digest}",
                                    headers, stream=True, ok=(200, 206),
                                    what=f"{self.label}: fetch blob")
        if self.offset and resp.status == 200:
            _skip(resp, self.offset)  # the server ignored Range: drop what we have
        self.resp = resp

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes; b"" at the end of the blob."""
        left = self.size - self.offset
        if left <= 0:
            return b""
        n = left if n < 0 else min(n, left)
        while True:
            try:
                if self.resp is None:
                    self._open()
                data = self.resp.read(n)
                if not data:
                    raise ConnectionError(f"connection closed at {self.offset} of "
                                          f"{self.size} bytes")
            except (OSError, Unavailable, ValueError) as exc:
                self._drop()
                self.resumes += 1
                if self.resumes > _RESUMES:
                    raise Unavailable(f"{self.label}: download failed: {exc}",
                                      digest=self.digest) from exc
                log.info("%s: %s; resuming at byte %d", self.label, exc, self.offset)
                time.sleep(min(0.1 * self.resumes, 1.0))
                continue
            self.offset += len(data)
            return data

    def readable(self) -> bool:
        return True

    def _drop(self) -> None:
        if self.resp is not None:
            self.resp.close()
            self.resp = None

    def close(self) -> None:
        """Drop the connection."""
        self._drop()


def _skip(resp, count: int) -> None:
    while count > 0:
        data = resp.read(min(count, 1 << 20))
        if not data:
            raise ConnectionError("connection closed while skipping to the resume point")
        count -= len(data)


def blob_exists(session: Session, digest: str) -> bool:
    """Whether the repository has the blob (HEAD)."""
    resp = session.request("HEAD", f"{_repo(session)}/blobs/{digest}", ok=(200, 404),
                           what=f"check blob {digest}")
    return resp.status == 200


def tags(session: Session) -> list[str]:
    """Every tag of the repository."""
    resp = session.request("GET", f"{_repo(session)}/tags/list",
                           what=f"list tags of {session.domain}/{session.repository}")
    return list(resp.json().get("tags") or [])


def put_manifest(session: Session, ref: str, body: bytes, media_type: str) -> str:
    """Upload a manifest under a tag (or its digest); check the digest the registry saw."""
    digest = digests.sha256_of(body)
    resp = session.request("PUT", f"{_repo(session)}/manifests/{ref}",
                           {"Content-Type": media_type}, body, ok=(200, 201, 202),
                           what=f"push manifest {session.repository}:{ref}")
    said = resp.headers.get("docker-content-digest")
    if said and said != digest:
        raise InvalidArgument(f"push manifest {session.repository}:{ref}: the registry says "
                              f"digest {said}, expected {digest}", digest=digest, actual=said)
    return digest


def upload_location(session: Session, resp) -> str:
    """The absolute URL of an upload session from a response's Location header."""
    location = resp.headers.get("location")
    if not location:
        raise InvalidArgument(f"upload to {session.repository}: no Location in the answer")
    return urllib.parse.urljoin(resp.url, location)


def with_query(url: str, **params: str) -> str:
    """`url` with more query parameters."""
    sep = "&" if "?" in url else "?"
    return url + sep + urllib.parse.urlencode(params)


def sha256_file(path: str) -> str:
    """The digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"

