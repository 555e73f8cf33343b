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
extraction says so (`Applied.files` is None when an entry replaced or removed
something the archive had made, for a sparse file, or in a target that was
not empty: it creates files with O_EXCL and removes nothing but in
`_remove`, so no other entry can change a file's bytes after they were
written).

Encoding (`MAGIC`, then records): `R` + u64 length + that many raw bytes;
`F` + u64 size + u32 path length + the path (relative to `fs`, bytes);
`E` + u64 total size + the 32-byte sha256 of the whole tar. Little-endian.
"""

import os
import stat
import struct
from collections.abc import Callable, Sequence

from knarr.errors import InvalidArgument

__all__ = ["RECIPE_LABEL", "RECIPE_FORMAT", "RECIPE_NAME", "build", "save", "regenerate",
           "parse"]

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


def build(fd: int, length: int, files: Files, digest: str) -> bytes:
    """The recipe of the tar of `length` bytes in the file `fd` (whose sha256 is
    `digest`) whose regular files' data are given by `files` (ascending offsets).
    InvalidArgument if they do not fit the tar."""
    parts, at = [MAGIC], 0
    pread = os.pread
    raw_head, file_head, pack_u64, pack_file = _RAW, _FILE, _U64.pack, _FILE_HEAD.pack
    for offset, size, path in files:
        if offset < at or offset + size > length or size <= 0:
            raise InvalidArgument(f"layer recipe: entry {path!r} at {offset} does not fit",
                                  path=path)
        if offset > at:
            parts += (raw_head, pack_u64(offset - at), _pread(pread, fd, offset - at, at))
        name = os.fsencode(path)
        parts += (file_head, pack_file(size, len(name)), name)
        at = offset + size
    if at < length:
        parts += (raw_head, pack_u64(length - at), _pread(pread, fd, length - at, at))
    parts += (_END, _U64.pack(length), bytes.fromhex(digest.removeprefix("sha256:")))
    return b"".join(parts)


def _pread(pread: Callable, fd: int, n: int, at: int) -> bytes:
    data = pread(fd, n, at)
    if len(data) < n:
        data += _pread(pread, fd, n - len(data), at + len(data)) if data else b""
        if len(data) < n:
            raise InvalidArgument(f"layer recipe: the tar ends before {at + n} bytes")
    return data


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
    if written != total:
        raise InvalidArgument(f"layer recipe: made {written} bytes, not {total}")
    return written


class _Walker:
    """Opens files below a directory one component at a time, never through a symlink
    (directory fds cached)."""

    def __init__(self, fs: str) -> None:
        self.root = os.open(fs, _DIR_FLAGS)
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
