"""Pull: a reference's manifest, config and layers from a registry into the content store.

Each layer needed is one stream: the blob is read from the registry (resuming
with Range after a cut), every byte written to a content ingest and hashed,
and the same bytes decompressed and extracted into a temporary snapshot by the
caller's `extract` (the engine's unpack), in one pass with no temporary tar.
Layers download in parallel (`max_concurrent`). A layer whose blob and
snapshot are both present is skipped ("Already exists").

Nothing is committed before it is verified: a blob reaches the content store
only after its size and digest match the manifest (the ingest's commit), and
an extracted layer is only stacked under its chain id by the image store,
which checks its diff_id, after every blob checked out. A layer that fails
leaves no blob, and its temporary snapshot is removed (`discard`).
"""

import concurrent.futures
import dataclasses
import os
import secrets
import threading
from collections.abc import Callable

from knarr import fastjson
from knarr import sys as ksys
from knarr.content import ContentStore
from knarr.distribution import registry
from knarr.distribution.auth import Credentials
from knarr.distribution.hosts import Hosts
from knarr.distribution.progress import Emit, Progress, short_id
from knarr.distribution.session import Session
from knarr.errors import InvalidArgument, KnarrError
from knarr.oci import digest as digests
from knarr.oci import image_spec
from knarr.oci.reference import Reference

__all__ = ["Pulled", "Puller", "Extract"]

_CHUNK = 1 << 20
# extract(stream, label) -> (temporary snapshot key, Applied); discard(key) removes one
Extract = Callable[[object, str], tuple]


@dataclasses.dataclass
class Pulled:
    """What a pull fetched: ready for the image store to register."""

    reference: Reference
    manifest: bytes
    config: bytes
    digest: str  # the digest pulled by: the index's for a multi-platform image
    extracted: dict  # layer blob digest -> (temporary snapshot key, Applied)
    names: list[str]


