"""The container index: one SQLite row per container (id, unique name, image, config).

Lives in `<root>/containers.db` (WAL), not in the image store's metadata.db, so
container writes never wait on an image load holding that database. The name
column is UNIQUE: reserving a name and adding the container are one statement.
"""

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from knarr.errors import Conflict, InvalidArgument, NotFound

__all__ = ["Records"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,
    created REAL NOT NULL,
    config TEXT NOT NULL
)
"""


class Records:
    """Containers known to the engine, whatever their state."""

    def __init__(self, root: str) -> None:
        os.makedirs(root, mode=0o711, exist_ok=True)
        self._db = sqlite3.connect(os.path.join(root, "containers.db"), timeout=30,
                                   isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
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

    def add(self, record: dict) -> None:
        """Add a container; Conflict if its name is taken."""
        name = record["Name"].lstrip("/")
        with self._transaction() as db:
            owner = db.execute("SELECT id FROM containers WHERE name = ?", (name,)).fetchone()
            if owner:
                raise _name_conflict(name, owner[0])
            db.execute("INSERT INTO containers VALUES (?, ?, ?, ?, ?)",
                       (record["Id"], name, record["Image"], record["_created"],
                        json.dumps(record)))

    def update(self, record: dict) -> None:
        """Replace a container's stored config (and name)."""
        name = record["Name"].lstrip("/")
        with self._transaction() as db:
            owner = db.execute("SELECT id FROM containers WHERE name = ?", (name,)).fetchone()
            if owner and owner[0] != record["Id"]:
                raise _name_conflict(name, owner[0])
            db.execute("UPDATE containers SET name = ?, config = ? WHERE id = ?",
                       (name, json.dumps(record), record["Id"]))

    def remove(self, container_id: str) -> None:
        """Forget a container."""
        with self._transaction() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def name_taken(self, name: str) -> bool:
        """Whether a container has this name."""
        row = self._db.execute("SELECT 1 FROM containers WHERE name = ?", (name,)).fetchone()
        return row is not None

    def require_free(self, name: str) -> None:
        """Conflict, with Docker's text, if a container has this name."""
        row = self._db.execute("SELECT id FROM containers WHERE name = ?", (name,)).fetchone()
        if row:
            raise _name_conflict(name, row[0])

    def get(self, container_id: str) -> dict:
        """A container's stored config by full id."""
        row = self._db.execute("SELECT config FROM containers WHERE id = ?",
                               (container_id,)).fetchone()
        if row is None:
            raise NotFound(f"No such container: {container_id}", container=container_id)
        return json.loads(row[0])

    def resolve(self, ref: str) -> str:
        """The id a full id, a name (with or without '/') or a unique id prefix names."""
        row = self._db.execute("SELECT id FROM containers WHERE id = ? OR name = ?",
                               (ref, ref.lstrip("/"))).fetchone()
        if row:
            return row[0]
        if ref and all(c in "0123456789abcdef" for c in ref):
            rows = self._db.execute("SELECT id FROM containers WHERE id LIKE ? LIMIT 2",
                                    (ref + "%",)).fetchall()
            if len(rows) == 1:
                return rows[0][0]
            if len(rows) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}",
                                      container=ref)
        raise NotFound(f"No such container: {ref}", container=ref)

    def all(self) -> list[dict]:
        """Every container's stored config, newest first."""
        rows = self._db.execute("SELECT config FROM containers ORDER BY created DESC")
        return [json.loads(r[0]) for r in rows]

    def image_in_use(self, image_id: str) -> bool:
        """Whether any container was made from this image."""
        row = self._db.execute("SELECT 1 FROM containers WHERE image = ? LIMIT 1",
                               (image_id,)).fetchone()
        return row is not None


def _name_conflict(name: str, owner: str) -> Conflict:
    return Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{owner}". You have to remove (or rename) that container to be able to '
                    'reuse that name.', name=name, id=owner)
