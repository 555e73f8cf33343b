"""Ingest: a resumable writer that turns a byte stream into a verified blob.

Partial data lives under `content/ingest/<ref>/data`, guarded by an flock on
`content/ingest/<ref>/lock` while a writer holds it. A writer that stops
without committing (a closed connection, a killed process) leaves its data:
the next writer with the same ref resumes at `offset`, after re-hashing what
is there (hashlib's state cannot be saved to disk). Commit is fsync, check
size and digest, chmod read-only, rename into `blobs/`, fsync the directory;
on a mismatch the ingest is dropped and nothing reaches `blobs/`.
"""

import fcntl
import hashlib
import os
import re
import shutil

from knarr.errors import Conflict, InvalidArgument
from knarr.oci import digest as digests

__all__ = ["Writer", "ingest_dir_name"]

_SAFE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_CHUNK = 1 << 20


def ingest_dir_name(ref: str) -> str:
    """The directory name of an ingest: the ref itself when it is a safe file name."""
    if _SAFE_REF.match(ref):
        return ref
    return "h-" + hashlib.sha256(ref.encode()).hexdigest()


class Writer:
    """An open ingest; use as a context manager, then `commit`."""

    def __init__(self, store, ref: str, expected: str | None = None) -> None:
        self.store = store
        self.ref = ref
        self.expected = digests.validate(expected) if expected else None
        self.path = os.path.join(store.ingest_root, ingest_dir_name(ref))
        os.makedirs(self.path, exist_ok=True)
        self._lock = _take_lock(os.path.join(self.path, "lock"), ref)
        _write_small(os.path.join(self.path, "ref"), ref.encode())
        self._file = open(os.path.join(self.path, "data"), "ab+")  # noqa: SIM115
        self._hash = hashlib.sha256()
        self._rehash()

    def _rehash(self) -> None:
        self._file.seek(0)
        while chunk := self._file.read(_CHUNK):
            self._hash.update(chunk)
        self.offset = self._file.tell()

    def write(self, data: bytes) -> int:
        """Append bytes; return how many."""
        self._file.write(data)
        self._hash.update(data)
        self.offset += len(data)
        return len(data)

    def truncate(self) -> None:
        """Drop the partial data and start again from offset 0."""
        self._file.truncate(0)
        self._file.seek(0)
        self._hash = hashlib.sha256()
        self.offset = 0

    def digest(self) -> str:
        """The digest of the bytes written so far."""
        return f"sha256:{self._hash.hexdigest()}"

    def commit(self, size: int | None = None, expected: str | None = None) -> str:
        """Verify size and digest, then move the data into blobs; return the digest."""
        expected = digests.validate(expected) if expected else self.expected
        self._file.flush()
        os.fsync(self._file.fileno())
        actual = self.digest()
        try:
            self._check(size, expected, actual)
        except InvalidArgument:
            self.abort()
            raise
        target = self.store.blob_path(actual)
        if os.path.exists(target):
            self.abort()
            return actual
        os.fchmod(self._file.fileno(), 0o444)
        os.rename(os.path.join(self.path, "data"), target)
        _fsync_dir(os.path.dirname(target))
        self.abort()
        return actual

    def _check(self, size: int | None, expected: str | None, actual: str) -> None:
        if size is not None and size != self.offset:
            raise InvalidArgument(
                f"commit {self.ref}: size mismatch: expected {size} bytes, got {self.offset}",
                ref=self.ref, expected=size, actual=self.offset)
        if expected is not None and expected != actual:
            raise InvalidArgument(
                f"commit {self.ref}: digest mismatch: expected {expected}, got {actual}",
                ref=self.ref, digest=expected, actual=actual)

    def close(self) -> None:
        """Stop writing but keep the partial data for a later writer to resume."""
        if not self._file.closed:
            self._file.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def abort(self) -> None:
        """Stop writing and drop the partial data."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _take_lock(path: str, ref: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Conflict(f"ingest {ref}: another writer holds it", ref=ref) from None
    return fd


def is_locked(lock_path: str) -> bool:
    """True if a live writer holds the flock on an ingest's lock file."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def drop_if_idle(path: str) -> bool:
    """Remove an ingest directory unless a live writer holds it; True if removed."""
    try:
        fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        shutil.rmtree(path, ignore_errors=True)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    try:
        shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(fd)
    return True


def _write_small(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
