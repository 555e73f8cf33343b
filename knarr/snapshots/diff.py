"""A layer tar from an overlay upper directory: what a container changed.

The upper dir holds new and changed files, and overlay's own records of
deletions; the tar says the same in the layer format every engine reads:
a 0/0 character device (a deleted name) becomes an empty `.wh.<name>`, and
a directory marked trusted.overlay.opaque=y (its lower contents hidden) is
written followed by `<dir>/.wh..wh..opq`. overlay's other trusted.overlay.*
xattrs are private to the mount and are left out.

The tar is deterministic: entries in sorted order, ustar headers made here
(`tarstream.ustar_header`, not `tarfile`, whose output may change between
Python versions), mtimes
in whole seconds as Docker writes them (none on whiteouts), no user or group
names, a PAX header only for what ustar cannot hold (long or non-ASCII names,
large numbers, xattrs). So `diff_digest` can hash the tar without writing it anywhere (a
build's layer keeps only its directory and this digest), and `write_diff`
makes the very same bytes again on demand. Whatever changes these bytes must
come with a new DIR_LAYER_FORMAT, or layers kept as directories no longer
match their digests.
"""

import hashlib
import mmap
import os
import stat
from typing import BinaryIO

from knarr.snapshots.apply import OPAQUE_MARKER, WHITEOUT_PREFIX
from knarr.tarstream import ustar_header

__all__ = ["write_diff", "diff_digest", "DIR_LAYER_LABEL", "DIR_LAYER_FORMAT"]

# On a committed snapshot: its layer tar is `write_diff` (format DIR_LAYER_FORMAT) of its
# directory, and its blob may not be stored (it is made again when needed).
DIR_LAYER_LABEL = "knarr.blob_from_dir"
DIR_LAYER_FORMAT = "1"

_OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20
_MAP_FROM = 1 << 20
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
_BLOCK = 512
_ZEROS = bytes(_BLOCK * 2)
_REG, _LNK, _SYM, _CHR, _BLK, _DIR, _FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"


class _Sink:
    """Where the tar goes: `out` (may be None: hashed only) and the running hash."""

    def __init__(self, out: BinaryIO | None, hashed: bool) -> None:
        self.out = out
        self.hash = hashlib.sha256() if hashed else None
        self.size = 0

    def write(self, data) -> None:
        if self.hash is not None:
            self.hash.update(data)
        if self.out is not None:
            self.out.write(data)
        self.size += len(data)


def write_diff(upper: str, out: BinaryIO, hashed: bool = True,
               still: bool = False) -> tuple[str, int]:
    """Write the upper dir as an uncompressed layer tar; return (diff_id, size).

    With `hashed` False the caller hashes what it is given (a content-store
    writer does) and the diff_id returned is empty: the bytes are hashed once.
    `still` says nothing changes the directory meanwhile (a committed layer, a
    stopped container's): large files are then read by mapping them, which a
    concurrent truncation would turn into SIGBUS.
    """
    sink = _Sink(out, hashed)
    _write(upper, sink, still)
    return (f"sha256:{sink.hash.hexdigest()}" if sink.hash else ""), sink.size


def diff_digest(upper: str, still: bool = False) -> tuple[str, int]:
    """The (diff_id, size) of the layer tar `write_diff` writes for `upper`, hashed as
    it is made and not stored (`still`: as for write_diff)."""
    sink = _Sink(None, True)
    _write(upper, sink, still)
    assert sink.hash is not None
    return f"sha256:{sink.hash.hexdigest()}", sink.size


def _write(upper: str, sink: _Sink, still: bool) -> None:
    _Tree(sink, still).add(os.fsencode(upper), b"")
    sink.write(_ZEROS)  # the end: two zero blocks


