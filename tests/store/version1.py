"""A database as mqttref wrote it at schema version 1 (up to commit 3c38d2d), in raw SQL.

The statements are copied from that release, not taken from the code of this
one, so a migration test keeps meaning the same however the store changes:
the client id in every row of every session table.
"""

from __future__ import annotations

from pathlib import Path

from tests.store.old_schema import OldDatabase

SCHEMA = (
    "CREATE TABLE sessions (client_id TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE subscriptions (client_id TEXT NOT NULL, topic_filter TEXT NOT NULL,"
    " qos INTEGER NOT NULL, PRIMARY KEY (client_id, topic_filter)) WITHOUT ROWID",
    "CREATE TABLE queue (client_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " topic TEXT NOT NULL, qos INTEGER NOT NULL, payload BLOB NOT NULL,"
    " retain INTEGER NOT NULL, PRIMARY KEY (client_id, seq))",
    "CREATE TABLE inflight (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,"
    " sent_order INTEGER NOT NULL, state TEXT NOT NULL, topic TEXT NOT NULL,"
    " qos INTEGER NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL,"
    " PRIMARY KEY (client_id, packet_id))",
    "CREATE TABLE awaiting_rel (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,"
    " PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID",
    "CREATE TABLE retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL,"
    " qos INTEGER NOT NULL)",
)


class Version1Database(OldDatabase):
    """Writes rows the way the version 1 store did, into ``DATA_DIR/mqttref.db``."""

    owner = "client_id"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, 1, SCHEMA)

    def session(self, client_id: str) -> None:
        self.db.execute("INSERT INTO sessions (client_id) VALUES (?)", (client_id,))
