"""apply_layer with writer threads: files handed to them are in place before any later
entry looks at their names, failures name their entry, and the tree is the one the
extracting thread alone makes."""

import io
import os
import stat
import tarfile
import threading

import pytest

from knarr.errors import InvalidArgument
from knarr.snapshots.apply import apply_layer


def _info(name, kind="file", data=b"", linkname="", mode=None, pax=None):
    info = tarfile.TarInfo(name)
    info.mtime = 1_600_000_000 + len(name)
    info.uid, info.gid = 1000 + len(name) % 7, 2000 + len(name) % 5
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                 "link": tarfile.LNKTYPE}[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o640)
    info.linkname = linkname
    info.size = len(data) if kind == "file" else 0
    if pax:
        info.pax_headers = pax
    return info, (io.BytesIO(data) if kind == "file" else None)


def _tar(*entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            t.addfile(info, data)
    return buf.getvalue()


def _tree(root):
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            content = None
            if os.path.isfile(path) and not os.path.islink(path):
                content = open(path, "rb").read()
            mtime = None if stat.S_ISCHR(st.st_mode) else st.st_mtime_ns  # whiteouts: now
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, mtime,
                                                st.st_nlink, st.st_rdev, content)
    return out


def _hazards():
    """Entries whose names an earlier (handed-off) file makes or removes."""
    big = os.urandom(700 << 10)  # above the hand-off size: written by the reading thread
    entries = [_info("d", "dir")]
    # more directories than the dir-fd cache holds, each with small files
    for i in range(300):
        entries += [_info(f"d/{i}", "dir"), _info(f"d/{i}/f", data=f"{i}".encode() * (i + 1)),
                    _info(f"d/{i}/g", data=b"g" * 4096, mode=0o4755)]
    entries += [
        _info("a", data=b"first a"),
        _info("hard", "link", linkname="a"),          # a link to a file just handed off
        _info("a", data=b"second a"),                  # replaces it (the link keeps the first)
        _info("x", data=b"a file"), _info("x", "dir"),  # a directory replaces a file
        _info("x/in", data=b"inside"),
        _info("big", data=big), _info("big2", "link", linkname="big"),
        _info("gone", "dir"), _info("gone/f", data=b"whited out"), _info("gone/.wh.f", data=b""),
        _info("s", data=b"to become a link"), _info("s", "sym", linkname="/etc/passwd"),
        _info("d/5", "dir", mode=0o500),               # read-only dir, set last
    ]
    return _tar(*entries)


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership needs root")
def test_writers_make_the_tree_one_thread_makes(tmp_path):
    data = _hazards()
    trees = []
    for writers in (0, 2):
        target = tmp_path / f"w{writers}"
        target.mkdir()
        applied = apply_layer(str(target), io.BytesIO(data), writers=writers)
        trees.append((_tree(str(target)), applied))
    assert trees[0][1] == trees[1][1]
    assert {k: v for k, v in trees[0][0].items() if trees[1][0].get(k) != v} == {}
    assert trees[0][0] == trees[1][0]
    tree = trees[1][0]
    assert tree["a"][-1] == b"second a" and tree["hard"][-1] == b"first a"
    assert tree["d/7/f"][-1] == b"7" * 8 and tree["d/7/g"][0] & 0o7777 == 0o4755
    assert tree["x/in"][-1] == b"inside" and tree["big2"][4] == 2
    assert tree["gone/f"][0] & 0o170000 == 0o020000  # the whiteout, a 0/0 char device
    assert os.path.islink(tmp_path / "w2" / "s")


@pytest.mark.parametrize("writers", [0, 2])
def test_a_path_through_a_handed_off_file_is_refused_the_same_way(tmp_path, writers):
    data = _tar(_info("f", data=b"x"), _info("f/under", data=b"y"))
    with pytest.raises(InvalidArgument, match="entry 'f/under': path goes through f, "
                                              "which is not a directory"):
        apply_layer(str(tmp_path), io.BytesIO(data), writers=writers)


@pytest.mark.parametrize("writers", [0, 2])
def test_a_write_that_fails_in_a_writer_names_its_entry(tmp_path, writers):
    bad = {"SCHILY.xattr.nosuchnamespace.x": "1"}  # setxattr: operation not supported
    data = _tar(_info("ok", data=b"1"), _info("bad", data=b"2", pax=bad),
                *[_info(f"later{i}", data=b"3") for i in range(50)])
    with pytest.raises(InvalidArgument) as info:
        apply_layer(str(tmp_path), io.BytesIO(data), writers=writers)
    assert info.value.context["entry"] == "bad"
    assert "entry 'bad': Operation not supported" in str(info.value)
    assert not [t for t in threading.enumerate() if t.name.startswith("layer-writer")]


def test_a_truncated_small_file_is_refused_before_it_is_handed_off(tmp_path):
    data = _tar(_info("f", data=b"z" * 5000))[:512 + 1000]
    with pytest.raises(InvalidArgument, match="entry 'f': truncated archive"):
        apply_layer(str(tmp_path), io.BytesIO(data), writers=2)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0 or os.getegid() != 0, reason="ownership needs root")
@pytest.mark.parametrize("setgid", [False, True])
def test_files_of_root_are_root_s_in_a_setgid_target_too(tmp_path, setgid):
    target = tmp_path / "t"
    target.mkdir()
    os.chown(target, 0, 4321)
    os.chmod(target, 0o2755 if setgid else 0o755)
    data = _tar(*[_root(i) for i in (_info("d", "dir"), _info("f", data=b"1"),
                                          _info("d/g", data=b"2"))])
    apply_layer(str(target), io.BytesIO(data))
    for name in ("f", "d/g", "d"):
        st = os.lstat(target / name)
        assert (st.st_uid, st.st_gid) == (0, 0), name


@pytest.mark.skipif(os.geteuid() != 0 or os.getegid() != 0, reason="ownership needs root")
def test_a_directory_made_earlier_takes_the_owner_of_its_last_entry(tmp_path):
    def owned(entry, uid):
        entry[0].uid = entry[0].gid = uid
        return entry
    data = _tar(owned(_info("a", "dir"), 1000), owned(_info("a", "dir"), 0),  # twice
                owned(_info("p/c", data=b"x"), 0), owned(_info("p", "dir"), 0),  # a parent first
                owned(_info("q/c", data=b"x"), 0), owned(_info("q", "dir"), 1000),
                owned(_info("r", "dir"), 0))
    apply_layer(str(tmp_path), io.BytesIO(data))
    for name, uid in (("a", 0), ("p", 0), ("q", 1000), ("r", 0), ("p/c", 0)):
        st = os.lstat(tmp_path / name)
        assert (st.st_uid, st.st_gid) == (uid, uid), name


def _root(entry):
    info, data = entry
    info.uid = info.gid = 0
    return info, data
