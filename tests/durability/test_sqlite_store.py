"""The SQLite store on its own: what is written survives a reopen, in one transaction per commit.

Each test records changes, commits, closes, and opens the file again with a
fresh store (as a restarted broker does), or reads the file with plain
``sqlite3`` where the question is what is on disk.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.codec.packets import NO_PROPERTIES, Properties, QoS
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage
from mqttref.impl.store import MemoryStore, SQLiteStore, Store, StoreError
from mqttref.impl.store.base import NO_OPTIONS, SubscriptionOptions
from mqttref.impl.store.sqlite import SCHEMA_VERSION

Q1, Q2 = QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE


def out(topic: str, payload: bytes, qos: QoS = Q1, packet_id: int = 0) -> OutboundMessage:
    return OutboundMessage(topic, packet_id, qos, payload)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path)
    opened.open()
    yield opened
    opened.close()


def reopen(store: SQLiteStore) -> SQLiteStore:
    store.commit()
    store.close()
    again = SQLiteStore(store.directory.path, wall_clock=store.wall_clock,
                        loop_clock=store.loop_clock)
    again.open()
    return again


def rows(path: Path, table: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return list(db.execute(f"SELECT * FROM {table}"))


def test_a_persistent_session_comes_back_whole_after_a_reopen(store: SQLiteStore) -> None:
    store.create_session("c")
    store.set_subscription("c", "a/#", Q2)
    store.set_subscription("c", "b", Q1)
    store.queue_append("c", 7, out("a/x", b"seven"))
    store.queue_append("c", 8, OutboundMessage("a/y", 0, Q2, b"eight", True))
    store.inflight_set("c", 3, OutboundState.AWAITING_PUBACK, out("a/1", b"one", Q1, 3))
    store.inflight_set("c", 1, OutboundState.AWAITING_PUBREC, out("a/2", b"two", Q2, 1))
    store.inflight_set("c", 1, OutboundState.AWAITING_PUBCOMP, out("a/2", b"two", Q2, 1))
    store.awaiting_rel_add("c", 42)
    store.awaiting_rel_add("c", 43)
    store.awaiting_rel_remove("c", 43)

    again = reopen(store)
    try:
        assert again.session_ids() == ["c"]
        record = again.load_session("c")
        assert record is not None
        assert record.subscriptions == {"a/#": Q2, "b": Q1}
        assert record.queue == [
            (7, out("a/x", b"seven")),
            (8, OutboundMessage("a/y", 0, Q2, b"eight", True)),
        ]
        # In the order first sent, with the newest state: packet 3 before packet 1.
        assert [(i.packet_id, i.state) for i in record.inflight] == [
            (3, OutboundState.AWAITING_PUBACK),
            (1, OutboundState.AWAITING_PUBCOMP),
        ]
        assert record.inflight[1].message == out("a/2", b"two", Q2, 1)
        assert record.awaiting_rel == frozenset({42})
        assert sorted(again.subscriptions()) == [("c", "a/#", Q2), ("c", "b", Q1)]
    finally:
        again.close()


def test_a_reused_packet_id_takes_its_new_place_in_the_sent_order(store: SQLiteStore) -> None:
    store.create_session("c")
    store.inflight_set("c", 1, OutboundState.AWAITING_PUBACK, out("t", b"first", Q1, 1))
    store.inflight_set("c", 2, OutboundState.AWAITING_PUBACK, out("t", b"second", Q1, 2))
    store.commit()
    store.inflight_remove("c", 1)
    store.inflight_set("c", 1, OutboundState.AWAITING_PUBACK, out("t", b"third", Q1, 1))
    again = reopen(store)
    try:
        record = again.load_session("c")
        assert record is not None
        assert [i.message.payload for i in record.inflight] == [b"second", b"third"]
    finally:
        again.close()


def test_a_clean_session_writes_nothing_to_disk(store: SQLiteStore) -> None:
    store.set_subscription("clean", "x/#", Q1)
    store.queue_append("clean", 1, out("x/1", b"p"))
    store.inflight_set("clean", 1, OutboundState.AWAITING_PUBACK, out("x/1", b"p", Q1, 1))
    store.awaiting_rel_add("clean", 5)
    store.commit()
    # ...yet a crashed topic server can still be rebuilt with its subscription.
    assert list(store.subscriptions()) == [("clean", "x/#", Q1)]
    for table in ("sessions", "subscriptions", "queue", "inflight", "awaiting_rel"):
        assert rows(store.path, table) == [], table
    store.delete_subscription("clean", "x/#")
    assert list(store.subscriptions()) == []


def test_deleting_a_session_leaves_no_row_behind(store: SQLiteStore) -> None:
    store.create_session("c")
    store.set_subscription("c", "t", Q1)
    store.queue_append("c", 1, out("t", b"q"))
    store.inflight_set("c", 9, OutboundState.AWAITING_PUBREC, out("t", b"i", Q2, 9))
    store.awaiting_rel_add("c", 4)
    store.commit()
    store.delete_session("c")
    store.create_session("d")  # a change after the deletion lands after it
    store.commit()
    assert [row[1] for row in rows(store.path, "sessions")] == ["d"]
    for table in ("subscriptions", "queue", "inflight", "awaiting_rel"):
        assert rows(store.path, table) == [], table


def test_a_deletion_alone_is_committed_by_the_next_commit(store: SQLiteStore) -> None:
    store.create_session("c")
    store.commit()
    store.delete_session("c")
    store.commit()
    assert rows(store.path, "sessions") == []


def test_a_session_made_persistent_after_subscribing_stores_its_subscriptions(
    store: SQLiteStore,
) -> None:
    store.set_subscription("c", "t", Q2)
    store.create_session("c")
    store.commit()
    assert rows(store.path, "sessions") == [(1, "c", None, None)]
    assert rows(store.path, "subscriptions") == [(1, "t", 2, 0, 0, None)]  # by the session's key


def test_retained_messages_are_set_replaced_and_cleared_on_disk(store: SQLiteStore) -> None:
    store.set_retained("a", Message("a", b"1", Q1, True))
    store.set_retained("b", Message("b", b"2", Q2, True))
    store.set_retained("a", Message("a", b"3", QoS.AT_MOST_ONCE, True))
    store.commit()
    store.set_retained("b", None)
    again = reopen(store)
    try:
        kept = list(again.retained())
        assert len(kept) == 1
        assert kept[0].same_as(Message("a", b"3", QoS.AT_MOST_ONCE, True))
        stored = again.get_retained("a")
        assert stored is not None
        assert stored.payload == b"3"
        assert again.get_retained("b") is None
    finally:
        again.close()


def test_one_commit_is_one_transaction_however_many_changes(store: SQLiteStore) -> None:
    store.create_session("c")
    before = store.commits
    for seq in range(1, 501):
        store.queue_append("c", seq, out("t", b"%d" % seq))
    store.commit()
    assert store.commits == before + 1
    store.commit()  # nothing recorded: no transaction at all
    assert store.commits == before + 1
    assert len(rows(store.path, "queue")) == 500


def test_nothing_recorded_is_on_disk_before_commit(store: SQLiteStore) -> None:
    store.create_session("c")
    store.commit()
    store.queue_append("c", 1, out("t", b"x"))
    assert rows(store.path, "queue") == []
    store.commit()
    assert len(rows(store.path, "queue")) == 1


def test_a_message_queued_and_sent_in_one_batch_never_touches_the_queue_table(
    store: SQLiteStore,
) -> None:
    store.create_session("c")
    store.commit()
    store.queue_append("c", 1, out("t", b"x"))
    store.queue_remove("c", 1)
    store.inflight_set("c", 1, OutboundState.AWAITING_PUBACK, out("t", b"x", Q1, 1))
    store.commit()
    assert rows(store.path, "queue") == []
    assert len(rows(store.path, "inflight")) == 1


def test_the_database_uses_wal_and_records_its_schema_version(store: SQLiteStore) -> None:
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_a_database_from_a_newer_mqttref_is_refused_untouched(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path)
    first.open()
    first.close()
    with sqlite3.connect(first.path) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.close()
    before = first.path.read_bytes()
    newer = SQLiteStore(tmp_path)
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        newer.open()
    assert first.path.read_bytes() == before
    assert not newer.directory.held  # the lock was given back


def test_an_sqlite_file_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mqttref.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="another program"):
        SQLiteStore(tmp_path).open()
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [b"this is not a database\n" * 10, b"SQLite format 3\x00" + b"\xff" * 4080],
    ids=["text", "damaged-header"],
)
def test_a_corrupt_file_is_refused_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "mqttref.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=r"mqttref\.db: (not an SQLite database|corrupt)"):
        SQLiteStore(tmp_path).open()
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock", "mqttref.db"]


def test_a_damaged_page_inside_a_real_database_is_refused(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path)
    first.open()
    first.create_session("c")
    for seq in range(1, 2001):
        first.queue_append("c", seq, out("t", b"payload %d" % seq * 8))
    first.close()
    with sqlite3.connect(first.path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(first.path.read_bytes())
    page = 4096
    data[3 * page : 4 * page] = b"\xa5" * page  # overwrite a whole b-tree page
    first.path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"damaged|corrupt"):
        SQLiteStore(tmp_path).open()
    assert first.path.read_bytes() == bytes(data)


# The two stores agree ----------------------------------------------------------------

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from("ab")),
        st.tuples(st.just("delete"), st.sampled_from("ab")),
        st.tuples(st.just("sub"), st.sampled_from("abc"), st.sampled_from(["x", "y/#"]),
                  st.sampled_from([QoS.AT_MOST_ONCE, Q1, Q2]),
                  st.sampled_from([NO_OPTIONS, SubscriptionOptions(no_local=True),
                                   SubscriptionOptions(False, True, 3)])),
        st.tuples(st.just("unsub"), st.sampled_from("abc"), st.sampled_from(["x", "y/#"])),
        st.tuples(st.just("append"), st.sampled_from("ab"), st.integers(1, 4)),
        st.tuples(st.just("pop"), st.sampled_from("ab"), st.integers(1, 4)),
        st.tuples(st.just("inflight"), st.sampled_from("ab"), st.integers(1, 4),
                  st.sampled_from(list(OutboundState))),
        st.tuples(st.just("acked"), st.sampled_from("ab"), st.integers(1, 4)),
        st.tuples(st.just("rel+"), st.sampled_from("ab"), st.integers(1, 4)),
        st.tuples(st.just("rel-"), st.sampled_from("ab"), st.integers(1, 4)),
        st.tuples(st.just("retain"), st.sampled_from(["r1", "r2"]), st.binary(max_size=3)),
        st.tuples(st.just("left"), st.sampled_from("abc"), st.sampled_from([1.5, 2.0]),
                  st.sampled_from([None, 30.0])),
        st.tuples(st.just("back"), st.sampled_from("abc")),
        st.tuples(st.just("commit")),
    ),
    max_size=40,
)


def _apply(store: Store, op: tuple[object, ...], persistent: set[str]) -> None:
    kind, *args = op
    if kind == "create":
        persistent.add(str(args[0]))
        store.create_session(str(args[0]))
    elif kind == "delete":
        persistent.discard(str(args[0]))
        store.delete_session(str(args[0]))
    elif kind == "sub":
        options = args[3]
        assert isinstance(options, SubscriptionOptions)
        store.set_subscription(str(args[0]), str(args[1]), QoS(int(str(args[2]))), options)
    elif kind == "unsub":
        store.delete_subscription(str(args[0]), str(args[1]))
    elif kind == "commit":
        store.commit()
    elif kind == "left":
        interval = args[2]
        assert interval is None or isinstance(interval, float)
        store.session_disconnected(str(args[0]), float(str(args[1])), interval)
    elif kind == "back":
        store.session_connected(str(args[0]))
    elif kind == "retain":
        payload = args[1]
        assert isinstance(payload, bytes)
        store.set_retained(str(args[0]), Message(
            str(args[0]), payload, Q1, True, properties=_properties(len(payload)),
            expires_at=_expiry(len(payload))) if payload else None)
    elif str(args[0]) in persistent:  # the broker tells these for persistent sessions only
        client, number = str(args[0]), int(str(args[1]))
        if kind == "append":
            store.queue_append(client, number, OutboundMessage(
                "q", 0, Q1, b"%d" % number, False, _properties(number), _expiry(number)))
        elif kind == "pop":
            store.queue_remove(client, number)
        elif kind == "inflight":
            state = args[2]
            assert isinstance(state, OutboundState)
            store.inflight_set(client, number, state, OutboundMessage(
                "i", number, Q2, b"%d" % number, False, _properties(number), _expiry(number)))
        elif kind == "acked":
            store.inflight_remove(client, number)
        elif kind == "rel+":
            store.awaiting_rel_add(client, number)
        else:
            store.awaiting_rel_remove(client, number)


def _properties(number: int) -> Properties:
    """Some messages with 5.0 properties, some without."""
    if number % 2:
        return NO_PROPERTIES
    return Properties(content_type="n", user_properties=(("n", str(number)), ("m", "")))


def _expiry(number: int) -> float | None:
    """Some messages expire (whole seconds: the clock conversion below is exact), some not."""
    return None if number % 3 else float(100 * number)


@given(ops=_OPS)
def test_after_a_reopen_the_sqlite_store_holds_what_the_memory_store_holds(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[object, ...]]
) -> None:
    directory = tmp_path_factory.mktemp("agree")
    memory = MemoryStore()
    disk = SQLiteStore(directory, wall_clock=lambda: 1_700_000_000.0, loop_clock=lambda: 5.0)
    disk.open()
    persistent: set[str] = set()
    for op in ops:
        _apply(memory, op, persistent)
        _apply(disk, op, persistent)
    reopened = reopen(disk)
    try:
        assert sorted(reopened.session_ids()) == sorted(memory.session_ids())
        for client_id in memory.session_ids():
            assert reopened.load_session(client_id) == memory.load_session(client_id)
        on_disk = sorted((c, f, q) for c, f, q in reopened.subscriptions())
        kept = sorted((c, f, q) for c, f, q in memory.subscriptions() if c in persistent)
        assert on_disk == kept
        assert sorted(
            (m.topic, m.payload, m.properties, m.expires_at) for m in reopened.retained()
        ) == sorted((m.topic, m.payload, m.properties, m.expires_at) for m in memory.retained())
    finally:
        reopened.close()


def test_an_older_database_is_migrated_in_place_keeping_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mqttref.impl.store import sqlite as module

    old = SQLiteStore(tmp_path)
    old.open()
    old.create_session("c")
    old.queue_append("c", 1, out("t", b"kept"))
    old.close()
    # The next release adds a migration; this build's database is then the older one.
    added = ("CREATE INDEX queue_by_topic ON queue (topic)",
             "ALTER TABLE retained ADD COLUMN stored_at INTEGER NOT NULL DEFAULT 0")
    monkeypatch.setattr(module, "MIGRATIONS", (*module.MIGRATIONS, added))
    monkeypatch.setattr(module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    new = SQLiteStore(tmp_path)
    new.open()
    try:
        record = new.load_session("c")
        assert record is not None
        assert record.queue == [(1, out("t", b"kept"))]
        assert rows(new.path, "schema_version") == [(SCHEMA_VERSION + 1,)]
        with contextlib.closing(sqlite3.connect(new.path)) as db:
            indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            columns = [row[1] for row in db.execute("PRAGMA table_info(retained)")]
        assert "queue_by_topic" in indexes
        assert columns[-1] == "stored_at"
    finally:
        new.close()


def test_a_failed_migration_leaves_the_database_at_its_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mqttref.impl.store import sqlite as module

    old = SQLiteStore(tmp_path)
    old.open()
    old.close()
    broken = ("CREATE TABLE extra (x INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(module, "MIGRATIONS", (*module.MIGRATIONS, broken))
    monkeypatch.setattr(module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="cannot migrate the schema"):
        SQLiteStore(tmp_path).open()
    assert rows(old.path, "schema_version") == [(SCHEMA_VERSION,)]
    with contextlib.closing(sqlite3.connect(old.path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "extra" not in tables  # the whole migration rolled back
