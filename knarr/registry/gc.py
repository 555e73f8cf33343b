"""`knarr-registry gc`: delete blobs no repository links, and stale upload sessions.

Mark and sweep run under the exclusive registry lock (storage.gc_lock); a
push commits a blob and links it under the shared lock, so the sweep never
falls between the two and a concurrent push is never robbed of a blob. A
blob stays while any repository links it (as a layer, a config or a
manifest). A repository's link to a blob that none of its manifests names is
dropped first, once it is a day old (`--orphan-age`): a push links its blobs
before its manifest, so a younger one may belong to a push in progress.
"""

import os

from knarr.errors import FailedPrecondition
from knarr.registry.storage import Storage
from knarr.registry.uploads import Uploads

__all__ = ["collect"]


def collect(root: str, upload_age: float = 7 * 86400.0, dry_run: bool = False,
            orphan_age: float | None = 86400.0) -> dict:
    """Run one collection; return what was (or, dry, would be) removed.

    `orphan_age`: unlink first the blobs a repository holds but none of its manifests
    names, once their link is that many seconds old (None keeps them).
    """
    if os.path.exists(os.path.join(root, "metadata.db")):
        # an engine root: its images' blobs are linked by no repository and would all go
        raise FailedPrecondition(f"gc {root}: an engine's image store lives here, not a "
                                 "registry's own root", path=root)
    storage = Storage(root)
    with storage.gc_lock(exclusive=True):
        orphans = _orphans(storage, orphan_age)
        if not dry_run:
            for name, digest in orphans:
                storage.unlink_blob(name, digest)
        keep = storage.referenced()
        if dry_run:
            doomed = [i for i in storage.content.walk()
                      if i.digest not in keep | storage.content.leased()]
            return {"blobs": [i.digest for i in doomed], "bytes": sum(i.size for i in doomed),
                    "uploads": [], "orphans": [f"{n}@{d}" for n, d in orphans]}
        removed = storage.content.gc(keep)
        storage.drop_dead_aliases()
    uploads = Uploads(storage).stale(upload_age)
    return {"blobs": [i.digest for i in removed], "bytes": sum(i.size for i in removed),
            "uploads": uploads, "orphans": [f"{n}@{d}" for n, d in orphans]}


def _orphans(storage: Storage, age: float | None) -> list[tuple[str, str]]:
    if age is None:
        return []
    return [(name, digest) for name in storage.repositories()
            for digest in storage.orphan_layers(name, age)]
