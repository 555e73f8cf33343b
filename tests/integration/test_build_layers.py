"""A build's layers kept as directories: the deterministic layer tar, its digest without a
blob, the blob made on demand (save, push) and checked, `check`, the build cache.

Real files, a real snapshotter, content store and image store in a tmp root (root is
needed for owners, a whiteout device and trusted.* xattrs); no daemon.
"""

import hashlib
import io
import json
import os
import tarfile

import pytest

from knarr.build.cache import Cache
from knarr.build.layers import commit_layer
from knarr.content import ContentStore
from knarr.errors import FailedPrecondition, NotFound
from knarr.images import ImageStore
from knarr.images.archive import save
from knarr.oci import digest as digests
from knarr.oci import image_spec
from knarr.snapshots import DIR_LAYER_LABEL, Snapshotter, diff_digest, write_diff

pytestmark = [pytest.mark.privileged]

T = 1_700_000_000


def _tree(root: str) -> None:
    """Every kind of entry a layer holds, with fixed times, modes and owners."""
    os.makedirs(f"{root}/d/sub")
    os.makedirs(f"{root}/opq")
    with open(f"{root}/d/a", "wb") as f:
        f.write(b"hello\n")
    os.link(f"{root}/d/a", f"{root}/d/hard")
    os.symlink("../a", f"{root}/d/sub/link")
    os.mknod(f"{root}/d/gone", 0o600 | 0o020000, os.makedev(0, 0))  # a whiteout
    os.setxattr(f"{root}/opq", "trusted.overlay.opaque", b"y")
    os.setxattr(f"{root}/d/a", "user.note", b"v\xff")
    os.mkfifo(f"{root}/d/fifo")
    with open(f"{root}/d/" + "n" * 120, "wb") as f:
        f.write(b"long name\n")
    with open(f"{root}/d/\u00e9t\u00e9", "wb") as f:
        f.write(b"accent\n")
    with open(f"{root}/big", "wb") as f:  # large enough to be mapped when still
        f.write(bytes(range(256)) * 8192 + b"tail")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):  # whatever the umask
                os.chown(path, 0, 0)
                os.chmod(path, 0o755 if name in dirnames else 0o644)
    os.chown(f"{root}/d/sub", 1000, 1001)
    os.chmod(f"{root}/d/a", 0o640)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (T, T + 0.75), follow_symlinks=False)


def test_layer_tar_is_deterministic_readable_and_hashed_without_writing(tmp_path):
    root = str(tmp_path / "tree")
    _tree(root)
    out = io.BytesIO()
    digest, size = write_diff(root, out)
    data = out.getvalue()
    assert (digest, size) == (f"sha256:{hashlib.sha256(data).hexdigest()}", len(data))
    assert diff_digest(root) == diff_digest(root, still=True) == (digest, size)
    again = io.BytesIO()
    write_diff(root, again, hashed=False, still=True)
    assert again.getvalue() == data
    # The format is pinned: a change of these bytes needs a new DIR_LAYER_FORMAT, or the
    # layers builds kept as directories would no longer match their digests.
    assert digest == PINNED
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar}
        assert members["d/a"].mode == 0o640 and members["d/a"].mtime == T
        assert tar.extractfile("d/a").read() == b"hello\n"
        assert members["d/a"].pax_headers["SCHILY.xattr.user.note"] == "v\udcff"
        assert members["d/hard"].islnk() and members["d/hard"].linkname == "d/a"
        assert members["d/sub/link"].issym() and members["d/sub/link"].linkname == "../a"
        assert (members["d/sub"].uid, members["d/sub"].gid) == (1000, 1001)
        assert members["d/.wh.gone"].isreg() and members["d/.wh.gone"].size == 0
        assert "d/gone" not in members
        assert "opq/.wh..wh..opq" in members
        assert not any("trusted.overlay" in k for m in members.values() for k in m.pax_headers)
        assert members["d/fifo"].isfifo()
        assert tar.extractfile("d/" + "n" * 120).read() == b"long name\n"
        assert tar.extractfile("d/\u00e9t\u00e9").read() == b"accent\n"
        assert tar.extractfile("big").read() == bytes(range(256)) * 8192 + b"tail"
        assert members["d"].isdir() and members["opq"].isdir()


PINNED = "sha256:d002aaf6ff7c6f9b210a0c6ed0c3f777de7d768e1616130317b2a1f0ffc35ed7"


def test_unpacked_layer_gives_the_same_tar_again(tmp_path):
    """What knarr unpacks from the tar, written out again, is the same tar."""
    root = str(tmp_path / "tree")
    _tree(root)
    out = io.BytesIO()
    digest, _ = write_diff(root, out)
    snaps = Snapshotter(str(tmp_path / "state"))
    try:
        snaps.prepare("k")
        out.seek(0)
        snaps.apply("k", out)
        assert diff_digest(snaps.path("k"))[0] == digest
    finally:
        snaps.close()


