"""Overlay snapshots keyed by chain id, layer apply (unpack) and diff."""

from knarr.snapshots.apply import Applied, HashingReader, apply_layer
from knarr.snapshots.compression import decompressed, detect
from knarr.snapshots.diff import write_diff
from knarr.snapshots.overlay import ACTIVE, COMMITTED, VIEW, Snapshotter

__all__ = ["ACTIVE", "COMMITTED", "VIEW", "Applied", "HashingReader", "Snapshotter", "apply_layer",
           "decompressed", "detect", "write_diff"]
