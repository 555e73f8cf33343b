"""Layer recipes: an uncompressed layer tar kept as its snapshot's files plus the rest.

A loaded `docker save` layer is an uncompressed tar whose blob digest is its
diff_id. Once extracted, most of its bytes are the data of regular files now
in the snapshot's `fs` directory; the rest (header blocks, pax and GNU
extension blocks and their data, padding, the end blocks, anything after them)
is small. A recipe keeps that rest verbatim and, for each regular file's data,
the path in `fs` that holds it, so the blob need not be stored: `regenerate`
writes the exact tar again (Docker keeps tar-split metadata for the same
reason). The caller checks the bytes against the layer's digest before it
trusts them, so a snapshot changed since (a byte of a file, a file removed) is
caught, never served.

A recipe is made only where the snapshot's files are the tar's data: the
extraction says so (it switches its `Recorder` to writing the blob before an
entry replaces or removes something the archive had made, or at a sparse
file, or in a target that was not empty: it creates files with O_EXCL and
removes nothing but in `_remove`, so no other entry can change a file's bytes
after they were written).

Encoding (`MAGIC`, then records): `R` + u64 length + that many raw bytes;
`F` + u64 size + u32 path length + the path (relative to `fs`, bytes);
`E` + u64 total size + the 32-byte sha256 of the whole tar. Little-endian.
"""

import collections
import hashlib
import os
import stat
import struct
import threading
from collections.abc import Callable, Sequence

from knarr.errors import InvalidArgument
from knarr.snapshots.diff import DIR_LAYER_FORMAT, DIR_LAYER_LABEL

__all__ = ["RECIPE_LABEL", "RECIPE_FORMAT", "RECIPE_NAME", "Recorder", "blob_made_from", "encode",
           "save", "regenerate", "parse"]

# On a committed snapshot: its layer's blob is not stored but made by `regenerate` from
# the recipe file RECIPE_NAME beside its `fs` directory.
RECIPE_LABEL = "knarr.blob_from_recipe"
RECIPE_FORMAT = "1"
RECIPE_NAME = "layer.recipe"
MAGIC = b"knarr layer recipe 1\n"

_RAW, _FILE, _END = b"R", b"F", b"E"
_U64 = struct.Struct("<Q")
_FILE_HEAD = struct.Struct("<QI")
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC

Files = Sequence[tuple[int, int, str]]  # (offset of the data in the tar, size, path in fs)


def blob_made_from(labels: dict) -> str | None:
    """How a committed snapshot with these labels makes its layer's blob, if it keeps
    no blob: "dir" (a build's layer: `write_diff` of its directory), "recipe" (a loaded
    layer: `regenerate`), or None (its blob is stored, or of a format this knarr
    cannot make)."""
    if labels.get(DIR_LAYER_LABEL) == DIR_LAYER_FORMAT:
        return "dir"
    if labels.get(RECIPE_LABEL) == RECIPE_FORMAT:
        return "recipe"
    return None


