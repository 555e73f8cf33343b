"""Applying a layer tar to a snapshot directory, safely, in one streaming pass.

The stream is read once: its bytes are hashed (the layer's diff_id) while
each entry is written. Whiteouts become overlay's form: `.wh.<name>` a 0/0
character device `<name>`, `.wh..wh..opq` the xattr trusted.overlay.opaque=y
on its directory.

No write lands outside the target directory. Every path is walked one
component at a time from an open descriptor of the target with O_NOFOLLOW,
so a symlink is never followed, whether the archive placed it or not; files
are created with O_EXCL. Refused, each with an error naming the entry:
`..` components, paths or hard links through a symlink, hard links to a
name outside the layer or to a directory, a symlink replaced by a directory
(or the reverse) within the archive, trusted.overlay.* xattrs (they would
steer overlay itself), entries larger than the free space or the byte
budget, unknown entry types, truncated archives. Absolute paths are taken
relative to the target, as every container engine does.

Small regular files (up to 512 KiB) are read by the extracting thread and
handed to two writer threads, which create, fill and close them (O_EXCL, from
the same directory fds) while the next headers are parsed: the kernel's work
of making a file then overlaps with the Python work of reading the archive.
Any later entry that looks at a name handed off (replacing it, linking to
it, walking through it, a whiteout, a directory removed, the directory fds
closed, the final directory times) first waits for the writers, so the
result is the tree one thread makes; a writer's failure is raised as the
refusal of its entry.
"""

import dataclasses
import errno
import hashlib
import os
import queue
import stat
import tarfile
import threading
from typing import BinaryIO

from knarr.errors import InvalidArgument
from knarr.tarstream import read_header

