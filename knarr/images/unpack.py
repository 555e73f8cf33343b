"""Unpacking an image's layers into committed snapshots named by chain id.

Each layer is extracted into a fresh active snapshot keyed
`extract-<pid>-<random> <chain id>`, then committed under its chain id once
its diff_id checks out. On any failure the temporary snapshot is removed, so
a refused layer leaves nothing behind; if the process is killed instead, the
next unpack finds the leftover by its key (its pid no longer runs) and
removes it. A chain id already committed is not unpacked again.

A layer's files are made durable before its snapshot is committed: one
syncfs per layer (or per load, for layers extracted while an archive is
read) rather than an fsync per file, which on this kind of disk costs more
than the extraction. While a layer is extracted, `WritingBack` starts that
writing early (a syncfs every 0.2 s in a thread), so the disk writes while
the extraction runs and the syncfs before the commit has little left to do
(on the bench image: 0.1 s instead of 1.2-1.9 s of waiting).

`extract_layer` applies a layer to a snapshot with no parent, for a caller
that reads a layer before it knows where in a chain it goes (load reads an
archive's layers before its manifest); `commit_extracted` then stacks it.
"""

import errno
import os
import queue
import secrets
import threading
from collections.abc import Callable
from typing import BinaryIO

from knarr import sys as ksys
from knarr.content import ContentStore
from knarr.errors import AlreadyExists, InvalidArgument
from knarr.oci import digest as digests
from knarr.snapshots import Applied, HashingReader, Snapshotter, decompressed, detect

__all__ = ["unpack_layer", "unpack_image", "extract_layer", "commit_extracted", "make_durable",
           "WritingBack", "remove_stale_extractions", "is_stale_extraction", "DIFF_ID_LABEL",
           "DIFF_SIZE_LABEL", "Peekable"]

_EXTRACT = "extract-"
_CHUNK = 1 << 20
_AHEAD = 8
DIFF_ID_LABEL = "knarr.diff_id"
DIFF_SIZE_LABEL = "knarr.diff_size"


def unpack_layer(snaps: Snapshotter, stream: BinaryIO, parent: str | None,
                 diff_id: str | None = None, *, label: str = "layer",
                 max_bytes: int | None = None) -> tuple[str, Applied]:
    """Apply one layer (plain, gzip or zstd) on `parent`; return (chain id, what was applied).

    With `diff_id` given, a layer whose uncompressed digest differs is refused.
    """
    key = _temporary_key(label)
    snaps.prepare(key, parent)
    try:
        with WritingBack(snaps.root):
            applied = _apply(snaps, key, stream, label, max_bytes)
        make_durable(snaps.root)
        chain = _commit(snaps, key, parent, applied, diff_id, label)
    except BaseException:
        snaps.remove(key)
        raise
    return chain, applied


def _temporary_key(label: str) -> str:
    return f"{_EXTRACT}{os.getpid()}-{secrets.token_hex(4)} {label}"


def _commit(snaps: Snapshotter, key: str, parent: str | None, applied: Applied,
            diff_id: str | None, label: str, restack: bool = False,
            labels: dict | None = None) -> str:
    """Check the diff_id and commit `key` under its chain id; drop it if that exists."""
    if diff_id is not None and applied.diff_id != diff_id:
        raise InvalidArgument(f"{label}: diff_id mismatch: expected {diff_id}, "
                              f"got {applied.diff_id}", digest=diff_id, actual=applied.diff_id)
    chain = digests.chain_id(parent, applied.diff_id)
    try:
        snaps.commit(chain, key, {DIFF_ID_LABEL: applied.diff_id, DIFF_SIZE_LABEL: applied.size,
                                  **(labels or {})},
                     parent=parent if restack else None)
    except AlreadyExists:
        snaps.remove(key)  # another unpack committed the same chain meanwhile: use that one
    return chain


