"""The build context tar reader: every tar flavour a client sends, unpacked and hashed in
one pass; entries that would land outside, and broken archives, refused."""

import hashlib
import io
import os
import tarfile

import pytest

from knarr.build.context import extract
from knarr.errors import InvalidArgument


def _tar(fmt: int, entries: list[tuple]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 1_600_000_000, 0o640
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o750
                tar.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, data
                tar.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


LONG = "deep/" + "x" * 90 + "/" + "y" * 120 + ".txt"
ENTRIES = [
    ("Dockerfile", "file", b"FROM scratch\n"),
    ("dir", "dir", None),
    ("dir/a", "file", b"a" * 3000),
    ("dir/big", "file", bytes(range(256)) * 9000),
    ("dir/\u00e9t\u00e9", "file", b"summer\n"),
    ("dir/link", "sym", "a"),
    ("dir/same", "hard", "dir/a"),
    ("dir/pipe", "fifo", None),
    (LONG, "file", b"long\n"),
    ("dir/again", "file", b"first\n"),
    ("dir/again", "file", b"second\n"),
]


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_every_flavour_unpacks_with_hashes(tmp_path, fmt):
    entries = ENTRIES if fmt != tarfile.USTAR_FORMAT else [
        e for e in ENTRIES if e[0] != LONG and not e[0].endswith("t\u00e9")] + [
        ("p" * 80 + "/" + "q" * 80, "file", b"prefix field\n")]
    data = _tar(fmt, entries) + bytes(4096)  # a client's padding after the end
    stream = io.BufferedReader(io.BytesIO(data), 1 << 16)
    context = extract(stream, str(tmp_path / "ctx"))
    root = context.root
    want = {}
    for name, kind, body in entries:
        if kind == "file":
            want[name] = body
    want["dir/same"] = want["dir/a"]
    for name, body in want.items():
        with open(os.path.join(root, name), "rb") as f:
            assert f.read() == body, name
        assert context.hashes[name] == hashlib.sha256(body).hexdigest(), name
        st = os.stat(os.path.join(root, name))
        assert st.st_mode & 0o7777 == 0o640 and int(st.st_mtime) == 1_600_000_000
    assert os.readlink(os.path.join(root, "dir/link")) == "a"
    assert os.stat(os.path.join(root, "dir/same")).st_ino == \
        os.stat(os.path.join(root, "dir/a")).st_ino
    assert os.stat(os.path.join(root, "dir")).st_mode & 0o7777 == 0o750
    assert not os.path.exists(os.path.join(root, "dir/pipe"))  # nothing a build copies
    assert context.read_text("Dockerfile") == "FROM scratch\n"


@pytest.mark.parametrize("entries, message", [
    ([("../x", "file", b"x")], "is outside the context"),
    ([("l", "sym", "/"), ("l/etc/x", "file", b"x")], "goes through a symlink"),
    ([("h", "hard", "../../etc/passwd")], "leads outside"),
    ([("d", "dir", None), ("d", "file", b"x")], "replaces a directory"),
])
def test_entries_that_escape_are_refused(tmp_path, entries, message):
    data = io.BufferedReader(io.BytesIO(_tar(tarfile.PAX_FORMAT, entries)))
    with pytest.raises(InvalidArgument, match=message):
        extract(data, str(tmp_path / "ctx"))
    assert not os.path.exists(tmp_path / "etc")


def test_broken_archives_are_refused(tmp_path):
    good = _tar(tarfile.PAX_FORMAT, [("f", "file", b"x" * 2000)])
    bad_sum = bytearray(good)
    bad_sum[0] ^= 1  # the first header's name: its checksum no longer matches
    with pytest.raises(InvalidArgument, match="bad header checksum"):
        extract(io.BufferedReader(io.BytesIO(bytes(bad_sum))), str(tmp_path / "a"))
    with pytest.raises(InvalidArgument, match="truncated|unexpected end"):
        extract(io.BufferedReader(io.BytesIO(good[:1200])), str(tmp_path / "b"))
    assert extract(io.BufferedReader(io.BytesIO(b"")), str(tmp_path / "c")).hashes == {}
