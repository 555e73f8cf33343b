"""The build context: a tar stream unpacked into a private directory, or a directory.

A tar context is extracted once, in one streaming pass that also hashes
every regular file, so the cache key of a COPY needs no second read. No entry
can land outside the directory: names with `..` or through a symlink are
refused. `.dockerignore` is applied when sources are looked up, so an
excluded file is "not found" exactly as Docker says it.
"""

import fnmatch
import hashlib
import os
import posixpath
import stat
from typing import BinaryIO

from knarr import sys as ksys
from knarr.build import dockerignore
from knarr.errors import InvalidArgument, NotFound

__all__ = ["Context", "Source", "extract"]

_CHUNK = 1 << 20
_WRITEBACK_FROM = 256 << 10


class Source:
    """One path a COPY takes from the context: relative name, host path, lstat."""

    def __init__(self, rel: str, path: str, st: os.stat_result) -> None:
        self.rel, self.path, self.st = rel, path, st


class Context:
    """The files a build may COPY or ADD."""

    def __init__(self, root: str, hashes: dict[str, str] | None = None,
                 owned: bool = False) -> None:
        self.root = os.path.abspath(root)
        self.hashes = hashes if hashes is not None else {}
        self.owned = owned  # the directory is ours: its files may be moved into layers
        self.ignore = dockerignore.parse(self.read_text(".dockerignore") or "")

    def read_text(self, rel: str) -> str | None:
        """A file of the context as text, None if it is not there."""
        path = self._inside(rel, rel)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def _inside(self, rel: str, shown: str) -> str:
        clean = posixpath.normpath("/" + rel)
        if posixpath.normpath(rel).startswith("../") or posixpath.normpath(rel) == "..":
            raise InvalidArgument(f"forbidden path outside the build context: {shown} ()",
                                  path=shown)
        return os.path.join(self.root, clean.lstrip("/"))

    def rel(self, path: str) -> str:
        """The context-relative name of a path under the context's root."""
        root = self.root.rstrip("/") + "/"
        return path[len(root):] if path.startswith(root) else os.path.relpath(path, self.root)

    def file_hash(self, rel: str, path: str) -> str:
        """The sha256 of a regular file's content (from extraction, else read now)."""
        found = self.hashes.get(rel)
        if found is None:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            found = self.hashes[rel] = h.hexdigest()
        return found

    def sources(self, pattern: str) -> list[Source]:
        """The context paths a COPY source names (a path or a glob), each checked to be
        inside the context and not excluded; NotFound if none."""
        norm = posixpath.normpath(pattern.lstrip("/")) if pattern.strip("/") else "."
        self._inside(norm, pattern)
        if any(c in norm for c in "*?["):
            found = [s for rel in self._glob(norm) if (s := self._source(rel, pattern))]
        else:
            one = self._source(norm, pattern)
            found = [one] if one else []
        if not found:
            raise NotFound("file not found in build context or excluded by .dockerignore: "
                           f"stat {pattern}: file does not exist", path=pattern)
        return found

    def _glob(self, pattern: str) -> list[str]:
        parts, matches = pattern.split("/"), [""]
        for part in parts:
            nxt = []
            for base in matches:
                here = os.path.join(self.root, base)
                if not os.path.isdir(here) or os.path.islink(here):
                    continue
                names = sorted(os.listdir(here)) if any(c in part for c in "*?[") else [part]
                for name in names:
                    if fnmatch.fnmatchcase(name, part) and \
                            os.path.lexists(os.path.join(here, name)):
                        nxt.append(f"{base}/{name}" if base else name)
            matches = nxt
        return matches

    def _source(self, rel: str, shown: str) -> Source | None:
        path = self._resolve(rel, shown)
        if path is None:
            return None
        real_rel = os.path.relpath(path, self.root)
        if rel != "." and (self.ignore.excluded(rel) or self.ignore.excluded(real_rel)):
            return None
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        return Source(real_rel if real_rel != "." else "", path, st)

    def _resolve(self, rel: str, shown: str) -> str | None:
        """Follow symlinks component by component; one that leads out is refused."""
        current = self.root
        pending = [p for p in rel.split("/") if p not in ("", ".")]
        hops = 0
        while pending:
            part = pending.pop(0)
            candidate = os.path.normpath(os.path.join(current, part))
            if not _within(candidate, self.root):
                raise InvalidArgument(f"forbidden path outside the build context: {shown} ()",
                                      path=shown)
            try:
                st = os.lstat(candidate)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                target = os.readlink(candidate)
                if hops > 40 or target.startswith("/") or not _within(
                        os.path.normpath(os.path.join(current, target)), self.root):
                    raise InvalidArgument(f"forbidden path outside the build context: {shown} "
                                          f"(a symlink to {target})", path=shown)
                pending[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            current = candidate
        return current

    def walk(self, top: Source) -> list[Source]:
        """Everything under a directory source (itself excluded), parents before children,
        with .dockerignore applied."""
        out = []
        skip = len(self.root.rstrip("/")) + 1  # a path under root less root: its rel
        for dirpath, dirnames, filenames in os.walk(top.path):
            dirnames.sort()
            kept = []
            for name in dirnames + sorted(filenames):
                full = f"{dirpath}/{name}"
                rel = full[skip:]
                if self.ignore.excluded(rel):
                    if name in dirnames and self.ignore.has_exceptions():
                        kept.append(name)  # an exception may re-include something below
                    continue
                st = os.lstat(full)
                out.append(Source(rel, full, st))
                if name in dirnames and not stat.S_ISLNK(st.st_mode):
                    kept.append(name)
            dirnames[:] = [d for d in dirnames if d in kept]
        return out


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def extract(stream: BinaryIO, root: str) -> Context:
    """Unpack a context tar (plain) into the empty directory `root`; hash every file."""
    hashes: dict[str, str] = {}
    root = os.path.abspath(root)
    os.makedirs(root, mode=0o755, exist_ok=True)
    safe = {root}  # directories made here, known not to be symlinks
    reader = _Reader(stream)
    for member in reader.members():
        _extract_member(reader, member, root, hashes, safe)
    return Context(root, hashes, owned=True)


class _Member:
    """One entry of the context tar, long names and PAX records applied."""

    __slots__ = ("name", "kind", "mode", "mtime", "size", "linkname")

    def __init__(self, name: str, kind: bytes, mode: int, mtime: float, size: int,
                 linkname: str) -> None:
        self.name, self.kind, self.mode, self.mtime = name, kind, mode, mtime
        self.size, self.linkname = size, linkname

    def isreg(self) -> bool:
        return self.kind in _REGULAR

    def isdir(self) -> bool:
        return self.kind == b"5"


_REGULAR = (b"0", b"\0", b"7")
_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)


