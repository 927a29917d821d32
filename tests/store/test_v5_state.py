"""The stores keep a 5.0 session's state: message properties and expiry, subscription options.

Issue 15: "The SQLite store keeps the 5.0 session state." A queued or in-flight
message keeps its properties and the instant its Message Expiry Interval ends;
the broker holds that instant on its monotonic loop clock, which means nothing
after a restart, so the SQLite store keeps a wall-clock deadline and converts
at its boundary. The tests give each store instance its own clocks, so a
"restart" can move the loop clock anywhere and let wall-clock time pass.
A database of schema 2 (``tests/store/version2.py``) is migrated to 3 in place.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqttref.impl.codec.packets import NO_PROPERTIES, Properties, QoS
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage
from mqttref.impl.store import MemoryStore, SQLiteStore, Store
from mqttref.impl.store.base import NO_OPTIONS, SessionExpiry, SubscriptionOptions
from mqttref.impl.store.sqlite import SCHEMA_VERSION
from tests.store.version2 import Version2Database

Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE

PROPS = Properties(
    payload_format_indicator=1,
    message_expiry_interval=600,
    content_type="text/plain",
    response_topic="reply/here",
    correlation_data=b"\x00corr",
    user_properties=(("b", "2"), ("a", "1"), ("b", "again")),  # order and repeats kept
)
NO_LOCAL = SubscriptionOptions(no_local=True)
BOTH = SubscriptionOptions(no_local=True, retain_as_published=True, identifier=7)


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def open_sqlite(directory: Path, wall: float, loop: float) -> SQLiteStore:
    """A store opened at wall-clock time ``wall`` by a broker whose loop clock reads ``loop``."""
    store = SQLiteStore(directory, wall_clock=Clock(wall), loop_clock=Clock(loop))
    store.open()
    return store


def restart(store: SQLiteStore, *, later: float, loop: float) -> SQLiteStore:
    """Close the store, let ``later`` seconds of wall-clock time pass, open it again in a
    process whose loop clock reads ``loop`` (a new process starts its own count)."""
    assert isinstance(store.wall_clock, Clock)
    store.commit()
    store.close()
    return open_sqlite(store.directory.path, store.wall_clock.now + later, loop)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = open_sqlite(tmp_path, wall=1_700_000_000.0, loop=500.0)
    yield store
    store.close()


def rows(path: Path, table: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return list(db.execute(f"SELECT * FROM {table}"))


# Messages: properties and expiry ------------------------------------------------------


def test_queued_and_in_flight_messages_keep_their_properties_and_remaining_expiry(
    sqlite: SQLiteStore,
) -> None:
    sqlite.create_session("c")
    # At loop time 500 the messages have 600 and 30 seconds left.
    sqlite.queue_append("c", 1, OutboundMessage("t/q", 0, Q1, b"q", False, PROPS, 1100.0))
    sqlite.queue_append("c", 2, OutboundMessage("t/plain", 0, Q0, b"p"))
    sqlite.inflight_set("c", 9, OutboundState.AWAITING_PUBREC,
                        OutboundMessage("t/i", 9, Q2, b"i", True, PROPS, 530.0))
    again = restart(sqlite, later=10.0, loop=3.0)  # 10 s down; the new loop clock reads 3
    try:
        record = again.load_session("c")
        assert record is not None
        (_, queued), (_, plain) = record.queue
        assert queued.properties == PROPS
        assert queued.expires_at == pytest.approx(3.0 + 590.0)
        assert plain.properties is NO_PROPERTIES
        assert plain.expires_at is None
        [inflight] = record.inflight
        assert inflight.message.properties == PROPS
        assert inflight.message.expires_at == pytest.approx(3.0 + 20.0)
        assert inflight.message.retain
    finally:
        again.close()


def test_a_message_whose_expiry_passed_while_the_broker_was_down_comes_back_expired(
    sqlite: SQLiteStore,
) -> None:
    sqlite.create_session("c")
    sqlite.queue_append("c", 1, OutboundMessage("t", 0, Q1, b"short", expires_at=530.0))
    sqlite.queue_append("c", 2, OutboundMessage("t", 0, Q1, b"long", expires_at=1100.0))
    again = restart(sqlite, later=60.0, loop=7.0)
    try:
        record = again.load_session("c")
        assert record is not None
        [(_, short), (_, long)] = record.queue
        assert short.expires_at is not None
        assert short.expires_at <= 7.0  # the session drops it unsent
        assert long.expires_at == pytest.approx(7.0 + 540.0)
    finally:
        again.close()


def test_stored_properties_are_the_publish_property_block_and_none_is_null(
    sqlite: SQLiteStore,
) -> None:
    sqlite.create_session("c")
    sqlite.queue_append("c", 1, OutboundMessage("t", 0, Q1, b"5", False, PROPS, 1100.0))
    sqlite.queue_append("c", 2, OutboundMessage("t", 0, Q1, b"3"))
    sqlite.commit()
    with sqlite3.connect(sqlite.path) as db:
        (props5, deadline5), (props3, deadline3) = db.execute(
            "SELECT properties, expires_at FROM queue ORDER BY seq").fetchall()
    assert isinstance(props5, bytes)
    assert props5[0] == len(props5) - 1  # the length, then the properties
    assert deadline5 == pytest.approx(1_700_000_000.0 + 600.0)  # wall clock
    assert (props3, deadline3) == (None, None)


def test_a_retained_message_keeps_its_properties_and_expiry(sqlite: SQLiteStore) -> None:
    sqlite.set_retained("r", Message("r", b"kept", Q1, True, properties=PROPS,
                                     expires_at=600.0))
    again = restart(sqlite, later=40.0, loop=1.0)
    try:
        [retained] = again.retained()
        assert retained.properties == PROPS
        assert retained.expires_at == pytest.approx(1.0 + 60.0)
    finally:
        again.close()


# Subscription options -------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    opened = SQLiteStore(tmp_path)
    opened.open()
    yield opened
    opened.close()


def test_a_session_record_gives_back_the_options_of_its_subscriptions(store: Store) -> None:
    store.create_session("c")
    store.set_subscription("c", "a/#", Q1, NO_LOCAL)
    store.set_subscription("c", "b", Q2, BOTH)
    store.set_subscription("c", "plain", Q0)
    store.commit()
    record = store.load_session("c")
    assert record is not None
    assert record.subscriptions == {"a/#": Q1, "b": Q2, "plain": Q0}
    assert record.options == {"a/#": NO_LOCAL, "b": BOTH}  # only those that have options


def test_a_replaced_subscription_takes_the_new_options_and_an_unsubscribed_one_none(
    store: Store,
) -> None:
    store.create_session("c")
    store.set_subscription("c", "a", Q1, BOTH)
    store.set_subscription("c", "b", Q1, BOTH)
    store.set_subscription("c", "a", Q1)  # subscribed again without options
    store.delete_subscription("c", "b")
    store.set_subscription("c", "b", Q1)
    record = store.load_session("c")
    assert record is not None
    assert record.options == {}


def test_options_given_before_a_session_became_persistent_are_stored_with_it(
    store: Store,
) -> None:
    store.set_subscription("c", "t", Q1, NO_LOCAL)
    store.create_session("c")
    store.commit()
    record = store.load_session("c")
    assert record is not None
    assert record.options == {"t": NO_LOCAL}


def test_subscription_options_survive_a_restart(sqlite: SQLiteStore) -> None:
    sqlite.create_session("c")
    sqlite.set_subscription("c", "a/#", Q1, NO_LOCAL)
    sqlite.set_subscription("c", "b", Q2, BOTH)
    sqlite.set_subscription("c", "plain", Q0)
    again = restart(sqlite, later=1.0, loop=1.0)
    try:
        record = again.load_session("c")
        assert record is not None
        assert record.options == {"a/#": NO_LOCAL, "b": BOTH}
        assert sorted(again.subscriptions()) == [("c", "a/#", Q1), ("c", "b", Q2),
                                                 ("c", "plain", Q0)]
    finally:
        again.close()
    assert sorted(rows(again.path, "subscriptions")) == [
        (1, "a/#", 1, 1, 0, None), (1, "b", 2, 1, 1, 7), (1, "plain", 0, 0, 0, None),
    ]


def test_no_options_is_the_default_of_every_subscription() -> None:
    assert SubscriptionOptions() == NO_OPTIONS
    assert (NO_OPTIONS.no_local, NO_OPTIONS.retain_as_published, NO_OPTIONS.identifier) == (
        False, False, None,
    )


# Migration 2 -> 3 -------------------------------------------------------------------------


def version_2_database(data_dir: Path) -> None:
    """A 3.1.1 broker's database at schema 2: one session left at wall time 1000 with a
    60 s interval of its own, with everything a session stores, and a retained message."""
    with Version2Database(data_dir) as old:
        old.session(1, "c", 1000.0, 60.0)
        old.session(2, "d")
        old.subscription(1, "a/#", Q2)
        old.subscription(2, "b", Q1)
        old.queued(1, 7, OutboundMessage("a/x", 0, Q1, b"seven"))
        old.queued(1, 8, OutboundMessage("a/y", 0, Q2, b"eight", True))
        old.inflight(1, 10, OutboundState.AWAITING_PUBACK, OutboundMessage("a/1", 3, Q1, b"one"))
        old.inflight(1, 11, OutboundState.AWAITING_PUBCOMP, OutboundMessage("a/2", 1, Q2, b"two"))
        old.awaiting_rel(1, 42)
        old.retained(Message("r/1", b"kept", Q1, True))


def test_a_version_2_database_is_migrated_keeping_everything_as_3_1_1_state(
    tmp_path: Path,
) -> None:
    version_2_database(tmp_path)
    store = open_sqlite(tmp_path, wall=2000.0, loop=10.0)
    try:
        assert sorted(store.session_ids()) == ["c", "d"]
        record = store.load_session("c")
        assert record is not None
        assert record.subscriptions == {"a/#": Q2}
        assert record.options == {}
        assert record.queue == [
            (7, OutboundMessage("a/x", 0, Q1, b"seven")),
            (8, OutboundMessage("a/y", 0, Q2, b"eight", True)),
        ]
        assert [(i.packet_id, i.state, i.message) for i in record.inflight] == [
            (3, OutboundState.AWAITING_PUBACK, OutboundMessage("a/1", 3, Q1, b"one")),
            (1, OutboundState.AWAITING_PUBCOMP, OutboundMessage("a/2", 1, Q2, b"two")),
        ]
        assert record.awaiting_rel == frozenset({42})
        assert record.expiry == SessionExpiry(1000.0, 60.0)
        other = store.load_session("d")
        assert other is not None
        assert other.subscriptions == {"b": Q1}
        [retained] = store.retained()
        assert retained.same_as(Message("r/1", b"kept", Q1, True))
        assert (retained.properties, retained.expires_at) == (NO_PROPERTIES, None)
    finally:
        store.close()
    assert rows(store.path, "schema_version") == [(SCHEMA_VERSION,)]


def test_a_migrated_version_2_session_takes_5_0_state(tmp_path: Path) -> None:
    version_2_database(tmp_path)
    store = open_sqlite(tmp_path, wall=2000.0, loop=10.0)
    store.set_subscription("c", "a/#", Q2, BOTH)
    store.queue_append("c", 9, OutboundMessage("a/z", 0, Q1, b"nine", False, PROPS, 70.0))
    again = restart(store, later=5.0, loop=100.0)
    try:
        record = again.load_session("c")
        assert record is not None
        assert record.options == {"a/#": BOTH}
        assert [seq for seq, _ in record.queue] == [7, 8, 9]
        _, nine = record.queue[-1]
        assert nine.properties == PROPS
        assert nine.expires_at == pytest.approx(100.0 + 55.0)
    finally:
        again.close()