def save(path: str, recipe: bytes) -> None:
    """Write a recipe to `path` (temp + rename; the caller's syncfs makes it durable
    before the snapshot holding it is committed)."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(recipe)
    os.rename(tmp, path)


def parse(recipe: bytes) -> tuple[list[tuple[bytes, object]], int, str]:
    """(records, total size, digest) of a recipe: records are (b"R", raw bytes) or
    (b"F", (size, path bytes)). InvalidArgument if it is damaged."""
    view = memoryview(recipe)
    if bytes(view[:len(MAGIC)]) != MAGIC:
        raise InvalidArgument("layer recipe: not a recipe (format 1)")
    at, records = len(MAGIC), []
    try:
        while True:
            kind = bytes(view[at:at + 1])
            at += 1
            if kind == _RAW:
                (n,) = _U64.unpack_from(view, at)
                at += 8
                if at + n > len(view):
                    raise struct.error("short raw record")
                records.append((_RAW, view[at:at + n]))
                at += n
            elif kind == _FILE:
                size, n = _FILE_HEAD.unpack_from(view, at)
                at += _FILE_HEAD.size
                if at + n > len(view):
                    raise struct.error("short file record")
                records.append((_FILE, (size, bytes(view[at:at + n]))))
                at += n
            elif kind == _END:
                (total,) = _U64.unpack_from(view, at)
                digest = bytes(view[at + 8:at + 40])
                if len(digest) != 32 or at + 40 != len(view):
                    raise struct.error("bad end record")
                return records, total, f"sha256:{digest.hex()}"
            else:
                raise struct.error(f"unknown record {kind!r}")
    except struct.error as exc:
        raise InvalidArgument(f"layer recipe: damaged: {exc}") from None


def regenerate(recipe_path: str, fs: str, write: Callable[[object], object]) -> int:
    """Write the tar a recipe describes, reading its files under `fs` (never through a
    symlink), to `write`; return its size. InvalidArgument if a file is missing or of
    another size, or the recipe damaged; the caller checks the digest."""
    try:
        with open(recipe_path, "rb") as f:
            recipe = f.read()
    except FileNotFoundError:
        raise InvalidArgument(f"layer recipe {recipe_path}: missing") from None
    records, total, _ = parse(recipe)
    written = _write_records(records, fs, write)
    if written != total:
        raise InvalidArgument(f"layer recipe: made {written} bytes, not {total}")
    return written


def _write_records(records: list, fs: str | int, write: Callable[[object], object]) -> int:
    """Write raw records as they are and file records from the files under `fs` (a path
    or a directory fd); return the bytes written."""
    written = 0
    buffer = bytearray(_CHUNK)
    with _Walker(fs) as walker, memoryview(buffer) as chunk:
        for kind, item in records:
            if kind == _RAW:
                write(item)
                written += len(item)  # type: ignore[arg-type]
                continue
            size, name = item  # type: ignore[misc]
            fd = walker.open(os.fsdecode(name), size)
            try:
                left = size
                while left > 0:
                    got = os.readv(fd, [chunk[:min(left, _CHUNK)]])
                    if got == 0:
                        raise InvalidArgument(f"layer recipe: {os.fsdecode(name)} is shorter "
                                              f"than {size} bytes", path=os.fsdecode(name))
                    write(chunk[:got])
                    left -= got
            finally:
                os.close(fd)
            written += size
    return written


def encode(records: list, total: int, digest: str) -> bytes:
    """A recipe's bytes from its records (as `parse` gives them)."""
    parts = [MAGIC]
    for kind, item in records:
        if kind == _RAW:
            parts += (_RAW, _U64.pack(len(item)), item)
        else:
            size, name = item
            parts += (_FILE, _FILE_HEAD.pack(size, len(name)), name)
    parts += (_END, _U64.pack(total), bytes.fromhex(digest.removeprefix("sha256:")))
    return b"".join(parts)


