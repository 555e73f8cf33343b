"""The whole engine root checked at rest: images, containers and what joins them.

`check` is what a crash must never break: every blob's digest, every image's blobs and
layers (the image store's own check), every container record with its directory,
config and writable snapshot, every snapshot of a container named by a record, and
nothing under the container directories that no record names. What a crash may
legitimately leave (a container half made or half removed, whose record was never
written or is already gone) the daemon removes at start (`sweep_removed` and
`cleanup_orphan`), so a check after a restart finds nothing.
"""

import os

from knarr.engine import records as container_records
from knarr.images import ImageStore

__all__ = ["check", "orphans"]

_SNAPSHOT_PREFIX = "container-"


def check(root: str, exec_root: str | None = None) -> list[str]:
    """One line per problem in the engine root `root`; [] when all is well."""
    recs = container_records.Records(root)
    store = ImageStore(root, in_use=recs.image_in_use)
    try:
        problems = store.check()
        known = {r["Id"] for r in recs.all()}
        for record in recs.all():
            problems += _check_record(root, store, record)
        problems += orphans(root, exec_root, store, known)
        return problems
    finally:
        store.close()
        recs.close()


def _check_record(root: str, store: ImageStore, record: dict) -> list[str]:
    cid, out = record["Id"], []
    cdir = os.path.join(root, "containers", cid)
    if not os.path.isfile(os.path.join(cdir, "config.v2.json")):
        out.append(f"container {cid}: {cdir}/config.v2.json is missing")
    if store.records.get(record["Image"]) is None:
        out.append(f"container {cid}: image {record['Image']} is missing")
    key = (record.get("_snapshot") or {}).get("key")
    if not key or not store.snapshots.exists(key):
        out.append(f"container {cid}: snapshot {key} is missing")
    return out


def orphans(root: str, exec_root: str | None, store: ImageStore, known: set[str]) -> list[str]:
    """What no container record names: container dirs, monitor dirs, container snapshots."""
    out = [f"container dir {d}: no record names it"
           for d in _dirs(os.path.join(root, "containers")) if d not in known]
    if exec_root:
        out += [f"monitor dir {d}: no record names it"
                for d in _dirs(os.path.join(exec_root, "containers")) if d not in known]
    out += [f"snapshot {row['key']}: no container record names it"
            for row in store.snapshots.walk()
            if row["key"].startswith(_SNAPSHOT_PREFIX) and
            row["key"][len(_SNAPSHOT_PREFIX):] not in known]
    return out


def _dirs(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