class _Tree:
    """One walk of a directory into a sink."""

    def __init__(self, sink: _Sink, still: bool) -> None:
        self.sink, self.still = sink, still
        self.buffer = bytearray(_CHUNK)
        self.links: dict[tuple[int, int], bytes] = {}

    def add(self, top: bytes, rel: bytes) -> None:
        sink = self.sink
        path = os.path.join(top, rel) if rel else top
        for name in sorted(os.listdir(path)):
            arcname = rel + b"/" + name if rel else name
            full = os.path.join(path, name)
            st = os.lstat(full)
            mode = st.st_mode
            if stat.S_ISCHR(mode) and st.st_rdev == 0:
                _whiteout(sink, arcname, st)
                continue
            pax = _xattr_records(full)
            if stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in self.links:
                    _header(sink, arcname, st, _LNK, 0, self.links[key], pax)
                    continue
                if st.st_nlink > 1:
                    self.links[key] = arcname
                _header(sink, arcname, st, _REG, st.st_size, b"", pax)
                self.data(full, st.st_size)
            elif stat.S_ISDIR(mode):
                _header(sink, arcname + b"/", st, _DIR, 0, b"", pax)
                if _xattr(full, _OPAQUE_XATTR) == b"y":
                    _whiteout(sink, arcname + b"/" + OPAQUE_MARKER.encode(), st,
                              prefixed=True)
                self.add(top, arcname)
            elif stat.S_ISLNK(mode):
                _header(sink, arcname, st, _SYM, 0, os.readlink(full), pax)
            elif stat.S_ISCHR(mode):
                _header(sink, arcname, st, _CHR, 0, b"", pax)
            elif stat.S_ISBLK(mode):
                _header(sink, arcname, st, _BLK, 0, b"", pax)
            elif stat.S_ISFIFO(mode):
                _header(sink, arcname, st, _FIFO, 0, b"", pax)
            # a socket: no tar form, and no meaning in a layer

    def data(self, path: bytes, size: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if self.still and size >= _MAP_FROM and os.fstat(fd).st_size == size:
                # hashed (and written) from the page cache, not copied first
                with mmap.mmap(fd, size, mmap.MAP_SHARED | _POPULATE, mmap.PROT_READ) as m, \
                        memoryview(m) as view:
                    for offset in range(0, size, _CHUNK):
                        self.sink.write(view[offset:offset + _CHUNK])
            else:
                self.read(fd, path, size)
        finally:
            os.close(fd)
        if size % _BLOCK:
            self.sink.write(_ZEROS[:_BLOCK - size % _BLOCK])

    def read(self, fd: int, path: bytes, size: int) -> None:
        left = size
        with memoryview(self.buffer) as view:
            while left > 0:
                got = os.readv(fd, [view[:min(left, _CHUNK)]])
                if got == 0:
                    raise OSError(f"layer diff: {os.fsdecode(path)} shrank while read")
                self.sink.write(view[:got])
                left -= got


def _whiteout(sink: _Sink, arcname: bytes, st: os.stat_result, prefixed: bool = False) -> None:
    if not prefixed:
        head, _, base = arcname.rpartition(b"/")
        marked = WHITEOUT_PREFIX.encode() + base
        arcname = head + b"/" + marked if head else marked
    # no time: a whiteout's own mtime says nothing, and an unpack does not keep it
    _raw_header(sink, arcname, 0o644, st.st_uid, st.st_gid, 0, 0, _REG, b"", 0, 0, [])


def _header(sink: _Sink, name: bytes, st: os.stat_result, kind: bytes, size: int,
            linkname: bytes, pax: list[tuple[bytes, bytes]]) -> None:
    major = minor = 0
    if kind in (_CHR, _BLK):
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    _raw_header(sink, name, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size,
                int(st.st_mtime), kind, linkname, major, minor, pax)


def _raw_header(sink: _Sink, name: bytes, mode: int, uid: int, gid: int, size: int,
                mtime: int, kind: bytes, linkname: bytes, major: int, minor: int,
                pax: list[tuple[bytes, bytes]]) -> None:
    sink.write(ustar_header(name, mode, uid, gid, size, mtime, kind, linkname, major, minor,
                            pax))


def _xattr_records(path: bytes) -> list[tuple[bytes, bytes]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        if name.startswith("trusted.overlay."):
            continue
        value = _xattr(path, name)
        if value is not None:
            out.append((b"SCHILY.xattr." + name.encode("utf-8", "surrogateescape"), value))
    return out


def _xattr(path: bytes, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None
