"""The build cache: step key -> the image state the step produced, kept across builds.

One small JSON file per key under the cache directory (temp, fsync, rename).
A key is the sha256 of the parent state's id, the step as it was expanded,
the build args in effect and the content hash of what a COPY copies. An entry
is used only while every layer it names is still stored (snapshot, and blob
unless the layer is kept as its snapshot only: a build's directory, a loaded
layer's recipe),
so a removed image or a pruned layer makes it a miss, never a broken image.
"""

import hashlib
import json
import os

from knarr.content import ContentStore
from knarr.oci import digest as digests
from knarr.snapshots import Snapshotter, recipe

__all__ = ["Cache", "key_of"]


def key_of(*parts: object) -> str:
    """A cache key from the parts of a step (anything JSON can write)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class Cache:
    """Step results under `directory`."""

    def __init__(self, directory: str, content: ContentStore, snaps: Snapshotter) -> None:
        self.directory = directory
        self.content, self.snaps = content, snaps
        os.makedirs(directory, mode=0o700, exist_ok=True)

    def get(self, key: str) -> tuple[dict, list[dict]] | None:
        """(config, layer descriptors) stored for `key`, if all its layers still exist."""
        try:
            with open(os.path.join(self.directory, key + ".json"), "rb") as f:
                entry = json.loads(f.read())
        except (FileNotFoundError, ValueError):
            return None
        config, layers = entry["config"], entry["layers"]
        diff_ids = config["rootfs"]["diff_ids"]
        if diff_ids:
            chain = digests.chain_ids(diff_ids)[-1]
            if not self.snaps.exists(chain):
                return None
        # a layer is its blob, or its snapshot that makes it (a build's directory, a
        # loaded layer's recipe)
        chains = digests.chain_ids(diff_ids)
        for layer, diff_id, chain in zip(layers, diff_ids, chains, strict=True):
            if self.content.exists(layer["digest"]):
                continue
            if layer["digest"] != diff_id or not self.snaps.exists(chain) or \
                    recipe.blob_made_from(self.snaps.stat(chain)["labels"]) is None:
                return None
        return config, layers

    def put(self, key: str, config: dict, layers: list[dict]) -> None:
        """Remember what a step produced."""
        path = os.path.join(self.directory, key + ".json")
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(json.dumps({"config": config, "layers": layers}).encode())
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
