"""The engine root's check: images, containers and what joins them."""

import os

from knarr.engine import check
from knarr.engine.records import Records
from knarr.images import ImageStore, hello_world


def _container(root: str, store: ImageStore, image_id: str, cid: str) -> dict:
    key = f"container-{cid}"
    store.snapshots.prepare(key, store.chain_ids(image_id)[-1])
    os.makedirs(os.path.join(root, "containers", cid))
    with open(os.path.join(root, "containers", cid, "config.v2.json"), "w") as f:
        f.write("{}")
    return {"Id": cid, "Name": f"/c{cid[:4]}", "Image": image_id, "_created": 1.0,
            "_snapshot": {"key": key, "mounts": []}}


def test_a_consistent_root_passes_and_each_break_is_named(tmp_path):
    root = str(tmp_path)
    store = ImageStore(root)
    image_id = hello_world(store)
    recs = Records(root)
    good, half = "a" * 64, "b" * 64
    recs.add(_container(root, store, image_id, good))
    assert check.check(root, str(tmp_path / "run")) == []

    # A create killed before its record: a directory and a snapshot nobody names.
    _container(root, store, image_id, half)
    os.makedirs(tmp_path / "run" / "containers" / half)
    problems = check.check(root, str(tmp_path / "run"))
    assert problems == [f"container dir {half}: no record names it",
                        f"monitor dir {half}: no record names it",
                        f"snapshot container-{half}: no container record names it"]
    store.snapshots.remove(f"container-{half}")
    os.remove(os.path.join(root, "containers", half, "config.v2.json"))
    os.rmdir(os.path.join(root, "containers", half))
    os.rmdir(tmp_path / "run" / "containers" / half)
    assert check.check(root, str(tmp_path / "run")) == []

    # A record whose snapshot and config are gone: half present.
    store.snapshots.remove(f"container-{good}")
    os.remove(os.path.join(root, "containers", good, "config.v2.json"))
    problems = check.check(root)
    assert problems == [f"container {good}: {root}/containers/{good}/config.v2.json is missing",
                        f"container {good}: snapshot container-{good} is missing"]
    recs.close()
    store.close()
