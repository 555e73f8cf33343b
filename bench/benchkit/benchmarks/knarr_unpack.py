"""Unpack layer files into a fresh knarr snapshot store: the knarr side of image_unpack.

    .venv/bin/python bench/benchkit/benchmarks/knarr_unpack.py ROOT LAYER DIFF_ID [LAYER DIFF_ID ...]

Each layer (plain, gzip or zstd) is applied on the one before, its diff_id
checked, and committed under its chain id: what `knarr.images` does for each
layer of an image it registers. Not a benchmark module (not in MODULES).
"""

import sys

from knarr.images import unpack
from knarr.snapshots import Snapshotter


def main(argv: list[str]) -> int:
    """Unpack the layers named on the command line, bottom first."""
    root, pairs = argv[0], argv[1:]
    snaps = Snapshotter(root)
    try:
        parent = None
        for path, diff_id in zip(pairs[::2], pairs[1::2], strict=True):
            with open(path, "rb") as layer:
                parent, _ = unpack.unpack_layer(snaps, layer, parent, diff_id, label=path)
    finally:
        snaps.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