def _image(store: ImageStore, key: str, parent: str | None, name: str) -> tuple[str, str]:
    """Commit the active snapshot `key` as a build does and register a one-layer image."""
    desc, diff_id, chain = commit_layer(store.snapshots, key, parent)
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]},
              "history": [{"created_by": "test"}]}
    config_bytes = json.dumps(config).encode()
    config_digest = store.content.put(config_bytes)
    manifest = {"schemaVersion": 2, "mediaType": image_spec.OCI_MANIFEST,
                "config": image_spec.descriptor(image_spec.OCI_CONFIG, config_digest,
                                                len(config_bytes)),
                "layers": [desc]}
    image_id = store.register(json.dumps(manifest).encode(), config_bytes, [name])
    return image_id, chain


def _saved_layers(store: ImageStore, name: str) -> list[bytes]:
    out = io.BytesIO()
    save(store, [name], out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        return [tar.extractfile(p).read() for p in manifest[0]["Layers"]]


def test_build_layer_has_no_blob_until_saved_then_a_checked_one(tmp_path):
    store = ImageStore(str(tmp_path / "root"))
    try:
        store.snapshots.prepare("step")
        _tree(store.snapshots.path("step"))
        image_id, chain = _image(store, "step", None, "built:one")
        layer = store.get(image_id)["layers"][0]
        assert layer["digest"] == layer["diff_id"]
        assert not store.content.exists(layer["digest"])  # no blob written by the build
        assert store.snapshots.stat(chain)["labels"][DIR_LAYER_LABEL] == "1"
        assert store.check() == []
        tars = _saved_layers(store, "built:one")
        assert f"sha256:{hashlib.sha256(tars[0]).hexdigest()}" == layer["diff_id"]
        assert store.content.exists(layer["digest"])  # made once, verified, kept
        assert store.content.verify(layer["digest"]) is None
        assert store.check() == []
        # removing the image takes the blob made on demand along with the layer
        store.remove("built:one")
        assert not store.content.exists(layer["digest"]) and not store.snapshots.exists(chain)
    finally:
        store.close()


def test_a_changed_layer_directory_is_refused_not_saved(tmp_path):
    store = ImageStore(str(tmp_path / "root"))
    try:
        store.snapshots.prepare("step")
        path = store.snapshots.path("step")
        with open(os.path.join(path, "f"), "wb") as f:
            f.write(b"as built\n")
        image_id, chain = _image(store, "step", None, "built:two")
        digest = store.get(image_id)["layers"][0]["digest"]
        with open(os.path.join(store.snapshots.path(chain), "f"), "wb") as f:
            f.write(b"tampered\n")
        problems = store.check()
        assert len(problems) == 1 and f"snapshot {chain} hashes to" in problems[0]
        with pytest.raises(FailedPrecondition, match="no longer makes the layer"):
            store.materialize(image_id)
        with pytest.raises(FailedPrecondition):
            _saved_layers(store, "built:two")
        assert not store.content.exists(digest)
        assert list(store.content.ingests()) == []
    finally:
        store.close()


def test_only_a_build_layer_is_made_from_its_directory(tmp_path):
    """An unpacked layer whose blob is gone is not made again from its files (they need
    not give the same tar): the blob is missing, as before."""
    store = ImageStore(str(tmp_path / "root"))
    try:
        store.snapshots.prepare("plain")
        with open(os.path.join(store.snapshots.path("plain"), "f"), "wb") as f:
            f.write(b"x\n")
        diff_id, size = diff_digest(store.snapshots.path("plain"))
        store.snapshots.commit(diff_id, "plain", {"knarr.diff_id": diff_id})
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        manifest = {"schemaVersion": 2, "mediaType": image_spec.OCI_MANIFEST,
                    "config": image_spec.descriptor(image_spec.OCI_CONFIG,
                                                    digests.sha256_of(config), len(config)),
                    "layers": [image_spec.descriptor(image_spec.OCI_LAYER, diff_id, size)]}
        image_id = store.register(json.dumps(manifest).encode(), config, ["plain:x"])
        assert store.check() == [f"image {image_id}: blob {diff_id} is missing"]
        with pytest.raises(NotFound, match="not found"):
            store.materialize(image_id)
    finally:
        store.close()


def test_cache_hit_needs_the_blob_or_a_directory_layer(tmp_path):
    root = str(tmp_path / "root")
    snaps, content = Snapshotter(root), ContentStore(root)
    try:
        snaps.prepare("step")
        with open(os.path.join(snaps.path("step"), "f"), "wb") as f:
            f.write(b"x\n")
        desc, diff_id, chain = commit_layer(snaps, "step", None)
        config = {"rootfs": {"type": "layers", "diff_ids": [diff_id]}}
        cache = Cache(str(tmp_path / "cache"), content, snaps)
        cache.put("k", config, [desc])
        assert cache.get("k") == (config, [desc])
        # the same layer named by a descriptor whose blob is not there: a miss
        other = dict(desc, digest=digests.sha256_of(b"compressed"))
        cache.put("k2", config, [other])
        assert cache.get("k2") is None
    finally:
        snaps.close()
