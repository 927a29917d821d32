"""A delayed 5.0 will survives a broker restart on the SQLite store.

Issue 15: a client whose connection dropped with a Will Delay Interval and a
Session Expiry Interval above 0 leaves a will that waits (3.1.3.2.2). It is
session state (4.1), so a broker stopped and started again on the same data
directory still publishes it when its delay ends or its session does, whichever
comes first [MQTT-3.1.2-8]: after the restart if that moment is still to come, at
start-up if it passed while the broker was down. A connection that resumes the
session first means it is never sent [MQTT-3.1.3-9], restart or not.

The brokers run one after the other in this process on one data directory; the
client that drops is a raw 5.0 socket (it must vanish without DISCONNECT), and the
watcher that receives the will is paho-mqtt at MQTTv5 with a persistent session,
so a will published while it is away waits in its session for it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from mqttref.impl.broker.broker import Broker
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Properties,
    ProtocolLevel,
    QoS,
    Will,
)
from mqttref.impl.message import Message
from mqttref.impl.store import MemoryStore, Store
from tests.broker.test_v5_peers import WAIT, Paho5, prop
from tests.durability.processes import BrokerProcess
from tests.helpers.broker_thread import BrokerThread
from tests.store.test_v5_restart import Client5, sqlite_config
from tests.store.test_v5_state import open_sqlite, restart

V5 = ProtocolLevel.MQTT_5
Q1 = QoS.AT_LEAST_ONCE
WILL_TOPIC = "wills/dying"
LONG = 600
"""An interval that does not end during a test."""


def leave_with_a_delayed_will(port: int, *, will_delay: int, session_expiry: int) -> float:
    """Connect ``dying`` with a QoS 1 will and drop the socket without DISCONNECT; return
    a monotonic time no later than the broker's seeing the drop (the delay starts there)."""
    with Client5(port) as dying:
        dying.send5(Connect(V5, "dying", False, will=Will(
            WILL_TOPIC, b"gone", Q1, properties=Properties(
                will_delay_interval=will_delay, content_type="text/plain",
                user_properties=(("why", "dropped"),))),
            properties=Properties(session_expiry_interval=session_expiry)))
        connack = dying.receive()
        assert isinstance(connack, ConnAck)
        assert connack.return_code == 0
        return time.monotonic()  # before the socket closes


def watch_wills(port: int) -> None:
    """A persistent watcher of ``wills/#`` that then goes away, keeping its session."""
    watcher = Paho5(port, "watcher", session_expiry=LONG)
    watcher.subscribe("wills/#", 1)
    watcher.stop()


def waiting(broker: Broker) -> bool:
    return "dying" in broker.table.delayed_wills


def stored_wills(data_dir: Path) -> int:
    """Delayed wills committed to the database (read-only: a broker may hold it)."""
    uri = f"{(data_dir / 'mqttref.db').as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        count: int = db.execute("SELECT count(*) FROM wills").fetchone()[0]
        return count


def next_message(watcher: Paho5) -> mqtt.MQTTMessage:
    message: mqtt.MQTTMessage = watcher.messages.get(timeout=WAIT + 5)
    return message


def assert_is_the_will(message: mqtt.MQTTMessage) -> None:
    assert (message.topic, message.payload, message.qos) == (WILL_TOPIC, b"gone", 1)
    assert prop(message, "ContentType") == "text/plain"  # its properties go with it (3.1.3.2)
    assert prop(message, "UserProperty") == [("why", "dropped")]
    assert prop(message, "WillDelayInterval") is None


