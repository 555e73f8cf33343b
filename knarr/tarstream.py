"""Tar streams for `cp`: written with sendfile, read with splice, extracted through fds.

`write_tree` emits a file-system tree as a PAX tar onto a file descriptor, file
bodies moved by the kernel (sendfile), never by Python. `extract` reads a tar
stream and creates every member relative to a directory fd, walking each
member's parent one component at a time with O_NOFOLLOW: a member can never
land outside that directory, whatever symlinks the archive or a concurrent
process put in the way, and nothing is done by path string from the root.
Shared by the engine (inside the container's root) and the CLI (on the host),
so it sits on the floor beside `fastjson`; `tarfile` is imported only here,
for its header codec.
"""

import errno
import fcntl
import os
import stat
import struct
import zlib

__all__ = ["write_tree", "extract", "Source", "TarError", "ustar_header", "read_header"]

_BLOCK = 512
_FLUSH = 1 << 20  # the gathered headers and small files are written out at this size
_SMALL = 1 << 16  # files up to this size are read into that buffer, bigger ones sendfile'd
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class TarError(Exception):
    """A malformed archive or a member that cannot be placed."""


# -- writing ------------------------------------------------------------------


class _Out:
    """Headers and small files gathered in one buffer (a small file is read straight into
    it), big file bodies sent by sendfile. `chunked` frames everything as HTTP/1.1 chunks
    (a request body written straight into the socket)."""

    def __init__(self, fd: int, chunked: bool = False) -> None:
        self.fd, self.chunked = fd, chunked
        self.buf = bytearray(_FLUSH + _SMALL + 3 * _BLOCK)
        self.view = memoryview(self.buf)
        self.used = 0

    def write(self, data: bytes) -> None:
        end = self.used + len(data)
        if end > len(self.buf):
            self.flush()
            end = len(data)
            if end > len(self.buf):
                _write_all(self.fd, (b"%x\r\n" % end + data + b"\r\n") if self.chunked
                           else data)
                return
        self.view[self.used:end] = data
        self.used = end
        if end >= _FLUSH:
            self.flush()

    def flush(self) -> None:
        if not self.used:
            return
        data = self.view[:self.used]
        if self.chunked:
            _writev_all(self.fd, [b"%x\r\n" % self.used, data, b"\r\n"])
        else:
            _write_all(self.fd, data)
        self.used = 0

    def file(self, fd: int, size: int) -> None:
        """The body of the open file `fd`, `size` bytes (zeros where it shrank since), and
        its padding to the next block."""
        padded = size + (-size % _BLOCK)
        if size <= _SMALL:
            if self.used + padded > len(self.buf):
                self.flush()
            start = self.used
            got = os.readv(fd, [self.view[start:start + size]]) if size else 0
            while 0 < got < size:  # readv of a regular file is short only at its end
                more = os.readv(fd, [self.view[start + got:start + size]])
                if not more:
                    break
                got += more
            self.view[start + got:start + padded] = bytes(padded - got)
            self.used = start + padded
            if self.used >= _FLUSH:
                self.flush()
            return
        self.flush()
        if self.chunked:
            _write_all(self.fd, b"%x\r\n" % size)
        offset = 0
        while offset < size:
            sent = os.sendfile(self.fd, fd, offset, size - offset)
            if sent == 0:
                break
            offset += sent
        if offset < size:  # the file shrank: zeros, inside the chunk announced
            _write_all(self.fd, bytes(size - offset))
        if self.chunked:
            _write_all(self.fd, b"\r\n")
        self.write(bytes(padded - size))


def _writev_all(fd: int, parts: list) -> None:
    total = sum(len(p) for p in parts)
    done = os.writev(fd, parts)
    if done < total:  # a short write (a signal): the rest piece by piece
        for part in parts:
            if done >= len(part):
                done -= len(part)
                continue
            _write_all(fd, memoryview(part)[done:])
            done = 0


_TYPES = {stat.S_IFREG: b"0", stat.S_IFDIR: b"5", stat.S_IFLNK: b"2", stat.S_IFCHR: b"3",
          stat.S_IFBLK: b"4", stat.S_IFIFO: b"6"}
_MAGIC = b"ustar\x0000"


