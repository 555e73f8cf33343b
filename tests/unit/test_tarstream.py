"""knarr.tarstream, the tar codec of `cp`: written by sendfile, read back through fds.

Round trips through a real pipe and a real socket pair, against tarfile as the
reference reader and writer; overwriting (in place and by replacement); and
hostile archives, which must never write outside the destination.
"""

import io
import os
import socket
import stat
import tarfile
import threading

import pytest

from knarr import tarstream


def _tree(top):
    """A small tree with every kind of member cp carries."""
    (top / "d" / "sub").mkdir(parents=True)
    (top / "d" / "big").write_bytes(os.urandom(300_000))  # sent by sendfile
    (top / "d" / "small").write_bytes(b"x" * 1000)
    (top / "d" / "empty").write_bytes(b"")
    (top / "d" / "sub" / "exe").write_bytes(b"#!/bin/sh\n")
    os.chmod(top / "d" / "sub" / "exe", 0o4755)
    os.symlink("../small", top / "d" / "sub" / "link")
    os.link(top / "d" / "small", top / "d" / "hard")
    os.mkfifo(top / "d" / "fifo")
    long = "n" * 120  # past ustar's 100 bytes: a PAX path record
    (top / "d" / long).write_bytes(b"long")
    (top / "d" / "ünï").write_bytes(b"utf8")
    for path in (top / "d").rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    os.utime(top / "d", (1_500_000_000, 1_500_000_000))


def _archive(top, name="d") -> bytes:
    r, w = os.pipe()
    out = bytearray()

    def drain():
        while piece := os.read(r, 1 << 16):
            out.extend(piece)

    t = threading.Thread(target=drain)
    t.start()
    parent = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        tarstream.write_tree(w, parent, name, name)
    finally:
        os.close(parent)
        os.close(w)
    t.join()
    os.close(r)
    return bytes(out)


def _extract(data: bytes, dest, **kw) -> None:
    """Through a socket pair, as the CLI reads a GET's body (spliced into the files)."""
    a, b = socket.socketpair()
    t = threading.Thread(target=lambda: (a.sendall(data), a.close()))
    t.start()
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    src = tarstream.Source(fd=b.fileno())
    try:
        tarstream.extract(src, fd, **kw)
    finally:
        src.close()
        os.close(fd)
        t.join()
        b.close()


def _snapshot(top):
    out = {}
    for path in sorted(top.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(top))
        kind = stat.S_IFMT(st.st_mode)
        body = (path.read_bytes() if stat.S_ISREG(st.st_mode) else
                os.readlink(path) if stat.S_ISLNK(st.st_mode) else None)
        mtime = int(st.st_mtime) if not stat.S_ISLNK(st.st_mode) else None
        out[rel] = (kind, stat.S_IMODE(st.st_mode), body, mtime)
    return out


def test_the_archive_reads_back_with_tarfile_and_round_trips(tmp_path):
    src = tmp_path / "src"
    _tree(src)
    data = _archive(src)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = {m.name: m for m in t.getmembers()}
        assert t.extractfile(members["d/big"]).read() == (src / "d" / "big").read_bytes()
        assert members["d/hard"].islnk() or members["d/small"].islnk()
        assert members["d/sub/link"].linkname == "../small"
        assert members["d/" + "n" * 120].size == 4
        assert members["d/ünï"].isreg()
        assert members["d/fifo"].isfifo()
        assert members["d/sub/exe"].mode == 0o4755
    dest = tmp_path / "dest"
    dest.mkdir()
    _extract(data, dest, chown=False)
    assert _snapshot(dest) == _snapshot(src)
    hard = os.stat(dest / "d" / "hard")
    assert hard.st_ino == os.stat(dest / "d" / "small").st_ino and hard.st_nlink == 2


@pytest.mark.parametrize("in_place", [False, True])
def test_extracting_over_an_earlier_copy_leaves_exactly_the_new_one(tmp_path, in_place):
    src = tmp_path / "src"
    _tree(src)
    dest = tmp_path / "dest"
    dest.mkdir()
    _extract(_archive(src), dest, chown=False, in_place=in_place)
    # the next copy: a file shrinks, one grows, one becomes a directory, modes change
    (src / "d" / "big").write_bytes(b"short now")
    (src / "d" / "empty").write_bytes(os.urandom(200_000))
    (src / "d" / "sub" / "exe").chmod(0o600)
    os.unlink(src / "d" / "hard")
    (src / "d" / "hard").mkdir()
    # another name for a file of the earlier copy, outside the tree: must keep its bytes
    old_small = (dest / "d" / "small").read_bytes()
    os.link(dest / "d" / "small", tmp_path / "outside")
    (src / "d" / "small").write_bytes(b"new small")
    for path in (src / "d").rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    before = os.stat(dest / "d" / "big").st_ino
    _extract(_archive(src), dest, chown=False, in_place=in_place)
    assert _snapshot(dest) == _snapshot(src)
    assert (tmp_path / "outside").read_bytes() == old_small
    if in_place:  # rewritten, not replaced (a replacement may get the freed number back)
        assert os.stat(dest / "d" / "big").st_ino == before


