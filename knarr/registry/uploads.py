"""Blob upload sessions: resumable, durable, invisible until verified.

A session is `registry/uploads/<uuid>.json` (its repository and start time)
plus a content-store ingest named `registry-upload-<uuid>` that holds the
bytes so far. The server keeps recently used ingests open (their running
sha256 stays in memory); after a restart the ingest is reopened and re-hashed
from disk, so a session survives the server. Only `finish` moves bytes into
`blobs/`, and only after the size and digest check of the content store's
commit: a half-finished upload is never a blob.
"""

import collections
import hashlib
import json
import os
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Iterable

from knarr.errors import Conflict, InvalidArgument
from knarr.registry.errors import RegistryError
from knarr.registry.storage import Storage, _write_atomic

__all__ = ["Uploads", "Session"]

_UUID = re.compile(r"^[a-f0-9]{32}$")
_KEEP_OPEN = 256
_CHUNK = 1 << 20
_WRITEBACK_EVERY = 32 << 20


class Session:
    """One upload session; `lock` serialises requests on it."""

    def __init__(self, uuid: str, repo: str, writer) -> None:
        self.uuid = uuid
        self.repo = repo
        self.writer = writer
        self.lock = threading.Lock()
        self._unsynced = 0
        self._writeback: threading.Thread | None = None

    @property
    def offset(self) -> int:
        """Bytes received so far."""
        return self.writer.offset

    def append(self, chunks: Iterable[bytes]) -> int:
        """Write a stream of chunks at the end; return how many bytes."""
        total = 0
        for chunk in chunks:
            written = self.writer.write(chunk)
            total += written
            self._unsynced += written
            if self._unsynced >= _WRITEBACK_EVERY:
                self._start_writeback()
        self.writer._file.flush()
        return total

    def _start_writeback(self) -> None:
        """fdatasync what has arrived so far in a helper thread, while more arrives.

        The commit's fsync then waits for the last few megabytes only, instead of
        the whole blob sitting dirty in the page cache until the end.
        """
        if self._writeback is not None and self._writeback.is_alive():
            return
        self._unsynced = 0
        path = os.path.join(self.writer.path, "data")
        self._writeback = threading.Thread(target=_datasync, args=(path,), daemon=True)
        self._writeback.start()


class Uploads:
    """Every upload session of a registry root."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._open: collections.OrderedDict[str, Session] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _meta(self, uuid: str) -> str:
        return os.path.join(self.storage.uploads, f"{uuid}.json")

    @staticmethod
    def _ref(uuid: str) -> str:
        return f"registry-upload-{uuid}"

    def start(self, repo: str) -> Session:
        """A new, empty session for the repository."""
        uuid = uuidlib.uuid4().hex
        _write_atomic(self._meta(uuid), json.dumps({"repo": repo, "started": time.time()}).encode())
        return self.get(repo, uuid)

    def get(self, repo: str, uuid: str) -> Session:
        """The open session, reopened from disk if need be; BLOB_UPLOAD_UNKNOWN if none."""
        if not _UUID.match(uuid):
            raise _unknown(uuid)
        with self._lock:
            session = self._open.get(uuid)
            if session is not None:
                self._open.move_to_end(uuid)
            else:
                session = self._reopen(uuid)
        if session.repo != repo:
            raise _unknown(uuid)
        return session

    def _reopen(self, uuid: str) -> Session:
        try:
            with open(self._meta(uuid)) as f:
                meta = json.load(f)
        except (FileNotFoundError, ValueError):
            raise _unknown(uuid) from None
        try:
            writer = self.storage.content.writer(self._ref(uuid))
        except Conflict:
            raise RegistryError("BLOB_UPLOAD_INVALID", "upload is busy", {"uuid": uuid}) from None
        session = Session(uuid, meta["repo"], writer)
        self._open[uuid] = session
        while len(self._open) > _KEEP_OPEN:
            _old, evicted = self._open.popitem(last=False)
            if evicted.lock.acquire(blocking=False):
                evicted.writer.close()
                evicted.lock.release()
        return session

    def _forget(self, session: Session) -> None:
        with self._lock:
            self._open.pop(session.uuid, None)
        try:
            os.unlink(self._meta(session.uuid))
        except FileNotFoundError:
            pass

    def cancel(self, session: Session) -> None:
        """Drop the session and its bytes."""
        self._forget(session)
        session.writer.abort()

    def finish(self, session: Session, digest: str) -> str:
        """Verify the bytes against `digest`, commit them, link them; return the sha256."""
        writer = session.writer
        writer._file.flush()
        try:
            if not digest.startswith("sha256:"):
                _check_other_digest(os.path.join(writer.path, "data"), digest)
            with self.storage.gc_lock():
                stored = writer.commit(expected=digest if digest.startswith("sha256:") else None)
                self.storage.link_blob(session.repo, digest, stored)
        except InvalidArgument as exc:
            self._forget(session)
            writer.abort()
            raise RegistryError("DIGEST_INVALID", "provided digest did not match uploaded content",
                                {"digest": digest, "reason": str(exc)}) from None
        self._forget(session)
        return stored

    def stale(self, older_than: float) -> list[str]:
        """Drop sessions older than `older_than` seconds that no live server holds."""
        dropped = []
        now = time.time()
        for entry in os.listdir(self.storage.uploads):
            uuid = entry.removesuffix(".json")
            if not _UUID.match(uuid):
                continue
            path = self._meta(uuid)
            try:
                if now - os.path.getmtime(path) < older_than:
                    continue
            except FileNotFoundError:
                continue
            if self.storage.content.abort_ingest(self._ref(uuid)):
                os.unlink(path)
                dropped.append(uuid)
        return dropped


def _datasync(path: str) -> None:
    """fdatasync a file through a descriptor of its own; gone already is fine."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.fdatasync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_other_digest(path: str, digest: str) -> None:
    """Hash the ingest in a non-sha256 algorithm (sha512) and compare."""
    algorithm, expected = digest.split(":", 1)
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    if h.hexdigest() != expected:
        raise InvalidArgument(f"digest mismatch: content is {algorithm}:{h.hexdigest()}")


def _unknown(uuid: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", {"uuid": uuid})
