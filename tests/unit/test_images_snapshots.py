"""The overlay snapshotter: metadata, mounts, apply, diff, deep chains (mounted for real)."""

import io
import os
import stat
import struct
import tarfile

import pytest

from knarr import sys as ksys
from knarr.errors import AlreadyExists, FailedPrecondition, NotFound
from knarr.oci import overlay
from knarr.snapshots import Snapshotter

# A v2 file capability set: cap_net_raw permitted and effective.
_CAP = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


def privileged(test):
    """Runs for real as root; skipped with its reason otherwise."""
    skip = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount overlay")
    return pytest.mark.privileged(skip(test))


def _tar(*entries) -> bytes:
    """Entries are (name, kind, payload): kind in file, dir, sym, link, chr, whiteout."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            data = None
            if kind == "file":
                data = payload.encode() if isinstance(payload, str) else payload
                info.size, info.mode = len(data), 0o644
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


@pytest.fixture
def snaps(tmp_path):
    s = Snapshotter(str(tmp_path))
    yield s
    s.close()


def _layer(snaps, name, parent, *entries):
    key = f"extract {name}"
    snaps.prepare(key, parent)
    applied = snaps.apply(key, io.BytesIO(_tar(*entries)))
    snaps.commit(name, key)
    return applied


def test_prepare_commit_view_and_mount_shapes(snaps):
    base_mounts = snaps.prepare("a", None)
    fs_a = snaps.path("a")
    assert base_mounts == [{"type": "bind", "source": fs_a, "options": ["rbind", "rw"]}]
    snaps.commit("layer-a", "a")
    assert snaps.stat("layer-a")["kind"] == "committed"
    assert not os.path.exists(os.path.join(os.path.dirname(fs_a), "work"))
    assert snaps.view("v", "layer-a") == [
        {"type": "bind", "source": fs_a, "options": ["rbind", "ro"]}]
    snaps.prepare("b", "layer-a")
    snaps.commit("layer-b", "b")
    (mount,) = snaps.prepare("c", "layer-b")
    fs_b, fs_c = snaps.path("layer-b"), snaps.path("c")
    work_c = os.path.join(os.path.dirname(fs_c), "work")
    assert mount == {"type": "overlay", "source": "overlay",
                     "options": ["index=off", f"upperdir={fs_c}", f"workdir={work_c}",
                                 f"lowerdir={fs_b}:{fs_a}"]}
    (view,) = snaps.view("v2", "layer-b")
    assert view["options"] == ["index=off", f"lowerdir={fs_b}:{fs_a}"]
    assert [p["key"] for p in snaps.parents("c")] == ["layer-b", "layer-a"]


def test_refusals(snaps):
    snaps.prepare("a")
    with pytest.raises(AlreadyExists, match="snapshot a: already exists"):
        snaps.prepare("a")
    with pytest.raises(FailedPrecondition, match="parent a: is active, not committed"):
        snaps.prepare("b", "a")
    with pytest.raises(NotFound, match="parent nope: not found"):
        snaps.prepare("b", "nope")
    snaps.commit("A", "a")
    with pytest.raises(FailedPrecondition, match="commit A: snapshot is committed"):
        snaps.commit("B", "A")
    snaps.prepare("child", "A")
    with pytest.raises(FailedPrecondition, match="remove snapshot A: is the parent of child"):
        snaps.remove("A")
    snaps.remove("child")
    snaps.remove("A")
    assert snaps.walk() == []
    assert [n for n in os.listdir(snaps.root) if n.isdigit()] == []


def test_commit_stacks_a_snapshot_made_without_a_parent(snaps):
    """A layer extracted before its place in a chain was known is stacked when committed."""
    snaps.prepare("a")
    snaps.commit("A", "a")
    snaps.prepare("b")
    with pytest.raises(NotFound, match="commit b: parent nope: not found"):
        snaps.commit("B", "b", parent="nope")
    snaps.commit("B", "b", {"x": "1"}, parent="A")
    assert snaps.stat("B")["parent"] == "A" and snaps.stat("B")["labels"] == {"x": "1"}
    assert [p["key"] for p in snaps.parents("B")] == ["A"]
    snaps.prepare("c", "B")
    with pytest.raises(FailedPrecondition, match="commit c: already stacked on B"):
        snaps.commit("C", "c", parent="A")
    assert snaps.stat("c")["kind"] == "active"


def test_check_compares_every_record_with_the_disk(snaps):
    from knarr.oci.digest import chain_id

    diff = "sha256:" + "a" * 64
    snaps.prepare("a")
    snaps.commit(diff, "a", {"knarr.diff_id": diff})
    snaps.prepare("b", diff)
    snaps.commit("not-a-chain-id", "b", {"knarr.diff_id": diff})
    snaps.prepare("c", "not-a-chain-id")
    snaps.prepare("d")
    assert chain_id(None, diff) == diff
    assert snaps.check() == ["snapshot not-a-chain-id: key is not the chain id of its parent "
                             f"and diff_id {diff}"]
    os.rmdir(os.path.join(os.path.dirname(snaps.path("c")), "work"))
    os.rmdir(snaps.path("d"))
    os.makedirs(os.path.join(snaps.root, "99", "fs"))
    work_c = os.path.join(os.path.dirname(snaps.path("c")), "work")
    assert snaps.check() == [
        "snapshot not-a-chain-id: key is not the chain id of its parent and diff_id " + diff,
        f"snapshot c: directory {work_c} is missing",
        f"snapshot d: directory {snaps.path('d')} is missing",
        "snapshots/99: a directory no snapshot names"]


def test_cleanup_removes_unnamed_dirs(snaps):
    snaps.prepare("a")
    os.makedirs(os.path.join(snaps.root, "99", "fs"))
    os.makedirs(os.path.join(snaps.root, "rm-7"))
    assert sorted(snaps.cleanup()) == ["99", "rm-7"]
    assert snaps.exists("a") and os.path.isdir(snaps.path("a"))


def test_apply_whiteouts_and_opaque_dirs(snaps):
    applied = _layer(snaps, "L1", None,
                     ("etc", "dir", None), ("etc/.wh.passwd", "file", ""),
                     ("var", "dir", None), ("var/.wh..wh..opq", "file", ""),
                     ("var/new", "file", "n"))
    fs = snaps.path("L1")
    st = os.lstat(os.path.join(fs, "etc/passwd"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(os.path.join(fs, "var"), "trusted.overlay.opaque") == b"y"
    assert not os.path.exists(os.path.join(fs, "etc/.wh.passwd"))
    assert applied.diff_id.startswith("sha256:") and applied.entries == 5


def test_apply_keeps_metadata(snaps, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, extra in [("d", tarfile.DIRTYPE, {}), ("d/f", tarfile.REGTYPE, {}),
                                  ("d/hard", tarfile.LNKTYPE, {"linkname": "d/f"}),
                                  ("d/sym", tarfile.SYMTYPE, {"linkname": "/etc/shadow"}),
                                  ("d/null", tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3}),
                                  ("d/fifo", tarfile.FIFOTYPE, {})]:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = kind, 0o4750, 1234, 5678
            info.mtime = 1_500_000_000
            for k, v in extra.items():
                setattr(info, k, v)
            data = b"payload" if kind == tarfile.REGTYPE else None
            if data:
                info.size = len(data)
                info.pax_headers = {"SCHILY.xattr.user.color": "blue",
                                    "SCHILY.xattr.security.capability":
                                        _CAP.decode("utf-8", "surrogateescape")}
            t.addfile(info, io.BytesIO(data) if data else None)
    snaps.prepare("k")
    snaps.apply("k", io.BytesIO(buf.getvalue()))
    fs = snaps.path("k")
    f = os.stat(os.path.join(fs, "d/f"))
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (1234, 5678, 0o4750)
    assert f.st_mtime == 1_500_000_000 and f.st_nlink == 2
    assert os.getxattr(os.path.join(fs, "d/f"), "user.color") == b"blue"
    assert os.getxattr(os.path.join(fs, "d/f"), "security.capability") == _CAP
    assert os.readlink(os.path.join(fs, "d/sym")) == "/etc/shadow"
    assert os.lstat(os.path.join(fs, "d/sym")).st_uid == 1234
    null = os.lstat(os.path.join(fs, "d/null"))
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.lstat(os.path.join(fs, "d/fifo")).st_mode)
    d = os.stat(os.path.join(fs, "d"))
    assert d.st_mtime == 1_500_000_000 and stat.S_IMODE(d.st_mode) == 0o4750


def test_diff_id_is_the_digest_of_the_uncompressed_stream(snaps):
    import hashlib
    data = _tar(("a", "file", "x" * 5000))
    snaps.prepare("k")
    applied = snaps.apply("k", io.BytesIO(data))
    assert applied.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert applied.size == len(data)


def test_diff_turns_overlay_records_into_whiteouts(snaps):
    snaps.prepare("k")
    fs = snaps.path("k")
    os.makedirs(os.path.join(fs, "opaque/sub"))
    os.setxattr(os.path.join(fs, "opaque"), "trusted.overlay.opaque", b"y")
    os.setxattr(os.path.join(fs, "opaque"), "trusted.overlay.origin", b"x")
    os.mknod(os.path.join(fs, "gone"), stat.S_IFCHR, os.makedev(0, 0))
    with open(os.path.join(fs, "opaque/sub/file"), "w") as f:
        f.write("hi")
    os.link(os.path.join(fs, "opaque/sub/file"), os.path.join(fs, "hard"))
    out = io.BytesIO()
    diff_id, size = snaps.diff("k", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as t:
        members = {m.name: m for m in t.getmembers()}
    assert list(members) == [".wh.gone", "hard", "opaque", "opaque/.wh..wh..opq",
                             "opaque/sub", "opaque/sub/file"]
    assert members["opaque/sub/file"].islnk() and members["opaque/sub/file"].linkname == "hard"
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay")
                   for k in members["opaque"].pax_headers)
    # Round trip: applying the diff gives back overlay's form.
    snaps.prepare("back")
    assert snaps.apply("back", io.BytesIO(out.getvalue())).diff_id == diff_id
    back = snaps.path("back")
    assert os.getxattr(os.path.join(back, "opaque"), "trusted.overlay.opaque") == b"y"
    assert os.lstat(os.path.join(back, "gone")).st_rdev == 0
    assert os.stat(os.path.join(back, "hard")).st_nlink == 2


def _mount(mounts, target):
    (m,) = mounts
    cwd, m = overlay.fit_overlay(m)
    pid = os.fork()
    if pid == 0:  # chdir only in a child, so the test's own cwd never moves
        try:
            if cwd:
                os.chdir(cwd)
            flags = ksys.MS_BIND | ksys.MS_REC if m["type"] == "bind" else 0
            ksys.mount(m["source"], target, m["type"] if m["type"] != "bind" else None, flags,
                       ",".join(o for o in m["options"] if o not in ("rbind", "rw", "ro"))
                       if m["type"] == "overlay" else None)
            os._exit(0)
        except BaseException:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] == 0, f"mount {m} failed"


@privileged
def test_overlay_mount_and_diff_of_a_container(snaps, tmp_path):
    _layer(snaps, "L1", None, ("etc", "dir", None), ("etc/passwd", "file", "root"),
           ("data", "dir", None), ("data/old", "file", "old"))
    target = tmp_path / "mnt"
    target.mkdir()
    _mount(snaps.prepare("ctr", "L1"), str(target))
    try:
        assert (target / "etc/passwd").read_text() == "root"
        os.unlink(target / "etc/passwd")
        import shutil
        shutil.rmtree(target / "data")
        (target / "data").mkdir()
        (target / "data/new").write_text("new")
    finally:
        ksys.umount2(str(target))
    out = io.BytesIO()
    snaps.diff("ctr", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as t:
        names = t.getnames()
    assert "etc/.wh.passwd" in names and "data/.wh..wh..opq" in names and "data/new" in names


@privileged
def test_deep_chain_beyond_the_option_page(tmp_path):
    root = tmp_path / ("a-long-state-root-" * 5)
    snaps = Snapshotter(str(root))
    parent = None
    depth = 150
    for i in range(depth):
        _layer(snaps, f"L{i}", parent, (f"f{i}", "file", str(i)))
        parent = f"L{i}"
    mounts = snaps.view("deep", parent)
    assert overlay.option_length(mounts[0]) > overlay.PAGE_SIZE
    target = tmp_path / "mnt"
    target.mkdir()
    _mount(mounts, str(target))
    try:
        assert (target / "f0").read_text() == "0"
        assert (target / f"f{depth - 1}").read_text() == str(depth - 1)
        assert len(os.listdir(target)) == depth
    finally:
        ksys.umount2(str(target))
    snaps.close()


def test_fit_overlay_leaves_short_mounts_alone():
    m = {"type": "overlay", "source": "overlay", "options": ["lowerdir=/a/1/fs:/a/2/fs"]}
    assert overlay.fit_overlay(m) == (None, m)
    long = {"type": "overlay", "source": "overlay",
            "options": ["index=off", "upperdir=/x/snapshots/9/fs", "workdir=/x/snapshots/9/work",
                        "lowerdir=" + ":".join(f"/x/snapshots/{i}/fs" for i in range(300))]}
    cwd, fitted = overlay.fit_overlay(long)
    assert cwd == "/x/snapshots"
    assert fitted["options"][1:3] == ["upperdir=9/fs", "workdir=9/work"]
    assert fitted["options"][3].startswith("lowerdir=0/fs:1/fs:")


def test_snapshots_root_is_marked_top_of_directory_trees(tmp_path):
    """Where the file system has inode flags (ext4 here), the snapshots root carries
    FS_TOPDIR_FL, so ext4 spreads snapshot directories; elsewhere nothing is set and
    the snapshotter works all the same."""
    probe = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ksys.inode_flags(probe)
        has_flags = True
    except OSError:
        has_flags = False
    finally:
        os.close(probe)
    snaps = Snapshotter(str(tmp_path))
    try:
        fd = os.open(snaps.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if has_flags:
                assert ksys.inode_flags(fd) & ksys.FS_TOPDIR_FL
            else:
                with pytest.raises(OSError):
                    ksys.inode_flags(fd)
        finally:
            os.close(fd)
        snaps.prepare("a", None)
        assert snaps.exists("a")
    finally:
        snaps.close()


def test_snapshot_numbers_are_never_reused(tmp_path):
    """A snapshot made after others were removed (even all of them, even by another
    Snapshotter of the same root) gets a directory name not used before: ext4 places a
    new directory by a hash of its name, and a reused name would put the new layer in
    the block group the removed one has just freed."""
    snaps = Snapshotter(str(tmp_path))
    try:
        snaps.prepare("a")
        snaps.prepare("b")
        first = {os.path.basename(os.path.dirname(snaps.path(k))) for k in ("a", "b")}
        snaps.remove("b")
        snaps.remove("a")
        snaps.prepare("c")
        again = Snapshotter(str(tmp_path))
        try:
            again.prepare("d")
        finally:
            again.close()
        later = {os.path.basename(os.path.dirname(snaps.path(k))) for k in ("c", "d")}
        assert first == {"1", "2"} and later == {"3", "4"}
        assert sorted(n for n in os.listdir(snaps.root) if n.isdigit()) == ["3", "4"]
        assert snaps.cleanup() == []
    finally:
        snaps.close()