def _header(name: str, st: os.stat_result, link: str = "", size: int = 0) -> bytes:
    """The header block(s) of one member: a plain ustar block when everything fits one
    (the common case, made here), else tarfile's PAX header sequence. `link` is a hard
    link's target or a symlink's; `size` a regular file's. Byte for byte what tarfile
    writes in PAX format."""
    kind = stat.S_IFMT(st.st_mode)
    typ = b"1" if link and kind == stat.S_IFREG else _TYPES[kind]
    mtime = int(st.st_mtime)
    try:
        name_b, link_b = name.encode("ascii"), link.encode("ascii")
    except UnicodeEncodeError:
        name_b = link_b = b""
    if (0 < len(name_b) <= 100 and len(link_b) <= 100 and 0 <= st.st_uid < 0o7777777 and
            0 <= st.st_gid < 0o7777777 and size < 0o77777777777 and
            0 <= mtime < 0o77777777777 and typ not in (b"3", b"4")):
        block = b"".join((
            name_b.ljust(100, b"\0"),
            b"%07o\0%07o\0%07o\0%011o\0%011o\0        " % (
                stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, mtime),
            typ, link_b.ljust(100, b"\0"), _MAGIC, bytes(247)))
        return b"%s%06o\0 %s" % (block[:148], sum(block), block[156:])
    return _tar_header(name, st, typ, link, size)


def _tar_header(name: str, st: os.stat_result, typ: bytes, link: str, size: int) -> bytes:
    import tarfile

    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    info.mtime, info.type, info.linkname, info.size = int(st.st_mtime), typ, link, size
    if typ in (b"3", b"4"):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def write_tree(out_fd: int, dir_fd: int, name: str, arcname: str, follow: bool = False,
               chunked: bool = False) -> None:
    """Archive `name` (relative to `dir_fd`, a directory or any other file) as `arcname`
    onto `out_fd`, then the two zero blocks; `follow` dereferences `name` itself;
    `chunked` frames the stream as HTTP chunks (without the final empty one)."""
    out = _Out(out_fd, chunked)
    seen: dict[tuple[int, int], str] = {}
    _write_entry(out, dir_fd, name, arcname, seen, follow)
    out.write(bytes(_BLOCK * 2))
    out.flush()


def _write_entry(out: _Out, dir_fd: int, name: str, arcname: str, seen: dict,
                 follow: bool = False, regular: bool = False) -> None:
    """One member and, for a directory, everything under it. `regular`: the directory
    listing says `name` is a regular file, so it is opened without a stat first."""
    if regular:
        _write_file(out, dir_fd, name, arcname, seen, follow)
        return
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=follow)
    except FileNotFoundError:
        return  # removed while we walked
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFREG:
        _write_file(out, dir_fd, name, arcname, seen, follow)
    elif kind == stat.S_IFLNK:
        out.write(_header(arcname, st, os.readlink(name, dir_fd=dir_fd)))
    elif kind == stat.S_IFDIR:
        out.write(_header(arcname.rstrip("/") + "/", st))
        flags = _O_DIR & ~os.O_NOFOLLOW if follow else _O_DIR
        sub = os.open(name, flags, dir_fd=dir_fd)
        try:
            with os.scandir(sub) as listing:
                entries = sorted((e.name, e.is_file(follow_symlinks=False)) for e in listing)
            prefix = "" if arcname in ("", ".") else arcname.rstrip("/") + "/"
            for entry, is_file in entries:
                _write_entry(out, sub, entry, prefix + entry, seen, regular=is_file)
        finally:
            os.close(sub)
    elif kind in _TYPES:  # devices and fifos; sockets are not archived
        out.write(_header(arcname, st))


