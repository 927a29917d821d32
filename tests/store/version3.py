"""A database as mqttref wrote it at schema version 3 (commits 8e9dd0e to 09c4f3d), in raw SQL.

The statements are the tables as SQLite recorded them in a database that release
made (``sqlite_master``), copied rather than taken from the code of this one, so
the 3 -> 4 migration test keeps meaning the same however the store changes: MQTT
5.0 message properties and expiry and subscription options, but no shared
subscription on a queued or in-flight message, and no delayed wills.
"""

from __future__ import annotations

from pathlib import Path

from tests.store.old_schema import OldDatabase, Owner

SCHEMA = (
    "CREATE TABLE retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL,"
    " qos INTEGER NOT NULL, properties BLOB, expires_at REAL)",
    "CREATE TABLE sessions (session INTEGER PRIMARY KEY, client_id TEXT NOT NULL,"
    " disconnected_at REAL, expiry_interval REAL)",
    "CREATE TABLE subscriptions (session INTEGER NOT NULL, topic_filter TEXT NOT NULL,"
    " qos INTEGER NOT NULL, no_local INTEGER NOT NULL DEFAULT 0,"
    " retain_as_published INTEGER NOT NULL DEFAULT 0, identifier INTEGER,"
    " PRIMARY KEY (session, topic_filter)) WITHOUT ROWID",
    "CREATE TABLE queue (session INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " topic TEXT NOT NULL, qos INTEGER NOT NULL, payload BLOB NOT NULL,"
    " retain INTEGER NOT NULL, properties BLOB, expires_at REAL, PRIMARY KEY (session, seq))",
    "CREATE TABLE inflight (session INTEGER NOT NULL, packet_id INTEGER NOT NULL,"
    " sent_order INTEGER NOT NULL, state TEXT NOT NULL, topic TEXT NOT NULL,"
    " qos INTEGER NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL,"
    " properties BLOB, expires_at REAL, PRIMARY KEY (session, packet_id))",
    "CREATE TABLE awaiting_rel (session INTEGER NOT NULL, packet_id INTEGER NOT NULL,"
    " PRIMARY KEY (session, packet_id)) WITHOUT ROWID",
)


class Version3Database(OldDatabase):
    """Writes rows the way the version 3 store did, into ``DATA_DIR/mqttref.db``."""

    owner = "session"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, 3, SCHEMA)

    def session(self, key: int, client_id: str, disconnected_at: float | None = None,
                expiry_interval: float | None = None) -> None:
        self.db.execute(
            "INSERT INTO sessions (session, client_id, disconnected_at, expiry_interval)"
            " VALUES (?, ?, ?, ?)", (key, client_id, disconnected_at, expiry_interval),
        )

    def shared_subscription(self, owner: Owner, topic_filter: str, qos: int,
                            identifier: int) -> None:
        """A 5.0 subscription with its Subscription Identifier (a ``$share/...`` one here)."""
        self.db.execute(
            "INSERT INTO subscriptions (session, topic_filter, qos, identifier)"
            " VALUES (?, ?, ?, ?)", (owner, topic_filter, qos, identifier))

    def queued5(self, owner: Owner, seq: int, topic: str, payload: bytes, *,
                properties: bytes, expires_at: float) -> None:
        """A QoS 1 message with a PUBLISH property block and a wall-clock deadline."""
        self.db.execute(
            "INSERT INTO queue (session, seq, topic, qos, payload, retain, properties,"
            " expires_at) VALUES (?, ?, ?, 1, ?, 0, ?, ?)",
            (owner, seq, topic, payload, properties, expires_at))
