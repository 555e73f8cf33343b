"""apply_layer creates a regular file with its final mode where the umask and no default
ACL leave that mode as it is (no fchmod then), and every file still ends with exactly
the archive's mode: whatever the umask, special bits, a default ACL on the target or one
the archive gives a directory."""

import contextlib
import io
import os
import stat
import struct
import tarfile

import pytest

from knarr.snapshots import apply
from knarr.snapshots.apply import apply_layer

MODES = (0o644, 0o755, 0o600, 0o640, 0o444, 0o000, 0o666, 0o777, 0o4755, 0o2755, 0o1777,
         0o6711)
BIG = 700 << 10  # above the hand-off size: written by the extracting thread
# A default ACL that lets new files have no group or other bits: a file created with
# 0644 below it gets 0600, so only an fchmod gives it 0644.
_STINGY_ACL = b"\x02\x00\x00\x00" + b"".join(
    struct.pack("<HHI", tag, perm, 0xFFFFFFFF) for tag, perm in ((0x01, 7), (0x04, 0), (0x20, 0)))


def _entry(name, mode, size, owner, pax=None):
    info = tarfile.TarInfo(name)
    info.mode, info.size, info.mtime = mode, size, 1_500_000_000
    info.uid, info.gid = owner
    if pax:
        info.pax_headers = pax
    return info


def _dir(name, acl):
    info = _entry(name, 0o755, 0, (0, 0), pax=acl and {
        "SCHILY.xattr.system.posix_acl_default": acl.decode("utf-8", "surrogateescape")})
    info.type = tarfile.DIRTYPE
    return info


def _archive(dirs=(("d", None),), sizes=(1, BIG), owners=((0, 0), (1000, 2000))):
    """Files of every mode in MODES, of each size and owner, in the root and in each dir
    (a dir with an xattr value given is given that default ACL); {path: (mode, owner)}."""
    buf, want = io.BytesIO(), {}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, acl in dirs:
            t.addfile(_dir(name, acl))
        for mode in MODES:
            for size in sizes:
                for owner in owners:
                    for top in ["", *(f"{d}/" for d, _ in dirs)]:
                        path = f"{top}f{mode:o}-{size}-{owner[0]}"
                        t.addfile(_entry(path, mode, size, owner), io.BytesIO(b"x" * size))
                        want[path] = (mode, owner)
    return buf.getvalue(), want


@contextlib.contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _check(target, want):
    for path, (mode, owner) in want.items():
        st = os.stat(target / path)
        assert stat.S_IMODE(st.st_mode) == mode, (path, oct(st.st_mode))
        assert (st.st_uid, st.st_gid) == (owner if os.geteuid() == 0 else (st.st_uid, st.st_gid))
        assert st.st_mtime == 1_500_000_000


@pytest.mark.parametrize("writers", [0, 2])
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o000, 0o007])
def test_every_file_gets_the_archive_s_mode_whatever_the_umask(tmp_path, writers, mask):
    data, want = _archive(owners=((0, 0), (1000, 2000)) if os.geteuid() == 0 else ((0, 0),))
    target = tmp_path / "fs"
    target.mkdir()
    with _umask(mask):
        apply_layer(str(target), io.BytesIO(data), writers=writers)
    _check(target, want)


@pytest.mark.parametrize("writers", [0, 2])
def test_a_default_acl_the_archive_gives_a_directory_decides_no_file_s_mode(tmp_path, writers):
    # files in the root are made before the ACL'd dir and after it, handed off or not
    data, want = _archive(dirs=(("d", None), ("acl", _STINGY_ACL), ("acl/sub", None)))
    target = tmp_path / "fs"
    target.mkdir()
    with _umask(0o022):
        apply_layer(str(target), io.BytesIO(data), writers=writers)
    assert os.getxattr(target / "acl", "system.posix_acl_default") == _STINGY_ACL
    _check(target, want)


@pytest.mark.parametrize("writers", [0, 2])
def test_files_handed_off_before_their_directory_gets_a_default_acl_keep_their_mode(
        tmp_path, writers):
    # the dir's entry comes again after its files, with a default ACL: files the
    # writers have not made yet must not be made under it with their modes
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.addfile(_dir("late", None))
        for i in range(5):
            t.addfile(_entry(f"late/{i}", 0o644, 1, (0, 0)), io.BytesIO(b"x"))
        t.addfile(_dir("late", _STINGY_ACL))
    target = tmp_path / "fs"
    target.mkdir()
    with _umask(0o022):
        apply_layer(str(target), io.BytesIO(buf.getvalue()), writers=writers)
    assert os.getxattr(target / "late", "system.posix_acl_default") == _STINGY_ACL
    _check(target, {f"late/{i}": (0o644, (0, 0)) for i in range(5)})


@pytest.mark.parametrize("writers", [0, 2])
def test_a_default_acl_on_the_target_decides_no_file_s_mode(tmp_path, writers):
    data, want = _archive()
    target = tmp_path / "fs"
    target.mkdir()
    os.setxattr(target, "system.posix_acl_default", _STINGY_ACL)
    with _umask(0o022):
        apply_layer(str(target), io.BytesIO(data), writers=writers)
    _check(target, want)


def _counting_fchmods(monkeypatch):
    """Replace os.fchmod with one that counts the regular files it changes."""
    changed = []
    real = os.fchmod

    def fchmod(fd, mode):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            changed.append(mode)
        real(fd, mode)
    monkeypatch.setattr(os, "fchmod", fchmod)
    return changed


@pytest.mark.parametrize("writers", [0, 2])
def test_a_file_whose_mode_the_umask_keeps_is_not_fchmod_ed(tmp_path, monkeypatch, writers):
    data, want = _archive(owners=((0, 0),))
    changed = _counting_fchmods(monkeypatch)
    target = tmp_path / "fs"
    target.mkdir()
    with _umask(0o022):
        apply_layer(str(target), io.BytesIO(data), writers=writers)
    _check(target, want)
    # the special bits, and what a 022 umask strips, take an fchmod; nothing else
    assert sorted(changed) == sorted(m for m in MODES if m & 0o7022
                                     for _ in range(2 * 2))  # 2 sizes, root and d/
    assert len(changed) < len(want)


def test_a_target_that_is_not_empty_fchmods_every_file(tmp_path, monkeypatch):
    # a directory already there may hold a default ACL this extraction did not make
    data, want = _archive(owners=((0, 0),))
    target = tmp_path / "fs"
    (target / "d").mkdir(parents=True)
    changed = _counting_fchmods(monkeypatch)
    with _umask(0o022):
        apply_layer(str(target), io.BytesIO(data))
    _check(target, want)
    assert len(changed) == len(want)


def test_an_unknown_umask_fchmods_every_file(tmp_path, monkeypatch):
    data, want = _archive(owners=((0, 0),))
    monkeypatch.setattr(apply, "_umask", lambda: None)
    changed = _counting_fchmods(monkeypatch)
    target = tmp_path / "fs"
    target.mkdir()
    apply_layer(str(target), io.BytesIO(data))
    _check(target, want)
    assert len(changed) == len(want)


def test_the_umask_is_read_without_being_set():
    with _umask(0o027):
        assert apply._umask() == 0o027
    with _umask(0o000):
        assert apply._umask() == 0o000