def test_a_will_still_waiting_at_a_restart_goes_out_when_its_delay_ends(
    tmp_path: Path,
) -> None:
    with BrokerThread(sqlite_config(tmp_path)) as first:
        watch_wills(first.port)
        dropped_at = leave_with_a_delayed_will(first.port, will_delay=2, session_expiry=LONG)
        assert first.wait_for(waiting)
    assert stored_wills(tmp_path) == 1
    with BrokerThread(sqlite_config(tmp_path)) as second:
        watcher = Paho5(second.port, "watcher", clean_start=False, session_expiry=LONG)
        will = next_message(watcher)
        arrived_at = time.monotonic()
        assert_is_the_will(will)
        # Not at start-up: the delay counts from the drop, across the restart.
        assert arrived_at >= dropped_at + 2
        watcher.stop()
    assert stored_wills(tmp_path) == 0  # published: not again after another restart


def test_a_will_whose_delay_ended_while_the_broker_was_down_goes_out_at_start_up(
    tmp_path: Path,
) -> None:
    with BrokerThread(sqlite_config(tmp_path)) as first:
        watch_wills(first.port)
        dropped_at = leave_with_a_delayed_will(first.port, will_delay=1, session_expiry=LONG)
        assert first.wait_for(waiting)
    time.sleep(max(0.0, dropped_at + 1.3 - time.monotonic()))  # down past the delay
    with BrokerThread(sqlite_config(tmp_path)) as second:
        assert not second.call(waiting)  # published, not waiting any more
        watcher = Paho5(second.port, "watcher", clean_start=False, session_expiry=LONG)
        assert_is_the_will(next_message(watcher))
        watcher.stop()
        with Client5(second.port) as dying:  # the session itself lives on
            assert dying.connect5("dying", clean_start=False).session_present


def test_a_session_that_ended_while_the_broker_was_down_publishes_its_will_at_start_up(
    tmp_path: Path,
) -> None:
    """The session ends first (Session Expiry 1 s, Will Delay 600 s): the will goes out
    when it ends, here at start-up [MQTT-3.1.2-8]."""
    with BrokerThread(sqlite_config(tmp_path)) as first:
        watch_wills(first.port)
        dropped_at = leave_with_a_delayed_will(first.port, will_delay=LONG, session_expiry=1)
        assert first.wait_for(waiting)
    time.sleep(max(0.0, dropped_at + 1.3 - time.monotonic()))
    with BrokerThread(sqlite_config(tmp_path)) as second:
        watcher = Paho5(second.port, "watcher", clean_start=False, session_expiry=LONG)
        assert_is_the_will(next_message(watcher))
        watcher.stop()
        with Client5(second.port) as dying:
            assert not dying.connect5("dying", clean_start=False).session_present
    assert stored_wills(tmp_path) == 0


def test_a_session_that_ends_after_the_restart_publishes_its_will_then(
    tmp_path: Path,
) -> None:
    """Session Expiry 2 s, Will Delay 600 s, and a restart in between: the will goes out
    when the session expires, on the restarted broker."""
    with BrokerThread(sqlite_config(tmp_path)) as first:
        watch_wills(first.port)
        dropped_at = leave_with_a_delayed_will(first.port, will_delay=LONG, session_expiry=2)
        assert first.wait_for(waiting)
    with BrokerThread(sqlite_config(tmp_path)) as second:
        watcher = Paho5(second.port, "watcher", clean_start=False, session_expiry=LONG)
        assert_is_the_will(next_message(watcher))
        assert time.monotonic() >= dropped_at + 2
        assert not second.call(lambda broker: "dying" in broker.sessions)
        watcher.stop()


