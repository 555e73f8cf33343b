"""A layer tar from an overlay upper directory: what a container changed.

The upper dir holds new and changed files, and overlay's own records of
deletions; the tar says the same in the layer format every engine reads:
a 0/0 character device (a deleted name) becomes an empty `.wh.<name>`, and
a directory marked trusted.overlay.opaque=y (its lower contents hidden) is
written followed by `<dir>/.wh..wh..opq`. overlay's other trusted.overlay.*
xattrs are private to the mount and are left out. Entries come in sorted
order, so the same tree gives the same tar.
"""

import hashlib
import os
import stat
import tarfile
from typing import BinaryIO

from knarr.snapshots.apply import OPAQUE_MARKER, WHITEOUT_PREFIX

__all__ = ["write_diff"]

_OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20


class _HashingWriter:
    def __init__(self, out: BinaryIO, hashed: bool = True) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.hashed = hashed
        self.size = 0

    def tell(self) -> int:
        return self.size

    def write(self, data: bytes) -> int:
        if self.hashed:
            self.hash.update(data)
        self.size += len(data)
        return self.out.write(data) or len(data)


def write_diff(upper: str, out: BinaryIO, hashed: bool = True) -> tuple[str, int]:
    """Write the upper dir as an uncompressed layer tar; return (diff_id, size).

    With `hashed` False the caller hashes what it is given (a content-store
    writer does) and the diff_id returned is empty: the bytes are hashed once.
    """
    sink = _HashingWriter(out, hashed)
    # mode "w", not the stream mode "w|": the bytes are the same, written straight out
    # rather than gathered in tarfile's stream buffer (which copies every block again)
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as archive:  # type: ignore
        archive.copybufsize = _CHUNK  # file data in large pieces, not 16 KiB ones
        _add_tree(archive, upper, "")
    return (f"sha256:{sink.hash.hexdigest()}" if hashed else ""), sink.size


def _add_tree(archive: tarfile.TarFile, top: str, rel: str) -> None:
    path = os.path.join(top, rel) if rel else top
    for name in sorted(os.listdir(path)):
        arcname = f"{rel}/{name}" if rel else name
        full = os.path.join(top, arcname)
        st = os.lstat(full)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            _add_whiteout(archive, arcname, st)
            continue
        info = _tarinfo(archive, full, arcname)
        if info is None:
            continue  # a socket: no tar form, and no meaning in a layer
        if stat.S_ISREG(st.st_mode) and info.isreg():
            with open(full, "rb") as f:
                archive.addfile(info, f)
        else:
            archive.addfile(info)
        if stat.S_ISDIR(st.st_mode):
            if _xattr(full, _OPAQUE_XATTR) == b"y":
                _add_whiteout(archive, f"{arcname}/{OPAQUE_MARKER}", st, prefixed=True)
            _add_tree(archive, top, arcname)


def _tarinfo(archive: tarfile.TarFile, full: str, arcname: str) -> tarfile.TarInfo | None:
    info = archive.gettarinfo(full, arcname)
    if info is None:
        return None
    info.uname = info.gname = ""
    for name in _xattr_names(full):
        if name.startswith("trusted.overlay."):
            continue
        value = _xattr(full, name)
        if value is not None:
            info.pax_headers[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return info


def _add_whiteout(archive: tarfile.TarFile, arcname: str, st: os.stat_result,
                  prefixed: bool = False) -> None:
    if not prefixed:
        head, _, base = arcname.rpartition("/")
        arcname = f"{head}/{WHITEOUT_PREFIX}{base}" if head else f"{WHITEOUT_PREFIX}{base}"
    info = tarfile.TarInfo(arcname)
    info.mode, info.mtime = 0o644, int(st.st_mtime)
    info.uid, info.gid = st.st_uid, st.st_gid
    archive.addfile(info)


def _xattr_names(path: str) -> list[str]:
    try:
        return sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return []


def _xattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None
