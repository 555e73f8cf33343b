"""The image index: which images exist and which names point at them.

Kept in the engine's SQLite database (`<root>/metadata.db`, WAL), tables
`images` and `image_names`. An image's id is the digest of its config, as
Docker computes it. A name is a normalised reference: `name:tag`, or
`name@digest` for a repo digest. Each change is one transaction, so a crash
leaves the index either before or after it.
"""

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Records"]

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS images (
        id TEXT PRIMARY KEY,
        manifest TEXT NOT NULL,
        manifest_type TEXT NOT NULL,
        layers TEXT NOT NULL,
        added REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS image_names (
        name TEXT PRIMARY KEY,
        image TEXT NOT NULL REFERENCES images(id),
        tagged REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS image_names_by_image ON image_names(image)",
]


class Records:
    """Rows of the image index; callers hold the store lock for changes."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        for statement in _SCHEMA:
            self.db.execute(statement)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic change."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def put_image(self, image_id: str, manifest: str, manifest_type: str, layers: list[dict],
                  names: list[str]) -> list[str]:
        """Add (or refresh) an image and point names at it; return names moved off another."""
        moved = []
        now = time.time()
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, COALESCE("
                       "(SELECT added FROM images WHERE id = ?), ?))",
                       (image_id, manifest, manifest_type, json.dumps(layers), image_id, now))
            for name in names:
                old = self._image_of(db, name)
                if old is not None and old != image_id:
                    moved.append(name)
                db.execute("INSERT OR REPLACE INTO image_names VALUES (?, ?, ?)",
                           (name, image_id, now))
        return moved

    @staticmethod
    def _image_of(db: sqlite3.Connection, name: str) -> str | None:
        row = db.execute("SELECT image FROM image_names WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def image_of(self, name: str) -> str | None:
        """The image id a name points at, or None."""
        return self._image_of(self.db, name)

    def get(self, image_id: str) -> dict | None:
        """An image's row as a dict, or None."""
        row = self.db.execute("SELECT id, manifest, manifest_type, layers, added FROM images "
                              "WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            return None
        return {"id": row[0], "manifest": row[1], "manifest_type": row[2],
                "layers": json.loads(row[3]), "added": row[4]}

    def ids(self) -> list[str]:
        """Every image id, oldest first."""
        return [r[0] for r in self.db.execute("SELECT id FROM images ORDER BY added, id")]

    def ids_with_prefix(self, hex_prefix: str) -> list[str]:
        """Image ids whose hex starts with a prefix."""
        pattern = "sha256:" + hex_prefix.replace("%", "").replace("_", "") + "%"
        return [r[0] for r in self.db.execute("SELECT id FROM images WHERE id LIKE ?",
                                              (pattern,))]

    def names_of(self, image_id: str) -> list[str]:
        """Every name pointing at an image, in the order they were made."""
        return [r[0] for r in self.db.execute(
            "SELECT name FROM image_names WHERE image = ? ORDER BY tagged, name", (image_id,))]

    def set_name(self, name: str, image_id: str) -> str | None:
        """Point a name at an image; return the image it pointed at before."""
        with self.transaction() as db:
            old = self._image_of(db, name)
            db.execute("INSERT OR REPLACE INTO image_names VALUES (?, ?, ?)",
                       (name, image_id, time.time()))
        return old

    def drop_name(self, name: str) -> None:
        """Remove one name."""
        with self.transaction() as db:
            db.execute("DELETE FROM image_names WHERE name = ?", (name,))

    def drop_image(self, image_id: str) -> list[str]:
        """Remove an image and every name of it; return the names removed."""
        with self.transaction() as db:
            names = [r[0] for r in db.execute(
                "SELECT name FROM image_names WHERE image = ?", (image_id,))]
            db.execute("DELETE FROM image_names WHERE image = ?", (image_id,))
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))
        return names
