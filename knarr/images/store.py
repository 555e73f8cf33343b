"""The image store: names and tags, registration, inspect, history, tag, remove, prune.

An image is a manifest and a config in the content store, its layers as
blobs there too and unpacked into committed snapshots (one per chain id),
and a row in the index (`records.py`). Registration writes the row last, so
an image is visible only when every byte of it is stored and unpacked.

A build's layers are kept as their snapshot's directory only (the snapshot
is labelled DIR_LAYER_LABEL), as Docker keeps its layers: `materialize`
stores their blobs, the deterministic tar of each directory checked against
the digest the image names, when a save or a push needs them. A loaded
uncompressed layer is likewise kept as its snapshot plus a layer recipe
(RECIPE_LABEL, `knarr.snapshots.recipe`): the same `materialize` makes its
blob again from the recipe and checks it. Either blob "exists" while its
snapshot does: `rmi` and prune remove both, and no snapshot an image uses is
removed.

Changes to the store (register, remove, prune, load) take an flock on
`<root>/images.lock`, so a collection never races a load that has unpacked
layers but not yet written its row.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from knarr.content import ContentStore
from knarr.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from knarr.images import unpack
from knarr.images.records import Records
from knarr.oci import digest as digests
from knarr.oci import image_spec, reference
from knarr.snapshots import (
    COMMITTED,
    RECIPE_FORMAT,
    RECIPE_LABEL,
    Snapshotter,
    recipe,
    write_diff,
)

__all__ = ["ImageStore"]

InUse = Callable[[str], bool]


def _never_in_use(image_id: str) -> bool:
    return False


class ImageStore:
    """Images under an engine root; `in_use(image_id)` says whether a container needs one."""

    def __init__(self, root: str, in_use: InUse | None = None) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.content = ContentStore(root)
        self.snapshots = Snapshotter(root)
        self.records = Records(os.path.join(root, "metadata.db"))
        self.in_use = in_use or _never_in_use
        self._lock_path = os.path.join(root, "images.lock")
        self._lock_depth = 0

    def close(self) -> None:
        """Close the databases."""
        self.records.close()
        self.snapshots.close()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's change lock; re-entrant within this object."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            yield
        finally:
            self._lock_depth = 0
            os.close(fd)

    # -- looking images up --------------------------------------------------

    def resolve(self, ref: str) -> str:
        """The image id that a name, a full id or a unique id prefix names; NotFound if none."""
        bare = ref.removeprefix("sha256:")
        if reference.looks_like_id(ref) and self.records.get(f"sha256:{bare}"):
            return f"sha256:{bare}"
        try:
            parsed = reference.parse(ref)
        except InvalidArgument:
            parsed = None
        if parsed is not None:
            key = str(parsed.with_digest(parsed.digest)) if parsed.digest else str(parsed)
            if (found := self.records.image_of(key)) is not None:
                return found
        return self._by_prefix(ref, bare)

    def _by_prefix(self, ref: str, bare: str) -> str:
        if bare and all(c in "0123456789abcdef" for c in bare):
            matches = self.records.ids_with_prefix(bare)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidArgument(f"image {ref}: id prefix matches {len(matches)} images",
                                      image=ref)
        raise NotFound(f"image {ref}: not found", image=ref)

    def get(self, ref: str) -> dict:
        """The index row of an image: id, manifest, manifest_type, layers, added."""
        row = self.records.get(self.resolve(ref))
        if row is None:
            raise NotFound(f"image {ref}: not found", image=ref)
        return row

    def config(self, ref: str) -> dict:
        """An image's config document."""
        return json.loads(self.content.read(self.get(ref)["id"]))

    def manifest(self, ref: str) -> dict:
        """An image's manifest document."""
        return json.loads(self.content.read(self.get(ref)["manifest"]))

    def chain_ids(self, ref: str) -> list[str]:
        """The chain ids of an image's layers, bottom first (the top one is its rootfs parent)."""
        return digests.chain_ids([layer["diff_id"] for layer in self.get(ref)["layers"]])

    def names(self, image_id: str) -> tuple[list[str], list[str]]:
        """(tags, repo digests) of an image, as Docker prints them."""
        tags, repo_digests = [], []
        for name in self.records.names_of(image_id):
            parsed = reference.parse(name)
            (repo_digests if parsed.digest else tags).append(parsed.familiar())
        return tags, repo_digests

    # -- adding images ------------------------------------------------------

    def register(self, manifest_bytes: bytes, config_bytes: bytes, names: list[str],
                 label: str = "image", extracted: dict | None = None) -> str:
        """Store an image whose layer blobs are in the content store; return its id.

        Validates the manifest and config, unpacks every layer (checking each
        diff_id), then writes the index row and names in one transaction.
        `extracted` maps a layer blob's digest to (key, Applied) of a snapshot
        `unpack.extract_layer` already made of it, durable on disk: such a layer
        is committed (diff_id checked) rather than unpacked again.
        """
        manifest = image_spec.validate_manifest(json.loads(manifest_bytes), f"{label}: manifest")
        config = image_spec.validate_config(json.loads(config_bytes), f"{label}: config")
        image_id = digests.sha256_of(config_bytes)
        if manifest["config"]["digest"] != image_id:
            raise InvalidArgument(f"{label}: config digest mismatch: manifest says "
                                  f"{manifest['config']['digest']}, content is {image_id}",
                                  digest=manifest["config"]["digest"], actual=image_id)
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(manifest["layers"]):
            raise InvalidArgument(f"{label}: {len(manifest['layers'])} layers in the manifest "
                                  f"but {len(diff_ids)} diff_ids in the config", image=label)
        normalised = [_normalise(n) for n in names]
        with self.locked():
            added = [d for d in (digests.sha256_of(manifest_bytes), image_id)
                     if not self.content.exists(d)]
            try:
                manifest_digest = self.content.put(manifest_bytes)
                self.content.put(config_bytes, expected=image_id)
                layers = self._unpack(manifest["layers"], diff_ids, label, extracted or {})
                self.records.put_image(image_id, manifest_digest,
                                       manifest.get("mediaType", image_spec.OCI_MANIFEST),
                                       layers, normalised)
            except BaseException:
                self._forget_blobs(added)
                raise
        return image_id

    def _forget_blobs(self, digests_added: list[str]) -> None:
        keep = self.content_roots()
        for digest in digests_added:
            if digest not in keep and self.content.exists(digest):
                self.content.delete(digest)

    def _unpack(self, descs: list[dict], diff_ids: list[str], label: str,
                extracted: dict) -> list[dict]:
        unpack.remove_stale_extractions(self.snapshots)
        layers, parent, made = [], None, []
        try:
            for desc, diff_id in zip(descs, diff_ids, strict=True):
                chain = digests.chain_id(parent, diff_id)
                ready = extracted.get(desc["digest"])
                if not self.snapshots.exists(chain):
                    self._unpack_one(desc, parent, diff_id, ready, f"{label}: layer {diff_id}")
                    made.append(chain)
                elif not self._has_blob(desc["digest"], diff_id, chain) and ready is not None:
                    self._blob_from(desc["digest"], ready[0])  # the chain keeps its blob
                size = self.snapshots.stat(chain)["labels"].get(unpack.DIFF_SIZE_LABEL, 0)
                layers.append({"digest": desc["digest"], "mediaType": desc["mediaType"],
                               "size": desc["size"], "diff_id": diff_id, "diff_size": size})
                if _recipe_of(ready) and desc["digest"] == diff_id:
                    extracted[desc["digest"]] = (chain, ready[1], True)  # made from there
                parent = chain
        except BaseException:
            for chain in reversed(made):  # layers of an image that will not exist
                self.snapshots.remove(chain)
            raise
        return layers

    def _unpack_one(self, desc: dict, parent: str | None, diff_id: str,
                    ready: tuple | None, label: str) -> None:
        if ready is not None and self.snapshots.exists(ready[0]):
            if self.snapshots.stat(ready[0])["kind"] == COMMITTED:
                # kept as a recipe in another chain of this load: this one needs the blob
                self._blob_from(desc["digest"], ready[0])
            else:
                labels = {RECIPE_LABEL: RECIPE_FORMAT} if _recipe_of(ready) else None
                unpack.commit_extracted(self.snapshots, ready[0], parent, ready[1], diff_id,
                                        label=label, labels=labels)
                return
        with self.content.open(desc["digest"]) as blob:
            unpack.unpack_layer(self.snapshots, blob, parent, diff_id, label=label)

    def _has_blob(self, digest: str, diff_id: str, chain: str) -> bool:
        return self.content.exists(digest) or \
            self._layer_maker(chain, digest, diff_id) is not None

    def _blob_from(self, digest: str, key: str) -> None:
        """Store a layer's blob made again from the snapshot `key` (committed and labelled,
        or just extracted with a recipe), checked."""
        if self.content.exists(digest):
            return
        make = self._layer_maker(key, digest, digest) or self._recipe_maker(key)
        self._store_made(digest, make, f"layer {digest}: snapshot {key}")

    def materialize(self, image_id: str) -> None:
        """Store the blob of every layer of the image that is kept as a directory or a
        layer recipe only: made again from the snapshot by the writer that hashes it,
        and committed only if its digest is the one the image names."""
        row = self.get(image_id)
        with self.locked():
            for layer, chain in zip(row["layers"], self.chain_ids(row["id"]), strict=True):
                if self.content.exists(layer["digest"]):
                    continue
                make = self._layer_maker(chain, layer["digest"], layer["diff_id"])
                if make is None:
                    raise NotFound(f"blob {layer['digest']}: not found", digest=layer["digest"])
                self._store_made(layer["digest"], make,
                                 f"image {image_id}: layer {layer['digest']}: snapshot {chain}")

    def _store_made(self, digest: str, make: Callable, what: str) -> None:
        ref = f"layer-dir-{digests.hex_of(digest)}"
        with self.content.writer(ref, expected=digest) as writer:
            writer.truncate()
            try:
                size = make(writer.write)
                writer.commit(size=size)
            except InvalidArgument as exc:
                writer.abort()
                raise FailedPrecondition(f"{what} no longer makes the layer it was stored "
                                         f"as: {exc}", digest=digest) from None

    def _layer_maker(self, chain: str, digest: str, diff_id: str) -> Callable | None:
        """How a layer's blob is made again, if it is kept as its snapshot only: a
        callable that writes the tar to a `write` callable and returns its size."""
        if digest != diff_id or not self.snapshots.exists(chain):
            return None
        made_from = recipe.blob_made_from(self.snapshots.stat(chain)["labels"])
        if made_from == "dir":
            directory = self.snapshots.path(chain)
            return lambda write: write_diff(directory, _Out(write), hashed=False, still=True)[1]
        if made_from == "recipe":
            return self._recipe_maker(chain)
        return None  # not kept so, or in a format this knarr cannot make

    def _recipe_maker(self, key: str) -> Callable:
        path, fs = self.snapshots.recipe_path(key), self.snapshots.path(key)
        return lambda write: recipe.regenerate(path, fs, write)

    def tag(self, source: str, target: str) -> str:
        """Point the name `target` at the image `source` names; return the normalised name."""
        image_id = self.resolve(source)
        parsed = reference.parse(target)
        if parsed.digest:
            raise InvalidArgument(f"tag {target}: a tag cannot carry a digest", reference=target)
        with self.locked():
            self.records.set_name(str(parsed), image_id)
        return str(parsed)

    # -- reading ------------------------------------------------------------

    def list(self, dangling: bool | None = None) -> list[dict]:
        """A summary per image, newest first: Id, RepoTags, RepoDigests, Created, Size."""
        out = []
        for image_id in reversed(self.records.ids()):
            tags, repo_digests = self.names(image_id)
            if dangling is not None and dangling != (not tags):
                continue
            config = json.loads(self.content.read(image_id))
            out.append({"Id": image_id, "RepoTags": tags, "RepoDigests": repo_digests,
                        "Created": config.get("created", ""), "Size": self._size(image_id),
                        "Labels": (config.get("config") or {}).get("Labels") or {}})
        return out

    def _size(self, image_id: str) -> int:
        return sum(layer["diff_size"] for layer in self.records.get(image_id)["layers"])

    def inspect(self, ref: str) -> dict:
        """Everything about an image, in the shape of Docker's image inspect."""
        row = self.get(ref)
        config = json.loads(self.content.read(row["id"]))
        tags, repo_digests = self.names(row["id"])
        return {
            "Id": row["id"], "RepoTags": tags, "RepoDigests": repo_digests,
            "Parent": config.get("parent", ""), "Comment": config.get("comment", ""),
            "Created": config.get("created", ""), "Author": config.get("author", ""),
            "Config": config.get("config") or {}, "Architecture": config["architecture"],
            "Variant": config.get("variant"), "Os": config["os"], "Size": self._size(row["id"]),
            "RootFS": {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]},
            "Manifest": {"Digest": row["manifest"], "MediaType": row["manifest_type"]},
            "Metadata": {"Added": row["added"]},
        }

    def history(self, ref: str) -> list[dict]:
        """The image's history, newest first, each step with the size of its layer."""
        row = self.get(ref)
        config = json.loads(self.content.read(row["id"]))
        sizes = iter(layer["diff_size"] for layer in row["layers"])
        steps = []
        for entry in config.get("history") or []:
            size = 0 if entry.get("empty_layer") else next(sizes, 0)
            steps.append({"Id": "<missing>", "Created": entry.get("created", ""),
                          "CreatedBy": entry.get("created_by", ""), "Size": size,
                          "Comment": entry.get("comment", ""), "Tags": []})
        steps.reverse()
        if steps:
            steps[0]["Id"] = row["id"]
            steps[0]["Tags"] = self.names(row["id"])[0]
        return steps

    # -- removing -----------------------------------------------------------

    def remove(self, ref: str, force: bool = False, prune: bool = True) -> list[dict]:
        """Untag or delete an image as `docker rmi` does; return Untagged/Deleted records."""
        with self.locked():
            return self._remove(ref, force, prune)

    def _remove(self, ref: str, force: bool, prune: bool) -> list[dict]:
        image_id = self.resolve(ref)
        names = self.records.names_of(image_id)
        name = self._name_of(ref)
        if name in names:
            dropped = _dropped_with(name, names)
            if len(dropped) < len(names):
                for each in dropped:
                    self.records.drop_name(each)
                return [{"Untagged": reference.parse(n).familiar()} for n in dropped]
        elif len({reference.parse(n).name for n in names}) > 1 and not force:
            short = image_id.removeprefix("sha256:")[:12]  # Docker's text: clients match it
            raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is "
                           "referenced in multiple repositories", image=image_id)
        if self.in_use(image_id) and not force:
            raise Conflict(f"remove image {ref}: image {image_id} is used by a container",
                           image=image_id)
        return self._delete(image_id, prune)

    @staticmethod
    def _name_of(ref: str) -> str | None:
        try:
            parsed = reference.parse(ref)
        except InvalidArgument:
            return None
        return str(parsed.with_digest(parsed.digest)) if parsed.digest else str(parsed)

    def _delete(self, image_id: str, prune: bool) -> list[dict]:
        row = self.records.get(image_id)
        names = self.records.drop_image(image_id)
        out = [{"Untagged": reference.parse(n).familiar()} for n in names]
        out.append({"Deleted": image_id})
        if prune and row is not None:
            self._drop_snapshots(row)
            self.collect()
        return out

    def _drop_snapshots(self, row: dict) -> None:
        used = set()
        for other in self.records.ids():
            used.update(self.chain_ids(other))
        chains = digests.chain_ids([layer["diff_id"] for layer in row["layers"]])
        for chain in reversed(chains):
            if chain in used or not self.snapshots.exists(chain):
                continue
            try:
                self.snapshots.remove(chain)
            except FailedPrecondition:
                break  # a container (or another image) stands on it: keep it and those below

    def collect(self) -> list[str]:
        """Delete blobs no image references (leases spared); return their digests."""
        return [info.digest for info in self.content.gc(self.content_roots())]

    def content_roots(self) -> set[str]:
        """Every digest a registered image references."""
        roots = set()
        for image_id in self.records.ids():
            row = self.records.get(image_id)
            roots.update({image_id, row["manifest"]})
            roots.update(layer["digest"] for layer in row["layers"])
        return roots

    def prune(self, all_images: bool = False) -> dict:
        """Delete dangling images (every unused image with `all_images`) and unused layers."""
        deleted: list[dict] = []
        with self.locked():
            before = self.content.usage() + self._snapshot_bytes()
            for image_id in list(self.records.ids()):
                if self.in_use(image_id) or (self.records.names_of(image_id) and not all_images):
                    continue
                deleted.extend(self._delete(image_id, prune=True))
            self._drop_unused_snapshots()
            self.collect()
            after = self.content.usage() + self._snapshot_bytes()
        return {"ImagesDeleted": deleted, "SpaceReclaimed": max(0, before - after)}

    def _drop_unused_snapshots(self) -> None:
        used = set()
        for image_id in self.records.ids():
            used.update(self.chain_ids(image_id))
        for row in reversed(self.snapshots.walk()):
            if row["kind"] == COMMITTED and row["key"] not in used:
                try:
                    self.snapshots.remove(row["key"])
                except FailedPrecondition:
                    continue

    def _snapshot_bytes(self) -> int:
        return sum(self.snapshots.usage(r["key"])[0] for r in self.snapshots.walk())

    def check(self) -> list[str]:
        """Verify the whole store: every blob's digest, every snapshot record against the
        disk, every image's blobs and snapshots (a layer kept as a directory only: the
        tar of its directory against its digest); one line per problem, [] when all is
        well.

        What a killed load or unpack leaves (ingests, temporary snapshots) is
        not a problem: nothing refers to it, and the next load removes it.
        """
        problems = self.content.verify_all() + self.snapshots.check()
        for image_id in self.records.ids():
            row = self.records.get(image_id)
            problems += [f"image {image_id}: blob {d} is missing"
                         for d in (image_id, row["manifest"]) if not self.content.exists(d)]
            for layer, chain in zip(row["layers"], self.chain_ids(image_id), strict=True):
                problems += self._check_layer(image_id, layer, chain)
            problems += [f"image {image_id}: snapshot {c} is missing"
                         for c in self.chain_ids(image_id) if not self.snapshots.exists(c)]
        return problems

    def _check_layer(self, image_id: str, layer: dict, chain: str) -> list[str]:
        if self.content.exists(layer["digest"]):
            return []
        make = self._layer_maker(chain, layer["digest"], layer["diff_id"])
        if make is None:
            return [f"image {image_id}: blob {layer['digest']} is missing"]
        digest = hashlib.sha256()
        try:
            make(digest.update)
        except InvalidArgument as exc:
            return [f"image {image_id}: layer {layer['digest']}: snapshot {chain}: {exc}"]
        actual = f"sha256:{digest.hexdigest()}"
        if actual != layer["digest"]:
            return [f"image {image_id}: layer {layer['digest']}: snapshot {chain} hashes to "
                    f"{actual}"]
        return []

    def df(self) -> dict:
        """Disk use as `docker system df` counts it for images."""
        images = self.list()
        active = sum(1 for i in images if self.in_use(i["Id"]))
        return {"Images": len(images), "Active": active,
                "Size": self.content.usage() + self._snapshot_bytes(),
                "Reclaimable": sum(i["Size"] for i in images if not self.in_use(i["Id"]))}


class _Out:
    """A file-like `write` over a callable (for write_diff)."""

    def __init__(self, write: Callable) -> None:
        self.write = write


def _recipe_of(ready: tuple | None) -> bool:
    """Whether an extracted layer (see `register`) is kept as a layer recipe."""
    return ready is not None and len(ready) > 2 and bool(ready[2])


def _dropped_with(name: str, names: list[str]) -> list[str]:
    """The names an untag of `name` removes: itself, and (as Docker does) the digest names
    of its repository when no other tag of that repository is left."""
    parsed = reference.parse(name)
    if parsed.digest:
        return [name]
    same_repo = [n for n in names if n != name and reference.parse(n).name == parsed.name]
    if any(not reference.parse(n).digest for n in same_repo):
        return [name]
    return [name] + same_repo


def _normalise(name: str) -> str:
    parsed = reference.parse(name)
    return str(parsed.with_digest(parsed.digest)) if parsed.digest else str(parsed)
