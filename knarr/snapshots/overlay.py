"""The overlay snapshotter: layer directories stacked by chain id.

Layout under the engine root:

    snapshots/metadata.db         SQLite (WAL): key, number, kind, parent, labels
    snapshots/<n>/fs              a layer's files, or a container's upper dir
    snapshots/<n>/work            overlay's work dir (active snapshots only)

A snapshot is `active` (writable: an unpack in progress, a container's upper
dir), `view` (read-only stack of its parents) or `committed` (an immutable
layer, named by its chain id, that others may use as a parent). The
snapshotter never mounts: `mounts(key)` returns OCI mount dicts and the
runtime performs them. Long chains are returned with absolute paths too; see
`knarr.oci.overlay.fit_overlay` for how a mount that overflows the option
page is performed.

Metadata changes run in one SQLite transaction each; directories are made
before the row that names them and removed after it, so a crash leaves at
worst an unnamed directory, which `cleanup` removes.
"""

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from knarr import sys as ksys
from knarr.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from knarr.oci.digest import chain_id
from knarr.snapshots.apply import Applied, apply_layer
from knarr.snapshots.diff import write_diff
from knarr.snapshots.recipe import RECIPE_NAME

__all__ = ["Snapshotter", "ACTIVE", "VIEW", "COMMITTED"]

ACTIVE, VIEW, COMMITTED = "active", "view", "committed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    key TEXT PRIMARY KEY,
    id INTEGER NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    parent TEXT REFERENCES snapshots(key),
    created REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}'
)
"""
# The last snapshot number handed out: numbers are never reused (see `_next_number`).
_COUNTER = "CREATE TABLE IF NOT EXISTS last_number (one INTEGER PRIMARY KEY CHECK (one = 1), " \
    "number INTEGER NOT NULL)"


def mark_top_directory(path: str) -> None:
    """Mark `path` as the top of unrelated directory trees (chattr +T), so that ext4's
    Orlov allocator spreads the snapshot directories made in it over the file system,
    each with its files nearby, rather than packing them next to their parent's
    inode group. Where that group has just freed many inodes (a busy /tmp; ext4
    without a journal checks every recently freed inode before reusing one) this
    made creating an image's files several times slower. A hint only: file systems
    without inode flags are left as they are."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        ksys.add_inode_flags(fd, ksys.FS_TOPDIR_FL)
    except OSError:
        pass
    finally:
        os.close(fd)


