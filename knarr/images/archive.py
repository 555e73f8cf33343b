"""Image archives: `load` of docker-save and OCI-layout tarballs, `save` of either kind.

Load reads the tar stream once. Every member goes to a content ingest (small
ones stay in memory), its digest computed on the way; a big member is also
extracted as it streams past, as a layer, into a temporary snapshot of no
parent (a tee: one read of the archive writes and hashes the blob, in a
thread of its own, and unpacks it, in the read-ahead and writer threads of
the extraction). A member that is not a layer, or is refused
as one, is simply not extracted; registering unpacks it from its blob
and gives the reason. Only after the stream ends, when the archive's own
index (manifest.json, or index.json) is known, are digests checked: a
`blobs/sha256/<hex>` whose bytes do not hash to its name, a config whose
name is not its digest, or a layer whose uncompressed digest is not its
diff_id is refused, and then nothing of the archive has reached the store.
Then everything written is made durable at once (one sync, not an fsync per
file), the needed blobs are committed (under a lease), the extracted layers
committed under their chain ids (other layers unpacked from their blobs)
and each image registered. A load killed part way leaves only ingests and
temporary snapshots, which the next load removes.

Save writes what `docker load` reads (manifest.json, `<config hex>.json`,
one `<id>/layer.tar` per layer, uncompressed, and `repositories`), or an OCI
image layout (oci-layout, index.json with the names as annotations, blobs).
"""

import errno
import io
import json
import os
import queue
import re
import tarfile
import threading
from typing import BinaryIO

from knarr.errors import InvalidArgument, KnarrError
from knarr.images import unpack
from knarr.images.store import ImageStore
from knarr.oci import digest as digests
from knarr.oci import image_spec, reference
from knarr.snapshots import decompressed, detect, recipe

__all__ = ["load", "save"]

_SMALL = 4 << 20
_MAX_JSON = 64 << 20
_BLOB_PATH = re.compile(r"^blobs/sha256/([a-f0-9]{64})$")
_CONFIG_PATH = re.compile(r"^([a-f0-9]{64})\.json$")
_CHUNK = 1 << 20
_TEE_AHEAD = 8  # chunks read but not yet written to their blob


