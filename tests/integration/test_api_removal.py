"""Removal: a removed container is gone at once for the API, its files a moment later.

The engine forgets the record first and answers (`run --rm` waits for
"removed"), then drops the rw snapshot and the container's dir in its image
thread; image calls queue behind that, and a daemon killed in between sweeps
the rest when it starts again.
"""

import json
import os
import sqlite3
import time

import pytest
from test_api_support import (  # noqa: F401
    cgroup_dirs,
    knarrd_fixture,
    mounts_under,
    processes_under,
    wait_for,
)

pytestmark = pytest.mark.privileged


def _snapshot_keys(root: str) -> set[str]:
    db = sqlite3.connect(os.path.join(root, "snapshots", "metadata.db"))
    try:
        return {row[0] for row in db.execute("SELECT key FROM snapshots")}
    finally:
        db.close()


def test_auto_removed_container_is_gone_when_wait_answers(knarrd):
    client = knarrd.client
    cid = client.create("busybox", ["sleep", "0.5"], name="brief",
                        HostConfig={"AutoRemove": True})
    assert client.post(f"/containers/{cid}/start").status == 204
    resp = client.post(f"/containers/{cid}/wait", condition="removed")
    assert resp.status == 200 and resp.json()["StatusCode"] == 0
    assert client.get(f"/containers/{cid}/json").status == 404
    assert cid not in {c["Id"] for c in client.get("/containers/json", all=1).json()}
    # the image is no longer in use: its removal queues behind the container's files
    resp = client.delete("/images/busybox")
    assert resp.status == 200, resp.body
    assert wait_for(lambda: not os.path.exists(os.path.join(knarrd.root, "containers", cid)),
                    timeout=5)
    assert f"container-{cid}" not in _snapshot_keys(knarrd.root)


def test_files_a_crash_left_behind_are_swept_at_start(knarrd):
    client = knarrd.client
    gone = client.create("busybox", ["true"], name="gone")
    kept = client.create("busybox", ["true"], name="kept")
    knarrd.kill9()
    # as if the daemon died between forgetting the record and removing the files
    db = sqlite3.connect(os.path.join(knarrd.root, "containers.db"))
    with db:
        db.execute("DELETE FROM containers WHERE id = ?", (gone,))
    db.close()
    assert f"container-{gone}" in _snapshot_keys(knarrd.root)
    knarrd.start()
    assert not os.path.exists(os.path.join(knarrd.root, "containers", gone))
    keys = _snapshot_keys(knarrd.root)
    assert f"container-{gone}" not in keys
    assert f"container-{kept}" in keys
    assert os.path.isdir(os.path.join(knarrd.root, "containers", kept))
    assert client.inspect(kept)["Name"] == "/kept"


def test_auto_removed_container_dies_then_is_destroyed(knarrd):
    client = knarrd.client
    since = time.time()
    cid = client.create("busybox", ["sh", "-c", "sleep 0.5; exit 3"], name="three",
                        HostConfig={"AutoRemove": True})
    assert client.post(f"/containers/{cid}/start").status == 204
    resp = client.post(f"/containers/{cid}/wait", condition="removed")
    assert resp.status == 200 and resp.json()["StatusCode"] == 3
    assert client.get(f"/containers/{cid}/json").status == 404
    past = client.get("/events", since=str(since), until=str(time.time()))
    actions = [e["Action"] for e in map(json.loads, past.body.splitlines()) if e["id"] == cid]
    assert actions == ["create", "start", "die", "destroy"], actions
    # the monitor finishes its teardown on its own: no mount, cgroup or process stays
    assert wait_for(lambda: not cgroup_dirs(cid) and not mounts_under(knarrd.base), timeout=5)
    assert wait_for(lambda: not os.path.exists(os.path.join(knarrd.root, "containers", cid)),
                    timeout=5)


def test_a_removed_container_whose_daemon_died_is_cleaned_at_start(knarrd):
    client = knarrd.client
    cid = client.create("busybox", ["sleep", "1000"], name="orphan",
                        HostConfig={"AutoRemove": True})
    assert client.post(f"/containers/{cid}/start").status == 204
    knarrd.kill9()
    # as if the daemon died right after forgetting it at its die, its monitor still there
    db = sqlite3.connect(os.path.join(knarrd.root, "containers.db"))
    with db:
        db.execute("DELETE FROM containers WHERE id = ?", (cid,))
    db.close()
    knarrd.start()
    assert not os.path.exists(os.path.join(knarrd.exec_root, "containers", cid))
    assert not os.path.exists(os.path.join(knarrd.root, "containers", cid))
    assert f"container-{cid}" not in _snapshot_keys(knarrd.root)
    assert not cgroup_dirs(cid)
    assert not mounts_under(knarrd.base)
    assert wait_for(lambda: not processes_under(knarrd.base), timeout=5)
