"""The content store: blobs named by their sha256 digest.

Layout under the engine root:

    content/blobs/sha256/<hex>    verified, mode 0444 once committed
    content/ingest/<ref>/         partial writes (see writer.py)
    content/leases/<name>         digests a live process still needs

A blob only ever appears in `blobs/` by a rename after its size and digest
were checked, so a reader never sees a partial blob, whatever crashed when.

Garbage collection takes the set of digests that images (and whatever else
the caller knows about) still reference, and spares in addition every digest
named in a live lease. A lease is a file held under flock by the process
that made it; when that process dies the kernel drops the lock and the next
collection deletes the lease. So an ongoing load or pull protects the blobs
it has committed but not yet recorded in an image.
"""

import dataclasses
import fcntl
import hashlib
import os
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from knarr.content.writer import Writer, drop_if_idle, ingest_dir_name, is_locked
from knarr.errors import NotFound
from knarr.oci import digest as digests

__all__ = ["ContentStore", "Info", "Lease"]

_CHUNK = 1 << 20
_LEASE_SETUP_GRACE = 60.0


@dataclasses.dataclass(frozen=True)
class Info:
    """What the store knows of a blob."""

    digest: str
    size: int
    created: float


class ContentStore:
    """Blobs under `<root>/content`; every method is safe to call from several processes."""

    def __init__(self, root: str) -> None:
        self.root = os.path.join(root, "content")
        self.blob_root = os.path.join(self.root, "blobs", digests.SHA256)
        self.ingest_root = os.path.join(self.root, "ingest")
        self.lease_root = os.path.join(self.root, "leases")
        for path in (self.blob_root, self.ingest_root, self.lease_root):
            os.makedirs(path, exist_ok=True)

    def blob_path(self, digest: str) -> str:
        """Where the blob of a digest lives (whether or not it exists)."""
        return os.path.join(self.blob_root, digests.hex_of(digest))

    def writer(self, ref: str, expected: str | None = None) -> Writer:
        """Open (or resume) the ingest named `ref`; Conflict if another writer holds it."""
        return Writer(self, ref, expected)

    def put(self, data: bytes, expected: str | None = None, ref: str | None = None) -> str:
        """Store bytes held in memory; return their digest."""
        ref = ref or f"put-{hashlib.sha256(data).hexdigest()}"
        with self.writer(ref, expected) as w:
            w.truncate()
            w.write(data)
            return w.commit(size=len(data))

    def exists(self, digest: str) -> bool:
        """True if the blob is in the store."""
        return os.path.exists(self.blob_path(digest))

    def info(self, digest: str) -> Info:
        """Size and time of a blob; NotFound if absent."""
        try:
            st = os.stat(self.blob_path(digest))
        except FileNotFoundError:
            raise NotFound(f"blob {digest}: not found", digest=digest) from None
        return Info(digest, st.st_size, st.st_mtime)

    def open(self, digest: str) -> BinaryIO:
        """The blob opened for reading; NotFound if absent."""
        try:
            return open(self.blob_path(digest), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise NotFound(f"blob {digest}: not found", digest=digest) from None

    def read(self, digest: str) -> bytes:
        """A (small) blob's bytes, such as a manifest or config."""
        with self.open(digest) as f:
            return f.read()

    def delete(self, digest: str) -> None:
        """Remove a blob; NotFound if absent."""
        try:
            os.unlink(self.blob_path(digest))
        except FileNotFoundError:
            raise NotFound(f"blob {digest}: not found", digest=digest) from None

    def walk(self) -> Iterator[Info]:
        """Every blob in the store, in no particular order."""
        with os.scandir(self.blob_root) as entries:
            for entry in entries:
                if len(entry.name) == 64 and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    yield Info(f"sha256:{entry.name}", st.st_size, st.st_mtime)

    def verify(self, digest: str) -> str | None:
        """None if a blob's bytes match its name, else what is wrong with it."""
        path = self.blob_path(digest)
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if st.st_mode & 0o222:
            return f"writable (mode {stat.S_IMODE(st.st_mode):o})"
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        actual = f"sha256:{h.hexdigest()}"
        return None if actual == digest else f"digest mismatch: content is {actual}"

    def verify_all(self) -> list[str]:
        """Check every blob and every stray file; return one line per problem found."""
        problems = []
        for name in sorted(os.listdir(self.blob_root)):
            try:
                digest = digests.from_hex(name)
            except Exception:  # noqa: BLE001 - any odd name is a finding, not a crash
                problems.append(f"content/blobs/sha256/{name}: not a blob name")
                continue
            if reason := self.verify(digest):
                problems.append(f"blob {digest}: {reason}")
        return problems

    def ingests(self) -> list[tuple[str, int, bool]]:
        """Every ingest as (ref, bytes so far, held by a live writer)."""
        out = []
        for name in sorted(os.listdir(self.ingest_root)):
            path = os.path.join(self.ingest_root, name)
            ref = _read_text(os.path.join(path, "ref")) or name
            size = _size_or_zero(os.path.join(path, "data"))
            out.append((ref, size, is_locked(os.path.join(path, "lock"))))
        return out

    def abort_ingest(self, ref: str) -> bool:
        """Drop an ingest no live writer holds (a leftover of a killed process)."""
        return drop_if_idle(os.path.join(self.ingest_root, ingest_dir_name(ref)))

    def clean_ingests(self, prefix: str = "", older_than: float = 0.0) -> list[str]:
        """Drop stale ingests whose ref starts with `prefix`; return their refs."""
        dropped = []
        for ref, _size, live in self.ingests():
            path = os.path.join(self.ingest_root, ingest_dir_name(ref))
            if live or not ref.startswith(prefix) or _age(path) < older_than:
                continue
            if self.abort_ingest(ref):
                dropped.append(ref)
        return dropped

    def lease(self, name: str = "lease") -> "Lease":
        """A new lease; digests added to it survive `gc` while this process holds it."""
        return Lease(self, name)

    def leased(self) -> set[str]:
        """Digests named by live leases; leases of dead processes are removed."""
        out: set[str] = set()
        for name in os.listdir(self.lease_root):
            path = os.path.join(self.lease_root, name)
            if is_locked(path):
                out.update(line for line in _read_text(path).split() if line)
            elif not name.startswith(".") or _age(path) > _LEASE_SETUP_GRACE:
                _unlink_quietly(path)
        return out

    def gc(self, roots: Iterable[str]) -> list[Info]:
        """Delete every blob not in `roots` nor leased; return what was deleted."""
        keep = set(roots) | self.leased()
        removed = []
        for info in list(self.walk()):
            if info.digest not in keep:
                _unlink_quietly(self.blob_path(info.digest))
                removed.append(info)
        return removed

    def usage(self) -> int:
        """Bytes held by all blobs."""
        return sum(info.size for info in self.walk())


class Lease:
    """A set of digests protected from gc while the lease is open (a context manager)."""

    def __init__(self, store: ContentStore, name: str) -> None:
        base = f"{name}-{os.getpid()}-{secrets.token_hex(4)}"
        self.path = os.path.join(store.lease_root, base)
        # Lock under a hidden name first: gc deletes unlocked leases, and must
        # not catch this one between its creation and its lock.
        setup = os.path.join(store.lease_root, f".{base}")
        self._fd = os.open(setup, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.rename(setup, self.path)
        self.digests: set[str] = set()

    def add(self, digest: str) -> None:
        """Protect one more digest."""
        if digest not in self.digests:
            os.write(self._fd, f"{digests.validate(digest)}\n".encode())
            self.digests.add(digest)

    def release(self) -> None:
        """End the lease; its digests are again subject to gc."""
        if self._fd >= 0:
            _unlink_quietly(self.path)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _size_or_zero(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _age(path: str) -> float:
    try:
        return time.time() - os.path.getmtime(path)
    except FileNotFoundError:
        return 0.0


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
