"""Blob and upload endpoints: `/v2/<name>/blobs/...`.

Bytes move through upload sessions (uploads.py) in chunks and out of the
content store with sendfile; nothing holds a whole blob in memory.
"""

import os
import re

from knarr.registry.errors import RegistryError
from knarr.registry.names import check_digest, check_name

__all__ = ["get_blob", "delete_blob", "start_upload", "patch_upload", "put_upload",
           "upload_status", "cancel_upload"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/\d+|/\*)?$")


def _blob_unknown(digest: str) -> RegistryError:
    return RegistryError("BLOB_UNKNOWN", "blob unknown to registry", {"digest": digest})


def _stored(app, name: str, digest: str) -> str:
    stored = app.storage.blob_link(name, digest)
    if stored is None:
        record = app.storage.manifest(name, digest)
        stored = record["blob"] if record else None
    if stored is None:
        raise _blob_unknown(digest)
    return stored


def get_blob(app, req, name: str, digest: str) -> None:
    """GET/HEAD a blob, whole or one byte range (206)."""
    check_name(name)
    check_digest(digest)
    stored = _stored(app, name, digest)
    try:
        f = open(app.storage.content.blob_path(stored), "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise _blob_unknown(digest) from None
    with f:
        size = os.fstat(f.fileno()).st_size
        headers = {"Docker-Content-Digest": digest, "Accept-Ranges": "bytes",
                   "Etag": f'"{digest}"', "Cache-Control": "max-age=31536000"}
        span = _parse_range(req.headers.get("Range"), size)
        if span is None:
            req.send_file(200, headers, f, 0, size, "application/octet-stream")
            return
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        req.send_file(206, headers, f, start, end - start + 1, "application/octet-stream")


def _parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) of a single `bytes=` range; None for the whole blob; 416 if unsatisfiable."""
    if not value:
        return None
    match = _RANGE.match(value.strip().split(",")[0].strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end or (last and first and int(last) < start):
        raise RegistryError("SIZE_INVALID", "requested range not satisfiable",
                            {"range": value, "size": size}, status=416,
                            headers={"Content-Range": f"bytes */{size}"})
    return start, end


def delete_blob(app, req, name: str, digest: str) -> None:
    """Unlink a blob from the repository; gc frees its bytes once no repository links it."""
    check_name(name)
    check_digest(digest)
    if not app.storage.unlink_blob(name, digest):
        raise _blob_unknown(digest)
    req.respond(202, {"Docker-Content-Digest": digest})


def _created(req, name: str, digest: str) -> None:
    req.respond(201, {"Location": f"/v2/{name}/blobs/{digest}",
                      "Docker-Content-Digest": digest})


def _progress(req, name: str, session, status: int) -> None:
    req.respond(status, {"Location": f"/v2/{name}/blobs/uploads/{session.uuid}",
                         "Range": f"0-{max(session.offset - 1, 0)}",
                         "Docker-Upload-UUID": session.uuid})


def start_upload(app, req, name: str) -> None:
    """POST: mount, monolithic upload (?digest=), or a new session (202)."""
    check_name(name)
    mount = req.arg("mount")
    if mount is not None and _try_mount(app, req, name, check_digest(mount)):
        _created(req, name, mount)
        return
    digest = req.arg("digest")
    if digest is not None:
        check_digest(digest)
    session = app.uploads.start(name)
    if digest is not None:
        with session.lock:
            session.append(req.body_chunks())
            app.uploads.finish(session, digest)
        _created(req, name, digest)
        return
    _progress(req, name, session, 202)


def _try_mount(app, req, name: str, digest: str) -> bool:
    """Link a blob from another repository (or, with `from` absent, from anywhere)."""
    source = req.arg("from")
    if source:
        check_name(source)
        if not app.may(req, source, "pull"):
            return False
        stored = app.storage.blob_link(source, digest)
    elif app.anonymous_mount:
        stored = app.storage.find_blob(digest)
    else:
        stored = None
    if stored is None:
        return False
    with app.storage.gc_lock():
        if not app.storage.content.exists(stored):
            return False
        app.storage.link_blob(name, digest, stored)
    return True


def _locked(app, name: str, uuid: str):
    session = app.uploads.get(name, uuid)
    # A client sends its next request as soon as it reads our answer, which can be
    # before this thread has let go of the session: wait a little rather than refuse.
    if not session.lock.acquire(timeout=30):
        raise RegistryError("BLOB_UPLOAD_INVALID", "upload busy with another request",
                            {"uuid": uuid})
    return session


def _check_range(req, name: str, session) -> None:
    """416 unless a Content-Range starts where the upload stands and matches the length."""
    value = req.headers.get("Content-Range")
    if not value:
        return
    match = _CONTENT_RANGE.match(value.strip())
    length = req.content_length()
    if (not match or int(match.group(1)) != session.offset
            or int(match.group(2)) < int(match.group(1))
            or (length is not None and length != int(match.group(2)) - int(match.group(1)) + 1)):
        raise RegistryError(
            "BLOB_UPLOAD_INVALID", "content range does not follow the uploaded data",
            {"range": value, "offset": session.offset}, status=416,
            headers={"Location": f"/v2/{name}/blobs/uploads/{session.uuid}",
                     "Range": f"0-{max(session.offset - 1, 0)}",
                     "Docker-Upload-UUID": session.uuid})


def patch_upload(app, req, name: str, uuid: str) -> None:
    """PATCH: append a chunk (Content-Range) or a stream to the session."""
    check_name(name)
    session = _locked(app, name, uuid)
    try:
        _check_range(req, name, session)
        session.append(req.body_chunks())
    finally:
        session.lock.release()
    _progress(req, name, session, 202)


def put_upload(app, req, name: str, uuid: str) -> None:
    """PUT ?digest=: append the last chunk if any, verify, link (201)."""
    check_name(name)
    digest = req.arg("digest")
    if not digest:
        raise RegistryError("DIGEST_INVALID", "digest parameter missing")
    check_digest(digest)
    session = _locked(app, name, uuid)
    try:
        if req.has_body():
            _check_range(req, name, session)
            session.append(req.body_chunks())
        app.uploads.finish(session, digest)
    finally:
        session.lock.release()
    _created(req, name, digest)


def upload_status(app, req, name: str, uuid: str) -> None:
    """GET: where the upload stands (204 with Range)."""
    check_name(name)
    _progress(req, name, app.uploads.get(name, uuid), 204)


def cancel_upload(app, req, name: str, uuid: str) -> None:
    """DELETE: drop the session and its bytes (204)."""
    check_name(name)
    session = _locked(app, name, uuid)
    try:
        app.uploads.cancel(session)
    finally:
        session.lock.release()
    req.respond(204)