class _Staged:
    """The members of an archive, held in memory or in content ingests until committed."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.small: dict[str, bytes] = {}
        self.big: dict[str, object] = {}
        self.links: dict[str, str] = {}
        self.digests: dict[str, str] = {}
        self.new_blobs: list[str] = []
        self.extracted: dict[str, tuple] = {}
        self.count = 0
        self.lost: dict[str, BaseException] = {}

    def add(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        path = os.path.normpath(member.name).lstrip("/")
        if member.issym() or member.islnk():
            base = os.path.dirname(path) if member.issym() else ""
            self.links[path] = os.path.normpath(os.path.join(base, member.linkname)).lstrip("/")
            return
        if not member.isreg():
            return
        source = _member_data(archive, member)
        if member.size <= _SMALL:
            data = source.read()
            self.small[path] = data
            self.digests[path] = digests.sha256_of(data)
        else:
            self.count += 1
            peek = unpack.Peekable(source)
            sink = self._sink(path, f"load-{os.getpid()}-{self.count}",
                              peek.peek(tarfile.BLOCKSIZE))
            tee = _Tee(peek, sink)
            try:
                self._extract(path, tee, sink)
                while tee.read(_CHUNK):
                    pass  # what extraction left: a tar's end blocks, or all of a non-layer
                self.digests[path] = tee.digest()
            finally:
                tee.close()
            if isinstance(sink, recipe.Recorder):
                self._settle(path, sink)
        self._check_blob_name(path)

    def _sink(self, path: str, ref: str, first: bytes) -> object:
        """Where a big member's bytes go: for an uncompressed tar (`first`: its first
        block), a layer recipe's recorder (which writes the blob only where the files
        do not make the tar, see `_settle`); else a content ingest."""
        if detect(first[:8]) is None and first[257:262] == b"ustar":
            sink: object = recipe.Recorder(lambda: self._ingest(ref))
        else:
            sink = self._ingest(ref)
        self.big[path] = sink
        return sink

    def _ingest(self, ref: str):  # noqa: ANN202 - a content Writer
        writer = self.store.content.writer(ref)
        writer.truncate()
        return writer

    def _extract(self, path: str, tee: "_Tee", sink: object) -> None:
        recorder = sink if isinstance(sink, recipe.Recorder) else None
        try:
            # An uncompressed layer's diff_id is its blob digest: the writer's hash
            # serves both, and the bytes are hashed once.
            self.extracted[path] = unpack.extract_layer(self.store.snapshots, tee,
                                                        label=f"load: {path}",
                                                        plain_digest=tee.digest,
                                                        recorder=recorder)
        except (KnarrError, OSError) as exc:
            # not a layer, or a refused one: registering unpacks the blob and says why;
            # where only a recorder saw it there is no blob, and a load that needs it
            # fails with this error
            if recorder is not None:
                recorder.lose()
                self.lost[path] = exc

    def _settle(self, path: str, recorder: "recipe.Recorder") -> None:
        """A member a recorder saw: kept as its snapshot's layer recipe, or (where the
        files did not make it) as the blob the recorder switched to writing."""
        try:
            data = recorder.finish()
        except KnarrError as exc:
            recorder.lose()
            self.lost[path] = exc
            return
        if recorder.mode == "blob":
            self.big[path] = recorder.blob
            return
        if data is None or path in self.lost:
            return
        key, applied = self.extracted[path]
        recipe.save(self.store.snapshots.recipe_path(key), data)
        self.extracted[path] = (key, applied, True)

    def extracted_by_digest(self) -> dict[str, tuple]:
        """(snapshot key, Applied) of each member extracted on the way, by blob digest."""
        return {self.digests[path]: done for path, done in self.extracted.items()}

    def _check_blob_name(self, path: str) -> None:
        match = _BLOB_PATH.match(path)
        if match and self.digests[path] != f"sha256:{match.group(1)}":
            raise InvalidArgument(f"load: {path}: digest mismatch: expected "
                                  f"sha256:{match.group(1)}, got {self.digests[path]}",
                                  digest=f"sha256:{match.group(1)}", actual=self.digests[path])

    def resolve(self, path: str) -> str:
        path = os.path.normpath(path).lstrip("/")
        for _ in range(8):
            if path in self.small or path in self.big:
                return path
            if path not in self.links:
                break
            path = self.links[path]
        raise InvalidArgument(f"load: the archive has no file {path}", path=path)

    def has(self, path: str) -> bool:
        try:
            self.resolve(path)
            return True
        except InvalidArgument:
            return False

    def read(self, path: str) -> bytes:
        path = self.resolve(path)
        if path in self.small:
            return self.small[path]
        writer = self.big[path]
        if isinstance(writer, recipe.Recorder):
            raise self.lost.get(path) or InvalidArgument(f"load: {path}: a layer, not a document",
                                                         path=path)
        if writer.offset > _MAX_JSON:  # type: ignore[attr-defined]
            raise InvalidArgument(f"load: {path}: too large for a document", path=path)
        with open(os.path.join(writer.path, "data"), "rb") as f:  # type: ignore[attr-defined]
            return f.read()

    def head(self, path: str) -> bytes:
        path = self.resolve(path)
        if path in self.small:
            return self.small[path][:8]
        if isinstance(self.big[path], recipe.Recorder):
            return self.big[path].head  # type: ignore[attr-defined]
        with open(os.path.join(self.big[path].path, "data"), "rb") as f:  # type: ignore
            return f.read(8)

    def digest(self, path: str) -> str:
        return self.digests[self.resolve(path)]

    def size(self, path: str) -> int:
        path = self.resolve(path)
        return len(self.small[path]) if path in self.small else self.big[path].offset  # type: ignore

    def commit(self, path: str, lease) -> str:
        path = self.resolve(path)
        digest = self.digests[path]
        lease.add(digest)
        if self.store.content.exists(digest):
            return digest
        if isinstance(self.big.get(path), recipe.Recorder):
            if path in self.lost:
                raise self.lost[path]
            return digest  # kept as a layer recipe: no blob
        self.new_blobs.append(digest)
        if path in self.small:
            return self.store.content.put(self.small[path], expected=digest)
        return self.big.pop(path).commit(expected=digest)  # type: ignore[attr-defined]

    def drop_new_blobs(self) -> None:
        """Delete the blobs this load added that no registered image references."""
        keep = self.store.content_roots()
        for digest in self.new_blobs:
            if digest not in keep and self.store.content.exists(digest):
                self.store.content.delete(digest)

    def abort(self) -> None:
        """Drop the ingests not committed and the extracted layers not used."""
        for writer in self.big.values():
            writer.abort()  # type: ignore[attr-defined]
        self.big.clear()
        for done in self.extracted.values():
            if self.store.snapshots.exists(done[0]):
                self.store.snapshots.remove(done[0])
        self.extracted.clear()


class _Tee:
    """Reads an archive member, handing every byte read to its sink (an ingest, or a
    layer recipe's recorder), which a thread of its own writes and hashes (the same chunks, through a
    bounded queue): the reader goes on to the next chunk, and the extraction with it,
    while the last one is written and hashed. `digest` waits for that thread; a write that failed is raised by the next `read` or
    `digest`. `close` stops the thread (after what is queued)."""

    def __init__(self, source: BinaryIO, writer) -> None:
        self.source = source
        self.writer = writer
        self.chunks: queue.Queue = queue.Queue(_TEE_AHEAD)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="load-blob-writer", daemon=True)
        self.thread.start()

    def read(self, n: int = -1) -> bytes:
        if self.failure is not None:
            raise self.failure
        data = self.source.read(n)
        if data:
            self.chunks.put(data)
        return data

    def readable(self) -> bool:
        return True

    def _run(self) -> None:
        while True:
            data = self.chunks.get()
            try:
                if data is None:
                    return
                if self.failure is None:
                    self.writer.write(data)
            except BaseException as exc:  # noqa: BLE001 - raised in the reading thread
                self.failure = exc
                if isinstance(self.writer, recipe.Recorder):
                    self.writer.fail(exc)  # an extraction waiting for its bytes stops
            finally:
                self.chunks.task_done()

    def digest(self) -> str:
        """The digest of every byte read so far, once the thread has written them all."""
        self.chunks.join()
        if self.failure is not None:
            raise self.failure
        return self.writer.digest()

    def close(self) -> None:
        if self.thread.is_alive():
            self.chunks.put(None)
            self.thread.join()


def load(store: ImageStore, stream: BinaryIO, default_name: str | None = None) -> list[dict]:
    """Load a docker-save or OCI-layout tarball; return [{'Id': ..., 'Names': [...]}]."""
    with store.locked():
        store.content.clean_ingests(prefix="load-")
        unpack.remove_stale_extractions(store.snapshots)
        staged = _Staged(store)
        try:
            with store.content.lease("load") as lease:
                with unpack.WritingBack(store.root):
                    _read(staged, stream)
                images = _plan(staged, default_name)
                unpack.make_durable(store.root)  # the ingests and extracted layers, all at once
                for image in images:
                    for path in image["paths"]:
                        staged.commit(path, lease)
                extracted = staged.extracted_by_digest()
                return [{"Id": store.register(i["manifest"], i["config"], i["names"],
                                              label=f"load {i['label']}", extracted=extracted),
                         "Names": i["names"]} for i in images]
        except BaseException:
            staged.drop_new_blobs()
            raise
        finally:
            staged.abort()


def _read(staged: _Staged, stream: BinaryIO) -> None:
    forward = _Forward(stream)
    try:
        if forward.peek(_USTAR_AT + 5)[_USTAR_AT:] == b"ustar":
            # A plain tar (what docker save writes): tarfile's random-access mode on a
            # forward-only view reads member data straight from the stream, where its
            # stream mode copies every block through buffers of its own.
            archive = tarfile.open(fileobj=forward, mode="r:")  # type: ignore[call-overload]
        else:  # compressed (gzip, bzip2, xz), or not a tar at all: tarfile says which
            archive = tarfile.open(fileobj=forward, mode="r|*", bufsize=_CHUNK)
        with archive:
            for member in archive:
                staged.add(member, archive)
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidArgument(f"load: corrupt or truncated archive: {exc}") from exc


_USTAR_AT = 257  # the magic of a ustar, pax or GNU tar header


class _Forward:
    """A stream that can be peeked at and seeks forward only (by reading), which is
    all tarfile's random-access mode asks of it as long as members are read in order."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.head = b""
        self.position = 0

    def peek(self, n: int) -> bytes:
        while len(self.head) < n:
            more = self.stream.read(n - len(self.head))
            if not more:
                break
            self.head += more
        return self.head

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if 0 <= n < len(self.head):
                out, self.head = self.head[:n], self.head[n:]
                self.position += n
                return out
            out, self.head = self.head, b""
            self.position += len(out)
            return out + self.read(-1 if n < 0 else n - len(out))
        data = self.stream.read(n)
        if 0 < len(data) < n:  # a pipe or socket gives what it has: read on to n or EOF
            parts = [data]
            got = len(data)
            while got < n:
                more = self.stream.read(n - got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        self.position += len(data)
        return data

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset < self.position:
            raise OSError(errno.ESPIPE, "a load reads its archive forward only")
        while self.position < offset and self.read(min(_CHUNK, offset - self.position)):
            pass
        return self.position


class _MemberData:
    """The data of one archive member, read straight from the forward stream."""

    def __init__(self, forward: _Forward, offset: int, size: int) -> None:
        self.forward = forward
        self.offset = offset
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        if self.forward.position != self.offset:
            self.forward.seek(self.offset)
        n = self.left if n < 0 else min(n, self.left)
        data = self.forward.read(n)
        self.offset += len(data)
        self.left -= len(data)
        if len(data) < n:
            raise EOFError("unexpected end of data")
        return data

    def readable(self) -> bool:
        return True


def _member_data(archive: tarfile.TarFile, member: tarfile.TarInfo):
    """A reader of `member`'s data: straight from the stream when the archive was
    opened on a _Forward in random-access mode, else tarfile's own."""
    if isinstance(archive.fileobj, _Forward) and member.sparse is None:
        return _MemberData(archive.fileobj, member.offset_data, member.size)
    source = archive.extractfile(member)
    assert source is not None
    return source


def _plan(staged: _Staged, default_name: str | None) -> list[dict]:
    if staged.has("manifest.json"):
        return _plan_docker(staged)
    if staged.has("index.json"):
        return _plan_oci(staged, default_name)
    raise InvalidArgument("load: neither manifest.json (docker save) nor index.json "
                          "(OCI layout) in the archive")


def _json(staged: _Staged, path: str) -> object:
    try:
        return json.loads(staged.read(path))
    except ValueError as exc:
        raise InvalidArgument(f"load: {path}: not JSON: {exc}", path=path) from exc


def _plan_docker(staged: _Staged) -> list[dict]:
    entries = _json(staged, "manifest.json")
    if not isinstance(entries, list):
        raise InvalidArgument("load: manifest.json: expected an array")
    oci_manifests = _oci_manifests_by_config(staged)
    return [_plan_docker_entry(staged, e, i, oci_manifests) for i, e in enumerate(entries)]


def _plan_docker_entry(staged: _Staged, entry: dict, index: int, oci: dict) -> dict:
    where = f"manifest.json[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
            or not isinstance(entry.get("Layers"), list):
        raise InvalidArgument(f"load: {where}: needs Config and Layers")
    config_path = entry["Config"]
    config_bytes = staged.read(config_path)
    image_id = digests.sha256_of(config_bytes)
    named = _CONFIG_PATH.match(os.path.basename(config_path)) or _BLOB_PATH.match(config_path)
    if named and f"sha256:{named.group(1)}" != image_id:
        raise InvalidArgument(f"load: config {config_path}: digest mismatch: expected "
                              f"sha256:{named.group(1)}, got {image_id}",
                              digest=f"sha256:{named.group(1)}", actual=image_id)
    config = image_spec.validate_config(json.loads(config_bytes), f"load: {config_path}")
    diff_ids = config["rootfs"]["diff_ids"]
    if len(diff_ids) != len(entry["Layers"]):
        raise InvalidArgument(f"load: {where}: {len(entry['Layers'])} layers but "
                              f"{len(diff_ids)} diff_ids in {config_path}")
    layers = [_docker_layer(staged, p, d) for p, d in zip(entry["Layers"], diff_ids, strict=True)]
    names = [str(reference.parse(t)) for t in entry.get("RepoTags") or []]
    manifest = oci.get(image_id)
    if manifest is None:
        manifest = _manifest_bytes(image_spec.DOCKER_MANIFEST, image_spec.DOCKER_CONFIG,
                                   image_id, len(config_bytes), layers)
    return {"manifest": manifest, "config": config_bytes, "names": names,
            "paths": [config_path, *entry["Layers"]], "label": names[0] if names else image_id}


def _docker_layer(staged: _Staged, path: str, diff_id: str) -> dict:
    digest = staged.digest(path)
    compression = detect(staged.head(path))
    if compression is None and digest != diff_id:
        raise InvalidArgument(f"load: layer {path}: digest mismatch: expected {diff_id}, "
                              f"got {digest}", digest=diff_id, actual=digest)
    media_type = {None: image_spec.DOCKER_LAYER, "gzip": image_spec.DOCKER_LAYER_GZIP,
                  "zstd": image_spec.OCI_LAYER_ZSTD}[compression]
    return image_spec.descriptor(media_type, digest, staged.size(path))


def _manifest_bytes(media_type: str, config_type: str, config_digest: str, config_size: int,
                    layers: list[dict]) -> bytes:
    manifest = {"schemaVersion": 2, "mediaType": media_type,
                "config": image_spec.descriptor(config_type, config_digest, config_size),
                "layers": layers}
    return json.dumps(manifest, indent=2).encode()


def _oci_manifests_by_config(staged: _Staged) -> dict[str, bytes]:
    """Docker 25 and later put an OCI layout beside manifest.json: keep its manifests."""
    if not staged.has("index.json"):
        return {}
    out = {}
    for image in _plan_oci(staged, None):
        out[digests.sha256_of(image["config"])] = image["manifest"]
    return out


def _plan_oci(staged: _Staged, default_name: str | None) -> list[dict]:
    index = image_spec.validate_index(_json(staged, "index.json"), "load: index.json")
    return [_plan_oci_entry(staged, desc, default_name) for desc in index["manifests"]]


def _blob(staged: _Staged, desc: dict) -> tuple[str, bytes]:
    path = f"blobs/sha256/{digests.hex_of(desc['digest'])}"
    data = staged.read(path)
    if len(data) != desc["size"]:
        raise InvalidArgument(f"load: {path}: size mismatch: expected {desc['size']} bytes, "
                              f"got {len(data)}", digest=desc["digest"])
    return path, data


def _plan_oci_entry(staged: _Staged, desc: dict, default_name: str | None) -> dict:
    names = _names_of(desc.get("annotations") or {}, default_name)
    paths = []
    if image_spec.is_index(desc["mediaType"]):
        path, data = _blob(staged, desc)
        paths.append(path)
        nested = image_spec.validate_index(json.loads(data), f"load: {path}")
        desc = image_spec.select_manifest(nested, image_spec.platform_of_machine(
            os.uname().machine))
    path, manifest_bytes = _blob(staged, desc)
    manifest = image_spec.validate_manifest(json.loads(manifest_bytes), f"load: {path}")
    config_path, config_bytes = _blob(staged, manifest["config"])
    for layer in manifest["layers"]:
        layer_path = f"blobs/sha256/{digests.hex_of(layer['digest'])}"
        if staged.size(layer_path) != layer["size"]:
            raise InvalidArgument(f"load: {layer_path}: size mismatch: expected "
                                  f"{layer['size']} bytes, got {staged.size(layer_path)}",
                                  digest=layer["digest"])
        paths.append(layer_path)
    return {"manifest": manifest_bytes, "config": config_bytes, "names": names,
            "paths": [path, config_path, *paths],
            "label": names[0] if names else desc["digest"]}


def _names_of(annotations: dict, default_name: str | None) -> list[str]:
    full = annotations.get(image_spec.ANNOTATION_IMAGE_NAME)
    if full:
        return [str(reference.parse(full))]
    ref_name = annotations.get(image_spec.ANNOTATION_REF_NAME)
    if not ref_name:
        return []
    if "/" not in ref_name and ":" not in ref_name and "@" not in ref_name:
        if default_name is None:
            return []
        return [str(reference.parse(default_name, default_tag=False).with_tag(ref_name))]
    return [str(reference.parse(ref_name))]


# -- save ----------------------------------------------------------------------

def save(store: ImageStore, refs: list[str], out: BinaryIO, format: str = "docker") -> None:
    """Write the images `refs` name as a docker-load tarball or an OCI layout tarball."""
    if format not in ("docker", "oci"):
        raise InvalidArgument(f"save: unknown format {format!r} (docker or oci)", format=format)
    chosen = _choose(store, refs)
    for image_id, _ in chosen:
        store.materialize(image_id)  # a build's layers get their blobs
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,  # type: ignore
                      bufsize=_CHUNK) as archive:
        if format == "docker":
            _save_docker(store, chosen, archive)
        else:
            _save_oci(store, chosen, archive)


