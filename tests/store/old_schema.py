"""What the raw-SQL snapshots of old store schemas share (``version1``, ``version2``).

Each snapshot keeps its own ``SCHEMA``, copied from its release, so a migration test
means the same however the store changes; only the writing of rows is common. The
session tables of both have the same columns but for the one naming the session:
the client id (version 1) or an integer key (version 2), ``owner`` here.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Self

from mqttref.impl.codec.packets import QoS
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage

APPLICATION_ID = 0x4D515452

Owner = str | int
"""A row's session: its client id (version 1) or its integer key (version 2)."""


class OldDatabase:
    """Writes rows the way an old store did, into ``DATA_DIR/mqttref.db``."""

    owner = "client_id"
    """The column that names a row's session."""

    def __init__(self, data_dir: Path, version: int, schema: tuple[str, ...]) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "mqttref.db"
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("BEGIN")
        self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        self.db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        self.db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        for statement in schema:
            self.db.execute(statement)

    def subscription(self, owner: Owner, topic_filter: str, qos: QoS) -> None:
        self.db.execute(
            f"INSERT INTO subscriptions ({self.owner}, topic_filter, qos) VALUES (?, ?, ?)",
            (owner, topic_filter, int(qos)))

    def queued(self, owner: Owner, seq: int, message: OutboundMessage) -> None:
        self.db.execute(
            f"INSERT INTO queue ({self.owner}, seq, topic, qos, payload, retain)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (owner, seq, message.topic, int(message.qos), message.payload,
             int(message.retain)),
        )

    def inflight(self, owner: Owner, sent_order: int, state: OutboundState,
                 message: OutboundMessage) -> None:
        self.db.execute(
            f"INSERT INTO inflight ({self.owner}, packet_id, sent_order, state, topic, qos,"
            " payload, retain) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (owner, message.packet_id, sent_order, state.name, message.topic,
             int(message.qos), message.payload, int(message.retain)),
        )

    def awaiting_rel(self, owner: Owner, packet_id: int) -> None:
        self.db.execute(f"INSERT INTO awaiting_rel ({self.owner}, packet_id) VALUES (?, ?)",
                        (owner, packet_id))

    def retained(self, message: Message) -> None:
        self.db.execute("INSERT INTO retained (topic, payload, qos) VALUES (?, ?, ?)",
                        (message.topic, message.payload, int(message.qos)))

    def close(self) -> None:
        """Commit and close, as a stopped broker leaves it (no write-ahead log)."""
        self.db.execute("COMMIT")
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.close()
