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
import tarfile
from typing import BinaryIO

from knarr.build import dockerignore
from knarr.errors import InvalidArgument, NotFound

__all__ = ["Context", "Source", "extract"]

_CHUNK = 1 << 20


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
        for dirpath, dirnames, filenames in os.walk(top.path):
            dirnames.sort()
            kept = []
            for name in dirnames + sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.root)
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
    try:
        with tarfile.open(fileobj=_Forward(stream), mode="r:") as archive:
            for member in archive:
                _extract_member(archive, member, root, hashes, safe)
    except tarfile.TarError as exc:
        raise InvalidArgument(f"build context: not a tar archive: {exc}") from exc
    return Context(root, hashes, owned=True)


def _extract_member(archive: tarfile.TarFile, member: tarfile.TarInfo, root: str,
                    hashes: dict[str, str], safe: set[str]) -> None:
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
            _write_file(archive, member, path, name, hashes)
        except FileExistsError:
            _make_room(path, member)
            _write_file(archive, member, path, name, hashes)
        return
    if os.path.lexists(path) and not (member.isdir() and os.path.isdir(path)):
        _make_room(path, member)
    if member.isdir():
        os.makedirs(path, exist_ok=True)
        os.chmod(path, member.mode & 0o7777)
        if not os.path.islink(path):
            safe.add(path)
    elif member.issym():
        os.symlink(member.linkname, path)
    elif member.islnk():
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


class _Forward:
    """A stream with the forward-only seek and tell that tarfile's random-access mode
    needs: file data is then read straight from the stream, not through tarfile's own
    stream buffer (which copies every block)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.position = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.position += len(data)
        return data

    def readinto(self, buffer) -> int:
        got = self.stream.readinto(buffer)  # type: ignore[attr-defined]
        self.position += got or 0
        return got or 0

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self.position + offset
        if target < self.position:
            raise OSError("build context: cannot seek backwards in a stream")
        while self.position < target:
            if not self.read(min(_CHUNK, target - self.position)):
                break
        return self.position


def _make_room(path: str, member: tarfile.TarInfo) -> None:
    """An entry named again: the later one wins, but never over a directory."""
    if os.path.isdir(path) and not os.path.islink(path):
        raise InvalidArgument(f"build context: entry {member.name} replaces a directory",
                              path=member.name)
    os.unlink(path)


def _write_file(archive: tarfile.TarFile, member: tarfile.TarInfo, path: str, name: str,
                hashes: dict[str, str]) -> None:
    source = archive.extractfile(member)
    h = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        remaining = member.size
        while remaining > 0 and source is not None:
            chunk = source.read(min(_CHUNK, remaining))
            if not chunk:
                raise InvalidArgument(f"build context: {member.name}: truncated")
            h.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            remaining -= len(chunk)
        os.fchmod(fd, member.mode & 0o7777)
        os.utime(fd, (member.mtime, member.mtime))
    finally:
        os.close(fd)
    hashes[name] = h.hexdigest()