def _choose(store: ImageStore, refs: list[str]) -> list[tuple[str, list[str]]]:
    """(image id, names to write for it), in the order first named."""
    chosen: dict[str, list[str]] = {}
    for ref in refs:
        image_id = store.resolve(ref)
        names = chosen.setdefault(image_id, [])
        if reference.looks_like_id(ref) and store.records.get(
                f"sha256:{ref.removeprefix('sha256:')}"):
            continue
        try:
            parsed = reference.parse(ref)
        except InvalidArgument:
            continue
        if parsed.tag and not parsed.digest and str(parsed) not in names:
            names.append(str(parsed))
    return list(chosen.items())


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    archive.addfile(info, io.BytesIO(data))


def _add_dir(archive: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
    archive.addfile(info)


def _add_blob(archive: tarfile.TarFile, store: ImageStore, name: str, digest: str) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = store.content.info(digest).size, 0o644, 0
    with store.content.open(digest) as blob:
        archive.addfile(info, blob)


def _add_plain_layer(archive: tarfile.TarFile, store: ImageStore, name: str,
                     layer: dict) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = layer["diff_size"], 0o644, 0
    with store.content.open(layer["digest"]) as blob:
        compression = detect(blob.read(4))
        blob.seek(0)
        with decompressed(blob, compression) as plain:
            archive.addfile(info, plain)
            while plain.read(_CHUNK):
                pass


def _save_docker(store: ImageStore, chosen: list, archive: tarfile.TarFile) -> None:
    manifest, repositories, written = [], {}, set()
    for image_id, names in chosen:
        row = store.records.get(image_id)
        config_name = f"{digests.hex_of(image_id)}.json"
        if config_name not in written:
            _add_blob(archive, store, config_name, image_id)
            written.add(config_name)
        layer_paths, parent = [], None
        for layer, chain in zip(row["layers"], store.chain_ids(image_id), strict=True):
            layer_id = digests.hex_of(chain)
            if layer_id not in written:
                _add_dir(archive, layer_id)
                _add_bytes(archive, f"{layer_id}/VERSION", b"1.0")
                legacy = {"id": layer_id, **({"parent": parent} if parent else {})}
                _add_bytes(archive, f"{layer_id}/json", json.dumps(legacy).encode())
                _add_plain_layer(archive, store, f"{layer_id}/layer.tar", layer)
                written.add(layer_id)
            layer_paths.append(f"{layer_id}/layer.tar")
            parent = layer_id
        familiar = [reference.parse(n).familiar() for n in names]
        manifest.append({"Config": config_name, "RepoTags": familiar or None,
                         "Layers": layer_paths})
        for name in names:
            parsed = reference.parse(name)
            repositories.setdefault(parsed.familiar_name, {})[parsed.tag] = parent
    _add_bytes(archive, "manifest.json", json.dumps(manifest).encode())
    if repositories:
        _add_bytes(archive, "repositories", json.dumps(repositories).encode())


_TO_OCI = {image_spec.DOCKER_LAYER: image_spec.OCI_LAYER,
           image_spec.DOCKER_LAYER_GZIP: image_spec.OCI_LAYER_GZIP,
           image_spec.DOCKER_FOREIGN_LAYER: image_spec.OCI_LAYER_ND_GZIP}


def _oci_manifest(store: ImageStore, image_id: str) -> tuple[str, bytes]:
    row = store.records.get(image_id)
    stored = store.content.read(row["manifest"])
    if row["manifest_type"] == image_spec.OCI_MANIFEST:
        return row["manifest"], stored
    manifest = json.loads(stored)
    layers = [dict(layer, mediaType=_TO_OCI.get(layer["mediaType"], layer["mediaType"]))
              for layer in manifest["layers"]]
    data = _manifest_bytes(image_spec.OCI_MANIFEST, image_spec.OCI_CONFIG, image_id,
                           manifest["config"]["size"], layers)
    return digests.sha256_of(data), data


def _save_oci(store: ImageStore, chosen: list, archive: tarfile.TarFile) -> None:
    _add_bytes(archive, "oci-layout",
               json.dumps({"imageLayoutVersion": image_spec.OCI_LAYOUT_VERSION}).encode())
    index, written = [], set()
    tags = [reference.parse(n).tag for _, names in chosen for n in names]
    _add_dir(archive, "blobs")
    _add_dir(archive, "blobs/sha256")
    for image_id, names in chosen:
        manifest_digest, manifest_bytes = _oci_manifest(store, image_id)
        blobs = [image_id] + [layer["digest"] for layer in store.records.get(image_id)["layers"]]
        for digest in blobs:
            if digest not in written:
                _add_blob(archive, store, f"blobs/sha256/{digests.hex_of(digest)}", digest)
                written.add(digest)
        if manifest_digest not in written:
            _add_bytes(archive, f"blobs/sha256/{digests.hex_of(manifest_digest)}",
                       manifest_bytes)
            written.add(manifest_digest)
        for name in names or [None]:
            annotations = None
            if name:
                # ref.name is the bare tag (what skopeo and umoci look up) unless two
                # saved images share a tag; then the full name keeps them apart.
                tag = reference.parse(name).tag
                annotations = {image_spec.ANNOTATION_IMAGE_NAME: name,
                               image_spec.ANNOTATION_REF_NAME: tag if tags.count(tag) == 1
                               else name}
            index.append(image_spec.descriptor(image_spec.OCI_MANIFEST, manifest_digest,
                                               len(manifest_bytes), annotations=annotations))
    document = {"schemaVersion": 2, "mediaType": image_spec.OCI_INDEX, "manifests": index}
    _add_bytes(archive, "index.json", json.dumps(document).encode())
