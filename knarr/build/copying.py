"""COPY and ADD: files written straight into a new layer's directory.

No tar round trip: each planned entry is created in the layer directory
(the upper dir of the step), parents first. A parent that exists in the image
below is made with that directory's mode and owner, so overlay shows it
unchanged; a new one is 0755, owned by the --chown owner (root otherwise).
A regular file is hard-linked when the source is the build's own extracted
context and nothing else links it (then its inode is the layer's), else
copied in the kernel (sendfile). Pure file work; no mounts.
"""

import dataclasses
import os
import shutil
import stat

from knarr.build.layered import LayerStack

__all__ = ["Item", "write_items", "make_dirs", "Owner"]


@dataclasses.dataclass
class Owner:
    """The uid and gid new entries get; None keeps the source's (ADD of a tar)."""

    uid: int | None = 0
    gid: int | None = 0


@dataclasses.dataclass
class Item:
    """One entry to create: its path in the image (relative, resolved), its source."""

    target: str
    path: str
    st: os.stat_result
    movable: bool = False


def write_items(upper: str, stack: LayerStack, items: list[Item], owner: Owner,
                chmod: int | None = None) -> None:
    """Create every item in `upper`, parents made as they would look."""
    made: set[str] = set()
    for item in items:
        parent = os.path.dirname(item.target)
        _ensure_dir(upper, stack, parent, owner, made)
        _write(upper, item, owner, chmod, made)


def make_dirs(upper: str, stack: LayerStack, rel: str) -> None:
    """Make the directory `rel` and its missing parents (root-owned 0755), as WORKDIR does."""
    _ensure_dir(upper, stack, rel, Owner(), set())


def _ensure_dir(upper: str, stack: LayerStack, rel: str, owner: Owner, made: set[str]) -> None:
    if not rel or rel in made:
        return
    _ensure_dir(upper, stack, os.path.dirname(rel), owner, made)
    path = os.path.join(upper, rel)
    made.add(rel)
    if os.path.isdir(path) and not os.path.islink(path):
        return
    found = stack.lookup(rel)
    if found is not None and stat.S_ISDIR(found[1].st_mode):
        st = found[1]
        _make_dir(path, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime)
        return
    uid = owner.uid if owner.uid is not None else 0
    gid = owner.gid if owner.gid is not None else 0
    _make_dir(path, 0o755, uid, gid, None)


def _make_dir(path: str, mode: int, uid: int, gid: int, mtime: float | None) -> None:
    if os.path.lexists(path) and not os.path.isdir(path):
        os.unlink(path)
    os.makedirs(path, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def _ids(item: Item, owner: Owner) -> tuple[int, int]:
    uid = owner.uid if owner.uid is not None else item.st.st_uid
    gid = owner.gid if owner.gid is not None else item.st.st_gid
    return uid, gid


def _write(upper: str, item: Item, owner: Owner, chmod: int | None, made: set[str]) -> None:
    path = os.path.join(upper, item.target)
    st = item.st
    uid, gid = _ids(item, owner)
    mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        made.add(item.target)
        if os.path.lexists(path) and not os.path.isdir(path):
            os.unlink(path)
        os.makedirs(path, exist_ok=True)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        os.utime(path, (st.st_mtime, st.st_mtime))
        return
    if stat.S_ISREG(st.st_mode) and item.movable and os.lstat(item.path).st_nlink == 1:
        # the context's own file: its inode becomes the layer's (owner and mode set only
        # where they differ)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(item.path, uid, gid)
            os.chmod(item.path, mode)  # chown dropped any setuid/setgid bit
        elif stat.S_IMODE(st.st_mode) != mode:
            os.chmod(item.path, mode)
        try:
            os.link(item.path, path)
        except FileExistsError:
            _clear(path)
            os.link(item.path, path)
        return
    if os.path.lexists(path):
        _clear(path)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(item.path), path)
        os.lchown(path, uid, gid)
        os.utime(path, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
        return
    if not stat.S_ISREG(st.st_mode):
        return  # devices, fifos, sockets: not copied
    _copy_file(item.path, path)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    os.utime(path, ns=(st.st_mtime_ns, st.st_mtime_ns))


def _clear(path: str) -> None:
    """Make room for an entry: a later source wins over an earlier one."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _copy_file(source: str, target: str) -> None:
    with open(source, "rb") as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                     os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(src.fileno()).st_size
            offset = 0
            while offset < size:
                sent = os.sendfile(fd, src.fileno(), offset, size - offset)
                if sent == 0:
                    break
                offset += sent
        finally:
            os.close(fd)
