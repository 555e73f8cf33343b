"""apply's quicker tar header reading gives exactly what tarfile's does (or its error)."""

import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st

from knarr.snapshots.apply import _TarInfo

_FIELDS = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname",
           "uname", "gname", "devmajor", "devminor")


def _read(cls, buf):
    try:
        info = cls.frombuf(buf, "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        return type(exc).__name__
    return {f: getattr(info, f) for f in _FIELDS}


def _same(buf):
    assert _read(_TarInfo, buf) == _read(tarfile.TarInfo, buf)


_segments = st.text(st.characters(blacklist_characters="\0/", blacklist_categories=("Cs",)),
                    max_size=40)
_names = st.lists(_segments, max_size=6).map("/".join)  # long ones take ustar's prefix
_types = st.sampled_from([tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                          tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE,
                          tarfile.GNUTYPE_SPARSE, b"x"])


@settings(max_examples=400, deadline=None)
@given(name=_names, link=_names, kind=_types, fmt=st.sampled_from(
    [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    num=st.integers(-(8 ** 11), 8 ** 12), mode=st.integers(0, 0o7777),
    edits=st.lists(st.tuples(st.integers(0, 511), st.integers(0, 255)), max_size=3))
def test_headers_read_as_tarfile_reads_them(name, link, kind, fmt, num, mode, edits):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    info.uid, info.mtime = abs(num) % (8 ** 7), num
    info.size = abs(num) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    try:
        blocks = info.tobuf(fmt, "utf-8", "surrogateescape")
    except ValueError:
        return  # a number this format cannot hold
    for at in range(0, len(blocks), 512):  # the pax/GNU extension headers and the member's
        _same(blocks[at:at + 512])
    buf = bytearray(blocks[-512:])
    for at, value in edits:  # damaged headers, fixed-up checksums or not
        buf[at] = value
    _same(bytes(buf))
    body = bytes(buf[:148]) + b" " * 8 + bytes(buf[156:])
    buf[148:156] = b"%06o\0 " % (sum(body) & 0o777777)
    _same(bytes(buf))


def test_odd_number_fields_and_empty_blocks_read_as_tarfile_reads_them():
    base = bytearray(tarfile.TarInfo("f").tobuf(tarfile.USTAR_FORMAT))
    for field in (b"0000644\0", b"   644 \0", b"\t644\0\0\0\0", b"0o644\0\0\0", b"6_44\0\0\0\0",
                  b"+644\0\0\0\0", b"\x1c644\0\0\0\0", b"\x80\0\0\0\0\0\x01\xa4", b"\0" * 8,
                  b"64\xb54\0\0\0\0", b"-1\0\0\0\0\0\0"):
        buf = bytearray(base)
        buf[100:108] = field
        buf[148:156] = b" " * 8
        buf[148:156] = b"%06o\0 " % sum(buf)
        _same(bytes(buf))
        signed = sum(b - 256 if b > 127 else b for b in buf)
        buf[148:156] = b"%06o\0 " % (signed & 0o777777)
        _same(bytes(buf))
    for buf in (b"", b"\0" * 512, b"\0" * 100, bytes(base[:511])):
        _same(buf)


def test_checksums_of_headers_whose_bytes_sum_past_16_bits_read_as_tarfile_reads_them():
    # 0xff bytes in every text field: the byte sum goes past 65521, Adler-32's modulus
    info = tarfile.TarInfo("\udcff" * 100)
    info.type, info.linkname = tarfile.SYMTYPE, "\udcff" * 100
    info.uname = info.gname = "\udcff" * 31
    buf = bytearray(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))
    assert sum(buf) > 65521
    _same(bytes(buf))
    right = int(bytes(buf[148:154]), 8)
    for wrong in (right - 65521, right + 65521, right - 65521 * 2, right - 1):
        buf[148:156] = b"%06o\0 " % wrong
        _same(bytes(buf))
    for byte in (0, 100, 300, 511):  # the same sum, bytes moved between the halves
        moved = bytearray(buf)
        moved[148:156] = b"%06o\0 " % right
        moved[byte], moved[byte + (256 if byte < 256 else -256)] = 0xff, 0xff
        _same(bytes(moved))


def test_number_fields_read_again_are_read_the_same():
    base = bytearray(tarfile.TarInfo("f").tobuf(tarfile.USTAR_FORMAT))
    for mode in (b"0000644\0", b"0000755\0", b"0000644\0", b"   644 \0", b"0000644\0"):
        for dev in (b"0000001\0", b"\0" * 8, b"0000001\0"):
            buf = bytearray(base)
            buf[100:108], buf[329:337] = mode, dev
            buf[148:156] = b" " * 8
            buf[148:156] = b"%06o\0 " % sum(buf)
            _same(bytes(buf))


def test_owner_names_read_again_are_read_the_same():
    for uname, gname in (("root", "root"), ("a", "b"), ("root", "root"), ("", "x"),
                         ("\udcff\udcfe", "g"), ("a", "b"), ("x" * 32, "y" * 31), ("", "")):
        for link in ("", "target"):
            info = tarfile.TarInfo("f")
            info.uname, info.gname, info.linkname = uname, gname, link
            info.type = tarfile.SYMTYPE if link else tarfile.REGTYPE
            _same(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
