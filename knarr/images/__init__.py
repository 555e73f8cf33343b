"""Images: names and tags, unpack, save and load, built-in images.

`ImageStore(root)` holds the content store, the snapshotter and the index;
`load`/`save` move images in docker-save and OCI-layout tarballs;
`import_image` makes an image of a root file system tarball; `hello_world`,
`busybox` and `debian` build images with no registry at all.
"""

from knarr.images.archive import load, save
from knarr.images.builtin import GREETING, build_image, busybox, debian, hello_world, layer_tar
from knarr.images.imports import apply_changes, import_image
from knarr.images.store import ImageStore

__all__ = ["GREETING", "ImageStore", "apply_changes", "build_image", "busybox", "debian",
           "hello_world", "import_image", "layer_tar", "load", "save"]
