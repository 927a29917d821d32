"""A database as mqttref wrote it at schema version 2 (commits 354f44f to 99ba8ce), in raw SQL.

The statements are the tables that the 1 -> 2 migration left, copied from that
release rather than taken from the code of this one, so the 2 -> 3 migration
test keeps meaning the same however the store changes: sessions keyed by an
integer, and no MQTT 5.0 state (properties, message expiry, subscription options).
"""

from __future__ import annotations

from pathlib import Path

from tests.store.old_schema import OldDatabase

SCHEMA = (
    "CREATE TABLE sessions (session INTEGER PRIMARY KEY, client_id TEXT NOT NULL,"
    " disconnected_at REAL, expiry_interval REAL)",
    "CREATE TABLE subscriptions (session INTEGER NOT NULL, topic_filter TEXT NOT NULL,"
    " qos INTEGER NOT NULL, PRIMARY KEY (session, topic_filter)) WITHOUT ROWID",
    "CREATE TABLE queue (session INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " topic TEXT NOT NULL, qos INTEGER NOT NULL, payload BLOB NOT NULL,"
    " retain INTEGER NOT NULL, PRIMARY KEY (session, seq))",
    "CREATE TABLE inflight (session INTEGER NOT NULL, packet_id INTEGER NOT NULL,"
    " sent_order INTEGER NOT NULL, state TEXT NOT NULL, topic TEXT NOT NULL,"
    " qos INTEGER NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL,"
    " PRIMARY KEY (session, packet_id))",
    "CREATE TABLE awaiting_rel (session INTEGER NOT NULL, packet_id INTEGER NOT NULL,"
    " PRIMARY KEY (session, packet_id)) WITHOUT ROWID",
    "CREATE TABLE retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL,"
    " qos INTEGER NOT NULL)",
)


class Version2Database(OldDatabase):
    """Writes rows the way the version 2 store did, into ``DATA_DIR/mqttref.db``."""

    owner = "session"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, 2, SCHEMA)

    def session(self, key: int, client_id: str, disconnected_at: float | None = None,
                expiry_interval: float | None = None) -> None:
        self.db.execute(
            "INSERT INTO sessions (session, client_id, disconnected_at, expiry_interval)"
            " VALUES (?, ?, ?, ?)", (key, client_id, disconnected_at, expiry_interval),
        )