def _write_file(out: _Out, dir_fd: int, name: str, arcname: str, seen: dict,
                follow: bool) -> None:
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(name, flags | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            return  # removed, or swapped for a symlink, while we walked
        raise
    try:
        st = os.fstat(fd)  # what is open now, not what was listed
        if not stat.S_ISREG(st.st_mode):
            return  # swapped for something else while we walked
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen:
                out.write(_header(arcname, st, seen[key]))
                return
            seen[key] = arcname
        out.write(_header(arcname, st, size=st.st_size))
        out.file(fd, st.st_size)
    finally:
        os.close(fd)


# -- reading ------------------------------------------------------------------


class _Framed:
    """An HTTP request body on a socket, its framing (chunked, or a length) taken off;
    file data inside a chunk can be spliced straight from the socket."""

    def __init__(self, fd: int, raw: bytes, length: int | None) -> None:
        self.fd, self.raw = fd, raw
        self.chunked = length is None
        self.left = length or 0  # data bytes left in the current chunk
        self.crlf = False  # a chunk's closing CRLF is next
        self.done = length == 0

    def _fill(self) -> None:
        piece = os.read(self.fd, 65536)
        if not piece:
            raise TarError("the request body ended early")
        self.raw += piece

    def _line(self) -> bytes:
        while b"\r\n" not in self.raw:
            self._fill()
        line, _, self.raw = self.raw.partition(b"\r\n")
        return line

    def _next_chunk(self) -> bool:
        if not self.chunked or self.done:
            self.done = True
            return False
        if self.crlf:
            self._line()
            self.crlf = False
        size = int(self._line().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while self._line():  # trailers
                pass
            self.done = True
            return False
        self.left = size
        return True

    def more(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        if self.left == 0 and not self._next_chunk():
            return b""
        if not self.raw:
            self.raw = os.read(self.fd, min(self.left, 1 << 20))
            if not self.raw:
                raise TarError("the request body ended early")
        piece, self.raw = self.raw[:self.left], self.raw[self.left:]
        self.took(len(piece))
        return piece

    def budget(self) -> int:
        """How many body bytes may be spliced from the socket now (0: read instead)."""
        return 0 if self.raw else self.left

    def took(self, count: int) -> None:
        """`count` body bytes went by splice (or `more`)."""
        self.left -= count
        if self.left == 0:
            self.crlf = self.chunked
            self.done = not self.chunked


class Source:
    """A tar stream from a file descriptor (a pipe is spliced from), an HTTP body on a
    socket (`framing`: (bytes already read, its length or None for chunked)) or an
    iterator of byte chunks."""

    def __init__(self, fd: int | None = None, chunks=None, initial: bytes = b"",
                 framing: tuple[bytes, int | None] | None = None) -> None:
        self.fd, self.chunks = fd, chunks
        self.buf, self.pos = initial, 0
        self.framed = _Framed(fd, *framing) if framing is not None else None
        mode = os.fstat(fd).st_mode if fd is not None else 0
        self.pipe = stat.S_ISFIFO(mode)
        self.sock = stat.S_ISSOCK(mode)
        self.relay: tuple[int, int] | None = None  # a pipe to splice a socket through

    def _more(self) -> bytes:
        if self.framed is not None:
            return self.framed.more()
        if self.fd is not None:
            return os.read(self.fd, 1 << 20)
        return next(self.chunks, b"")

    def read(self, size: int) -> bytes:
        """Exactly `size` bytes, or fewer at the end of the stream."""
        while len(self.buf) - self.pos < size:
            more = self._more()
            if not more:
                break
            self.buf = self.buf[self.pos:] + more
            self.pos = 0
        data = self.buf[self.pos:self.pos + size]
        self.pos += len(data)
        return data

    def copy_to(self, fd: int, size: int) -> None:
        """Move the next `size` bytes into `fd` (or drop them when fd is -1)."""
        held = min(size, len(self.buf) - self.pos)
        if held:
            if fd >= 0:
                _write_all(fd, memoryview(self.buf)[self.pos:self.pos + held])
            self.pos += held
            size -= held
        while size > 0:
            if self.pipe and fd >= 0:
                moved = os.splice(self.fd, fd, size)
                if moved == 0:
                    raise TarError("archive ended in the middle of a file")
                size -= moved
                continue
            budget = self.framed.budget() if self.framed is not None else size
            if self.sock and fd >= 0 and budget:
                moved = self._splice_socket(fd, min(size, budget))
                if self.framed is not None:
                    self.framed.took(moved)
                size -= moved
                continue
            more = self._more()
            if not more:
                raise TarError("archive ended in the middle of a file")
            use = more[:size]
            if fd >= 0:
                _write_all(fd, use)
            size -= len(use)
            if len(more) > len(use):
                self.buf, self.pos = more, len(use)


    def _splice_socket(self, fd: int, size: int) -> int:
        """Socket → pipe → file without the bytes entering Python; the bytes moved."""
        if self.relay is None:
            self.relay = os.pipe2(os.O_CLOEXEC)
            try:
                fcntl.fcntl(self.relay[1], 1031, 1 << 20)  # F_SETPIPE_SZ
            except OSError:
                pass
        moved = os.splice(self.fd, self.relay[1], min(size, 1 << 20))
        if moved == 0:
            raise TarError("archive ended in the middle of a file")
        left = moved
        while left:
            left -= os.splice(self.relay[0], fd, left)
        return moved

    def close(self) -> None:
        """Close the relay pipe, if one was made."""
        if self.relay is not None:
            for end in self.relay:
                os.close(end)
            self.relay = None


def _write_all(fd: int, data) -> None:
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:])


def _pax_records(data: bytes) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        out[key.decode()] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


# name, (mode, uid, gid), size, mtime, chksum, type, linkname, (magic, version),
# (uname, gname), (devmajor, devminor), prefix, (padding)
_USTAR_READ = struct.Struct("100s24s12s12s8sc100s8x64s16s155s12x")
_USTAR_MAGICS = (b"ustar\0", b"ustar ")
# The numbers of (mode, uid, gid) and (devmajor, devminor) fields, and the (uname, gname)
# texts, seen before, by their bytes: an archive's entries mostly share a few of each.
_KNOWN_NUMBERS: dict[bytes, tuple[int, ...]] = {}
_KNOWN_OWNERS: dict[tuple[bytes, str, str], tuple[str, str]] = {}
_KNOWN_MAX = 4096


def read_header(buf: bytes, encoding: str = "utf-8", errors: str = "surrogateescape",
                cls=None):
    """The TarInfo (of class `cls`, tarfile's by default) that tarfile's `frombuf` makes of
    a header block, read quicker for the usual header (ustar, pax or GNU magic, number
    fields in octal, the unsigned checksum, not old-GNU sparse): one struct unpack and a
    byte sum, where tarfile slices and sums field by field. Any other header, and any
    field this reading does not accept, goes to tarfile's own `frombuf`, so that the
    result, or the error, is always tarfile's. Shared by `extract` and the layer
    extractor (knarr.snapshots.apply)."""
    import tarfile

    cls = cls or tarfile.TarInfo
    if len(buf) != tarfile.BLOCKSIZE or buf[257:263] not in _USTAR_MAGICS \
            or buf[156:157] == tarfile.GNUTYPE_SPARSE:
        return tarfile.TarInfo.frombuf.__func__(cls, buf, encoding, errors)
    (name, ids, size, mtime, chksum, type_, linkname, owners, devices,
     prefix) = _USTAR_READ.unpack(buf)
    try:
        chksum = _octal(chksum)
        if chksum != 256 + _byte_sum(buf) - sum(buf[148:156]):
            raise ValueError("not the unsigned checksum")
        obj = cls()
        obj.mode, obj.uid, obj.gid = _octals(ids)
        obj.size, obj.mtime = _octal(size), _octal(mtime)
        obj.devmajor, obj.devminor = _octals(devices)
    except ValueError:
        return tarfile.TarInfo.frombuf.__func__(cls, buf, encoding, errors)
    obj.chksum = chksum
    obj.type = type_
    obj.name = _text(name, encoding, errors)
    obj.linkname = _text(linkname, encoding, errors) if linkname[0] else ""
    obj.uname, obj.gname = _owner_names(owners, encoding, errors)
    if type_ == tarfile.AREGTYPE and obj.name.endswith("/"):
        obj.type = tarfile.DIRTYPE  # the old V7 form of a directory
    if obj.isdir():
        obj.name = obj.name.rstrip("/")
    prefix = _text(prefix, encoding, errors) if prefix[0] else ""
    if prefix and obj.type not in tarfile.GNU_TYPES:
        obj.name = prefix + "/" + obj.name
    return obj


def _byte_sum(block: bytes) -> int:
    """The sum of a 512-byte block's bytes: the low half of the Adler-32 of each half
    block is 1 + the sum of its bytes (at most 256 * 255, below the modulus 65521)."""
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def _octals(fields: bytes) -> tuple[int, ...]:
    """The 8-byte number fields packed in `fields`, read by `_octal` (remembered)."""
    known = _KNOWN_NUMBERS.get(fields)
    if known is None:
        known = tuple(_octal(fields[i:i + 8]) for i in range(0, len(fields), 8))
        if len(_KNOWN_NUMBERS) < _KNOWN_MAX:
            _KNOWN_NUMBERS[fields] = known
    return known


def _owner_names(fields: bytes, encoding: str, errors: str) -> tuple[str, str]:
    """The uname and gname fields packed in `fields`, read by `_text` (remembered)."""
    key = (fields, encoding, errors)
    known = _KNOWN_OWNERS.get(key)
    if known is None:
        known = (_text(fields[:32], encoding, errors), _text(fields[32:], encoding, errors))
        if len(_KNOWN_OWNERS) < _KNOWN_MAX:
            _KNOWN_OWNERS[key] = known
    return known


def _octal(field: bytes) -> int:
    """A number field as tarfile reads it when it is octal text; ValueError for anything
    else (base-256, or text int() reads otherwise than tarfile does), which the caller
    leaves to tarfile."""
    if field[0] in (0o200, 0o377):
        raise ValueError("base-256 number")
    end = field.find(b"\0")
    return int((field if end < 0 else field[:end]).strip(b" ") or b"0", 8)


def _text(field: bytes, encoding: str, errors: str) -> str:
    end = field.find(b"\0")
    return (field if end < 0 else field[:end]).decode(encoding, errors)


def _members(src: Source):
    """(TarInfo, raw size) of each member; long names and PAX records applied."""
    import tarfile

    pax: dict[str, str] = {}
    long_name = long_link = None
    while True:
        block = src.read(_BLOCK)
        if len(block) < _BLOCK or block == bytes(_BLOCK):
            return
        try:
            info = read_header(block)
        except tarfile.HeaderError as exc:
            raise TarError(f"bad tar header: {exc}") from None
        padded = info.size + (-info.size % _BLOCK)
        if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME,
                         tarfile.GNUTYPE_LONGLINK):
            data = src.read(padded)[:info.size]
            if info.type == tarfile.XHDTYPE:
                pax.update(_pax_records(data))
            elif info.type == tarfile.GNUTYPE_LONGNAME:
                long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            elif info.type == tarfile.GNUTYPE_LONGLINK:
                long_link = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            continue
        info.name = pax.get("path", long_name or info.name)
        info.linkname = pax.get("linkpath", long_link or info.linkname)
        for key, attr, kind in (("size", "size", int), ("uid", "uid", int),
                                ("gid", "gid", int), ("mtime", "mtime", float)):
            if key in pax:
                setattr(info, attr, kind(pax[key]))
        pax, long_name, long_link = {}, None, None
        yield info  # the consumer reads a regular file's body and its padding


