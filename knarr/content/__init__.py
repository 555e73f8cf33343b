"""Content-addressed blobs: verified commits, resumable ingest, leases and gc."""

from knarr.content.store import ContentStore, Info, Lease
from knarr.content.writer import Writer

__all__ = ["ContentStore", "Info", "Lease", "Writer"]
