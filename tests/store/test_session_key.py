"""The SQLite store keys sessions by a small integer: a client id is stored once per session.

Issue 20: the id was in every queue row and its index, so ten persistent
sessions with 60 KB ids made a 248 MB file. A database written by the version
1 schema (``tests/store/version1.py``) is migrated in place, keeping every row.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from mqttref.impl.broker.config import Config
from mqttref.impl.codec.packets import ConnAck, PubAck, Publish, PubRel, QoS
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage
from mqttref.impl.store import SQLiteStore
from mqttref.impl.store.base import SessionExpiry
from mqttref.impl.store.sqlite import SCHEMA_VERSION
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import RawClient
from tests.store.version1 import Version1Database

Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
LONG_ID = "L" * 60_000


def out(topic: str, payload: bytes, qos: QoS = Q1, packet_id: int = 0) -> OutboundMessage:
    return OutboundMessage(topic, packet_id, qos, payload)


def columns(path: Path, table: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def version_1_database(data_dir: Path) -> None:
    """Two persistent sessions (one with a 60 KB id) with everything a session stores."""
    with Version1Database(data_dir) as old:
        for client_id in ("c", LONG_ID):
            old.session(client_id)
            old.subscription(client_id, "a/#", Q2)
            old.subscription(client_id, "b", Q1)
            old.queued(client_id, 7, out("a/x", b"seven"))
            old.queued(client_id, 8, OutboundMessage("a/y", 0, Q2, b"eight", True))
            # Packet 3 was sent before packet 1.
            old.inflight(client_id, 10, OutboundState.AWAITING_PUBACK, out("a/1", b"one", Q1, 3))
            old.inflight(client_id, 11, OutboundState.AWAITING_PUBCOMP,
                         out("a/2", b"two", Q2, 1))
            old.awaiting_rel(client_id, 42)
        old.retained(Message("r/1", b"kept", Q1, True))


def test_a_version_1_database_is_migrated_keeping_every_session_and_retained_message(
    tmp_path: Path,
) -> None:
    version_1_database(tmp_path)
    store = SQLiteStore(tmp_path)
    store.open()
    try:
        assert sorted(store.session_ids()) == sorted(["c", LONG_ID])
        for client_id in ("c", LONG_ID):
            record = store.load_session(client_id)
            assert record is not None
            assert record.subscriptions == {"a/#": Q2, "b": Q1}
            assert record.queue == [
                (7, out("a/x", b"seven")),
                (8, OutboundMessage("a/y", 0, Q2, b"eight", True)),
            ]
            assert [(i.packet_id, i.state, i.message.payload) for i in record.inflight] == [
                (3, OutboundState.AWAITING_PUBACK, b"one"),
                (1, OutboundState.AWAITING_PUBCOMP, b"two"),
            ]
            assert record.awaiting_rel == frozenset({42})
            # No disconnection was recorded before: the session table starts counting.
            assert record.expiry == SessionExpiry(None, None)
        assert sorted(store.subscriptions()) == sorted(
            (client_id, topic_filter, qos)
            for client_id in ("c", LONG_ID) for topic_filter, qos in (("a/#", Q2), ("b", Q1))
        )
        [retained] = store.retained()
        assert retained.same_as(Message("r/1", b"kept", Q1, True))
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    for table in ("subscriptions", "queue", "inflight", "awaiting_rel"):
        assert "client_id" not in columns(store.path, table), table
        assert columns(store.path, table)[0] == "session"


def test_a_migrated_session_takes_new_changes_and_keeps_its_sent_order(tmp_path: Path) -> None:
    version_1_database(tmp_path)
    store = SQLiteStore(tmp_path)
    store.open()
    store.queue_append("c", 9, out("a/z", b"nine"))
    store.inflight_set("c", 5, OutboundState.AWAITING_PUBACK, out("a/5", b"five", Q1, 5))
    store.queue_remove(LONG_ID, 7)
    store.create_session("new")
    store.commit()
    store.close()
    again = SQLiteStore(tmp_path)
    again.open()
    try:
        record = again.load_session("c")
        assert record is not None
        assert [seq for seq, _ in record.queue] == [7, 8, 9]
        assert [i.packet_id for i in record.inflight] == [3, 1, 5]  # after the migrated ones
        long_record = again.load_session(LONG_ID)
        assert long_record is not None
        assert [seq for seq, _ in long_record.queue] == [8]
        assert sorted(again.session_ids()) == sorted(["c", LONG_ID, "new"])
    finally:
        again.close()


def test_a_version_1_database_bloated_by_long_client_ids_shrinks_when_migrated(
    tmp_path: Path,
) -> None:
    with Version1Database(tmp_path) as old:
        old.session(LONG_ID)
        for seq in range(1, 101):
            old.queued(LONG_ID, seq, out("t", b"x" * 100))
    path = tmp_path / "mqttref.db"
    bloated = path.stat().st_size
    assert bloated > 100 * 60_000  # the id in every row, and again in its index
    store = SQLiteStore(tmp_path)
    store.open()
    record = store.load_session(LONG_ID)
    store.close()
    assert record is not None
    assert len(record.queue) == 100
    assert path.stat().st_size < 4 * 60_000  # one copy of the id, and the messages


def file_size_with(tmp_path: Path, client_id: str, messages: int) -> int:
    """The database file of one persistent session with ``messages`` queued (and some
    in flight), committed and closed."""
    store = SQLiteStore(tmp_path / str(len(client_id)))
    store.open()
    store.create_session(client_id)
    store.set_subscription(client_id, "t/#", Q1)
    for seq in range(1, messages + 1):
        store.queue_append(client_id, seq, out("t/x", b"m" * 100))
    for packet_id in range(1, 21):
        store.inflight_set(client_id, packet_id, OutboundState.AWAITING_PUBACK,
                           out("t/x", b"i" * 100, Q1, packet_id))
        store.awaiting_rel_add(client_id, packet_id)
    store.commit()
    store.close()
    return store.path.stat().st_size


def test_a_60kb_client_id_costs_one_copy_of_the_id_however_many_messages_it_queues(
    tmp_path: Path,
) -> None:
    short = file_size_with(tmp_path, "c", 200)
    long = file_size_with(tmp_path, LONG_ID, 200)
    # About one copy of the id (in overflow pages), not one or two per row.
    assert long - short < 2 * len(LONG_ID)
    assert long / 200 < 3 * 1024  # a few KB per queued message at most, id included


def test_the_broker_delivers_what_a_version_1_database_kept(tmp_path: Path) -> None:
    version_1_database(tmp_path)
    config = Config(port=0, store="sqlite", data_dir=str(tmp_path), retry_interval=0)
    with BrokerThread(config) as running, RawClient(running.port) as client:
        connack = client.connect("c", clean_session=False)
        assert connack == ConnAck(session_present=True, return_code=0)
        # In flight first, in the order first sent [MQTT-4.4.0-1], then the queue.
        assert client.receive() == Publish("a/1", b"one", Q1, False, True, 3)
        assert client.receive() == PubRel(1)
        queued = [client.receive(), client.receive()]
        assert [(p.topic, p.payload, p.qos) for p in queued if isinstance(p, Publish)] == [
            ("a/x", b"seven", Q1), ("a/y", b"eight", Q2),
        ]
        # The migrated subscription routes new messages too.
        with RawClient(running.port) as publisher:
            publisher.connect("p")
            publisher.send(Publish("b", b"new", Q1, packet_id=1))
            assert publisher.receive() == PubAck(1)
        fresh = client.receive()
        assert isinstance(fresh, Publish)
        assert (fresh.topic, fresh.payload) == ("b", b"new")