class _Reader:
    """A tar stream read in one pass, headers parsed here (ustar, PAX, GNU long names):
    a file's data goes from the stream's buffer to the file with no object per piece."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.buffer = bytearray(_CHUNK)
        self.pending = 0  # bytes of the current member (and padding) not yet read

    def exact(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) != n:
            raise InvalidArgument("build context: not a tar archive: unexpected end of data")
        return data

    def members(self):
        pax: dict[str, str] = {}
        long_name = long_link = None
        while True:
            if self.pending:
                self.skip(self.pending)
            header = self.stream.read(_BLOCK)
            if len(header) < _BLOCK or header == _ZERO_BLOCK:
                return
            _check_header(header)
            kind = header[156:157]
            size = _number(header[124:136])
            padded = size + (-size % _BLOCK)
            if kind in (b"x", b"g", b"L", b"K"):
                data = self.exact(padded)[:size]
                if kind == b"x":
                    pax.update(_pax_records(data))
                elif kind == b"L":
                    long_name = _text(data.rstrip(b"\0"))
                elif kind == b"K":
                    long_link = _text(data.rstrip(b"\0"))
                continue
            name = _text(_field(header[0:100]))
            if header[257:263] == b"ustar\0" and header[345] != 0:
                name = _text(_field(header[345:500])) + "/" + name
            name = pax.get("path", long_name or name)
            linkname = pax.get("linkpath", long_link or _text(_field(header[157:257])))
            size = int(pax["size"]) if "size" in pax else size
            mtime = float(pax["mtime"]) if "mtime" in pax else _number(header[136:148])
            member = _Member(name, kind, _number(header[100:108]), mtime, size, linkname)
            pax, long_name, long_link = {}, None, None
            self.pending = size + (-size % _BLOCK) if member.isreg() or kind not in (
                b"1", b"2", b"3", b"4", b"5", b"6") else 0
            yield member

    def skip(self, n: int) -> None:
        with memoryview(self.buffer) as view:
            while n > 0:
                got = self.stream.readinto(view[:min(n, _CHUNK)])  # type: ignore[attr-defined]
                if not got:
                    raise InvalidArgument("build context: not a tar archive: unexpected end "
                                          "of data")
                n -= got
        self.pending = 0

    def copy_to(self, fd: int, member: _Member) -> str:
        """Write the member's data into `fd`; return its sha256 (hex)."""
        h = hashlib.sha256()
        left = member.size
        with memoryview(self.buffer) as view:
            while left > 0:
                got = self.stream.readinto(view[:min(left, _CHUNK)])  # type: ignore
                if not got:
                    raise InvalidArgument(f"build context: {member.name}: truncated")
                piece = view[:got]
                h.update(piece)
                while piece:
                    piece = piece[os.write(fd, piece):]
                left -= got
        self.pending = -member.size % _BLOCK
        return h.hexdigest()


