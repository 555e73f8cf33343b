"""Overlay snapshots keyed by chain id, layer apply (unpack) and diff."""

from knarr.snapshots.apply import Applied, HashingReader, apply_layer
from knarr.snapshots.compression import decompressed, detect
from knarr.snapshots.diff import DIR_LAYER_FORMAT, DIR_LAYER_LABEL, diff_digest, write_diff
from knarr.snapshots.overlay import ACTIVE, COMMITTED, VIEW, Snapshotter, mark_top_directory
from knarr.snapshots.recipe import RECIPE_FORMAT, RECIPE_LABEL

__all__ = ["ACTIVE", "COMMITTED", "DIR_LAYER_FORMAT", "DIR_LAYER_LABEL", "RECIPE_FORMAT",
           "RECIPE_LABEL", "VIEW", "Applied", "HashingReader", "Snapshotter", "apply_layer",
           "decompressed", "detect", "diff_digest", "mark_top_directory", "write_diff"]