def _parts(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise TarError(f"{name!r} is outside of the destination")
    return parts


def _open_parent(dest_fd: int, parts: list[str]) -> int:
    """The fd of the directory holding parts[-1], walked without following symlinks;
    missing directories are made (0755)."""
    fd = os.dup(dest_fd)
    for part in parts[:-1]:
        try:
            nxt = os.open(part, _O_DIR, dir_fd=fd)
        except FileNotFoundError:
            os.mkdir(part, 0o755, dir_fd=fd)
            nxt = os.open(part, _O_DIR, dir_fd=fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise TarError(f"{'/'.join(parts)}: {part} is not a directory") from None
            raise
        os.close(fd)
        fd = nxt
    return fd


def extract(src: Source, dest_fd: int, *, chown=True, rename: tuple[str, str] | None = None,
            no_overwrite_dir_nondir: bool = False, in_place=False) -> None:
    """Create every member of the archive under the directory `dest_fd`.

    `chown`: True keeps the archive's owners, False leaves them to the caller, a
    (uid, gid) pair gives every file that owner. `rename` = (old, new) renames the
    archive's top entry, as `cp` does when the destination does not exist.
    `in_place`: a regular file already there (one link, ours) is rewritten in place,
    as GNU cp does, rather than unlinked and made anew: its blocks are reused, not
    freed (with ext4's discard, freeing a written-back file's blocks is the most
    expensive thing an overwriting copy does). Not for an overlay, where writing a
    lower file copies all of it up first: there `in_place` is a test(parts, stat) of
    whether the file there (parts relative to `dest_fd`) may be rewritten."""
    dirs: list[tuple[list[str], object]] = []
    # the directory the last regular file went into, kept open for the files after it:
    # a file member never changes which directory a path names (any other kind drops it)
    held: tuple[list[str] | None, int] = (None, -1)
    try:
        for info in _members(src):
            info.name = _renamed(info.name, rename)
            if info.islnk():
                info.linkname = _renamed(info.linkname, rename)
            parts = _parts(info.name)
            if not parts:
                if info.isdir():
                    _set_attrs(dest_fd, None, info, chown)
                elif info.isreg():
                    src.copy_to(-1, info.size + (-info.size % _BLOCK))
                continue
            regular = info.isreg()
            if regular and held[0] == parts[:-1]:
                parent = held[1]
            else:
                if held[1] >= 0:
                    os.close(held[1])
                held = (None, -1)
                parent = _open_parent(dest_fd, parts)
            try:
                _place(src, parent, parts, info, dest_fd, chown, no_overwrite_dir_nondir,
                       in_place)
            except BaseException:
                if parent != held[1]:
                    os.close(parent)
                raise
            if regular:
                held = (parts[:-1], parent)
            else:
                os.close(parent)
            if info.isdir():
                dirs.append((parts, info))
    finally:
        if held[1] >= 0:
            os.close(held[1])
    for parts, info in reversed(dirs):  # times after the contents are in
        try:
            parent = _open_parent(dest_fd, parts)
        except (TarError, OSError):
            continue
        try:
            _set_attrs(parent, parts[-1], info, chown, times_only=True)
        finally:
            os.close(parent)


def _renamed(name: str, rename: tuple[str, str] | None) -> str:
    if rename and (name.rstrip("/") == rename[0] or name.startswith(rename[0] + "/")):
        return rename[1] + name.rstrip("/")[len(rename[0]):]
    return name


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _clear(parent: int, name: str, info, no_overwrite_dir_nondir: bool, st) -> None:
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        if info.isdir():
            return
        if no_overwrite_dir_nondir:
            raise TarError(f"cannot overwrite directory {name!r} with non-directory")
        _rmtree_at(parent, name)
        return
    if info.isdir() and no_overwrite_dir_nondir:
        raise TarError(f"cannot overwrite non-directory {name!r} with directory")
    os.unlink(name, dir_fd=parent)


def _rmtree_at(parent: int, name: str) -> None:
    fd = os.open(name, _O_DIR, dir_fd=parent)
    try:
        for entry in os.listdir(fd):
            if stat.S_ISDIR(os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode):
                _rmtree_at(fd, entry)
            else:
                os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)


def _open_in_place(parent: int, name: str, st, chown) -> int | None:
    """An fd to rewrite the regular file `name` through, or None when it must be replaced:
    another link shares it, it is not ours (without a chown to come), or it cannot be
    opened for writing (a running program, a read-only mode for a non-root caller)."""
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        return None
    if not chown and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        return None  # a new file would be the caller's
    try:
        return os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError:
        return None


def _place(src: Source, parent: int, parts: list[str], info, dest_fd: int, chown,
           no_overwrite_dir_nondir: bool, in_place=False) -> None:
    name = parts[-1]
    st = _lstat(parent, name)
    if in_place and st is not None and info.isreg() and (in_place is True or
                                                          in_place(parts, st)):
        fd = _open_in_place(parent, name, st, chown)
        if fd is not None:
            try:
                src.copy_to(fd, info.size)
                src.copy_to(-1, -info.size % _BLOCK)
                if st.st_size > info.size:
                    os.ftruncate(fd, info.size)
                _set_attrs_fd(fd, info, chown)
            finally:
                os.close(fd)
            return
    _clear(parent, name, info, no_overwrite_dir_nondir, st)
    if info.isdir():
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            pass
        _set_attrs(parent, name, info, chown)
    elif info.isreg():
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        try:
            src.copy_to(fd, info.size)
            src.copy_to(-1, -info.size % _BLOCK)
            _set_attrs_fd(fd, info, chown)
        finally:
            os.close(fd)
    elif info.issym():
        os.symlink(info.linkname, name, dir_fd=parent)
        _set_attrs(parent, name, info, chown)
    elif info.islnk():
        target = _parts(info.linkname)
        tparent = _open_parent(dest_fd, target)
        try:
            os.link(target[-1], name, src_dir_fd=tparent, dst_dir_fd=parent,
                    follow_symlinks=False)
        finally:
            os.close(tparent)
    elif info.ischr() or info.isblk() or info.isfifo():
        kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK if info.isblk() else stat.S_IFIFO
        old = os.umask(0)
        try:  # the mode is given whole here: chmod of a node needs /proc, so none follows
            os.mknod(name, kind | (info.mode & 0o777), os.makedev(info.devmajor, info.devminor),
                     dir_fd=parent)
        finally:
            os.umask(old)
        _set_attrs(parent, name, info, chown)


def _owner(info, chown) -> tuple[int, int] | None:
    if chown is True:
        return info.uid, info.gid
    if chown:
        return chown
    return None


def _set_attrs_fd(fd: int, info, chown) -> None:
    owner = _owner(info, chown)
    if owner is not None:
        os.fchown(fd, *owner)
    os.fchmod(fd, info.mode & 0o7777)  # after chown, which clears set-id bits
    os.utime(fd, (info.mtime, info.mtime))


def _set_attrs(parent: int, name: str | None, info, chown, times_only: bool = False) -> None:
    """Owner, mode and times of a placed member, without following a symlink or using
    /proc (inside a container's root there is none of ours)."""
    if name is None or info.isdir():
        fd = parent if name is None else os.open(name, _O_DIR, dir_fd=parent)
        try:
            if times_only:
                os.utime(fd, (info.mtime, info.mtime))
            else:
                _set_attrs_fd(fd, info, chown)
        finally:
            if fd != parent:
                os.close(fd)
        return
    owner = _owner(info, chown)
    if owner is not None and not times_only:
        os.chown(name, *owner, dir_fd=parent, follow_symlinks=False)
    os.utime(name, (info.mtime, info.mtime), dir_fd=parent, follow_symlinks=False)


# -- a header made here ----------------------------------------------------------

# name, mode, uid, gid, size, mtime, checksum, type, linkname, magic, version, uname,
# gname, devmajor, devminor, prefix, padding: the ustar header
_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12s")
_ZEROS = bytes(_BLOCK)
_MAX8, _MAX12 = 8 ** 7, 8 ** 11  # what 8 and 12 byte octal fields hold


def ustar_header(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
                 kind: bytes, linkname: bytes = b"", major: int = 0, minor: int = 0,
                 pax: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """One member's header: a ustar block, after a PAX header only for what ustar cannot
    hold (a name or link over 100 bytes or not ASCII, large numbers) and the records in
    `pax`; no user or group names. Fast (no TarInfo) and fixed: the layer tars builds
    keep as directories are made again from these bytes (snapshots/diff.py), so a change
    here needs a new DIR_LAYER_FORMAT there (tests/integration/test_build_layers.py pins
    them)."""
    if not pax and len(name) <= 100 and len(linkname) <= 100 and name.isascii() and \
            linkname.isascii() and 0 <= uid < _MAX8 and 0 <= gid < _MAX8 and \
            0 <= size < _MAX12 and 0 <= mtime < _MAX12:
        return _ustar_block(name, mode, uid, gid, size, mtime, kind, linkname, major, minor)
    records = list(pax or ())
    if len(name) > 100 or not name.isascii():
        records.append((b"path", name))
        name = name[:100]
    if len(linkname) > 100 or not linkname.isascii():
        records.append((b"linkpath", linkname))
        linkname = linkname[:100]
    numbers = []
    for key, value, digits in ((b"uid", uid, 8), (b"gid", gid, 8), (b"size", size, 12),
                               (b"mtime", mtime, 12)):
        if 0 <= value < 8 ** (digits - 1):
            numbers.append(value)
        else:
            records.append((key, str(value).encode()))
            numbers.append(0)
    block = _ustar_block(name, mode, numbers[0], numbers[1], numbers[2], numbers[3], kind,
                         linkname, major, minor)
    if not records:
        return block
    body = b"".join(_pax_record(k, v) for k, v in sorted(records))
    return (_ustar_block(b"././@PaxHeader", 0o644, 0, 0, len(body), 0, b"x", b"", 0, 0) +
            body + _ZEROS[:-len(body) % _BLOCK] + block)


def _ustar_block(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
                 kind: bytes, linkname: bytes, major: int, minor: int) -> bytes:
    header = bytearray(_USTAR.pack(
        name, b"%07o\0" % mode, b"%07o\0" % uid, b"%07o\0" % gid, b"%011o\0" % size,
        b"%011o\0" % mtime, b" " * 8, kind, linkname, b"ustar\0", b"00", b"", b"",
        b"%07o\0" % major, b"%07o\0" % minor, b"", b""))
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _pax_record(key: bytes, value: bytes) -> bytes:
    payload = b" " + key + b"=" + value + b"\n"
    length = len(payload) + 1
    while len(str(length).encode()) + len(payload) != length:
        length += 1
    return str(length).encode() + payload