class Puller:
    """Pulls images for an engine; the callables connect it to the engine's image store."""

    def __init__(self, hosts: Hosts, content: ContentStore, extract: Extract,
                 discard: Callable[[str], None], chain_exists: Callable[[str], bool],
                 max_concurrent: int = 3) -> None:
        self.hosts = hosts
        self.content = content
        self.extract = extract
        self.discard = discard
        self.chain_exists = chain_exists
        self.max_concurrent = max(1, max_concurrent)

    def pull(self, ref: Reference, creds: Credentials | None = None,
             platform: image_spec.Platform | None = None, emit: Emit | None = None,
             lease=None) -> Pulled:
        """Fetch one image (by tag or digest); its blobs end in the content store, leased."""
        progress = Progress(emit)
        session = Session(self.hosts, ref.domain, ref.path, creds)
        try:
            body, media_type, digest = registry.get_manifest(session, ref.digest or ref.tag)
            progress.status(f"Pulling from {_familiar_path(ref)}", ref.tag or ref.digest)
            manifest_bytes = self._platform_manifest(session, body, media_type, platform)
            manifest = image_spec.validate_manifest(fastjson.loads(manifest_bytes),
                                                    f"pull {ref}: manifest")
            config = registry.get_blob(session, manifest["config"], f"pull {ref}: config")
            config_doc = image_spec.validate_config(fastjson.loads(config),
                                                    f"pull {ref}: config")
            self._check_platform(ref, config_doc, platform)
            diff_ids = config_doc["rootfs"]["diff_ids"]
            if len(diff_ids) != len(manifest["layers"]):
                raise InvalidArgument(f"pull {ref}: {len(manifest['layers'])} layers but "
                                      f"{len(diff_ids)} diff_ids", reference=str(ref))
            extracted = self._layers(session, ref, manifest["layers"], diff_ids, progress,
                                     lease)
        finally:
            session.close()
        names = [str(ref.with_digest(digest))]
        if ref.tag and not ref.digest:
            names.insert(0, str(ref))
        return Pulled(ref, manifest_bytes, config, digest, extracted, names)

    def _platform_manifest(self, session: Session, body: bytes, media_type: str,
                           platform: image_spec.Platform | None) -> bytes:
        if not image_spec.is_index(media_type):
            return body
        index = image_spec.validate_index(fastjson.loads(body), "index")
        want = platform or image_spec.platform_of_machine(os.uname().machine)
        desc = image_spec.select_manifest(index, want)
        inner, _, inner_digest = registry.get_manifest(session, desc["digest"])
        if inner_digest != desc["digest"]:
            raise InvalidArgument(f"manifest {desc['digest']}: digest mismatch: got "
                                  f"{inner_digest}", digest=desc["digest"])
        return inner

    @staticmethod
    def _check_platform(ref: Reference, config: dict, platform) -> None:
        if platform is None:
            return
        have = image_spec.Platform.of(config)
        if not platform.matches(have):
            raise InvalidArgument(f"image with reference {ref.familiar()} was found but does "
                                  f"not match the specified platform: wanted {platform}, "
                                  f"actual: {have}", reference=str(ref))

    # -- layers -------------------------------------------------------------

    def _layers(self, session: Session, ref: Reference, layers: list[dict],
                diff_ids: list[str], progress: Progress, lease) -> dict:
        self.content.clean_ingests(prefix="pull-", older_than=3600)
        chains = digests.chain_ids(diff_ids)
        jobs: dict[str, tuple[dict, bool]] = {}
        for desc, chain in zip(layers, chains, strict=True):
            if desc["digest"] in jobs:
                continue
            have_blob = self.content.exists(desc["digest"])
            if have_blob and self.chain_exists(chain):
                progress.status("Already exists", short_id(desc["digest"]))
                if lease is not None:
                    lease.add(desc["digest"])
                continue
            jobs[desc["digest"]] = (desc, not self.chain_exists(chain), have_blob)
        for i, (desc, _, _) in enumerate(jobs.values()):
            progress.status("Pulling fs layer", short_id(desc["digest"]))
            if i >= self.max_concurrent:
                progress.status("Waiting", short_id(desc["digest"]))
        return self._run(session, ref, list(jobs.values()), progress, lease)

    def _run(self, session, ref, jobs, progress, lease) -> dict:
        extracted: dict = {}
        verified: list = []  # (writer, descriptor): checked, committed once all are in
        failed: list[BaseException] = []
        lock = threading.Lock()
        stop = threading.Event()

        def one(job):
            if stop.is_set():
                return
            try:
                done, writer = self._layer(session, ref, *job, progress, stop)
            except BaseException as exc:
                stop.set()
                with lock:
                    failed.append(exc)
                return
            with lock:
                if done is not None:
                    extracted[job[0]["digest"]] = done
                if writer is not None:
                    verified.append((writer, job[0]))

        workers = min(self.max_concurrent, len(jobs)) or 1
        with concurrent.futures.ThreadPoolExecutor(workers, "pull") as pool:
            list(pool.map(one, jobs))
        if failed:
            for key, _ in extracted.values():
                self.discard(key)
            for writer, _ in verified:
                writer.abort()
            raise failed[0]
        self._commit_all(verified, lease)
        return extracted

    def _commit_all(self, verified: list, lease) -> None:
        """One syncfs for every blob (and the layers extracted beside them), then the
        renames into the store: each commit's own fsync finds nothing left to write."""
        if verified:
            fd = os.open(self.content.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                ksys.syncfs(fd)
            finally:
                os.close(fd)
        for writer, desc in verified:
            writer.commit(size=desc["size"], expected=desc["digest"])
            if lease is not None:
                lease.add(desc["digest"])

    def _layer(self, session, ref, desc, extract, have_blob, progress, stop):
        """(extracted, writer holding the verified blob); either may be None."""
        ident = short_id(desc["digest"])
        label = f"pull {ref.familiar()}: layer {desc['digest']}"
        if have_blob and not extract:
            return None, None
        if have_blob:  # only the snapshot is missing: unpack the blob we hold
            with self.content.open(desc["digest"]) as blob:
                done = self.extract(blob, label)
            progress.status("Pull complete", ident)
            return done, None
        stream = registry.BlobStream(session, desc, label)
        writer = self.content.writer(f"pull-{os.getpid()}-{secrets.token_hex(6)}")
        tee = _Tee(stream, writer, progress, ident, desc.get("size", 0), stop)
        done = None
        try:
            if extract:
                done = self._extract(tee, label, desc)
            tee.drain()
            self._verify(writer, desc, label, progress, ident)
        except BaseException:
            if done is not None:
                self.discard(done[0])
            writer.abort()
            raise
        finally:
            stream.close()
        if done is not None:
            progress.bytes("Extracting", ident, desc.get("size", 0), desc.get("size", 0), True)
        progress.status("Pull complete", ident)
        return done, writer

    def _extract(self, tee: "_Tee", label: str, desc: dict):
        try:
            return self.extract(tee, label)
        except KnarrError as exc:
            tee.drain()  # a corrupt blob shows as a broken stream: say so by its digest
            actual = tee.writer.digest()
            if tee.stream.offset == tee.stream.size and actual != desc["digest"]:
                raise _mismatch(label, desc["digest"], actual) from exc
            raise

    @staticmethod
    def _verify(writer, desc: dict, label: str, progress: Progress, ident: str) -> None:
        progress.status("Verifying Checksum", ident)
        actual = writer.digest()
        if actual != desc["digest"] or writer.offset != desc["size"]:
            raise _mismatch(label, desc["digest"], actual)
        progress.status("Download complete", ident)


def _mismatch(label: str, expected: str, actual: str) -> InvalidArgument:
    return InvalidArgument(f"{label}: digest mismatch: expected {expected}, got {actual}",
                           digest=expected, actual=actual)


def _familiar_path(ref: Reference) -> str:
    return ref.path


class _Tee:
    """Reads a blob stream, writing every byte to its ingest and reporting progress."""

    def __init__(self, stream: registry.BlobStream, writer, progress: Progress, ident: str,
                 total: int, stop: threading.Event) -> None:
        self.stream = stream
        self.writer = writer
        self.progress = progress
        self.ident = ident
        self.total = total
        self.stop = stop

    def read(self, n: int = -1) -> bytes:
        if self.stop.is_set():
            raise InvalidArgument(f"{self.stream.label}: stopped: another layer failed")
        data = self.stream.read(_CHUNK if n < 0 else n)
        if data:
            self.writer.write(data)
        self.progress.bytes("Downloading", self.ident, self.stream.offset, self.total,
                            force=not data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read (and store) whatever the extraction left of the blob."""
        while self.read(_CHUNK):
            pass