def make_durable(path: str) -> None:
    """Write every file made so far on the file system holding `path` to disk (before a
    commit makes a layer visible): one syncfs, not an fsync per file, nor a sync of
    every file system on the machine."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ksys.syncfs(fd)
    finally:
        os.close(fd)


class WritingBack:
    """While a long unpack runs, a thread writes out what it made so far (a syncfs of
    the store's file system every `interval` seconds), so that the disk works while
    the extraction does, and the `make_durable` before the commit finds little left
    to write. It makes nothing durable by itself: the commit still waits for
    `make_durable`."""

    def __init__(self, path: str, interval: float = 0.2) -> None:
        self.path = path
        self.interval = interval
        self.stop = threading.Event()
        self.fd = -1
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "WritingBack":
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.thread = threading.Thread(target=self._run, name="layer-write-back", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                ksys.syncfs(self.fd)
            except OSError:
                return  # the final make_durable reports what is wrong

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        os.close(self.fd)


def extract_layer(snaps: Snapshotter, stream: BinaryIO, *, label: str = "layer",
                  max_bytes: int | None = None,
                  plain_digest: Callable[[], str] | None = None,
                  recorder: object = None) -> tuple[str, Applied]:
    """Apply a layer to a new snapshot with no parent; return (its temporary key, what was
    applied). The stream is read in a thread, overlapping reading with extraction.

    `plain_digest`, when given, returns the digest of every byte read from `stream`
    so far (a tee into a content writer): an uncompressed layer then takes its
    diff_id from it once the stream is read to its end, instead of hashing the same
    bytes a second time. `recorder` (see `apply_layer`) records the layer's recipe.

    The caller makes it durable (`make_durable`) and then commits it with
    `commit_extracted`, or removes it; a killed process leaves it to
    `remove_stale_extractions`.
    """
    key = _temporary_key(label)
    snaps.prepare(key, None)
    try:
        return key, _apply(snaps, key, stream, label, max_bytes, read_ahead=True,
                           plain_digest=plain_digest, recorder=recorder)
    except BaseException:
        snaps.remove(key)
        raise


def commit_extracted(snaps: Snapshotter, key: str, parent: str | None, applied: Applied,
                     diff_id: str, label: str = "layer", labels: dict | None = None) -> str:
    """Commit a layer made by `extract_layer` on `parent` (adding `labels`); return its
    chain id.

    A diff_id other than `diff_id` is refused (and the snapshot left to the
    caller to remove); if the chain exists already, the snapshot is dropped.
    """
    return _commit(snaps, key, parent, applied, diff_id, label, restack=True, labels=labels)


def _apply(snaps: Snapshotter, key: str, stream: BinaryIO, label: str,
           max_bytes: int | None, read_ahead: bool = False,
           plain_digest: Callable[[], str] | None = None, recorder: object = None) -> Applied:
    peek = Peekable(stream)
    compression = detect(peek.peek(4))
    with decompressed(peek, compression) as plain:  # type: ignore[arg-type]
        source = _ReadAhead(plain, None if compression else plain_digest) \
            if compression or read_ahead else plain
        try:
            applied = snaps.apply(key, source, max_bytes=max_bytes, label=label,
                                  recorder=None if compression else recorder)
            while source.read(_CHUNK):
                pass  # the compressed stream's tail: gzip trailer, padding
        finally:
            if isinstance(source, _ReadAhead):
                source.close()
    return applied


def unpack_image(content: ContentStore, snaps: Snapshotter, layers: list[dict],
                 diff_ids: list[str], label: str = "image") -> list[str]:
    """Unpack every layer of an image not yet unpacked; return the chain ids, bottom first."""
    if len(layers) != len(diff_ids):
        raise InvalidArgument(f"{label}: {len(layers)} layers but {len(diff_ids)} diff_ids",
                              image=label)
    chains = digests.chain_ids(diff_ids)
    parent = None
    for layer, diff_id, chain in zip(layers, diff_ids, chains, strict=True):
        if not snaps.exists(chain):
            with content.open(layer["digest"]) as blob:
                unpack_layer(snaps, blob, parent, diff_id, label=f"{label}: layer {diff_id}")
        parent = chain
    return chains


def remove_stale_extractions(snaps: Snapshotter) -> list[str]:
    """Remove temporary snapshots of unpacks whose process is gone; return their keys."""
    removed = []
    for row in snaps.walk():
        if is_stale_extraction(row["key"]):
            snaps.remove(row["key"])
            removed.append(row["key"])
    snaps.cleanup()
    return removed


def is_stale_extraction(key: str) -> bool:
    """Whether a snapshot key is a temporary unpack snapshot of a process that is gone."""
    if not key.startswith(_EXTRACT):
        return False
    pid = key[len(_EXTRACT):].split("-", 1)[0]
    return pid.isdigit() and not os.path.exists(f"/proc/{pid}")


class Peekable:
    """A read-only stream that can show its first bytes without consuming them."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.head = b""

    def peek(self, n: int) -> bytes:
        while len(self.head) < n:
            more = self.stream.read(n - len(self.head))
            if not more:
                break
            self.head += more
        return self.head

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                out, self.head = self.head + self.stream.read(), b""
                return out
            out, self.head = self.head[:n], self.head[n:]
            return out
        return self.stream.read(n)

    def readable(self) -> bool:
        return True


class _ReadAhead(HashingReader):
    """Reads and hashes a (decompressing) stream in a thread, so that inflating
    the next megabytes overlaps with writing the files of the last ones (zlib,
    sha256 and the file system calls all run without the GIL)."""

    def __init__(self, stream: BinaryIO, digest_of_all: Callable[[], str] | None = None) -> None:
        super().__init__(None)
        if digest_of_all is not None:
            self.hash = _Hashed(digest_of_all)  # type: ignore[assignment]
        self.source = stream
        self.chunks: queue.Queue = queue.Queue(_AHEAD)
        self.buffer = memoryview(b"")
        self.whole: bytes | None = None
        self.done = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="layer-read-ahead", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                chunk = self.source.read(_CHUNK)
                self.hash.update(chunk)
                self._put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(exc)

    def _put(self, item: object) -> None:
        while not self.stop.is_set():
            try:
                self.chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _next_bytes(self, n: int) -> bytes:
        if not self.buffer:
            if self.done or not self._refill():
                return b""
        if n >= len(self.buffer) and self.whole is not None:
            out, self.whole, self.buffer = self.whole, None, memoryview(b"")
            return out  # a whole chunk, as the thread read it: no copy
        out = self.buffer[:n]
        self.buffer = self.buffer[len(out):]
        self.whole = None
        return out.tobytes()

    def _next_view(self, n: int) -> memoryview:
        if not self.buffer:
            if self.done or not self._refill():
                return memoryview(b"")
        out = self.buffer[:n]
        self.buffer = self.buffer[len(out):]
        self.whole = None
        return out

    def _refill(self) -> bool:
        item = self.chunks.get()
        if isinstance(item, BaseException):
            self.done = True
            raise item
        if not item:
            self.done = True
            return False
        self.buffer = memoryview(item)
        self.whole = item
        return True

    def block_at(self, offset: int) -> bytes | None:
        skip = offset - self.position
        if 0 <= skip and skip + 512 <= len(self.buffer):
            return self.buffer[skip:skip + 512].tobytes()
        return None

    def skip_to(self, offset: int) -> None:
        skip = offset - self.position
        if not 0 <= skip <= len(self.buffer):
            raise OSError(errno.ESPIPE, "nothing at hand to skip")
        self.buffer = self.buffer[skip:]
        self.whole = None
        self.position = offset

    def readview(self, n: int) -> memoryview:
        """Up to `n` bytes (fewer at the end of a chunk read ahead; none at the end of
        the stream) as a view of that chunk, for a caller that writes them out at once."""
        out = self._next_view(min(n, _CHUNK))
        self.position += len(out)
        return out

    def close(self) -> None:
        """Stop the thread (early, if the layer was refused part way)."""
        self.stop.set()
        self.thread.join()


class _Hashed:
    """Stands for a hash whose bytes another reader (a tee into a content writer)
    already hashed: updates are ignored, the digest is that reader's."""

    def __init__(self, digest_of_all: Callable[[], str]) -> None:
        self.digest_of_all = digest_of_all

    def update(self, data: bytes) -> None:
        pass

    def hexdigest(self) -> str:
        return self.digest_of_all().removeprefix("sha256:")