def test_a_client_back_after_a_restart_before_the_delay_ends_cancels_its_will(
    tmp_path: Path,
) -> None:
    """Resumed on the restarted broker, the session no longer holds the will, on disk
    either: a third broker, where the session ends (Clean Start), publishes nothing
    for it [MQTT-3.1.3-9], while a control message after it does arrive."""
    with BrokerThread(sqlite_config(tmp_path)) as first:
        watch_wills(first.port)
        leave_with_a_delayed_will(first.port, will_delay=LONG, session_expiry=LONG)
        assert first.wait_for(waiting)
    with BrokerThread(sqlite_config(tmp_path)) as second:
        assert second.call(waiting)
        with Client5(second.port) as dying:
            assert dying.connect5("dying", clean_start=False).session_present
            assert not second.call(waiting)
            dying.send5(Disconnect())
        assert second.wait_for(lambda broker: broker.sessions["dying"].connection is None)
    assert stored_wills(tmp_path) == 0
    with BrokerThread(sqlite_config(tmp_path)) as third:
        with Client5(third.port) as dying:  # ends the old session: a will would go now
            assert not dying.connect5("dying", clean_start=True).session_present
            dying.publish(1, "wills/control", b"control", Properties())
        watcher = Paho5(third.port, "watcher", clean_start=False, session_expiry=LONG)
        first_seen = next_message(watcher)
        assert (first_seen.topic, first_seen.payload) == ("wills/control", b"control")
        watcher.stop()


def test_a_broker_killed_while_a_will_waits_publishes_it_after_the_restart(
    tmp_path: Path,
) -> None:
    """``kill -9`` runs no shutdown: the will is on disk because the broker's tick
    committed it, though no acknowledgement went out after the drop to commit it."""
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        watch_wills(broker.port)
        dropped_at = leave_with_a_delayed_will(broker.port, will_delay=2, session_expiry=LONG)
        deadline = time.monotonic() + WAIT
        while stored_wills(broker.data_dir) == 0:
            assert time.monotonic() < deadline, "the delayed will was not committed"
            time.sleep(0.05)
        broker.kill9()
        broker.start()
        watcher = Paho5(broker.port, "watcher", clean_start=False, session_expiry=LONG)
        assert_is_the_will(next_message(watcher))
        assert time.monotonic() >= dropped_at + 2
        watcher.stop()
    finally:
        broker.stop()


# The stores ---------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    sqlite = open_sqlite(tmp_path, wall=1_700_000_000.0, loop=500.0)
    yield sqlite
    sqlite.close()


WILL = Message("w/t", b"bye", Q1, True, properties=Properties(content_type="text/plain"),
               expires_at=560.0)


def test_a_store_keeps_one_will_per_persistent_session_and_forgets_it_with_the_session(
    store: Store,
) -> None:
    store.create_session("c")
    store.will_set("c", WILL, 530.0)
    store.will_set("nobody", WILL, 530.0)  # no persistent session: nothing to keep it in
    store.commit()
    [kept] = store.wills()
    assert kept.client_id == "c"
    assert kept.due_at == pytest.approx(530.0)
    assert kept.message.same_as(WILL)
    assert kept.message.properties == WILL.properties
    store.will_set("c", Message("w/t", b"newer"), 540.0)  # a newer will replaces it
    assert [w.message.payload for w in store.wills()] == [b"newer"]
    store.will_remove("c")
    assert list(store.wills()) == []
    store.will_set("c", WILL, 530.0)
    store.delete_session("c")
    store.commit()
    assert list(store.wills()) == []


def test_a_stored_will_keeps_the_rest_of_its_delay_across_a_restart(tmp_path: Path) -> None:
    """Due times cross the interface on the loop clock; on disk they are wall-clock
    deadlines, so a new process (another loop clock) gets what remains, and a will
    due while the broker was down comes back due."""
    sqlite = open_sqlite(tmp_path, wall=1_700_000_000.0, loop=500.0)
    sqlite.create_session("c")
    sqlite.will_set("c", WILL, 530.0)  # due in 30 s, its message expiring in 60 s
    again = restart(sqlite, later=10.0, loop=7.0)
    try:
        [kept] = again.wills()
        assert (kept.client_id, kept.message.payload) == ("c", b"bye")
        assert kept.due_at == pytest.approx(7.0 + 20.0)
        assert kept.message.expires_at == pytest.approx(7.0 + 50.0)
        assert again.load_session("c") is not None
        late = restart(again, later=25.0, loop=3.0)
    finally:
        again.close()
    try:
        [due] = late.wills()
        assert due.due_at <= 3.0  # fell due while the broker was down
    finally:
        late.close()