def _field(raw: bytes) -> bytes:
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _number(raw: bytes) -> int:
    if raw[0] & 0x80:  # base-256 (GNU), for what octal cannot hold
        value = int.from_bytes(raw[1:], "big")
        return value - (1 << (8 * len(raw) - 8)) if raw[0] & 0x40 else value
    digits = _field(raw).strip(b" ")
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise InvalidArgument("build context: not a tar archive: bad number in a "
                              "header") from None


def _check_header(header: bytes) -> None:
    stored = _number(header[148:156])
    unsigned = sum(header[:148]) + 256 + sum(header[156:])
    if stored != unsigned:
        signed = unsigned - 2 * sum(b for b in header[:148] + header[156:] if b > 127)
        if stored != signed:
            raise InvalidArgument("build context: not a tar archive: bad header checksum")


def _pax_records(data: bytes) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise InvalidArgument("build context: not a tar archive: bad PAX record") from None
        if length <= 0:
            break
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        out[_text(key)] = _text(value)
        pos += length
    return out


def _extract_member(reader: _Reader, member: _Member, root: str, hashes: dict[str, str],
                    safe: set[str]) -> None:
    name = posixpath.normpath(member.name.lstrip("/"))
    if name in (".", ""):
        if member.isdir():
            os.chmod(root, member.mode & 0o7777)
        return
    if name.startswith("../") or name == "..":
        raise InvalidArgument(f"build context: entry {member.name} is outside the context",
                              path=member.name)
    path = os.path.join(root, name)
    parent = os.path.dirname(path)
    if parent not in safe:
        os.makedirs(parent, mode=0o755, exist_ok=True)
        if not _within(os.path.realpath(parent), root):
            raise InvalidArgument(f"build context: entry {member.name} goes through a "
                                  "symlink", path=member.name)
        safe.add(parent)
    if member.isreg():
        try:
            _write_file(reader, member, path, name, hashes)
        except FileExistsError:
            _make_room(path, member)
            _write_file(reader, member, path, name, hashes)
        return
    if os.path.lexists(path) and not (member.isdir() and os.path.isdir(path)):
        _make_room(path, member)
    if member.isdir():
        os.makedirs(path, exist_ok=True)
        os.chmod(path, member.mode & 0o7777)
        if not os.path.islink(path):
            safe.add(path)
    elif member.kind == b"2":
        os.symlink(member.linkname, path)
    elif member.kind == b"1":
        target = os.path.join(root, posixpath.normpath(member.linkname.lstrip("/")))
        if not _within(os.path.realpath(target), root):
            raise InvalidArgument(f"build context: hard link {member.name} leads outside",
                                  path=member.name)
        os.link(target, path)
        if member.linkname in hashes:
            hashes[name] = hashes[posixpath.normpath(member.linkname.lstrip("/"))]
        return
    else:
        return  # devices, fifos: nothing a build copies
    if member.isdir():
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


def _make_room(path: str, member: _Member) -> None:
    """An entry named again: the later one wins, but never over a directory."""
    if os.path.isdir(path) and not os.path.islink(path):
        raise InvalidArgument(f"build context: entry {member.name} replaces a directory",
                              path=member.name)
    os.unlink(path)


def _write_file(reader: _Reader, member: _Member, path: str, name: str,
                hashes: dict[str, str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        hashes[name] = reader.copy_to(fd, member)
        if member.size >= _WRITEBACK_FROM:
            # the disk starts on it now: a COPY's layer syncs these very files
            ksys.start_writeback(fd)
        os.fchmod(fd, member.mode & 0o7777)
        os.utime(fd, (member.mtime, member.mtime))
    finally:
        os.close(fd)
