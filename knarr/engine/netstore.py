"""Networks, endpoints and sandboxes in `<root>/networks.db` (SQLite, WAL).

A network row is its Docker inspect document (without Containers); an endpoint
row is one container's attachment (its address, MAC, veth); a sandbox row is a
running container's network namespace and the ports published for it. The
allocations are the endpoint rows: they survive a daemon restart with the
containers that hold them.
"""

import json
import os
import sqlite3

from knarr.errors import AlreadyExists

__all__ = ["NetStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                                     doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (container TEXT NOT NULL, network TEXT NOT NULL,
                                      doc TEXT NOT NULL, PRIMARY KEY (container, network));
CREATE TABLE IF NOT EXISTS sandboxes (container TEXT PRIMARY KEY, doc TEXT NOT NULL);
"""


class NetStore:
    """The rows, loaded whole (they are few) and written through."""

    def __init__(self, root: str) -> None:
        self._db = sqlite3.connect(os.path.join(root, "networks.db"), timeout=30,
                                   isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def networks(self) -> list[dict]:
        return [json.loads(d) for (d,) in self._db.execute("SELECT doc FROM networks")]

    def add_network(self, doc: dict) -> None:
        try:
            self._db.execute("INSERT INTO networks VALUES (?, ?, ?)",
                             (doc["Id"], doc["Name"], json.dumps(doc)))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"network with name {doc['Name']} already exists",
                                network=doc["Name"]) from None

    def remove_network(self, nid: str) -> None:
        self._db.execute("DELETE FROM networks WHERE id = ?", (nid,))

    def endpoints(self) -> list[tuple[str, str, dict]]:
        return [(c, n, json.loads(d)) for c, n, d in
                self._db.execute("SELECT container, network, doc FROM endpoints")]

    def put_endpoint(self, cid: str, nid: str, doc: dict) -> None:
        self._db.execute("INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?)",
                         (cid, nid, json.dumps(doc)))

    def remove_endpoint(self, cid: str, nid: str) -> None:
        self._db.execute("DELETE FROM endpoints WHERE container = ? AND network = ?", (cid, nid))

    def sandboxes(self) -> dict[str, dict]:
        return {c: json.loads(d) for c, d in
                self._db.execute("SELECT container, doc FROM sandboxes")}

    def put_sandbox(self, cid: str, doc: dict) -> None:
        self._db.execute("INSERT OR REPLACE INTO sandboxes VALUES (?, ?)", (cid, json.dumps(doc)))

    def remove_sandbox(self, cid: str) -> None:
        self._db.execute("DELETE FROM sandboxes WHERE container = ?", (cid,))
