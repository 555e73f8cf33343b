"""Images: names and tags, unpack, save and load, built-in images.

`ImageStore(root)` holds the content store, the snapshotter and the index;
`load`/`save` move images in docker-save and OCI-layout tarballs;
`hello_world` and `busybox` build images with no registry at all.
"""

from knarr.images.archive import load, save
from knarr.images.builtin import GREETING, build_image, busybox, hello_world, layer_tar
from knarr.images.store import ImageStore

__all__ = ["GREETING", "ImageStore", "build_image", "busybox", "hello_world", "layer_tar",
           "load", "save"]
