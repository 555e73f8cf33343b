"""tarstream.ustar_header: what tarfile (and so every tar reader) reads back from it."""

import io
import tarfile

import pytest

from knarr.tarstream import ustar_header


@pytest.mark.parametrize("name, uid, gid, size, mtime, kind, link, pax", [
    (b"f", 0, 0, 5, 1_700_000_000, b"0", b"", None),
    (b"dir/", 1000, 1001, 0, 0, b"5", b"", None),
    (b"d/" + b"x" * 150, 0, 0, 5, 1, b"0", b"", None),
    ("\u00e9t\u00e9".encode(), 0, 0, 5, 1, b"0", b"", None),
    (b"l", 0, 0, 0, 1, b"2", b"t" * 120, None),
    (b"big-ids", 2**22, 2**30, 5, 1, b"0", b"", None),
    (b"old", 0, 0, 5, -86400, b"0", b"", None),
    (b"huge", 0, 0, 8**11 + 3, 1, b"0", b"", None),
    (b"x", 0, 0, 5, 1, b"0", b"", [(b"SCHILY.xattr.user.a", b"v\xff")]),
])
def test_tarfile_reads_back_what_was_written(name, uid, gid, size, mtime, kind, link, pax):
    data = ustar_header(name, 0o640, uid, gid, size, mtime, kind, link, pax=pax)
    assert len(data) % 512 == 0
    body = min(size, 5)
    archive = data + b"hello"[:body] + bytes(-body % 512) + bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        info = tar.next()
    assert info is not None
    assert info.name == name.decode("utf-8", "surrogateescape").rstrip("/")
    assert (info.mode, info.uid, info.gid, info.size, int(info.mtime)) == \
        (0o640, uid, gid, size, mtime)
    assert info.type == kind and info.linkname == link.decode()
    assert (info.uname, info.gname) == ("", "")
    if pax:
        assert info.pax_headers["SCHILY.xattr.user.a"] == "v\udcff"
    else:
        assert not any(k.startswith("SCHILY") for k in info.pax_headers)
