"""A corpus of hostile layer tarballs: each is refused, names its entry, writes nothing outside.

Every case is a tar made here with tarfile. After each refusal the canary
directory beside the store is byte-for-byte as before, and the snapshotter
holds no snapshot and no directory: nothing half-written stays.
"""

import gzip
import hashlib
import io
import os
import tarfile

import pytest

from knarr.errors import InvalidArgument
from knarr.images import unpack
from knarr.snapshots import Snapshotter


def _entry(name, kind="file", data=b"evil", linkname="", size=None, pax=None, type_=None):
    info = tarfile.TarInfo(name)
    info.mtime = 1_600_000_000
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                 "link": tarfile.LNKTYPE}[kind] if type_ is None else type_
    info.mode = 0o755 if kind == "dir" else 0o644
    info.linkname = linkname
    if pax:
        info.pax_headers = pax
    payload = data if kind == "file" and type_ is None else None
    if payload is not None:
        info.size = len(payload) if size is None else size
    return info, payload


def _tar(*entries, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for info, payload in entries:
            if payload is not None and info.size != len(payload):
                t.fileobj.write(info.tobuf(t.format, t.encoding, t.errors))
                t.fileobj.write(payload)  # a header that lies about its size
                t.offset += len(info.tobuf(t.format, t.encoding, t.errors)) + len(payload)
                continue
            t.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def _huge_header() -> bytes:
    info, _ = _entry("huge", size=1 << 40)
    return info.tobuf(tarfile.PAX_FORMAT) + b"\0" * 4096


def _truncated() -> bytes:
    data = _tar(_entry("ok"), _entry("half", data=b"x" * 100_000))
    return data[:20_000]


def _cases(canary: str):
    rel = "../../../../canary"  # from <root>/snapshots/<n>/fs up to the test's tmp dir
    E = _entry
    return [
        ("dotdot", _tar(E("../canary/evil")), "../canary/evil", "'..' in path"),
        ("dotdot-nested", _tar(E("a/../../canary/evil")), "a/../../canary/evil", "'..'"),
        ("dotdot-dot", _tar(E("./../evil")), "./../evil", "'..' in path"),
        ("dotdot-only", _tar(E("..", "dir")), "..", "'..' in path"),
        ("symlink-abs-then-write", _tar(E("s", "sym", linkname=canary), E("s/evil")),
         "s/evil", "path goes through s, which is a symlink"),
        ("symlink-rel-then-write", _tar(E("s", "sym", linkname=rel), E("s/evil")),
         "s/evil", "which is a symlink"),
        ("symlink-chain", _tar(E("s2", "sym", linkname=canary), E("s1", "sym", linkname="s2"),
                               E("s1/evil")), "s1/evil", "which is a symlink"),
        ("symlink-nested", _tar(E("a", "dir"), E("a/b", "sym", linkname=canary),
                                E("a/b/c/evil")), "a/b/c/evil", "a/b, which is a symlink"),
        ("symlink-then-dir", _tar(E("s", "sym", linkname=canary), E("s", "dir"), E("s/evil")),
         "s", "replaces a symlink placed earlier with a directory"),
        ("dir-then-symlink", _tar(E("d", "dir"), E("d", "sym", linkname=canary), E("d/evil")),
         "d", "replaces a directory placed earlier with a symlink"),
        ("hardlink-dotdot", _tar(E("h", "link", linkname="../canary/file")), "h",
         "has '..'"),
        ("hardlink-abs-outside", _tar(E("h", "link", linkname=f"{canary}/file")), "h",
         f"hard link target '{canary}/file' is not in this layer"),
        ("hardlink-through-symlink", _tar(E("s", "sym", linkname=canary),
                                          E("h", "link", linkname="s/file")), "h",
         "path goes through s, which is a symlink"),
        ("hardlink-into-symlinked-dir", _tar(E("f"), E("s", "sym", linkname=canary),
                                             E("s/h", "link", linkname="f")), "s/h",
         "which is a symlink"),
        ("hardlink-missing", _tar(E("h", "link", linkname="etc/passwd")), "h",
         "hard link target 'etc/passwd' is not in this layer"),
        ("hardlink-to-dir", _tar(E("d", "dir"), E("h", "link", linkname="d")), "h",
         "hard link to a directory"),
        ("whiteout-through-symlink", _tar(E("s", "sym", linkname=canary),
                                          E("s/.wh.file", data=b"")), "s/.wh.file",
         "which is a symlink"),
        ("opaque-through-symlink", _tar(E("s", "sym", linkname=canary),
                                        E("s/.wh..wh..opq", data=b"")), "s/.wh..wh..opq",
         "which is a symlink"),
        ("whiteout-of-dot", _tar(E(".wh..", data=b"")), ".wh..", "whiteout of no name"),
        ("file-as-parent", _tar(E("f"), E("f/evil")), "f/evil",
         "path goes through f, which is not a directory"),
        ("overlay-xattr", _tar(E("d", "dir", pax={
            "SCHILY.xattr.trusted.overlay.redirect": canary})), "d",
         "sets overlay's own xattr trusted.overlay.redirect"),
        ("huge-size", _huge_header(), "huge", "exceeds the"),
        ("truncated", _truncated(), "half", "truncated"),
        ("unsupported-type", _tar(E("odd", type_=b"V")), "odd", "unsupported entry type"),
        ("not-a-tar", b"\x01" * 1024 + b"junk" * 300, None, "corrupt or truncated tar"),
    ]


def _fingerprint(path):
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            data = open(full, "rb").read() if os.path.isfile(full) else b""
            out[full] = (st.st_mode, st.st_size, st.st_mtime_ns, hashlib.sha256(data).digest(),
                         sorted(os.listxattr(full, follow_symlinks=False)))
    st = os.lstat(path)
    out[path] = (st.st_mode, st.st_mtime_ns, sorted(os.listxattr(path)))
    return out


@pytest.fixture
def setting(tmp_path):
    canary = tmp_path / "canary"
    (canary / "sub").mkdir(parents=True)
    (canary / "file").write_text("precious")
    os.utime(canary / "sub", ns=(1, 1))
    os.utime(canary, ns=(1, 1))
    snaps = Snapshotter(str(tmp_path / "root"))
    yield snaps, str(canary)
    snaps.close()


def test_corpus_is_large_enough(tmp_path):
    assert len(_cases(str(tmp_path))) >= 20


@pytest.mark.parametrize("case", [c[0] for c in _cases("/x")])
def test_hostile_layer_is_refused(setting, case):
    snaps, canary = setting
    _, data, entry, problem = next(c for c in _cases(canary) if c[0] == case)
    before = _fingerprint(canary)
    with pytest.raises(InvalidArgument) as info:
        unpack.unpack_layer(snaps, io.BytesIO(data), None, label="layer")
    message = str(info.value)
    assert problem in message
    if entry is not None:
        assert f"entry {entry!r}" in message and info.value.context["entry"] == entry
    assert _fingerprint(canary) == before
    assert snaps.walk() == []
    assert [n for n in os.listdir(snaps.root) if n.isdigit() or n.startswith("rm-")] == []


def test_gzip_bomb_is_stopped_by_the_budget(setting):
    snaps, _ = setting
    data = gzip.compress(_tar(_entry("zeros", data=b"\0" * (8 << 20))), 9)
    assert len(data) < 64 << 10
    with pytest.raises(InvalidArgument, match="entry 'zeros': size 8388608 bytes exceeds"):
        unpack.unpack_layer(snaps, io.BytesIO(data), None, max_bytes=1 << 20)
    assert snaps.walk() == []


def test_diff_id_mismatch_leaves_nothing(setting):
    snaps, _ = setting
    wrong = "sha256:" + "0" * 64
    with pytest.raises(InvalidArgument, match=f"diff_id mismatch: expected {wrong}, got sha256:"):
        unpack.unpack_layer(snaps, io.BytesIO(_tar(_entry("a"))), None, wrong)
    assert snaps.walk() == []


def test_absolute_paths_land_inside(setting):
    snaps, canary = setting
    before = _fingerprint(canary)
    data = _tar(_entry(f"{canary}/file", data=b"inside"), _entry("/abs", data=b"x"))
    chain, _ = unpack.unpack_layer(snaps, io.BytesIO(data), None)
    fs = snaps.path(chain)
    assert open(os.path.join(fs, canary.lstrip("/"), "file"), "rb").read() == b"inside"
    assert os.path.exists(os.path.join(fs, "abs"))
    assert _fingerprint(canary) == before


def test_overwriting_a_hardlinked_symlink_does_not_write_through(setting):
    snaps, canary = setting
    before = _fingerprint(canary)
    data = _tar(_entry("s", "sym", linkname=f"{canary}/file"),
                _entry("h", "link", linkname="s"), _entry("h", data=b"overwrite"),
                _entry("s", data=b"overwrite"))
    chain, _ = unpack.unpack_layer(snaps, io.BytesIO(data), None)
    assert open(os.path.join(snaps.path(chain), "s"), "rb").read() == b"overwrite"
    assert _fingerprint(canary) == before


def test_stale_extraction_of_a_dead_process_is_removed(setting):
    snaps, _ = setting
    snaps.prepare("extract-999999999-abcd layer")
    snaps.prepare("extract-1-abcd layer")  # pid 1 is alive: left alone
    assert unpack.remove_stale_extractions(snaps) == ["extract-999999999-abcd layer"]
    assert [r["key"] for r in snaps.walk()] == ["extract-1-abcd layer"]
