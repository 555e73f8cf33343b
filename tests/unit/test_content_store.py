"""The content store: verified commits, resumable ingest, leases, gc, store check."""

import hashlib
import os
import subprocess
import sys

import pytest

from knarr.content import ContentStore
from knarr.errors import Conflict, InvalidArgument, NotFound


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@pytest.fixture
def store(tmp_path):
    return ContentStore(str(tmp_path))


def _blob_files(store):
    return sorted(os.listdir(store.blob_root))


def test_commit_writes_a_read_only_blob(store, tmp_path):
    data = b"hello blob"
    with store.writer("w1", expected=_digest(data)) as w:
        w.write(data)
        assert w.commit(size=len(data)) == _digest(data)
    path = tmp_path / "content/blobs/sha256" / _digest(data).split(":")[1]
    assert path.read_bytes() == data
    assert oct(path.stat().st_mode & 0o777) == "0o444"
    assert store.exists(_digest(data))
    assert store.info(_digest(data)).size == len(data)
    assert store.read(_digest(data)) == data
    assert os.listdir(store.ingest_root) == []


def test_digest_mismatch_names_both_digests_and_leaves_nothing(store):
    expected = _digest(b"other")
    with store.writer("bad") as w:
        w.write(b"evil")
        with pytest.raises(InvalidArgument) as info:
            w.commit(expected=expected)
    message = str(info.value)
    assert f"expected {expected}" in message and f"got {_digest(b'evil')}" in message
    assert _blob_files(store) == [] and os.listdir(store.ingest_root) == []


def test_size_mismatch_is_refused(store):
    with store.writer("short") as w:
        w.write(b"abc")
        with pytest.raises(InvalidArgument, match="size mismatch: expected 4 bytes, got 3"):
            w.commit(size=4)
    assert _blob_files(store) == []


def test_put_with_wrong_expected_digest_is_refused(store):
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        store.put(b"x", expected=_digest(b"y"))
    assert _blob_files(store) == []


def test_commit_of_existing_blob_is_idempotent(store):
    d = store.put(b"same")
    assert store.put(b"same") == d
    assert _blob_files(store) == [d.split(":")[1]]


def test_ingest_resumes_after_close(store):
    data = b"0123456789" * 1000
    w = store.writer("resume")
    w.write(data[:3000])
    w.close()
    assert store.ingests() == [("resume", 3000, False)]
    with store.writer("resume") as w:
        assert w.offset == 3000
        w.write(data[3000:])
        assert w.commit(size=len(data), expected=_digest(data)) == _digest(data)


def test_ingest_ref_with_odd_characters(store):
    with store.writer("pull docker.io/library/busybox:latest layer/1") as w:
        w.write(b"x")
        w.commit()
    assert store.exists(_digest(b"x"))


def test_second_writer_on_same_ref_is_refused(store):
    with store.writer("busy"):
        with pytest.raises(Conflict, match="ingest busy: another writer holds it"):
            store.writer("busy")
        assert store.ingests()[0][2] is True


def test_clean_ingests_spares_live_writers(store):
    live = store.writer("load-live")
    dead = store.writer("load-dead")
    dead.write(b"partial")
    dead.close()
    assert store.clean_ingests(prefix="load-") == ["load-dead"]
    assert [ref for ref, _, _ in store.ingests()] == ["load-live"]
    live.abort()


def test_missing_blob_is_not_found(store):
    missing = _digest(b"nope")
    for call in (store.info, store.open, store.delete):
        with pytest.raises(NotFound, match=f"blob {missing}: not found"):
            call(missing)


def test_walk_and_delete(store):
    a, b = store.put(b"a"), store.put(b"b")
    assert {i.digest for i in store.walk()} == {a, b}
    store.delete(a)
    assert {i.digest for i in store.walk()} == {b}


def test_verify_all_finds_corruption(store):
    good, bad = store.put(b"good"), store.put(b"bad")
    path = store.blob_path(bad)
    os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(b"tampered")
    os.chmod(path, 0o444)
    open(os.path.join(store.blob_root, "junk"), "w").close()
    problems = store.verify_all()
    assert set(problems) == {"content/blobs/sha256/junk: not a blob name",
                             f"blob {bad}: digest mismatch: content is {_digest(b'tampered')}"}
    assert store.verify(good) is None


def test_gc_keeps_roots_and_leased(store):
    keep, leased, gone = store.put(b"keep"), store.put(b"leased"), store.put(b"gone")
    with store.lease("load") as lease:
        lease.add(leased)
        removed = store.gc({keep})
        assert [i.digest for i in removed] == [gone]
    assert {i.digest for i in store.gc({keep})} == {leased}
    assert {i.digest for i in store.walk()} == {keep}


def test_lease_of_dead_process_is_dropped(store, tmp_path):
    d = store.put(b"orphan")
    code = ("import sys; from knarr.content import ContentStore; "
            f"l = ContentStore({str(tmp_path)!r}).lease('x'); l.add({d!r}); "
            "import os; os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert len(os.listdir(store.lease_root)) == 1
    assert store.leased() == set()
    assert os.listdir(store.lease_root) == []
