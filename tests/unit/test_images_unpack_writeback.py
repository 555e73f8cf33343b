"""unpack.WritingBack: the thread that writes an unpack's files out while it runs."""

import os
import time

import pytest

from knarr.images import unpack


def test_writing_back_syncs_while_it_runs_and_stops_at_exit(tmp_path, monkeypatch):
    synced = []
    real = unpack.ksys.syncfs

    def counting(fd):  # the real syncfs, counted
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(unpack.ksys, "syncfs", counting)
    fds = set(os.listdir("/proc/self/fd"))
    with unpack.WritingBack(str(tmp_path), interval=0.01) as back:
        (tmp_path / "f").write_bytes(b"x" * 65536)
        deadline = time.monotonic() + 10
        while len(synced) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(synced) >= 2 and set(synced) == {os.stat(tmp_path).st_ino}
    assert not back.thread.is_alive()
    count = len(synced)
    time.sleep(0.05)
    assert len(synced) == count
    assert set(os.listdir("/proc/self/fd")) == fds  # its descriptor is closed


def test_writing_back_of_a_missing_dir_fails_before_any_thread(tmp_path):
    with pytest.raises(FileNotFoundError):
        with unpack.WritingBack(str(tmp_path / "gone")):
            pass
