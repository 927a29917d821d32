"""A database as mqttref wrote it at schema version 2 (commits 354f44f to 99ba8ce), in raw SQL.

The statements are the tables that the 1 -> 2 migration left, copied from that
release rather than taken from the code of this one, so the 2 -> 3 migration
test keeps meaning the same however the store changes: sessions keyed by an
integer, and no MQTT 5.0 state (properties, message expiry, subscription options).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from mqttref.impl.codec.packets import QoS
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage

APPLICATION_ID = 0x4D515452

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


class Version2Database:
    """Writes rows the way the version 2 store did, into ``DATA_DIR/mqttref.db``."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "mqttref.db"
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("BEGIN")
        self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        self.db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        self.db.execute("INSERT INTO schema_version (version) VALUES (2)")
        for statement in SCHEMA:
            self.db.execute(statement)

    def session(self, key: int, client_id: str, disconnected_at: float | None = None,
                expiry_interval: float | None = None) -> None:
        self.db.execute(
            "INSERT INTO sessions (session, client_id, disconnected_at, expiry_interval)"
            " VALUES (?, ?, ?, ?)", (key, client_id, disconnected_at, expiry_interval),
        )

    def subscription(self, key: int, topic_filter: str, qos: QoS) -> None:
        self.db.execute("INSERT INTO subscriptions (session, topic_filter, qos) VALUES (?, ?, ?)",
                        (key, topic_filter, int(qos)))

    def queued(self, key: int, seq: int, message: OutboundMessage) -> None:
        self.db.execute(
            "INSERT INTO queue (session, seq, topic, qos, payload, retain)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key, seq, message.topic, int(message.qos), message.payload, int(message.retain)),
        )

    def inflight(self, key: int, sent_order: int, state: OutboundState,
                 message: OutboundMessage) -> None:
        self.db.execute(
            "INSERT INTO inflight (session, packet_id, sent_order, state, topic, qos,"
            " payload, retain) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, message.packet_id, sent_order, state.name, message.topic,
             int(message.qos), message.payload, int(message.retain)),
        )

    def awaiting_rel(self, key: int, packet_id: int) -> None:
        self.db.execute("INSERT INTO awaiting_rel (session, packet_id) VALUES (?, ?)",
                        (key, packet_id))

    def retained(self, message: Message) -> None:
        self.db.execute("INSERT INTO retained (topic, payload, qos) VALUES (?, ?, ?)",
                        (message.topic, message.payload, int(message.qos)))

    def close(self) -> None:
        """Commit and close, as a stopped broker leaves it (no write-ahead log)."""
        self.db.execute("COMMIT")
        self.db.close()

    def __enter__(self) -> Version2Database:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.close()