__all__ = ["Applied", "HashingReader", "apply_layer", "WHITEOUT_PREFIX", "OPAQUE_MARKER"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PREFIX = "SCHILY.xattr."
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_CACHED_DIRS = 256
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Regular files up to this size are created and written by writer threads (see
# _Writers); bigger ones by the thread reading the archive.
_HANDED_OFF = 512 << 10
_UNFINISHED_MODE = 0o600  # of a file created before its fchmod
_DEFAULT_ACL = "system.posix_acl_default"
_WRITERS = 2
_QUEUED = 8  # batches
_BATCH_FILES = 16
_BATCH_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class Applied:
    """What applying a layer produced: the digest and size of the uncompressed tar.

    `files`: (offset of its data in the tar, size, path below the target) of every
    regular file with data, where the target's files hold exactly those bytes at the
    end (a layer recipe can be made of them, see `recipe.py`); None where they may
    not: an entry replaced or removed something (`_remove`), a sparse file, a target
    that was not empty."""

    diff_id: str
    size: int
    entries: int
    files: tuple | None = None


class HashingReader:
    """Reads a stream once, front to back, hashing and counting every byte.

    It offers a forward-only seek and tell, which is all tarfile's
    random-access mode needs; that mode lets file data be read straight from
    here, where stream mode would copy every block through its own buffer.
    """

    def __init__(self, stream: BinaryIO | None) -> None:
        self.stream = stream
        self.hash = hashlib.sha256()
        self.position = 0

    def _next_bytes(self, n: int) -> bytes:
        assert self.stream is not None
        data = self.stream.read(n)
        self.hash.update(data)
        return data

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = 1 << 62
        parts, got = [], 0
        while got < n:
            data = self._next_bytes(min(n - got, _CHUNK))
            if not data:
                break
            parts.append(data)
            got += len(data)
        out = parts[0] if len(parts) == 1 else b"".join(parts)
        self.position += len(out)
        return out

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset < self.position:
            raise OSError(errno.ESPIPE, "a layer stream only moves forward")
        while self.position < offset and self.read(min(_CHUNK, offset - self.position)):
            pass
        return self.position

    def digest(self) -> str:
        """The sha256 digest of every byte read so far."""
        return f"sha256:{self.hash.hexdigest()}"

    def drain(self) -> None:
        """Read (and hash) the rest: the end-of-archive blocks and any padding."""
        while self.read(_CHUNK):
            pass

    def block_at(self, offset: int) -> bytes | None:
        """The 512 bytes at `offset` (not before the position) where they are at hand
        without reading: then `skip_to` can move past them. None: read them."""
        return None

    def skip_to(self, offset: int) -> None:
        """Move forward to `offset`, within what `block_at` had at hand."""
        raise OSError(errno.ESPIPE, "nothing at hand to skip")


def apply_layer(target: str, stream: BinaryIO, *, label: str = "layer",
                max_bytes: int | None = None, writers: int = _WRITERS,
                recorder: object = None) -> Applied:
    """Extract the uncompressed tar `stream` into `target`; return its diff_id and size.

    `writers` threads create and write the small regular files while this one
    reads on (0: this thread does everything). `recorder` (a `recipe.Recorder` that
    sees the same tar's bytes) is told where each file's data went, and switched to
    keeping the blob where the files stop making the tar."""
    reader = stream if isinstance(stream, HashingReader) else HashingReader(stream)
    with _Extractor(target, label, max_bytes, reader, writers, recorder) as ex:
        try:
            archive = _Archive.open(fileobj=reader, mode="r:",  # type: ignore[call-overload]
                                    tarinfo=_TarInfo)
            for member in archive:
                ex.entry(member, archive)
        except (tarfile.TarError, EOFError) as exc:
            raise InvalidArgument(f"{label}: corrupt or truncated tar: {exc}",
                                  layer=label) from exc
        ex.finish()
    reader.drain()
    files = tuple(ex.files) if ex.files is not None else None
    return Applied(reader.digest(), reader.position, ex.count, files)


class _TarInfo(tarfile.TarInfo):
    """tarfile's TarInfo read through knarr.tarstream.read_header (the usual header in one
    struct unpack, anything else by tarfile's own frombuf)."""

    __slots__ = ()

    @classmethod
    def frombuf(cls, buf, encoding, errors):  # type: ignore[no-untyped-def]
        return read_header(buf, encoding, errors, cls)


# Entries tarfile reads from their one header block, whose data (regular files only)
# follows it: tarfile's `_proc_builtin`. Pax headers, GNU long names and sparse files
# are others.
_PLAIN_TYPES = frozenset((tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE, tarfile.DIRTYPE,
                          tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                          tarfile.FIFOTYPE))
_WITH_DATA = frozenset((tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE))


class _Archive(tarfile.TarFile):
    """tarfile's reader, with the usual member taken in fewer steps: when its header block
    is at hand in the reader (`block_at`) and is a plain entry (`_PLAIN_TYPES`, read by
    `read_header`) and no global pax header applies, the member is what tarfile's `next`
    makes of it (offsets, the next member's offset, the pax headers it has: none),
    without tarfile's seek back, re-read and generic dispatch. Anything else (a header
    read across a chunk's end, one `read_header` does not take, pax and GNU extensions,
    the end of the archive, an error) is left to tarfile's own `next`, from the same
    offset, so the members or the error are tarfile's."""

    def next(self):  # type: ignore[no-untyped-def]
        if self.firstmember is None and not self.pax_headers and not self.ignore_zeros:
            offset = self.offset
            block = self.fileobj.block_at(offset)  # type: ignore[union-attr]
            if block is not None:
                try:
                    info = read_header(block, self.encoding, self.errors, self.tarinfo)
                except tarfile.HeaderError:
                    info = None  # tarfile says what is wrong
                if info is not None and info.type in _PLAIN_TYPES:
                    self.fileobj.skip_to(offset + tarfile.BLOCKSIZE)  # type: ignore[union-attr]
                    info.offset = offset
                    info.offset_data = data = offset + tarfile.BLOCKSIZE
                    self.offset = data + info._block(info.size) if info.type in _WITH_DATA \
                        else data
                    if info.type == tarfile.DIRTYPE:
                        info.name = info.name.rstrip("/")
                    self.members.append(info)
                    return info
        return super().next()


def _clean(name: str) -> list[str]:
    """Split an entry name into components; `..` anywhere is refused by the caller."""
    return [p for p in name.split("/") if p not in ("", ".")]


class _Extractor:
    """The state of one extraction: the target's descriptor, a cache of directory fds."""

    def __init__(self, target: str, label: str, max_bytes: int | None,
                 reader: HashingReader, writers: int = 0, recorder: object = None) -> None:
        self.label = label
        self.reader = reader
        self.root = os.open(target, _DIR_FLAGS)
        self.dirs: dict[tuple[str, ...], int] = {}
        self.deferred_dirs: list[tuple[list[str], tarfile.TarInfo]] = []
        vfs = os.fstatvfs(self.root)
        self.budget = vfs.f_bavail * vfs.f_frsize
        if max_bytes is not None:
            self.budget = min(self.budget, max_bytes)
        self.as_root = os.geteuid() == 0
        self.count = 0
        self.name = ""
        # Into an empty target (a new snapshot), a name can only exist if this
        # archive made it: `made` lists those, and no other name is looked up first.
        with os.scandir(self.root) as listing:
            self.fresh = next(listing, None) is None
        self.made: set[str] = set()
        # Where each regular file's data went, while nothing made was replaced or
        # removed (see Applied.files).
        self.files: list[tuple[int, int, str]] | None = [] if self.fresh else None
        self.recorder = recorder
        self.member_offset = 0
        if recorder is not None:
            recorder.files = self.files if self.files is not None else []  # type: ignore
            if self.files is None:
                recorder.switch(0, self.root)  # type: ignore[attr-defined]
        # A file root makes here is 0:0 already, unless a directory is setgid: in a
        # fresh target whose root is not, none is until `finish` sets their modes.
        self.born_root = self.as_root and self.fresh and os.getegid() == 0 \
            and not os.fstat(self.root).st_mode & stat.S_ISGID
        # A regular file is created with its final mode, and needs no fchmod, when
        # that mode has no special bits and nothing the umask strips, and no default
        # ACL decides new files' modes instead: in a fresh target every directory is
        # made here, so none has one unless the target has (checked once) or the
        # archive gives it one (which turns this off, see `_dir_xattrs`).
        self.umask = _umask()
        self.modes_as_made = self.fresh and self.umask is not None \
            and not _has_default_acl(self.root)
        # Files handed to the writer threads, which may not exist yet: a later
        # entry that looks at one of these names first waits for the writers.
        self.handed: set[str] = set()
        self.writers = _Writers(self, writers) if writers > 0 else None

    def __enter__(self) -> "_Extractor":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.writers is not None:
                self.writers.close()
        finally:
            self._forget_dirs(settle=False)
            os.close(self.root)

    def settle(self) -> None:
        """Wait until every file handed to the writers is written (or raise the
        refusal of the first that failed)."""
        if self.writers is not None and self.handed:
            self.writers.wait()

    def refuse(self, problem: str, name: str | None = None) -> InvalidArgument:
        entry = self.name if name is None else name
        return InvalidArgument(f"{self.label}: entry {entry!r}: {problem}",
                               layer=self.label, entry=entry)

    def _forget_dirs(self, settle: bool = True) -> None:
        if settle:
            self.settle()  # the writers use these descriptors
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()

    def entry(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        """Apply one archive entry."""
        self.name = member.name
        self.count += 1
        self.member_offset = member.offset
        if self.recorder is not None:
            self.recorder.watermark = member.offset  # type: ignore[attr-defined]
        parts = self._parts(member.name)
        if not parts:
            return  # the layer root itself: the snapshot dir keeps its own metadata
        try:
            self._apply(parts, member, archive)
        except InvalidArgument:
            raise
        except (EOFError, tarfile.TarError) as exc:
            raise self.refuse(f"truncated archive: {exc}") from exc
        except OSError as exc:
            raise self.refuse(os.strerror(exc.errno) if exc.errno else str(exc)) from exc
        except ValueError as exc:  # a NUL byte in a (PAX) name or link target
            raise self.refuse(str(exc)) from exc

    def _parts(self, name: str) -> list[str]:
        parts = _clean(name)
        if ".." in parts:
            raise self.refuse("'..' in path")
        return parts

    def _apply(self, parts: list[str], member: tarfile.TarInfo,
               archive: tarfile.TarFile) -> None:
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, member)
            return
        parent = self.dir_fd(parts[:-1], create=True)
        self._clear_way(parent, parts, member)
        self.made.add("/".join(parts))
        if member.isreg():
            self._file(parent, parts, member, archive)
        elif member.isdir():
            self._dir(parent, parts, member)
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=parent)
            self._own(parent, base, member)
            os.utime(base, ns=_ns(member), dir_fd=parent, follow_symlinks=False)
        elif member.islnk():
            self._hardlink(parent, base, member)
        elif member.ischr() or member.isblk() or member.isfifo():
            self._node(parent, base, member)
        else:
            raise self.refuse(f"unsupported entry type {member.type!r}")

    def dir_fd(self, parts: list[str], create: bool) -> int:
        """An fd of the directory at `parts`, never through a symlink; made if `create`."""
        if parts:
            cached = self.dirs.get(tuple(parts))
            if cached is not None:
                return cached
        fd = self.root
        for i, component in enumerate(parts):
            key = tuple(parts[:i + 1])
            cached = self.dirs.get(key)
            if cached is not None:
                fd = cached
                continue
            fd = self._open_dir(fd, component, parts[:i + 1], create)
            if len(self.dirs) >= _MAX_CACHED_DIRS:
                self._forget_dirs()
            self.dirs[key] = fd
        return fd

    def _open_dir(self, parent: int, component: str, path: list[str], create: bool) -> int:
        if "/".join(path) in self.handed:
            self.settle()
        try:
            return os.open(component, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise self.refuse(f"{'/'.join(path)} does not exist in this layer") from None
            os.mkdir(component, 0o755, dir_fd=parent)
            self.made.add("/".join(path))
            return os.open(component, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            st = os.lstat(component, dir_fd=parent)
            what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise self.refuse(f"path goes through {'/'.join(path)}, which is {what}") from None

    def _clear_way(self, parent: int, parts: list[str], member: tarfile.TarInfo) -> None:
        """Remove what an entry replaces; refuse symlink <-> directory swaps."""
        path = "/".join(parts)
        if self.fresh and path not in self.made:
            return  # nothing there to replace (see `made`)
        if path in self.handed:
            self.settle()
        try:
            st = os.lstat(parts[-1], dir_fd=parent)
        except FileNotFoundError:
            return
        old_dir, old_link = stat.S_ISDIR(st.st_mode), stat.S_ISLNK(st.st_mode)
        if old_link and member.isdir():
            raise self.refuse("replaces a symlink placed earlier with a directory")
        if old_dir and member.issym():
            raise self.refuse("replaces a directory placed earlier with a symlink")
        if old_dir and member.isdir():
            return
        self._remove(parent, parts, st)

    def _remove(self, parent: int, parts: list[str], st: os.stat_result) -> None:
        self.settle()  # a tree removed may hold files the writers are making
        self._unreproducible()  # a file (or a tree of them) made earlier may be gone
        if stat.S_ISDIR(st.st_mode):
            self._forget_dirs()
            _remove_tree_at(parent, parts[-1])
        else:
            os.unlink(parts[-1], dir_fd=parent)

    def _file(self, parent: int, parts: list[str], member: tarfile.TarInfo,
              archive: tarfile.TarFile) -> None:
        base = parts[-1]
        if member.size > self.budget:
            raise self.refuse(f"size {member.size} bytes exceeds the {self.budget} bytes "
                              "this layer may still use")
        self.budget -= member.size
        xattrs = self._xattrs(member)
        if self.files is not None:
            if member.sparse is not None:
                self._unreproducible()  # its data in the tar is not the file's bytes
            elif member.size:
                self.files.append((member.offset_data, member.size, "/".join(parts)))
        if self.writers is not None and member.sparse is None and member.size <= _HANDED_OFF:
            self.reader.seek(member.offset_data)
            data = _read_pieces(self.reader, member.size)
            self.handed.add("/".join(parts))
            self.writers.submit((self.name, parent, base, data, member, xattrs,
                                 self._create_mode(member)), member.size)
            return
        mode = self._create_mode(member)
        fd = os.open(base, _FILE_FLAGS, _UNFINISHED_MODE if mode is None else mode,
                     dir_fd=parent)
        try:
            if member.sparse is not None:
                _copy(archive.extractfile(member), fd, member.size)
            else:
                self.reader.seek(member.offset_data)
                _copy(self.reader, fd, member.size, self._copied)  # type: ignore[arg-type]
            self._finish_file(fd, member, xattrs, mode)
        finally:
            os.close(fd)

    def _copied(self) -> None:
        """A big file's data written so far needs no keeping by the recorder."""
        if self.recorder is not None:
            self.recorder.watermark = self.reader.position  # type: ignore[attr-defined]

    def _unreproducible(self) -> None:
        """From this entry on, the files may not make the tar (see Applied.files)."""
        if self.files is None:
            return
        if self.recorder is not None:
            self.settle()  # the files so far are read back to make the blob
            self.recorder.switch(self.member_offset, self.root)  # type: ignore[attr-defined]
        self.files = None

    def _create_mode(self, member: tarfile.TarInfo) -> int | None:
        """The mode to create a regular file with where that is the mode it will have
        (see `modes_as_made`); None: create it 0600, `_finish_file` fchmods it."""
        mode = member.mode & 0o7777
        if self.modes_as_made and not mode & (0o7000 | self.umask):  # type: ignore[operator]
            return mode
        return None

    def write_file(self, parent: int, base: str, data: list, member: tarfile.TarInfo,
                   xattrs: list[tuple[str, bytes]], mode: int | None) -> None:
        """Create and fill a file read earlier (a writer thread's part of `_file`)."""
        fd = os.open(base, _FILE_FLAGS, _UNFINISHED_MODE if mode is None else mode,
                     dir_fd=parent)
        try:
            for piece in data:
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view):]
            self._finish_file(fd, member, xattrs, mode)
        finally:
            os.close(fd)

    def _finish_file(self, fd: int, member: tarfile.TarInfo,
                     xattrs: list[tuple[str, bytes]], mode: int | None) -> None:
        if not (self.born_root and member.uid == 0 and member.gid == 0):
            self._own_fd(fd, member)  # a chown leaves the permission bits as they are
        if mode is None:
            os.fchmod(fd, member.mode & 0o7777)
        for name, value in xattrs:
            os.setxattr(fd, name, value)
        os.utime(fd, ns=_ns(member))

    def _dir(self, parent: int, parts: list[str], member: tarfile.TarInfo) -> None:
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent)
            made = True
        except FileExistsError:
            made = False  # by an earlier entry, or as a parent: it may have another owner
        fd = self.dir_fd(parts, create=False)
        if not (made and self.born_root and member.uid == 0 and member.gid == 0):
            self._own_fd(fd, member)
        self._dir_xattrs(fd, member)
        # Mode and times last: a read-only dir must still take its children,
        # and writing children would change its mtime.
        self.deferred_dirs.append((parts, member))

    def _hardlink(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        target = self._parts_of_link(member.linkname)
        if not target:
            raise self.refuse(f"hard link to the layer root {member.linkname!r}")
        missing = self.refuse(f"hard link target {member.linkname!r} is not in this layer")
        if "/".join(target) in self.handed:
            self.settle()
        try:
            tparent = self.dir_fd(target[:-1], create=False)
        except InvalidArgument as exc:
            raise (missing if "does not exist" in exc.message else exc) from None
        try:
            st = os.lstat(target[-1], dir_fd=tparent)
        except FileNotFoundError:
            raise missing from None
        if stat.S_ISDIR(st.st_mode):
            raise self.refuse(f"hard link to a directory {member.linkname!r}")
        os.link(target[-1], base, src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)

    def _parts_of_link(self, linkname: str) -> list[str]:
        parts = _clean(linkname)
        if ".." in parts:
            raise self.refuse(f"hard link target {linkname!r} has '..'")
        return parts

    def _node(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else \
            stat.S_IFIFO
        os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                 dir_fd=parent)
        self._own(parent, base, member)
        os.chmod(base, member.mode & 0o7777, dir_fd=parent)
        self._xattrs_path(parent, base, member)
        os.utime(base, ns=_ns(member), dir_fd=parent, follow_symlinks=False)

    def _whiteout(self, parts: list[str], member: tarfile.TarInfo) -> None:
        self.settle()
        base = parts[-1]
        parent_parts = parts[:-1]
        parent = self.dir_fd(parent_parts, create=True)
        if base == OPAQUE_MARKER:
            os.setxattr(_proc_path(parent), _OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_PREFIX * 2):
            return  # other aufs metadata (.wh..wh.plnk and the like) has no overlay meaning
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise self.refuse("whiteout of no name")
        try:
            self._remove(parent, parent_parts + [hidden], os.lstat(hidden, dir_fd=parent))
        except FileNotFoundError:
            pass
        os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)
        self.made.add("/".join(parent_parts + [hidden]))
        self._own(parent, hidden, member)

    def _own(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        if self.as_root:
            os.chown(base, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)

    def _own_fd(self, fd: int, member: tarfile.TarInfo) -> None:
        if self.as_root:
            os.fchown(fd, member.uid, member.gid)

    def _xattrs(self, member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
        out = []
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR_PREFIX):
                continue
            name = key[len(_XATTR_PREFIX):]
            if name.startswith("trusted.overlay."):
                raise self.refuse(f"sets overlay's own xattr {name}")
            out.append((name, value.encode("utf-8", "surrogateescape")))
        return out

    def _dir_xattrs(self, fd: int, member: tarfile.TarInfo) -> None:
        for name, value in self._xattrs(member):
            if name == _DEFAULT_ACL and self.modes_as_made:
                # New files below take their modes from this ACL from now on: the
                # ones handed off are made first, and later ones get their fchmod.
                self.settle()
                self.modes_as_made = False
            os.setxattr(fd, name, value)

    def _xattrs_path(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        for name, value in self._xattrs(member):
            os.setxattr(f"{_proc_path(parent)}/{base}", name, value, follow_symlinks=False)

    def finish(self) -> None:
        """Set directory modes and times, deepest first, once their children are in."""
        self.settle()
        self.name = ""
        for parts, member in sorted(self.deferred_dirs, key=lambda d: -len(d[0])):
            try:
                fd = self.dir_fd(parts, create=False)
            except InvalidArgument:
                continue  # removed or replaced later in the archive
            os.fchmod(fd, member.mode & 0o7777)
            os.utime(fd, ns=_ns(member))


def _ns(member: tarfile.TarInfo) -> tuple[int, int]:
    mtime = int(member.mtime * 1_000_000_000)
    return mtime, mtime


class _Writers:
    """Threads that create, fill and close the extractor's small regular files
    while its own thread reads the next headers: the kernel's part of making a
    file (allocating the inode, copying the data) runs without the GIL, so it
    overlaps with the parsing. The first failure is kept, as the refusal naming
    its entry, and raised by the next `submit` or `wait`; files handed over
    after it are skipped. Files are handed over in batches (up to 16 files or
    1 MiB), which wakes a writer once per batch rather than once per file."""

    def __init__(self, extractor: "_Extractor", count: int) -> None:
        self.extractor = extractor
        self.jobs: queue.Queue = queue.Queue(_QUEUED)
        self.failure: InvalidArgument | None = None
        self.stopping = False
        self.batch: list[tuple] = []
        self.batched = 0
        self.threads = [threading.Thread(target=self._run, name=f"layer-writer-{i}", daemon=True)
                        for i in range(count)]
        for thread in self.threads:
            thread.start()

    def submit(self, job: tuple, size: int) -> None:
        if self.failure is not None:
            raise self.failure
        self.batch.append(job)
        self.batched += size
        if len(self.batch) >= _BATCH_FILES or self.batched >= _BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self.batch:
            self.jobs.put(self.batch)
            self.batch, self.batched = [], 0

    def wait(self) -> None:
        self._flush()
        self.jobs.join()
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        """Stop the threads: files not written yet are skipped."""
        self.stopping = True
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()

    def _run(self) -> None:
        while True:
            batch = self.jobs.get()
            try:
                if batch is None:
                    return
                for job in batch:
                    if self.failure is not None or self.stopping:
                        break
                    self._write(*job)
            finally:
                self.jobs.task_done()

    def _write(self, name: str, *job: object) -> None:
        ex = self.extractor
        try:
            ex.write_file(*job)  # type: ignore[arg-type]
        except OSError as exc:
            self.failure = ex.refuse(os.strerror(exc.errno) if exc.errno else str(exc), name)
        except ValueError as exc:
            self.failure = ex.refuse(str(exc), name)
        except BaseException as exc:  # noqa: BLE001 - raised in the extracting thread
            self.failure = ex.refuse(f"not written: {exc!r}", name)


def _read_pieces(reader: HashingReader, size: int) -> list:
    """`size` bytes of `reader`, as the pieces it gives (views of what a read-ahead
    thread read, where it lends them: no copy)."""
    read = getattr(reader, "readview", None) or reader.read
    pieces, left = [], size
    while left > 0:
        piece = read(min(_CHUNK, left))
        if not piece:
            raise EOFError("unexpected end of data")
        pieces.append(piece)
        left -= len(piece)
    return pieces


def _has_default_acl(fd: int) -> bool:
    try:
        os.getxattr(fd, _DEFAULT_ACL)
    except OSError as exc:
        return exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP)
    return True


def _umask() -> int | None:
    """The process's umask, read without setting it (other threads may be making files
    meanwhile); None if the kernel does not say."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _proc_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _copy(source: BinaryIO | None, fd: int, size: int, copied=None) -> None:
    left = size
    # A reader that can lend a view of what it read ahead saves copying each piece.
    read = getattr(source, "readview", None) or getattr(source, "read", None)
    while left > 0 and read is not None:
        chunk = read(min(_CHUNK, left))
        if not chunk:
            raise EOFError("unexpected end of data")
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
        left -= len(chunk)
        if copied is not None:
            copied()


def _remove_tree_at(parent: int, name: str) -> None:
    """Remove a directory tree below an fd, never following a symlink."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    try:
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                _remove_tree_at(fd, entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)
