"""A layer from a snapshot's own directory: its diff_id, and the committed snapshot.

Shared by `build` (every filesystem-changing step) and the engine's `commit`.
A build step's layer is kept as its directory only, as Docker keeps its
layers: `commit_layer` hashes the deterministic layer tar of the directory
(`snapshots.diff_digest`: whiteouts, sorted entries) without writing it, makes
the files durable (syncfs, run while the hash is computed) and turns the
active snapshot itself into the committed layer named by its chain id, with
its diff_id and tar size as labels. Nothing is unpacked again and no blob is
written: the image's layer descriptor is the uncompressed tar (digest =
diff_id), and the image store makes that blob from the directory when one is
asked for (save, push), checked against the digest (`ImageStore.materialize`).
`write_layer_blob` stores the tar as a blob now (`commit` of a container).
"""

import os
import secrets
import stat
import threading

from knarr.build.layered import LayerStack
from knarr.content import ContentStore
from knarr.errors import AlreadyExists
from knarr.oci import digest as digests
from knarr.oci import image_spec
from knarr.snapshots import DIR_LAYER_FORMAT, DIR_LAYER_LABEL, Snapshotter, diff_digest, write_diff

__all__ = ["write_layer_blob", "commit_layer", "drop_runtime_stubs", "DIFF_ID_LABEL",
           "DIFF_SIZE_LABEL"]

DIFF_ID_LABEL = "knarr.diff_id"
DIFF_SIZE_LABEL = "knarr.diff_size"
# Made by the engine or the runtime in a container's root, not by its process.
_STUBS = ("etc/hostname", "etc/hosts", "etc/resolv.conf", "dev", "proc", "sys",
          ".dockerenv")


def write_layer_blob(content: ContentStore, directory: str) -> tuple[str, int]:
    """Store `directory` as an uncompressed layer blob; return (digest = diff_id, size)."""
    with content.writer(f"layer-{os.getpid()}-{secrets.token_hex(6)}") as writer:
        _, size = write_diff(directory, writer, hashed=False)
        return writer.commit(size=size), size


def commit_layer(snaps: Snapshotter, key: str, parent: str | None) -> tuple[dict, str, str]:
    """Make the active snapshot `key` a layer: its diff_id hashed, its files synced, the
    snapshot committed under its chain id (or dropped if that layer exists already).
    No blob is stored. Return (manifest descriptor, diff_id,
    chain id)."""
    directory = snaps.path(key)
    synced = _Syncer(directory)  # the disk writes while the tar is hashed
    try:
        digest, size = diff_digest(directory, still=True)
    finally:
        synced.join()
    chain = digests.chain_id(parent, digest)
    if snaps.exists(chain):
        snaps.remove(key)
    else:
        try:
            snaps.commit(chain, key, {DIFF_ID_LABEL: digest, DIFF_SIZE_LABEL: size,
                                      DIR_LAYER_LABEL: DIR_LAYER_FORMAT})
        except AlreadyExists:
            snaps.remove(key)
    return image_spec.descriptor(image_spec.OCI_LAYER, digest, size), digest, chain


class _Syncer(threading.Thread):
    """syncfs of a directory's file system in a thread of its own; `join` re-raises."""

    def __init__(self, path: str) -> None:
        super().__init__(name="layer-sync", daemon=True)
        self.path, self.error = path, None
        self.start()

    def run(self) -> None:
        try:
            _sync(self.path)
        except BaseException as exc:  # noqa: BLE001 - handed to join
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


def _sync(path: str) -> None:
    from knarr import sys as ksys

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ksys.syncfs(fd)
    finally:
        os.close(fd)


def drop_runtime_stubs(upper: str, below: LayerStack) -> None:
    """Remove from a step container's upper dir the mount points the runtime made
    (`/etc/hosts`, `/proc`, ...) that the image below did not have, and then the
    directories copied up only to hold them, as Docker's init layer keeps them out."""
    for rel in _STUBS:
        path = os.path.join(upper, rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if below.lookup(rel) is not None:
            continue
        if stat.S_ISDIR(st.st_mode):
            if not os.listdir(path):
                os.rmdir(path)
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(path)
        _drop_empty_parents(upper, os.path.dirname(rel), below)


def _drop_empty_parents(upper: str, rel: str, below: LayerStack) -> None:
    while rel:
        path = os.path.join(upper, rel)
        found = below.lookup(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if found is None or os.listdir(path) or not stat.S_ISDIR(found[1].st_mode):
            return
        try:
            opaque = os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False)
        except OSError:
            opaque = b""
        same = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (
            stat.S_IMODE(found[1].st_mode), found[1].st_uid, found[1].st_gid)
        if opaque or not same:
            return
        os.rmdir(path)
        rel = os.path.dirname(rel)
