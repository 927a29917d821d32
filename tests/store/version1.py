"""A database as mqttref wrote it at schema version 1 (up to commit 3c38d2d), in raw SQL.

The statements are copied from that release, not taken from the code of this
one, so a migration test keeps meaning the same however the store changes:
the client id in every row of every session table.
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


class Version1Database:
    """Writes rows the way the version 1 store did, into ``DATA_DIR/mqttref.db``."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "mqttref.db"
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("BEGIN")
        self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        self.db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        self.db.execute("INSERT INTO schema_version (version) VALUES (1)")
        for statement in SCHEMA:
            self.db.execute(statement)

    def session(self, client_id: str) -> None:
        self.db.execute("INSERT INTO sessions (client_id) VALUES (?)", (client_id,))

    def subscription(self, client_id: str, topic_filter: str, qos: QoS) -> None:
        self.db.execute("INSERT INTO subscriptions (client_id, topic_filter, qos) VALUES (?, ?, ?)",
                        (client_id, topic_filter, int(qos)))

    def queued(self, client_id: str, seq: int, message: OutboundMessage) -> None:
        self.db.execute(
            "INSERT INTO queue (client_id, seq, topic, qos, payload, retain)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (client_id, seq, message.topic, int(message.qos), message.payload,
             int(message.retain)),
        )

    def inflight(self, client_id: str, sent_order: int, state: OutboundState,
                 message: OutboundMessage) -> None:
        self.db.execute(
            "INSERT INTO inflight (client_id, packet_id, sent_order, state, topic, qos,"
            " payload, retain) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (client_id, message.packet_id, sent_order, state.name, message.topic,
             int(message.qos), message.payload, int(message.retain)),
        )

    def awaiting_rel(self, client_id: str, packet_id: int) -> None:
        self.db.execute("INSERT INTO awaiting_rel (client_id, packet_id) VALUES (?, ?)",
                        (client_id, packet_id))

    def retained(self, message: Message) -> None:
        self.db.execute("INSERT INTO retained (topic, payload, qos) VALUES (?, ?, ?)",
                        (message.topic, message.payload, int(message.qos)))

    def close(self) -> None:
        """Commit and close, as a stopped broker leaves it (no write-ahead log)."""
        self.db.execute("COMMIT")
        self.db.close()

    def __enter__(self) -> Version1Database:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.close()
