"""`knarr-registry gc`: delete blobs no repository links, and stale upload sessions.

Mark and sweep run under the exclusive registry lock (storage.gc_lock); a
push commits a blob and links it under the shared lock, so the sweep never
falls between the two and a concurrent push is never robbed of a blob. A
blob stays while any repository links it (as a layer, a config or a
manifest), whether or not a manifest names it.
"""

import os

from knarr.errors import FailedPrecondition
from knarr.registry.storage import Storage
from knarr.registry.uploads import Uploads

__all__ = ["collect"]


def collect(root: str, upload_age: float = 7 * 86400.0, dry_run: bool = False) -> dict:
    """Run one collection; return what was (or, dry, would be) removed."""
    if os.path.exists(os.path.join(root, "metadata.db")):
        # an engine root: its images' blobs are linked by no repository and would all go
        raise FailedPrecondition(f"gc {root}: an engine's image store lives here, not a "
                                 "registry's own root", path=root)
    storage = Storage(root)
    with storage.gc_lock(exclusive=True):
        keep = storage.referenced()
        if dry_run:
            doomed = [i for i in storage.content.walk()
                      if i.digest not in keep | storage.content.leased()]
            return {"blobs": [i.digest for i in doomed], "bytes": sum(i.size for i in doomed),
                    "uploads": []}
        removed = storage.content.gc(keep)
        storage.drop_dead_aliases()
    uploads = Uploads(storage).stale(upload_age)
    return {"blobs": [i.digest for i in removed], "bytes": sum(i.size for i in removed),
            "uploads": uploads}