def test_in_place_replaces_a_file_a_new_one_would_not_be_like(tmp_path):
    """Not ours (and no chown asked): replaced, so the copy is the caller's as a new file
    would be; a symlink at the name is replaced, never followed."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"new")
    (src / "d" / "l").write_bytes(b"new l")
    dest = tmp_path / "dest"
    (dest / "d").mkdir(parents=True)
    (dest / "d" / "f").write_bytes(b"old")
    os.chown(dest / "d" / "f", 1234, 1234)
    (tmp_path / "victim").write_bytes(b"keep")
    os.symlink(tmp_path / "victim", dest / "d" / "l")
    _extract(_archive(src), dest, chown=False, in_place=True)
    st = os.stat(dest / "d" / "f")
    assert (st.st_uid, st.st_gid) == (0, 0) and (dest / "d" / "f").read_bytes() == b"new"
    assert not os.path.islink(dest / "d" / "l") and (dest / "d" / "l").read_bytes() == b"new l"
    assert (tmp_path / "victim").read_bytes() == b"keep"


def _tar(*members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for kind, name, extra in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(extra)
                t.addfile(info, io.BytesIO(extra))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                         "link": tarfile.LNKTYPE}[kind]
            info.linkname = extra or ""
            t.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("members", [
    [("file", "../escape", b"evil")],
    [("file", "a/../../escape", b"evil")],
    [("sym", "s", "/"), ("file", "s/escape", b"evil")],
    [("sym", "s", ".."), ("file", "s/escape", b"evil")],
    [("dir", "d", None), ("sym", "d/up", "../.."), ("file", "d/up/escape", b"evil")],
    [("link", "h", "../escape")],
], ids=["dotdot", "nested-dotdot", "symlink-root", "symlink-up", "symlink-deep", "hardlink"])
@pytest.mark.parametrize("in_place", [False, True])
def test_a_hostile_archive_never_writes_outside_the_destination(tmp_path, members, in_place):
    dest = tmp_path / "a" / "dest"
    dest.mkdir(parents=True)
    (tmp_path / "a" / "escape").write_bytes(b"keep")
    with pytest.raises(tarstream.TarError):
        _extract(_tar(*members), dest, chown=False, in_place=in_place)
    assert (tmp_path / "a" / "escape").read_bytes() == b"keep"
    assert sorted(os.listdir(tmp_path / "a")) == ["dest", "escape"]


def _reference_header(name, st, link="", size=0):
    """The header tarfile writes for a member (how tarstream made them before)."""
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    info.mtime, info.size = int(st.st_mtime), size
    kind = stat.S_IFMT(st.st_mode)
    info.type = (tarfile.LNKTYPE if link and kind == stat.S_IFREG else
                 {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE,
                  stat.S_IFLNK: tarfile.SYMTYPE, stat.S_IFIFO: tarfile.FIFOTYPE,
                  stat.S_IFCHR: tarfile.CHRTYPE}[kind])
    info.linkname = link
    if kind == stat.S_IFCHR:
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def test_headers_are_byte_for_byte_what_tarfile_writes(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 123)
    (tmp_path / "d").mkdir()
    os.symlink("target/" + "t" * 120, tmp_path / "l")
    os.mkfifo(tmp_path / "p")
    os.mknod(tmp_path / "c", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    cases = []
    for owner, mode, mtime in (((0, 0), 0o644, 1_600_000_000), ((65534, 100), 0o4755, 0),
                               ((3_000_000, 7), 0o1777, 1.5e9 + 0.7),
                               ((1000, 1000), 0o000, 9_000_000_000)):
        os.chown(f, *owner)
        os.chmod(f, mode)
        os.utime(f, (mtime, mtime))
        st = os.stat(f)
        for name in ("f", "a/b/c", "x" * 100, "x" * 101, "ünïcode", "sp ace", "dir/"):
            cases.append((name, st, "", st.st_size))
        cases += [("hard", st, "f", 0), ("hard", st, "ü" * 10, 0), ("h", st, "y" * 101, 0)]
    for entry in ("d", "l", "p", "c"):
        st = os.lstat(tmp_path / entry)
        link = os.readlink(tmp_path / entry) if entry == "l" else ""
        cases += [(entry + ("/" if entry == "d" else ""), st, link, 0), ("long/" * 30, st,
                                                                         link, 0)]
    for name, st, link, size in cases:
        assert tarstream._header(name, st, link, size) == _reference_header(name, st, link,
                                                                             size), name


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_header_blocks_parse_as_tarfile_parses_them(fmt):
    infos = []
    for name, kind, extra in (("f", tarfile.REGTYPE, {}), ("d/", tarfile.DIRTYPE, {}),
                              ("old-dir/", tarfile.AREGTYPE, {}),
                              ("p" * 90 + "/" + "n" * 90, tarfile.REGTYPE, {}),
                              ("s", tarfile.SYMTYPE, {"linkname": "../x"}),
                              ("c", tarfile.CHRTYPE, {"devmajor": 4, "devminor": 64}),
                              ("big", tarfile.REGTYPE, {"uid": 2**22, "size": 2**34}),
                              ("u", tarfile.REGTYPE, {"uname": "user", "gname": "grp"})):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, 0o2750, 1_234_567_890
        for key, value in extra.items():
            setattr(info, key, value)
        infos.append(info)
    for info in infos:
        try:
            buf = info.tobuf(fmt, "utf-8", "surrogateescape")
        except ValueError:
            continue  # not representable in this format
        for block in {buf[:512], buf[-512:]}:  # an extended header's own header; the last
            want = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            got = tarstream.read_header(block)
            assert got.get_info() == want.get_info(), info.name
            assert got.chksum == want.chksum
    bad = bytearray(infos[0].tobuf(tarfile.USTAR_FORMAT))
    bad[0] ^= 1
    with pytest.raises(tarfile.HeaderError):
        tarstream.read_header(bytes(bad))
