"""apply's tar reader (`_Archive`) gives the members tarfile's reader gives, or its
error, over the read-ahead reader a layer is extracted from: headers at hand in a chunk
or across chunks, pax and GNU extensions, global pax headers, damaged and truncated
archives."""

import io
import random
import tarfile

import pytest

from knarr.images.unpack import _ReadAhead
from knarr.snapshots.apply import _Archive, _TarInfo

_FIELDS = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname",
           "uname", "gname", "devmajor", "devminor", "offset", "offset_data", "pax_headers",
           "sparse")


class _Pieces(io.RawIOBase):
    """A stream that gives its bytes in pieces of random sizes (chunks of the read-ahead
    thread end anywhere: in headers, in data)."""

    def __init__(self, data: bytes, seed: int, most: int) -> None:
        self.data, self.at = data, 0
        self.random = random.Random(seed)
        self.most = most

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(n, self.random.randint(1, self.most))
        out = self.data[self.at:self.at + n]
        self.at += len(out)
        return out


def _entry(name, kind=tarfile.REGTYPE, size=0, linkname="", pax=None):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    info.mtime, info.mode, info.uid, info.gid = 1_600_000_000, 0o640, 1000, 1001
    info.uname, info.gname = "user", "group"
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 4, 64
    if pax:
        info.pax_headers = pax
    return info


def _archive(fmt, global_pax=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=global_pax) as t:
        t.addfile(_entry("d", tarfile.DIRTYPE))
        for size in (0, 1, 511, 512, 513, 3000):
            t.addfile(_entry(f"d/f{size}", size=size), io.BytesIO(bytes([size % 251]) * size))
        t.addfile(_entry("d/" + "long-name/" * 12 + "f", size=3), io.BytesIO(b"abc"))
        t.addfile(_entry("d/" + "n" * 90 + "/" + "m" * 90, size=2), io.BytesIO(b"xy"))
        t.addfile(_entry("sym", tarfile.SYMTYPE, linkname="d/" + "t" * 150))
        t.addfile(_entry("hard", tarfile.LNKTYPE, linkname="d/f1"))
        t.addfile(_entry("dev", tarfile.CHRTYPE))
        t.addfile(_entry("blk", tarfile.BLKTYPE))
        t.addfile(_entry("fifo", tarfile.FIFOTYPE))
        t.addfile(_entry("cont", tarfile.CONTTYPE, size=7), io.BytesIO(b"c" * 7))
        if fmt == tarfile.PAX_FORMAT:
            t.addfile(_entry("x", size=4, pax={"SCHILY.xattr.user.a": "b", "mtime": "1.5"}),
                      io.BytesIO(b"xatt"))
        t.addfile(_entry("last/", tarfile.DIRTYPE))
    return buf.getvalue()


def _odd_dirs(data):
    """An archive that starts with a regular-file header named with a trailing '/' (the
    old V7 form of a directory) and a directory header of no name but a ustar prefix."""
    v7 = bytearray(data[:512])
    v7[0:100] = b"v7dir/".ljust(100, b"\0")
    v7[156:157] = tarfile.AREGTYPE
    prefixed = bytearray(data[:512])
    prefixed[0:100] = bytes(100)
    prefixed[345:500] = b"pre/fix".ljust(155, b"\0")
    prefixed[156:157] = tarfile.DIRTYPE
    for head in (v7, prefixed):
        head[148:156] = b" " * 8
        head[148:156] = b"%06o\0 " % sum(head)
    return bytes(v7) + bytes(prefixed) + data


def _read(cls, data, seed, most, consume):
    reader = _ReadAhead(_Pieces(data, seed, most))
    out = []
    try:
        archive = cls.open(fileobj=reader, mode="r:", tarinfo=_TarInfo)
        for member in archive:
            out.append(tuple(getattr(member, f) for f in _FIELDS))
            if consume and member.isreg() and member.size:  # as the extractor does
                reader.seek(member.offset_data)
                out.append(reader.read(member.size))
        out.append([m.name for m in archive.getmembers()])
    except Exception as exc:  # noqa: BLE001 - the error is what is compared
        out.append((type(exc).__name__, str(exc)))
    finally:
        reader.close()
    return out


def _same(data, seeds=range(3), most=(700, 1 << 20)):
    for seed in seeds:
        for biggest in most:
            for consume in (True, False):
                mine = _read(_Archive, data, seed, biggest, consume)
                assert mine == _read(tarfile.TarFile, data, seed, biggest, consume)
    return mine


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_members_are_tarfile_s(fmt):
    if fmt == tarfile.USTAR_FORMAT:
        with pytest.raises(ValueError):
            _archive(fmt)  # names too long for ustar: tarfile will not write them
        return
    members = _same(_archive(fmt))
    assert len([m for m in members if isinstance(m, tuple)]) >= 16


def test_members_after_a_global_pax_header_are_tarfile_s():
    members = _same(_archive(tarfile.PAX_FORMAT, global_pax={"comment": "all", "uname": "g"}))
    assert all(m[_FIELDS.index("uname")] == "g" for m in members if isinstance(m, tuple))


def test_odd_directory_headers_are_tarfile_s():
    members = _same(_odd_dirs(_archive(tarfile.GNU_FORMAT)))
    assert members[0][:1] == ("v7dir",) and members[0][_FIELDS.index("type")] == tarfile.DIRTYPE
    assert members[1][:1] == ("pre/fix",)


def test_truncated_archives_are_read_or_refused_as_tarfile_reads_them():
    data = _archive(tarfile.PAX_FORMAT)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        headers = [m.offset for m in t]
    ends = {h + d for h in headers for d in (0, 1, 300, 511, 512, 513, 1000)}
    for end in sorted(e for e in ends if e < len(data)):
        _same(data[:end], seeds=(end,), most=(1500, 1 << 20))


def test_damaged_headers_are_read_or_refused_as_tarfile_reads_them():
    data = _archive(tarfile.GNU_FORMAT)
    rng = random.Random(7)
    for _ in range(60):
        damaged = bytearray(data)
        at = rng.randrange(0, len(data) // 512) * 512 + rng.randrange(0, 512)
        damaged[at] = rng.randrange(256)
        _same(bytes(damaged), seeds=(at,), most=(1 << 20,))
    zeros = data[:1024] + bytes(1024) + data[1024:]  # an end marker mid-archive
    assert len(_same(zeros)) < len(_same(data))