class Recorder:
    """Makes the recipe of a tar while it streams past, keeping only a window of it.

    A thread `write`s the tar's bytes in order (hashing them); the thread extracting it
    shares its list of file regions (`files`: (offset, size, path), appended before the
    data is read) and moves `watermark` on (each entry's first header; a big file's
    data as it is copied): every byte below it is either a file's data (dropped: the
    file holds it) or kept verbatim as a raw record. So memory holds about the
    read-ahead's worth of the tar, not all of it.

    Where the files stop making the tar (`switch`, before an entry replaces or removes
    something, or a sparse file), the blob is written after all: what came before is
    made again from the records and the files (which are still as written), the window
    and the rest follow. The content writer's digest check at commit proves those
    bytes. `lose` (the extraction failed) keeps nothing but the hash.
    """

    def __init__(self, open_blob: Callable[[], object]) -> None:
        self.open_blob = open_blob
        self.hash = hashlib.sha256()
        self.offset = 0
        self.head = b""
        self.files: list[tuple[int, int, str]] = []
        self.watermark = 0
        self.cursor = 0
        self.next_file = 0
        self.records: list = []
        self.chunks: collections.deque = collections.deque()  # (start, bytes)
        self.mode = "recipe"  # or "blob" (written to self.blob), "lost"
        self.blob: object = None
        self.failure: BaseException | None = None
        self.lock = threading.Condition()

    def write(self, data: bytes) -> None:
        """The next bytes of the tar (one thread)."""
        if self.offset < 8:
            self.head = (self.head + bytes(data[:8]))[:8]
        self.hash.update(data)
        with self.lock:
            if self.mode == "blob":
                self.blob.write(data)  # type: ignore[attr-defined]
            elif self.mode == "recipe":
                self.chunks.append((self.offset, data))
            self.offset += len(data)
            if self.mode == "recipe":
                self._advance(min(self.watermark, self.offset))
            self.lock.notify_all()

    def digest(self) -> str:
        return f"sha256:{self.hash.hexdigest()}"

    def fail(self, failure: BaseException) -> None:
        """The thread writing here failed: no more bytes come (a `switch` waiting for
        them raises `failure`)."""
        with self.lock:
            self.failure = failure
            self.lock.notify_all()

    def _advance(self, limit: int) -> None:
        """Account for the bytes up to `limit` (all received): raw or a file's data."""
        files = self.files
        while self.cursor < limit:
            if self.next_file < len(files):
                offset, size, path = files[self.next_file]
                if offset <= self.cursor:
                    end = offset + size
                    self.cursor = min(end, limit)
                    if self.cursor == end:
                        self.records.append((_FILE, (size, os.fsencode(path))))
                        self.next_file += 1
                    continue
                raw_end = min(offset, limit)
            else:
                raw_end = limit
            self._raw(self.cursor, raw_end)
            self.cursor = raw_end
        chunks = self.chunks
        while chunks and chunks[0][0] + len(chunks[0][1]) <= self.cursor:
            chunks.popleft()

    def _raw(self, start: int, end: int) -> None:
        if self.records and self.records[-1][0] == _RAW:
            out = self.records[-1][1]
        else:
            out = bytearray()
            self.records.append((_RAW, out))
        for chunk_start, data in self.chunks:
            if chunk_start >= end:
                break
            if chunk_start + len(data) > start:
                out += data[max(start - chunk_start, 0):end - chunk_start]

    def switch(self, at: int, fs: str | int) -> None:
        """From the entry at `at` on the files no longer make the tar: write it all to
        the blob (`open_blob()`) instead, from here on. `fs`: the files (all written)."""
        with self.lock:
            if self.mode != "recipe":
                return
            while self.offset < at:
                if self.failure is not None:
                    raise self.failure
                self.lock.wait()
            self._advance(at)
            if self.cursor != at or self.next_file != len(self.files):
                raise InvalidArgument(f"layer recipe: entry at {at} is inside a file's data")
            blob = self.open_blob()
            _write_records(self.records, fs, blob.write)  # type: ignore[attr-defined]
            for start, data in self.chunks:
                if start + len(data) > at:
                    blob.write(data[max(at - start, 0):])  # type: ignore[attr-defined]
            self.mode, self.blob = "blob", blob
            self.records, self.chunks = [], collections.deque()

    def lose(self) -> None:
        """Keep nothing more of the tar than its hash (its extraction failed)."""
        with self.lock:
            self.mode = "lost"
            self.records, self.chunks = [], collections.deque()

    def finish(self) -> bytes | None:
        """Once every byte was written: the recipe (None if switched or lost)."""
        with self.lock:
            if self.mode != "recipe":
                return None
            self._advance(self.offset)
            if self.next_file != len(self.files):
                raise InvalidArgument("layer recipe: a file's data runs past the end")
            return encode(self.records, self.offset, self.digest())

    def abort(self) -> None:
        """Drop what is held, and the blob's ingest if one was started."""
        blob = self.blob
        self.lose()
        if blob is not None:
            blob.abort()  # type: ignore[attr-defined]


class _Walker:
    """Opens files below a directory one component at a time, never through a symlink
    (directory fds cached)."""

    def __init__(self, fs: str | int) -> None:
        self.root = os.open(fs if isinstance(fs, str) else ".", _DIR_FLAGS,
                            dir_fd=None if isinstance(fs, str) else fs)
        self.dirs: dict[str, int] = {"": self.root}

    def __enter__(self) -> "_Walker":
        return self

    def __exit__(self, *exc: object) -> None:
        self._forget()
        os.close(self.root)

    def _forget(self) -> None:
        for path, fd in list(self.dirs.items()):
            if path:
                os.close(fd)
                del self.dirs[path]

    def _dir(self, path: str) -> int:
        fd = self.dirs.get(path)
        if fd is None:
            head, _, base = path.rpartition("/")
            fd = os.open(base, _DIR_FLAGS, dir_fd=self._dir(head))
            if len(self.dirs) > 256:
                self._forget()
            self.dirs[path] = fd
        return fd

    def _parent(self, path: str) -> tuple[int, str]:
        head, _, base = path.rpartition("/")
        if any(p in ("", ".", "..") for p in path.split("/")):
            raise InvalidArgument(f"layer recipe: {path!r}: not a plain path", path=path)
        try:
            return self._dir(head), base
        except OSError as exc:
            raise InvalidArgument(f"layer recipe: {path}: {os.strerror(exc.errno or 0)}",
                                  path=path) from None

    def open(self, path: str, size: int) -> int:
        """An fd of the regular file `path` of `size` bytes (InvalidArgument if it is not)."""
        parent, base = self._parent(path)
        try:
            fd = os.open(base, _READ_FLAGS, dir_fd=parent)
        except OSError as exc:
            raise InvalidArgument(f"layer recipe: {path}: {os.strerror(exc.errno or 0)}",
                                  path=path) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            os.close(fd)
            raise InvalidArgument(f"layer recipe: {path}: not a regular file of {size} bytes",
                                  path=path)
        return fd