class Snapshotter:
    """Overlay snapshots under `<root>/snapshots`."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(os.path.join(root, "snapshots"))
        if any(c in self.root for c in ",:"):
            raise InvalidArgument(f"snapshots root {self.root}: overlay options cannot name a "
                                  "path with ',' or ':'", path=self.root)
        os.makedirs(self.root, exist_ok=True)
        mark_top_directory(self.root)
        self._db = sqlite3.connect(os.path.join(self.root, "metadata.db"), timeout=60,
                                   isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._db.execute(_COUNTER)

    def close(self) -> None:
        """Close the metadata database."""
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _row(self, key: str) -> dict | None:
        cur = self._db.execute(
            "SELECT key, id, kind, parent, created, labels FROM snapshots WHERE key = ?", (key,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip(("key", "id", "kind", "parent", "created", "labels"), row, strict=True))

    def stat(self, key: str) -> dict:
        """The record of a snapshot: key, id, kind, parent, created, labels; NotFound if none."""
        row = self._row(key)
        if row is None:
            raise NotFound(f"snapshot {key}: not found", key=key)
        row["labels"] = json.loads(row["labels"])
        return row

    def exists(self, key: str) -> bool:
        """True if a snapshot of that key or name exists."""
        return self._row(key) is not None

    def walk(self) -> list[dict]:
        """Every snapshot's record, oldest first."""
        keys = [r[0] for r in self._db.execute("SELECT key FROM snapshots ORDER BY id")]
        return [self.stat(k) for k in keys]

    def path(self, key: str) -> str:
        """The `fs` directory of a snapshot (a layer's files or an upper dir)."""
        return self._dir(self.stat(key)["id"], "fs")

    def recipe_path(self, key: str) -> str:
        """Where a snapshot's layer recipe lives (beside `fs`, never in a container's
        view), whether or not it has one (see recipe.py)."""
        return self._dir(self.stat(key)["id"], RECIPE_NAME)

    def _dir(self, number: int, *parts: str) -> str:
        return os.path.join(self.root, str(number), *parts)

    def prepare(self, key: str, parent: str | None = None,
                labels: dict | None = None) -> list[dict]:
        """Make a writable snapshot on top of a committed `parent`; return its mounts."""
        self._create(key, parent, ACTIVE, labels)
        return self.mounts(key)

    def view(self, key: str, parent: str, labels: dict | None = None) -> list[dict]:
        """Make a read-only snapshot of a committed `parent`; return its mounts."""
        self._create(key, parent, VIEW, labels)
        return self.mounts(key)

    def _create(self, key: str, parent: str | None, kind: str, labels: dict | None) -> None:
        if not key:
            raise InvalidArgument("snapshot key: empty", key=key)
        with self._transaction() as db:
            if self._row(key) is not None:
                raise AlreadyExists(f"snapshot {key}: already exists", key=key)
            if parent is not None:
                self._require_committed(parent, f"prepare {key}: parent")
            number = _next_number(db)
            self._make_dirs(number, kind)
            db.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                       (key, number, kind, parent, time.time(), json.dumps(labels or {})))

    def _make_dirs(self, number: int, kind: str) -> None:
        base = self._dir(number)
        shutil.rmtree(base, ignore_errors=True)  # a leftover of a crash between dir and row
        os.makedirs(os.path.join(base, "fs"), mode=0o755)
        if kind == ACTIVE:
            os.mkdir(os.path.join(base, "work"), 0o700)

    def _require_committed(self, key: str, what: str) -> dict:
        row = self._row(key)
        if row is None:
            raise NotFound(f"{what} {key}: not found", key=key)
        if row["kind"] != COMMITTED:
            raise FailedPrecondition(f"{what} {key}: is {row['kind']}, not committed", key=key)
        return row

    def commit(self, name: str, key: str, labels: dict | None = None,
               parent: str | None = None) -> None:
        """Turn the active snapshot `key` into the committed layer `name`, adding `labels`.

        `parent` stacks a snapshot prepared without one on the committed `parent`:
        a layer extracted before its place in a chain was known (its directory
        holds the layer's own files whatever lies below it).
        """
        with self._transaction() as db:
            row = self._row(key)
            if row is None:
                raise NotFound(f"commit {key}: snapshot not found", key=key)
            if row["kind"] != ACTIVE:
                raise FailedPrecondition(f"commit {key}: snapshot is {row['kind']}, not active",
                                         key=key)
            if self._row(name) is not None:
                raise AlreadyExists(f"commit {key}: snapshot {name} already exists", key=name)
            if parent is not None:
                if row["parent"] is not None:
                    raise FailedPrecondition(f"commit {key}: already stacked on {row['parent']}",
                                             key=key)
                self._require_committed(parent, f"commit {key}: parent")
            merged = dict(json.loads(row["labels"]), **(labels or {}))
            db.execute("UPDATE snapshots SET key = ?, kind = ?, labels = ?, parent = ? "
                       "WHERE key = ?", (name, COMMITTED, json.dumps(merged),
                                         parent if parent is not None else row["parent"], key))
        shutil.rmtree(self._dir(row["id"], "work"), ignore_errors=True)

    def remove(self, key: str) -> None:
        """Remove a snapshot that no other snapshot uses as its parent."""
        with self._transaction() as db:
            row = self._row(key)
            if row is None:
                raise NotFound(f"remove snapshot {key}: not found", key=key)
            children = [r[0] for r in db.execute(
                "SELECT key FROM snapshots WHERE parent = ? LIMIT 3", (key,))]
            if children:
                raise FailedPrecondition(
                    f"remove snapshot {key}: is the parent of {', '.join(children)}", key=key)
            db.execute("DELETE FROM snapshots WHERE key = ?", (key,))
        _remove_dir(self._dir(row["id"]))

    def parents(self, key: str) -> list[dict]:
        """The chain below a snapshot, nearest first."""
        chain = []
        parent = self.stat(key)["parent"]
        while parent is not None:
            row = self.stat(parent)
            chain.append(row)
            parent = row["parent"]
        return chain

    def mounts(self, key: str) -> list[dict]:
        """OCI mount dicts that make the snapshot's root file system (nothing is mounted)."""
        row = self.stat(key)
        lowers = [self._dir(p["id"], "fs") for p in self.parents(key)]
        if row["kind"] == ACTIVE and not lowers:
            return [_bind(self._dir(row["id"], "fs"), "rw")]
        if row["kind"] == VIEW and len(lowers) == 1:
            return [_bind(lowers[0], "ro")]
        options = ["index=off", f"lowerdir={':'.join(lowers)}"]
        if row["kind"] == ACTIVE:
            options[1:1] = [f"upperdir={self._dir(row['id'], 'fs')}",
                            f"workdir={self._dir(row['id'], 'work')}"]
        return [{"type": "overlay", "source": "overlay", "options": options}]

    def apply(self, key: str, stream: BinaryIO, max_bytes: int | None = None,
              label: str | None = None, recorder: object = None) -> Applied:
        """Extract an uncompressed layer tar into the active snapshot `key`."""
        row = self.stat(key)
        if row["kind"] != ACTIVE:
            raise FailedPrecondition(f"apply to snapshot {key}: is {row['kind']}, not active",
                                     key=key)
        return apply_layer(self._dir(row["id"], "fs"), stream, label=label or f"layer for {key}",
                           max_bytes=max_bytes, recorder=recorder)

    def diff(self, key: str, out: BinaryIO) -> tuple[str, int]:
        """Write the snapshot's own changes as an uncompressed layer tar; (diff_id, size)."""
        return write_diff(self.path(key), out)

    def usage(self, key: str) -> tuple[int, int]:
        """(bytes, inodes) used by a snapshot's own directory."""
        size = inodes = 0
        for dirpath, dirnames, filenames in os.walk(self.path(key)):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                inodes += 1
                size += st.st_blocks * 512
        try:
            size += os.stat(self.recipe_path(key)).st_blocks * 512
        except FileNotFoundError:
            pass
        return size, inodes

    def check(self) -> list[str]:
        """Check every snapshot record against the disk; return one line per problem.

        A record needs its `fs` directory (and `work`, while active), a parent
        that exists and is committed, and, for a layer whose labels carry its
        diff_id, a key that is the chain id of its parent and that diff_id. A
        numbered directory no record names is reported too (`cleanup` removes it).
        """
        problems, known = [], set()
        rows = {r["key"]: r for r in self.walk()}
        for key, row in rows.items():
            known.add(str(row["id"]))
            problems += [f"snapshot {key}: {p}" for p in self._check_row(row, rows)]
        for name in sorted(os.listdir(self.root)):
            if name.isdigit() and name not in known:
                problems.append(f"snapshots/{name}: a directory no snapshot names")
        return problems

    def _check_row(self, row: dict, rows: dict) -> list[str]:
        out = []
        for part in ("fs", "work") if row["kind"] == ACTIVE else ("fs",):
            if not os.path.isdir(self._dir(row["id"], part)):
                out.append(f"directory {self._dir(row['id'], part)} is missing")
        parent = rows.get(row["parent"]) if row["parent"] is not None else None
        if row["parent"] is not None and parent is None:
            out.append(f"parent {row['parent']} does not exist")
        elif parent is not None and parent["kind"] != COMMITTED:
            out.append(f"parent {row['parent']} is {parent['kind']}, not committed")
        diff_id = row["labels"].get("knarr.diff_id")
        if row["kind"] == COMMITTED and isinstance(diff_id, str):
            try:
                chain = chain_id(row["parent"], diff_id)
            except InvalidArgument:
                chain = None
            if chain != row["key"]:
                out.append(f"key is not the chain id of its parent and diff_id {diff_id}")
        return out

    def cleanup(self) -> list[str]:
        """Remove directories no snapshot names (left by a crash); return them."""
        removed = []
        with self._transaction() as db:
            known = {str(r[0]) for r in db.execute("SELECT id FROM snapshots")}
            for name in os.listdir(self.root):
                if (name.isdigit() and name not in known) or name.startswith("rm-"):
                    _remove_dir(os.path.join(self.root, name))
                    removed.append(name)
        return removed


def _next_number(db: sqlite3.Connection) -> int:
    """A snapshot number never used before in this store, recorded as used (in the
    caller's transaction).

    Never reusing one keeps a new snapshot's directory from taking the name of one just
    removed: ext4 places a directory made in a top directory (see `mark_top_directory`)
    by a hash of its name, so a reused name lands the new layer's files in the block
    group whose inodes the removed layer has just freed, and on ext4 without a journal
    each file created there first skips every inode freed in the last minute (`docker
    rmi` then `pull` of the same image went 2-3x slower in the kernel)."""
    highest = db.execute("SELECT MAX(id) FROM snapshots").fetchone()[0] or 0
    row = db.execute("SELECT number FROM last_number").fetchone()
    number = max(highest, row[0] if row else 0) + 1
    db.execute("INSERT OR REPLACE INTO last_number (one, number) VALUES (1, ?)", (number,))
    return number


def _bind(source: str, mode: str) -> dict:
    return {"type": "bind", "source": source, "options": ["rbind", mode]}


def _remove_dir(path: str) -> None:
    """Rename out of the way first, so a crash mid-removal leaves an `rm-` dir, not a layer."""
    doomed = os.path.join(os.path.dirname(path), f"rm-{os.path.basename(path)}")
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)
