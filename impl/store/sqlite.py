"""The SQLite store: the broker's state on disk, so that ``kill -9`` loses nothing.

Theory of operation. The broker tells the store every change as a plain call
(``queue_append``, ``inflight_set``...) and calls ``commit()`` before any
acknowledgement leaves for the network, once per batch of packets. This store
therefore only *records* a call: it keeps the newest operation per row in an
ordered dictionary, so that a message queued and sent within one batch
costs one row write (or none), and ``commit()`` writes the whole batch as one
transaction (``executemany`` per statement): group commit. With WAL
journaling a commit is one append to the log, however many acknowledgements
it covers. What "on disk" means is the ``store_sync`` setting:

- ``normal`` (the default, SQLite's ``synchronous=NORMAL``): the append has
  been written to the log file when ``commit()`` returns, so the kernel has it
  and any death of the broker process, ``kill -9`` included, loses nothing;
  the log is flushed to the device at checkpoints. An operating-system crash
  or power cut may lose the last batches.
- ``full`` (``synchronous=FULL``): each commit also waits for ``fsync``, so
  not even a power cut loses an acknowledged message. One flush per batch
  (milliseconds on many disks) bounds the throughput; bench/durability.py
  measures both.

What is kept on disk is what the broker needs after a restart: persistent
sessions (clean session 0) with their subscriptions, queues, outbound
in-flight messages and inbound QoS 2 packet ids awaiting PUBREL, and the
retained messages. A clean session writes nothing: its subscriptions live in
an in-memory mirror (which a crashed topic server is rebuilt from, like every
other subscription), because after a restart there is nothing to give back
to it [MQTT-3.1.2-6].

Sessions are keyed by a small integer (``sessions.session``, the rowid); every
other row of a session (subscriptions, queue, in-flight, awaiting PUBREL)
names that key, never the client id, so a client id (up to 65,535 bytes) is
stored once per session however much it queues. The store maps client ids to
keys with an in-memory mirror loaded at ``open()``; the interface stays keyed
by client id. Each session row also keeps when its connection last left it
(``disconnected_at``, wall-clock) and its own expiry interval, if it has one.

MQTT 5.0 state (schema 3): a queued or in-flight message, and a retained one,
keeps its properties as the codec encodes a PUBLISH's property block (NULL for
none) and its expiry as a wall-clock deadline (``expires_at``, NULL for
never); a subscription keeps No Local, Retain As Published and its
Subscription Identifier. The broker holds a message's expiry on its event
loop's monotonic clock, which means nothing after a restart, so this store
converts at its boundary: ``loop_clock`` to ``wall_clock`` when it records a
message, back when it loads one. A message whose deadline passed while the
broker was down comes back already expired, and the session drops it unsent.

Schema 4 keeps the rest of a 5.0 session that a restart lost before. A queued
or in-flight message names the shared subscription it came through (``share``,
NULL for none), so that it still goes to another member of the group if its
session ends unacknowledged after the restart (4.8.2). A disconnected session
whose will waits for its Will Delay Interval keeps it in ``wills`` (one row per
session, gone with the session), its due time a wall-clock deadline converted
like a message's expiry: a will that fell due while the broker was down comes
back due, and is published at start-up.

The schema carries its version in ``schema_version``; ``MIGRATIONS[n]``
brings a database from version n to n + 1, each in its own transaction. A
database from a newer mqttref, a file that is not an SQLite database (or is
damaged), or an SQLite database of another program is refused at ``open()``
with a ``StoreError`` before anything is written to it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from mqttref.impl.codec import wire
from mqttref.impl.codec.errors import ProtocolError
from mqttref.impl.codec.packets import NO_PROPERTIES, PacketType, Properties, QoS
from mqttref.impl.codec.properties import encode_properties, read_properties
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage
from mqttref.impl.store.base import (
    NEVER_DISCONNECTED,
    NO_OPTIONS,
    SessionExpiry,
    SessionRecord,
    Store,
    StoredInflight,
    StoredWill,
    SubscriptionOptions,
    keep_options,
)
from mqttref.impl.store.datadir import DataDirectory, StoreError

log = logging.getLogger("mqttref.broker")

SQLITE_HEADER: Final = b"SQLite format 3\x00"
APPLICATION_ID: Final = 0x4D515452
"""``PRAGMA application_id`` of an mqttref database ("MQTR")."""

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 0 -> 1: the first schema.
    (
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
    ),
    # 1 -> 2: an integer session key instead of the client id in every row (issue 20:
    # ten sessions with 60 KB ids made a 248 MB file), and what expiry needs. Rows
    # of a client id without a session row (none are written) are left behind.
    (
        "CREATE TABLE sessions_2 (session INTEGER PRIMARY KEY, client_id TEXT NOT NULL,"
        " disconnected_at REAL, expiry_interval REAL)",
        "INSERT INTO sessions_2 (client_id) SELECT client_id FROM sessions",
        "CREATE TABLE subscriptions_2 (session INTEGER NOT NULL, topic_filter TEXT NOT NULL,"
        " qos INTEGER NOT NULL, PRIMARY KEY (session, topic_filter)) WITHOUT ROWID",
        "INSERT INTO subscriptions_2 (session, topic_filter, qos)"
        " SELECT s.session, t.topic_filter, t.qos FROM subscriptions t"
        " JOIN sessions_2 s ON s.client_id = t.client_id",
        "CREATE TABLE queue_2 (session INTEGER NOT NULL, seq INTEGER NOT NULL,"
        " topic TEXT NOT NULL, qos INTEGER NOT NULL, payload BLOB NOT NULL,"
        " retain INTEGER NOT NULL, PRIMARY KEY (session, seq))",
        "INSERT INTO queue_2 (session, seq, topic, qos, payload, retain)"
        " SELECT s.session, t.seq, t.topic, t.qos, t.payload, t.retain FROM queue t"
        " JOIN sessions_2 s ON s.client_id = t.client_id",
        "CREATE TABLE inflight_2 (session INTEGER NOT NULL, packet_id INTEGER NOT NULL,"
        " sent_order INTEGER NOT NULL, state TEXT NOT NULL, topic TEXT NOT NULL,"
        " qos INTEGER NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL,"
        " PRIMARY KEY (session, packet_id))",
        "INSERT INTO inflight_2 (session, packet_id, sent_order, state, topic, qos, payload,"
        " retain) SELECT s.session, t.packet_id, t.sent_order, t.state, t.topic, t.qos,"
        " t.payload, t.retain FROM inflight t JOIN sessions_2 s ON s.client_id = t.client_id",
        "CREATE TABLE awaiting_rel_2 (session INTEGER NOT NULL, packet_id INTEGER NOT NULL,"
        " PRIMARY KEY (session, packet_id)) WITHOUT ROWID",
        "INSERT INTO awaiting_rel_2 (session, packet_id) SELECT s.session, t.packet_id"
        " FROM awaiting_rel t JOIN sessions_2 s ON s.client_id = t.client_id",
        *(f"DROP TABLE {table}"
          for table in ("subscriptions", "queue", "inflight", "awaiting_rel", "sessions")),
        *(f"ALTER TABLE {table}_2 RENAME TO {table}"
          for table in ("sessions", "subscriptions", "queue", "inflight", "awaiting_rel")),
    ),
    # 2 -> 3: MQTT 5.0 session state (issue 15). Messages keep their properties (the
    # PUBLISH property block) and their expiry (a wall-clock deadline); subscriptions
    # their options. Every existing row is a 3.x one: no properties, no expiry, no options.
    (
        *(f"ALTER TABLE {table} ADD COLUMN {column}"
          for table in ("queue", "inflight", "retained")
          for column in ("properties BLOB", "expires_at REAL")),
        "ALTER TABLE subscriptions ADD COLUMN no_local INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE subscriptions ADD COLUMN retain_as_published INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE subscriptions ADD COLUMN identifier INTEGER",
    ),
    # 3 -> 4: the 5.0 session state a restart lost (issue 15). Messages keep the shared
    # subscription they came through, for a hand-over after the restart (4.8.2); a session
    # keeps its delayed will (3.1.3.2.2). Rows of version 3 came through none: their
    # group, if they had one, was not recorded.
    (
        "ALTER TABLE queue ADD COLUMN share TEXT",
        "ALTER TABLE inflight ADD COLUMN share TEXT",
        "CREATE TABLE wills (session INTEGER PRIMARY KEY, due_at REAL NOT NULL,"
        " topic TEXT NOT NULL, qos INTEGER NOT NULL, payload BLOB NOT NULL,"
        " retain INTEGER NOT NULL, properties BLOB, expires_at REAL)",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_INSERT_SESSION = "INSERT INTO sessions (session, client_id) VALUES (?, ?)"
_SET_EXPIRY = "UPDATE sessions SET disconnected_at = ?, expiry_interval = ? WHERE session = ?"
_SET_SUBSCRIPTION = (
    "INSERT OR REPLACE INTO subscriptions"
    " (session, topic_filter, qos, no_local, retain_as_published, identifier)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_DELETE_SUBSCRIPTION = "DELETE FROM subscriptions WHERE session = ? AND topic_filter = ?"
_QUEUE_APPEND = (
    "INSERT OR REPLACE INTO queue"
    " (session, seq, topic, qos, payload, retain, properties, expires_at, share)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_QUEUE_REMOVE = "DELETE FROM queue WHERE session = ? AND seq = ?"
_INFLIGHT_SET = (
    "INSERT OR REPLACE INTO inflight"
    " (session, packet_id, sent_order, state, topic, qos, payload, retain, properties,"
    " expires_at, share) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INFLIGHT_REMOVE = "DELETE FROM inflight WHERE session = ? AND packet_id = ?"
_AWAITING_ADD = "INSERT OR IGNORE INTO awaiting_rel (session, packet_id) VALUES (?, ?)"
_AWAITING_REMOVE = "DELETE FROM awaiting_rel WHERE session = ? AND packet_id = ?"
_SET_RETAINED = (
    "INSERT OR REPLACE INTO retained (topic, payload, qos, properties, expires_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
_CLEAR_RETAINED = "DELETE FROM retained WHERE topic = ?"
_SET_WILL = (
    "INSERT OR REPLACE INTO wills"
    " (session, due_at, topic, qos, payload, retain, properties, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_REMOVE_WILL = "DELETE FROM wills WHERE session = ?"
_SESSION_TABLES: Final = (
    "subscriptions", "queue", "inflight", "awaiting_rel", "wills", "sessions",
)

_STATES: Final = {state.name: state for state in OutboundState}

Operation = tuple[str, tuple[Any, ...]]


class SQLiteStore(Store):
    """Everything the broker must not lose, in ``DATA_DIR/mqttref.db``."""

    def __init__(
        self, directory: Path, *, synchronous: str = "normal",
        wall_clock: Callable[[], float] = time.time,
        loop_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = DataDirectory(directory)
        self.path = self.directory.database_path
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous: expected 'normal' or 'full', got {synchronous!r}")
        self.synchronous = synchronous.upper()
        self.wall_clock = wall_clock
        """What message deadlines are kept in: it means the same after a restart."""
        self.loop_clock = loop_clock
        """The broker's clock, in which ``expires_at`` arrives and is given back: its
        event loop's ``time()``, which is ``time.monotonic()`` under asyncio and uvloop."""
        self._db: sqlite3.Connection | None = None
        self._pending: dict[tuple[Any, ...], Operation] = {}
        """Row key -> the newest statement for that row, since the last commit."""
        self._keys: dict[str, int] = {}
        """Client id -> session key, for every persistent session."""
        self._next_key = 1
        self._expiry: dict[str, SessionExpiry] = {}
        """Sessions whose expiry is not ``NEVER_DISCONNECTED`` (connected sessions are not here)."""
        self._subscriptions: dict[str, dict[str, QoS]] = {}
        """Every session's subscriptions, persistent or clean (the disk has the former)."""
        self._options: dict[str, dict[str, SubscriptionOptions]] = {}
        """The options of those subscriptions that have any (``keep_options``)."""
        self._retained: dict[str, Message] = {}
        self._sent_order: dict[int, dict[int, int]] = {}
        """Session key -> packet id -> when first sent; kept while the message is in flight."""
        self._next_order = 1
        self.commits = 0
        """Transactions written since open (for the bench and the tests)."""
        self.failed: StoreError | None = None
        """Set by the first write that failed (disk full, I/O error): from then on every
        commit fails too, so no later change is ever acknowledged without the lost ones."""

    def __repr__(self) -> str:
        return f"<SQLiteStore {str(self.path)!r}>"

    # Opening and closing --------------------------------------------------------------

    def open(self) -> None:
        """Lock the directory, check the file, migrate the schema, load the mirrors.

        Every check that can refuse runs before the first write, so a refused
        file is left exactly as it was.
        """
        if self._db is not None:
            return
        self.directory.acquire()
        try:
            self._inspect()
            self._db = self._connect()
            self._migrate()
            self._load()
            self.directory.write_owner()
        except BaseException:
            self.close()
            raise
        log.info("store %s: %d persistent sessions, %d retained messages (synchronous=%s)",
                 self.path, len(self._keys), len(self._retained), self.synchronous)

    def close(self) -> None:
        """Commit what is pending (unless a write failed), close, release the directory."""
        db, self._db = self._db, None
        try:
            if db is not None:
                try:
                    if self.failed is None:
                        self._commit(db)
                finally:
                    db.close()
                    log.info("store %s closed after %d transactions", self.path, self.commits)
        finally:
            self.directory.release()

    def _inspect(self) -> None:
        """Refuse a file that is not ours, damaged, or newer, reading it read-only."""
        path = self.path
        for existing in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
            _check_writable(existing)
        if not path.exists() or path.stat().st_size == 0:
            return
        try:
            with path.open("rb") as file:
                header = file.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise StoreError(f"database {path}: cannot read it: {exc.strerror}") from exc
        if header != SQLITE_HEADER:
            raise StoreError(f"database {path}: not an SQLite database (corrupt?); "
                             "move it away to start with an empty store")
        # Read-only; and with no log to replay, immutable too, so that SQLite does not
        # even create the -wal and -shm files beside a file it is about to refuse.
        wal = path.with_name(path.name + "-wal")
        mode = "mode=ro" if wal.exists() and wal.stat().st_size else "mode=ro&immutable=1"
        try:
            db = sqlite3.connect(f"{path.as_uri()}?{mode}", uri=True)
        except sqlite3.Error as exc:
            raise StoreError(f"database {path}: cannot open it: {exc}") from exc
        try:
            version = _read_version(db, path)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"database {path}: schema version {version} is newer than this "
                    f"mqttref's ({SCHEMA_VERSION}); use a newer mqttref or another data directory"
                )
            check = [row[0] for row in db.execute("PRAGMA quick_check")]
            if check != ["ok"]:
                raise StoreError(f"database {path}: damaged ({'; '.join(map(str, check[:3]))})")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"database {path}: corrupt: {exc}") from exc
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"database {self.path}: cannot use WAL journaling ({mode})")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
        except sqlite3.Error as exc:
            raise StoreError(f"database {self.path}: cannot open it: {exc}") from exc
        return db

    def _migrate(self) -> None:
        db = self._require_db()
        try:
            version = _read_version(db, self.path)
            if version > SCHEMA_VERSION:  # newer, and only in the log that _inspect skipped
                raise StoreError(f"database {self.path}: schema version {version} is newer "
                                 f"than this mqttref's ({SCHEMA_VERSION})")
            if version == 0:
                db.execute("BEGIN IMMEDIATE")
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (0)")
                db.execute("COMMIT")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                db.execute("BEGIN IMMEDIATE")
                for statement in MIGRATIONS[target - 1]:
                    db.execute(statement)
                db.execute("UPDATE schema_version SET version = ?", (target,))
                db.execute("COMMIT")
            if 0 < version < SCHEMA_VERSION:
                self._compact(db)
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"database {self.path}: cannot migrate the schema: {exc}") from exc

    def _compact(self, db: sqlite3.Connection) -> None:
        """Give back to the file system what a migration freed (the 1 -> 2 step turns a
        file bloated by long client ids into free pages; SQLite keeps them otherwise)."""
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        if free * 4 > pages:
            before = self.path.stat().st_size
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            log.info("store %s: compacted after the schema migration, %d -> %d bytes",
                     self.path, before, self.path.stat().st_size)

    def _load(self) -> None:
        db = self._require_db()
        try:
            names: dict[int, str] = {}
            for key, client_id, disconnected_at, interval in db.execute(
                "SELECT session, client_id, disconnected_at, expiry_interval FROM sessions"
            ):
                names[key] = client_id
                self._keys[client_id] = key
                if disconnected_at is not None or interval is not None:
                    self._expiry[client_id] = SessionExpiry(disconnected_at, interval)
            self._next_key = max(names, default=0) + 1
            for key, topic_filter, qos, no_local, rap, identifier in db.execute(
                "SELECT session, topic_filter, qos, no_local, retain_as_published, identifier"
                " FROM subscriptions"
            ):
                self._subscriptions.setdefault(names[key], {})[topic_filter] = QoS(qos)
                keep_options(self._options, names[key], topic_filter,
                             SubscriptionOptions(bool(no_local), bool(rap), identifier))
            to_loop = self.loop_clock() - self.wall_clock()
            for topic, payload, qos, properties, expires_at in db.execute(
                "SELECT topic, payload, qos, properties, expires_at FROM retained"
            ):
                self._retained[topic] = Message(
                    topic, bytes(payload), QoS(qos), True, properties=_properties(properties),
                    expires_at=None if expires_at is None else expires_at + to_loop,
                )
            next_order = 1
            for key, packet_id, order in db.execute(
                "SELECT session, packet_id, sent_order FROM inflight"
            ):
                self._sent_order.setdefault(key, {})[packet_id] = order
                next_order = max(next_order, order + 1)
            self._next_order = next_order
        except (sqlite3.Error, ValueError, KeyError, ProtocolError) as exc:
            raise StoreError(f"database {self.path}: corrupt: {exc}") from exc

    def _require_db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"database {self.path}: the store is not open")
        return self._db

    # Group commit ---------------------------------------------------------------------

    def commit(self) -> None:
        """Write every recorded change as one transaction (a no-op when none)."""
        if self.failed is not None:
            raise self.failed
        db = self._db
        if self._pending or (db is not None and db.in_transaction):
            self._commit(self._require_db())

    def _commit(self, db: sqlite3.Connection) -> None:
        try:
            self._apply(db)
            if db.in_transaction:
                db.execute("COMMIT")
                self.commits += 1
        except sqlite3.Error as exc:
            raise self._fail(db, exc) from exc

    def _fail(self, db: sqlite3.Connection, exc: sqlite3.Error) -> StoreError:
        """Give up writing for good: what is on disk stays the last good commit."""
        self._pending.clear()
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                log.debug("rollback after a failed write failed too", exc_info=True)
        if self.failed is None:
            self.failed = StoreError(f"database {self.path}: cannot write: {exc}")
        return self.failed

    def _apply(self, db: sqlite3.Connection) -> None:
        """Run the pending statements inside the open (or a new) transaction."""
        if not self._pending:
            return
        by_statement: dict[str, list[tuple[Any, ...]]] = {}
        for statement, params in self._pending.values():
            by_statement.setdefault(statement, []).append(params)
        self._pending.clear()
        if not db.in_transaction:
            db.execute("BEGIN")
        for statement, rows in by_statement.items():
            db.executemany(statement, rows)

    def _record(self, key: tuple[Any, ...], statement: str, params: tuple[Any, ...]) -> None:
        pending = self._pending
        pending.pop(key, None)  # the newest operation goes last, like a fresh one
        pending[key] = (statement, params)

    # Persistent sessions ------------------------------------------------------------

    def session_ids(self) -> list[str]:
        return sorted(self._keys)

    def create_session(self, client_id: str) -> None:
        if client_id in self._keys:
            return
        key = self._keys[client_id] = self._next_key
        self._next_key += 1
        self._record(("session", key), _INSERT_SESSION, (key, client_id))
        options = self._options.get(client_id, {})
        for topic_filter, qos in self._subscriptions.get(client_id, {}).items():
            self._record_subscription(key, topic_filter, qos,
                                      options.get(topic_filter, NO_OPTIONS))

    def load_session(self, client_id: str) -> SessionRecord | None:
        key = self._keys.get(client_id)
        if key is None:
            return None
        db = self._require_db()
        try:
            self._apply(db)
            to_loop = self.loop_clock() - self.wall_clock()
            return SessionRecord(
                client_id=client_id,
                subscriptions=dict(self._subscriptions.get(client_id, {})),
                queue=list(self._stored_queue(db, key, to_loop)),
                inflight=list(self._stored_inflight(db, key, to_loop)),
                awaiting_rel=frozenset(
                    row[0] for row in db.execute(
                        "SELECT packet_id FROM awaiting_rel WHERE session = ?", (key,)
                    )
                ),
                expiry=self._expiry.get(client_id, NEVER_DISCONNECTED),
                options=dict(self._options.get(client_id, {})),
            )
        except (sqlite3.Error, ValueError, KeyError, ProtocolError) as exc:
            raise StoreError(f"database {self.path}: cannot read session "
                             f"{client_id[:100]!r}: {exc}") from exc

    @staticmethod
    def _stored_queue(
        db: sqlite3.Connection, key: int, to_loop: float
    ) -> Iterator[tuple[int, OutboundMessage]]:
        """The queue in order; ``to_loop`` turns a wall-clock deadline into a loop-clock one."""
        for seq, topic, qos, payload, retain, properties, expires_at, share in db.execute(
            "SELECT seq, topic, qos, payload, retain, properties, expires_at, share FROM queue"
            " WHERE session = ? ORDER BY seq", (key,),
        ):
            yield seq, OutboundMessage(
                topic, 0, QoS(qos), bytes(payload), bool(retain), _properties(properties),
                None if expires_at is None else expires_at + to_loop, share,
            )

    @staticmethod
    def _stored_inflight(
        db: sqlite3.Connection, key: int, to_loop: float
    ) -> Iterator[StoredInflight]:
        for (packet_id, state, topic, qos, payload, retain, properties, expires_at,
             share) in db.execute(
            "SELECT packet_id, state, topic, qos, payload, retain, properties, expires_at,"
            " share FROM inflight WHERE session = ? ORDER BY sent_order", (key,)
        ):
            message = OutboundMessage(
                topic, packet_id, QoS(qos), bytes(payload), bool(retain),
                _properties(properties), None if expires_at is None else expires_at + to_loop,
                share,
            )
            yield StoredInflight(packet_id, _STATES[state], message)

    def delete_session(self, client_id: str) -> None:
        """Forget a session: its rows go in the current batch, after what came before."""
        self._subscriptions.pop(client_id, None)
        self._options.pop(client_id, None)
        key = self._keys.pop(client_id, None)
        if key is None:
            return
        self._expiry.pop(client_id, None)
        self._sent_order.pop(key, None)
        db = self._require_db()
        if self.failed is not None:
            return
        try:
            self._apply(db)  # keeps the order: earlier changes, then the deletion
            if not db.in_transaction:
                db.execute("BEGIN")
            for table in _SESSION_TABLES:
                db.execute(f"DELETE FROM {table} WHERE session = ?", (key,))
        except sqlite3.Error as exc:
            # Not raised here, in the middle of the broker's bookkeeping: the next
            # commit raises it, before anything is acknowledged.
            self._fail(db, exc)

    def session_expiry(self, client_id: str) -> SessionExpiry | None:
        if client_id not in self._keys:
            return None
        return self._expiry.get(client_id, NEVER_DISCONNECTED)

    def session_disconnected(
        self, client_id: str, at: float, expiry_interval: float | None = None
    ) -> None:
        key = self._keys.get(client_id)
        if key is not None:
            self._set_expiry(client_id, key, SessionExpiry(at, expiry_interval))

    def session_connected(self, client_id: str) -> None:
        key = self._keys.get(client_id)
        expiry = self._expiry.get(client_id)
        if key is not None and expiry is not None and expiry.disconnected_at is not None:
            self._set_expiry(client_id, key, SessionExpiry(None, expiry.expiry_interval))

    def _set_expiry(self, client_id: str, key: int, expiry: SessionExpiry) -> None:
        if expiry == NEVER_DISCONNECTED:
            self._expiry.pop(client_id, None)
        else:
            self._expiry[client_id] = expiry
        self._record(("expiry", key), _SET_EXPIRY,
                     (expiry.disconnected_at, expiry.expiry_interval, key))

    # Subscriptions --------------------------------------------------------------------

    def set_subscription(
        self, client_id: str, topic_filter: str, qos: QoS,
        options: SubscriptionOptions = NO_OPTIONS,
    ) -> None:
        self._subscriptions.setdefault(client_id, {})[topic_filter] = qos
        keep_options(self._options, client_id, topic_filter, options)
        key = self._keys.get(client_id)
        if key is not None:
            self._record_subscription(key, topic_filter, qos, options)

    def _record_subscription(
        self, key: int, topic_filter: str, qos: QoS, options: SubscriptionOptions
    ) -> None:
        self._record(("sub", key, topic_filter), _SET_SUBSCRIPTION, (
            key, topic_filter, int(qos), int(options.no_local),
            int(options.retain_as_published), options.identifier,
        ))

    def delete_subscription(self, client_id: str, topic_filter: str) -> None:
        filters = self._subscriptions.get(client_id)
        if filters is not None:
            filters.pop(topic_filter, None)
            if not filters:
                del self._subscriptions[client_id]
        keep_options(self._options, client_id, topic_filter, NO_OPTIONS)
        key = self._keys.get(client_id)
        if key is not None:
            self._record(("sub", key, topic_filter), _DELETE_SUBSCRIPTION, (key, topic_filter))

    def subscriptions(self) -> Iterable[tuple[str, str, QoS]]:
        return [
            (client_id, topic_filter, qos)
            for client_id, filters in self._subscriptions.items()
            for topic_filter, qos in filters.items()
        ]

    # Queues and in-flight state -------------------------------------------------------

    def queue_append(self, client_id: str, seq: int, message: OutboundMessage) -> None:
        key = self._keys.get(client_id)
        if key is not None:
            self._record(("queue", key, seq), _QUEUE_APPEND, (
                key, seq, message.topic, int(message.qos), message.payload,
                int(message.retain), _property_block(message.properties),
                self._wall_deadline(message.expires_at), message.share,
            ))

    def queue_remove(self, client_id: str, seq: int) -> None:
        key = self._keys.get(client_id)
        if key is not None:
            row = ("queue", key, seq)
            if self._pending.get(row, ("",))[0] == _QUEUE_APPEND:
                del self._pending[row]  # queued and sent in one batch: never on disk
            else:
                self._record(row, _QUEUE_REMOVE, (key, seq))

    def inflight_set(
        self, client_id: str, packet_id: int, state: OutboundState, message: OutboundMessage
    ) -> None:
        key = self._keys.get(client_id)
        if key is None:
            return
        orders = self._sent_order.setdefault(key, {})
        order = orders.get(packet_id)
        if order is None:
            order = orders[packet_id] = self._next_order
            self._next_order += 1
        self._record(("inflight", key, packet_id), _INFLIGHT_SET, (
            key, packet_id, order, state.name, message.topic, int(message.qos),
            message.payload, int(message.retain), _property_block(message.properties),
            self._wall_deadline(message.expires_at), message.share,
        ))

    def inflight_remove(self, client_id: str, packet_id: int) -> None:
        key = self._keys.get(client_id)
        if key is not None:
            orders = self._sent_order.get(key)
            if orders is not None:
                orders.pop(packet_id, None)
                if not orders:
                    del self._sent_order[key]
            self._record(("inflight", key, packet_id), _INFLIGHT_REMOVE, (key, packet_id))

    def awaiting_rel_add(self, client_id: str, packet_id: int) -> None:
        key = self._keys.get(client_id)
        if key is not None:
            self._record(("rel", key, packet_id), _AWAITING_ADD, (key, packet_id))

    def awaiting_rel_remove(self, client_id: str, packet_id: int) -> None:
        key = self._keys.get(client_id)
        if key is not None:
            self._record(("rel", key, packet_id), _AWAITING_REMOVE, (key, packet_id))

    # Delayed wills ----------------------------------------------------------------------

    def will_set(self, client_id: str, will: Message, due_at: float) -> None:
        key = self._keys.get(client_id)
        if key is not None:
            self._record(("will", key), _SET_WILL, (
                key, self._wall_deadline(due_at), will.topic, int(will.qos), will.payload,
                int(will.retain), _property_block(will.properties),
                self._wall_deadline(will.expires_at),
            ))

    def will_remove(self, client_id: str) -> None:
        key = self._keys.get(client_id)
        if key is not None:
            self._record(("will", key), _REMOVE_WILL, (key,))

    def wills(self) -> Iterable[StoredWill]:
        """Read from the disk (once, at start-up): a will is not worth a mirror."""
        db = self._require_db()
        try:
            self._apply(db)
            to_loop = self.loop_clock() - self.wall_clock()
            return [
                StoredWill(client_id, due_at + to_loop, Message(
                    topic, bytes(payload), QoS(qos), bool(retain),
                    properties=_properties(properties),
                    expires_at=None if expires_at is None else expires_at + to_loop,
                ))
                for client_id, due_at, topic, qos, payload, retain, properties, expires_at
                in db.execute(
                    "SELECT s.client_id, w.due_at, w.topic, w.qos, w.payload, w.retain,"
                    " w.properties, w.expires_at FROM wills w JOIN sessions s"
                    " ON s.session = w.session ORDER BY w.due_at"
                )
            ]
        except (sqlite3.Error, ValueError, ProtocolError) as exc:
            raise StoreError(f"database {self.path}: cannot read the delayed wills: "
                             f"{exc}") from exc

    # Retained messages ------------------------------------------------------------------

    def set_retained(self, topic: str, message: Message | None) -> None:
        if message is None:
            self._retained.pop(topic, None)
            self._record(("retained", topic), _CLEAR_RETAINED, (topic,))
        else:
            self._retained[topic] = message
            self._record(("retained", topic), _SET_RETAINED, (
                topic, message.payload, int(message.qos), _property_block(message.properties),
                self._wall_deadline(message.expires_at),
            ))

    def get_retained(self, topic: str) -> Message | None:
        return self._retained.get(topic)

    def retained(self) -> Iterable[Message]:
        return list(self._retained.values())

    def _wall_deadline(self, expires_at: float | None) -> float | None:
        """A message's deadline on the wall clock, to be kept across a restart."""
        if expires_at is None:
            return None
        return expires_at - self.loop_clock() + self.wall_clock()


def _property_block(properties: Properties) -> bytes | None:
    """A message's properties as a PUBLISH carries them; None (NULL) for none."""
    if properties is NO_PROPERTIES:
        return None
    block = encode_properties(properties, PacketType.PUBLISH)
    return None if block == b"\x00" else block


def _properties(block: bytes | None) -> Properties:
    """The properties a stored property block holds (a 3.x row's NULL holds none)."""
    if not block:
        return NO_PROPERTIES
    return read_properties(wire.Reader(bytes(block)), PacketType.PUBLISH)


def _check_writable(path: Path) -> None:
    """Open an existing file for writing and close it again: changes nothing, and
    SQLite would otherwise open a read-only file read-only and fail at the first commit."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"database {path}: not writable: {exc.strerror}") from exc
    os.close(fd)


def _read_version(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of an open database: 0 when empty; refuses a foreign one."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return 0
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    if "schema_version" not in tables or application_id != APPLICATION_ID:
        raise StoreError(f"database {path}: an SQLite database of another program "
                         "(no mqttref schema_version table); nothing was changed")
    row = db.execute("SELECT version FROM schema_version").fetchone()
    if row is None or not isinstance(row[0], int):
        raise StoreError(f"database {path}: corrupt: no schema version")
    return int(row[0])
