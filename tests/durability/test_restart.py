"""What a restarted ``mqttref broker`` gives back, and what a clean session leaves behind.

The broker runs as a process on a data directory; the clients are paho.
Where the question is what is on disk, the test reads the SQLite file itself.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.durability.processes import WAIT, BrokerProcess, DurableSubscriber, publish_all

SESSION_TABLES = ("sessions", "subscriptions", "queue", "inflight", "awaiting_rel")


def rows(database: Path, table: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return list(db.execute(f"SELECT * FROM {table}"))


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    running = BrokerProcess(tmp_path / "data").start()
    yield running
    running.stop()


def receive_one(port: int, topic_filter: str, qos: int) -> mqtt.MQTTMessage:
    """Subscribe with a new clean client and return the first message (a retained one)."""
    messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="retained-reader")
    client.on_message = lambda _c, _u, message: messages.put(message)
    client.on_connect = lambda c, *_args: c.subscribe(topic_filter, qos)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        return messages.get(timeout=WAIT)
    finally:
        client.disconnect()
        client.loop_stop()


def test_retained_messages_survive_a_restart_and_a_kill(broker: BrokerProcess) -> None:
    publish_all(broker.port, [("kept/one", b"first", 1)], retain=True)
    publish_all(broker.port, [("kept/two", b"second", 2)], retain=True)
    publish_all(broker.port, [("kept/two", b"replaced", 1)], retain=True)
    assert broker.stop() == 0
    broker.start()
    message = receive_one(broker.port, "kept/one", 2)
    assert (message.payload, message.qos, message.retain) == (b"first", 1, True)
    broker.kill9()
    broker.start()
    message = receive_one(broker.port, "kept/two", 2)
    assert (message.payload, message.qos, message.retain) == (b"replaced", 1, True)


def test_a_cleared_retained_message_stays_cleared_after_a_kill(broker: BrokerProcess) -> None:
    publish_all(broker.port, [("gone", b"soon", 1)], retain=True)
    publish_all(broker.port, [("gone", b"", 1)], retain=True)  # clears it [MQTT-3.3.1-10]
    publish_all(broker.port, [("marker", b"m", 1)], retain=True)
    broker.kill9()
    broker.start()
    assert receive_one(broker.port, "#", 1).topic == "marker"
    # (the last two columns: properties and expiry deadline, none for a 3.1.1 message)
    assert rows(broker.data_dir / "mqttref.db", "retained") == [("marker", b"m", 1, None, None)]


def test_subscriptions_survive_a_kill_and_the_session_is_present(broker: BrokerProcess) -> None:
    subscriber = DurableSubscriber(broker.port, "keeps-subscriptions")
    subscriber.connect()
    assert subscriber.subscribe(("a/+", 1), ("b/#", 2)) == [1, 2]
    subscriber.disconnect()
    broker.kill9()
    broker.start()
    subscriber.connect()  # no new SUBSCRIBE: the stored ones must deliver
    publish_all(broker.port, [("a/x", b"1", 1), ("b/y/z", b"2", 2), ("c", b"3", 1)])
    assert subscriber.wait_until(lambda: len(subscriber.received) >= 2)
    subscriber.wait_until(lambda: False, timeout=0.2)
    subscriber.disconnect()
    assert subscriber.connacks == [False, True]
    assert [(r.topic, r.seq, r.qos) for r in subscriber.received] == [("a/x", 1, 1),
                                                                      ("b/y/z", 2, 2)]


def test_an_offline_queue_survives_a_kill(broker: BrokerProcess) -> None:
    subscriber = DurableSubscriber(broker.port, "offline")
    subscriber.connect()
    subscriber.subscribe(("q/#", 2))
    subscriber.disconnect()
    publish_all(broker.port, [(f"q/{n % 3}", str(n).encode(), 1 + n % 2) for n in range(50)])
    broker.kill9()
    broker.start()
    subscriber.connect()
    assert subscriber.wait_until(lambda: len(subscriber.received) >= 50)
    subscriber.disconnect()
    assert subscriber.connacks == [False, True]
    assert sorted(r.seq for r in subscriber.received) == list(range(50))
    assert all(r.qos == 1 + r.seq % 2 for r in subscriber.received)
    # paho hands QoS 2 messages over at PUBREL, so order holds per QoS [MQTT-4.6.0-3].
    for qos in (1, 2):
        seqs = [r.seq for r in subscriber.received if r.qos == qos]
        assert seqs == sorted(seqs)


def test_a_clean_session_leaves_no_row_behind_even_when_killed(broker: BrokerProcess) -> None:
    database = broker.data_dir / "mqttref.db"
    clean = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="clean-one",
                        clean_session=True)
    subscribed: queue.Queue[int] = queue.Queue()
    clean.on_subscribe = lambda _c, _u, mid, _codes, _p: subscribed.put(mid)
    clean.connect("127.0.0.1", broker.port)
    clean.loop_start()
    try:
        _rc, mid = clean.subscribe([("clean/#", 2), ("other", 1)])
        assert subscribed.get(timeout=WAIT) == mid  # SUBACK: committed, if it were stored
        publish_all(broker.port, [("clean/x", b"1", 2)])
        for table in SESSION_TABLES:
            assert rows(database, table) == [], f"a clean session wrote to {table}"
        broker.kill9()  # while connected: nothing to give back after this either
    finally:
        clean.loop_stop()
    broker.start()
    for table in SESSION_TABLES:
        assert rows(database, table) == [], table


def test_a_persistent_session_replaced_by_a_clean_one_leaves_no_row(
    broker: BrokerProcess,
) -> None:
    database = broker.data_dir / "mqttref.db"
    subscriber = DurableSubscriber(broker.port, "changes-its-mind")
    subscriber.connect()
    subscriber.subscribe(("t/#", 1))
    subscriber.disconnect()
    publish_all(broker.port, [("t/1", b"1", 1)])
    assert [row[1] for row in rows(database, "sessions")] == ["changes-its-mind"]  # (key, id, ...)
    assert len(rows(database, "queue")) == 1
    clean = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="changes-its-mind",
                        clean_session=True)
    clean.connect("127.0.0.1", broker.port)
    clean.loop_start()
    clean.disconnect()
    clean.loop_stop()
    assert broker.stop() == 0
    for table in SESSION_TABLES:
        assert rows(database, table) == [], table
