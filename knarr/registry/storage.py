"""Repositories as link records on top of knarr's content store.

Bytes live once, in the shared content store (`<root>/content`, by sha256).
What a repository holds is a set of small link files under
`<root>/registry/repositories/<name>/`:

    _layers/<alg>/<hex>                   a blob pushed or mounted here -> its sha256
    _manifests/revisions/<alg>/<hex>      a manifest here -> {blob, mediaType, size}
    _manifests/tags/<tag>                 a tag -> a manifest digest
    _referrers/<alg>/<hex>/<alg>-<hex>    subject -> the descriptor of a referrer

`<root>/registry/aliases/sha512/<hex>` maps a sha512 name to the sha256 of
the same bytes. Every file is written temp + fsync + rename, so a crash leaves
either the old record or the new one. Names in links are lower-case
`[a-z0-9]` components, so `_`-prefixed directories never clash with a nested
repository.

`gc_lock` is an flock on `registry/gc.lock`: writers that commit a blob and
then link it hold it shared, `knarr-registry gc` holds it exclusive, so a
collection never runs between a commit and its link.
"""

import contextlib
import fcntl
import json
import os
import secrets
import time

from knarr.content import ContentStore

__all__ = ["Storage"]


class Storage:
    """The registry's records under `<root>/registry` and the content store under `<root>`."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.content = ContentStore(self.root)
        self.base = os.path.join(self.root, "registry")
        self.repos = os.path.join(self.base, "repositories")
        self.aliases = os.path.join(self.base, "aliases")
        self.uploads = os.path.join(self.base, "uploads")
        for path in (self.repos, self.aliases, self.uploads):
            os.makedirs(path, exist_ok=True)
        self._lock_path = os.path.join(self.base, "gc.lock")

    @contextlib.contextmanager
    def gc_lock(self, exclusive: bool = False):
        """Hold the collection lock: shared for writers, exclusive for gc."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    # paths

    def _repo(self, name: str) -> str:
        return os.path.join(self.repos, name)

    def _digest_path(self, base: str, digest: str) -> str:
        algorithm, encoded = digest.split(":", 1)
        return os.path.join(base, algorithm, encoded)

    def _layer(self, name: str, digest: str) -> str:
        return self._digest_path(os.path.join(self._repo(name), "_layers"), digest)

    def _revision(self, name: str, digest: str) -> str:
        return self._digest_path(
            os.path.join(self._repo(name), "_manifests", "revisions"), digest)

    def _tags_dir(self, name: str) -> str:
        return os.path.join(self._repo(name), "_manifests", "tags")

    def _referrers_dir(self, name: str, subject: str) -> str:
        return self._digest_path(os.path.join(self._repo(name), "_referrers"), subject)

    # repositories

    def repo_exists(self, name: str) -> bool:
        """True once anything was pushed to the repository."""
        return os.path.isdir(self._repo(name))

    def repositories(self) -> list[str]:
        """Every repository name, sorted."""
        found = []
        for top, dirs, _files in os.walk(self.repos):
            if "_layers" in dirs or "_manifests" in dirs:
                found.append(os.path.relpath(top, self.repos))
            dirs[:] = [d for d in dirs if not d.startswith("_")]
        return sorted(found)

    # blobs

    def blob_link(self, name: str, digest: str) -> str | None:
        """The sha256 a blob linked in the repository is stored under, or None."""
        return _read_text(self._layer(name, digest))

    def link_blob(self, name: str, digest: str, stored: str) -> None:
        """Record that the repository holds the blob (stored under sha256 `stored`)."""
        if digest != stored:
            _write_atomic(self._digest_path(self.aliases, digest), stored.encode())
        _write_atomic(self._layer(name, digest), stored.encode())

    def unlink_blob(self, name: str, digest: str) -> bool:
        """Drop a blob's link from the repository; False if it had none."""
        return _unlink(self._layer(name, digest))

    def find_blob(self, digest: str) -> str | None:
        """The sha256 of a blob anywhere in the store (for anonymous mounts), or None."""
        stored = digest if digest.startswith("sha256:") else _read_text(
            self._digest_path(self.aliases, digest))
        if stored and self.content.exists(stored):
            return stored
        return None

    # manifests

    def manifest(self, name: str, digest: str) -> dict | None:
        """The record of a manifest in the repository: blob, mediaType, size."""
        text = _read_text(self._revision(name, digest))
        return json.loads(text) if text else None

    def put_manifest(self, name: str, digest: str, record: dict) -> None:
        """Link a manifest (already in the content store) into the repository."""
        _write_atomic(self._revision(name, digest), json.dumps(record).encode())

    def delete_manifest(self, name: str, digest: str) -> dict | None:
        """Unlink a manifest and every tag naming it; return its record, or None."""
        record = self.manifest(name, digest)
        if record is None:
            return None
        for tag in self.tags(name):
            if self.tag(name, tag) == digest:
                _unlink(os.path.join(self._tags_dir(name), tag))
        subject = record.get("subject")
        if subject:
            _unlink(os.path.join(self._referrers_dir(name, subject), digest.replace(":", "-")))
        _unlink(self._revision(name, digest))
        return record

    # tags

    def tag(self, name: str, tag: str) -> str | None:
        """The manifest digest a tag names, or None."""
        return _read_text(os.path.join(self._tags_dir(name), tag))

    def set_tag(self, name: str, tag: str, digest: str) -> None:
        """Point a tag at a manifest digest."""
        _write_atomic(os.path.join(self._tags_dir(name), tag), digest.encode())

    def delete_tag(self, name: str, tag: str) -> bool:
        """Remove a tag; False if it did not exist."""
        return _unlink(os.path.join(self._tags_dir(name), tag))

    def tags(self, name: str) -> list[str]:
        """Every tag of the repository, sorted."""
        try:
            return sorted(t for t in os.listdir(self._tags_dir(name)) if not t.startswith("."))
        except FileNotFoundError:
            return []

    # referrers

    def add_referrer(self, name: str, subject: str, descriptor: dict) -> None:
        """Record a manifest whose `subject` is the given digest."""
        entry = descriptor["digest"].replace(":", "-")
        _write_atomic(os.path.join(self._referrers_dir(name, subject), entry),
                      json.dumps(descriptor).encode())

    def referrers(self, name: str, subject: str) -> list[dict]:
        """Descriptors of the manifests in the repository that refer to `subject`."""
        path = self._referrers_dir(name, subject)
        try:
            entries = sorted(e for e in os.listdir(path) if not e.startswith("."))
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            text = _read_text(os.path.join(path, entry))
            if text:
                out.append(json.loads(text))
        return out

    # garbage collection

    def referenced(self) -> set[str]:
        """The sha256 of every blob and manifest some repository links."""
        keep: set[str] = set()
        for name in self.repositories():
            repo = self._repo(name)
            for sub in ("_layers", os.path.join("_manifests", "revisions")):
                for top, _dirs, files in os.walk(os.path.join(repo, sub)):
                    for f in files:
                        if f.startswith("."):
                            continue
                        text = _read_text(os.path.join(top, f)) or ""
                        keep.add(json.loads(text)["blob"] if text.startswith("{") else text)
        return keep

    def orphan_layers(self, name: str, older_than: float) -> list[str]:
        """Blob links of the repository that no manifest in it names, untouched for a while.

        A push links its blobs before its manifest, so a young link without a manifest
        is a push in progress; only links older than `older_than` seconds count.
        """
        named: set[str] = set()
        revisions = os.path.join(self._repo(name), "_manifests", "revisions")
        for top, _dirs, files in os.walk(revisions):
            for f in files:
                text = None if f.startswith(".") else _read_text(os.path.join(top, f))
                if text:
                    named |= _named_by(self.content.read(json.loads(text)["blob"]))
        found, now = [], time.time()
        layers = os.path.join(self._repo(name), "_layers")
        for top, _dirs, files in os.walk(layers):
            for f in files:
                digest = f"{os.path.basename(top)}:{f}"
                if f.startswith(".") or digest in named:
                    continue
                try:
                    if now - os.path.getmtime(os.path.join(top, f)) >= older_than:
                        found.append(digest)
                except FileNotFoundError:
                    pass
        return found

    def drop_dead_aliases(self) -> int:
        """Remove aliases whose blob is gone; return how many."""
        dropped = 0
        for top, _dirs, files in os.walk(self.aliases):
            for f in files:
                path = os.path.join(top, f)
                stored = _read_text(path)
                if not stored or not self.content.exists(stored):
                    dropped += _unlink(path)
        return dropped


def _named_by(manifest: bytes) -> set[str]:
    """Digests a manifest or index names: config, layers, child manifests."""
    try:
        doc = json.loads(manifest)
    except ValueError:
        return set()
    if not isinstance(doc, dict):
        return set()
    descs = [doc.get("config")]
    for key in ("layers", "manifests", "blobs"):
        if isinstance(doc.get(key), list):
            descs += doc[key]
    return {d["digest"] for d in descs if isinstance(d, dict) and isinstance(d.get("digest"), str)}


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _write_atomic(path: str, data: bytes) -> None:
    """temp file, fsync, rename: a reader sees the old record or the new one."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
