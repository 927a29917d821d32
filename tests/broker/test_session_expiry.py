"""Persistent sessions expire after ``persistent_client_expiration`` disconnected.

As mosquitto's option of that name (issue 20: sessions left behind by garbage
clients stayed forever). The broker's wall clock is injected where a test
must not wait (``SessionTable.clock``); the restart test waits for real,
because the deadline has to survive the process.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import attrs
import pytest

from mqttref.impl.broker.broker import Broker
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.expiry import Deadlines, expiry_deadline
from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.codec.packets import PubAck, Publish, QoS
from mqttref.impl.store import MemoryStore
from mqttref.impl.store.base import SessionExpiry
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import RawClient

Q1 = QoS.AT_LEAST_ONCE
START = 1_700_000_000.0


@attrs.define
class Clock:
    """Wall-clock time that moves only when the test says."""

    now: float = START

    def __call__(self) -> float:
        return self.now


def broker_with(clock: Clock, **settings: object) -> BrokerThread:
    broker = Broker(Config(port=0, **settings))  # type: ignore[arg-type]
    broker.table.clock = clock
    return BrokerThread(broker=broker)


def tick(running: BrokerThread) -> None:
    """The broker's periodic work, now rather than within the next second."""
    running.call(lambda broker: broker.table.tick(running.loop.time()))


def leave_subscribed(port: int, client_id: str, topic_filter: str = "old/#") -> None:
    """A persistent session with one subscription, left by its client."""
    with RawClient(port) as client:
        assert not client.connect(client_id, clean_session=False).session_present
        client.subscribe(topic_filter, Q1)


def assert_old_subscription_delivers_nothing(port: int, client: RawClient) -> None:
    """``client`` (connected) is sent nothing for ``old/#``: a message to a fresh
    subscription, published after one to ``old/x``, is the first thing it gets."""
    client.subscribe("sync", Q1, packet_id=9)
    with RawClient(port) as publisher:
        publisher.connect("publisher")
        publisher.send(Publish("old/x", b"for the expired session", Q1, packet_id=1))
        assert publisher.receive() == PubAck(1)
        publisher.send(Publish("sync", b"after it", Q1, packet_id=2))
        assert publisher.receive() == PubAck(2)
    first = client.receive()
    assert isinstance(first, Publish)
    assert (first.topic, first.payload) == ("sync", b"after it")


def test_a_session_that_expired_while_the_broker_was_down_is_gone_after_restart(
    tmp_path: Path,
) -> None:
    config = Config(port=0, store="sqlite", data_dir=str(tmp_path),
                    persistent_client_expiration=0.5)
    with BrokerThread(config) as first:
        leave_subscribed(first.port, "sleeper")
        assert first.wait_for(lambda broker: broker.sessions["sleeper"].connection is None)
    time.sleep(0.6)  # past the deadline, with no broker running
    with BrokerThread(config) as second:
        assert second.call(lambda broker: "sleeper" not in broker.sessions)
        with RawClient(second.port) as client:
            assert not client.connect("sleeper", clean_session=False).session_present
            assert_old_subscription_delivers_nothing(second.port, client)


def test_a_session_within_its_expiration_survives_a_restart(tmp_path: Path) -> None:
    config = Config(port=0, store="sqlite", data_dir=str(tmp_path),
                    persistent_client_expiration=3600)
    with BrokerThread(config) as first:
        leave_subscribed(first.port, "sleeper")
        assert first.wait_for(lambda broker: broker.sessions["sleeper"].connection is None)
    with BrokerThread(config) as second, RawClient(second.port) as client:
        assert client.connect("sleeper", clean_session=False).session_present


def test_a_disconnected_session_expires_on_the_tick_with_its_subscriptions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mqttref.broker")
    clock = Clock()
    with broker_with(clock, persistent_client_expiration=0.5) as running:
        leave_subscribed(running.port, "sleeper")
        assert running.wait_for(lambda broker: broker.sessions["sleeper"].connection is None)
        clock.now += 0.4
        tick(running)
        assert running.call(lambda broker: "sleeper" in broker.sessions)
        clock.now += 0.2
        tick(running)
        assert running.call(lambda broker: "sleeper" not in broker.sessions)
        assert running.call(lambda broker: broker.store.session_ids() == [])
        assert "session 'sleeper' expired after 0.6 s disconnected" in caplog.messages
        with RawClient(running.port) as client:
            assert not client.connect("sleeper", clean_session=False).session_present
            assert_old_subscription_delivers_nothing(running.port, client)


def test_a_session_resumed_in_time_is_kept_and_its_wait_restarts_when_left_again() -> None:
    clock = Clock()
    with broker_with(clock, persistent_client_expiration=0.5) as running:
        leave_subscribed(running.port, "returning")
        clock.now += 0.4
        with RawClient(running.port) as client:
            assert client.connect("returning", clean_session=False).session_present
            clock.now += 10  # connected: no deadline
            tick(running)
            assert running.call(lambda broker: "returning" in broker.sessions)
        assert running.wait_for(lambda broker: broker.sessions["returning"].connection is None)
        clock.now += 0.4  # 0.4 s after it was left again
        tick(running)
        with RawClient(running.port) as client:
            assert client.connect("returning", clean_session=False).session_present


def test_a_connect_after_the_deadline_finds_no_session_even_before_the_tick() -> None:
    clock = Clock()
    with broker_with(clock, persistent_client_expiration=0.5) as running:
        leave_subscribed(running.port, "late")
        assert running.wait_for(lambda broker: broker.sessions["late"].connection is None)
        clock.now += 0.6
        with RawClient(running.port) as client:
            assert not client.connect("late", clean_session=False).session_present
            assert_old_subscription_delivers_nothing(running.port, client)


def test_with_persistent_client_expiration_0_no_session_ever_expires(tmp_path: Path) -> None:
    clock = Clock()
    config = Config(port=0, store="sqlite", data_dir=str(tmp_path))
    assert config.persistent_client_expiration == 0
    first = Broker(config)
    first.table.clock = clock
    with BrokerThread(broker=first) as running:
        leave_subscribed(running.port, "forever")
        assert running.wait_for(lambda broker: broker.sessions["forever"].connection is None)
        clock.now += 10 * 365 * 86400
        tick(running)
        assert running.call(lambda broker: "forever" in broker.sessions)
    second = Broker(config)
    second.table.clock = clock
    with BrokerThread(broker=second) as running, RawClient(running.port) as client:
        assert client.connect("forever", clean_session=False).session_present


def test_a_session_a_killed_broker_left_connected_starts_its_wait_at_the_restart() -> None:
    store = MemoryStore()
    store.create_session("was-connected")  # no disconnection was ever recorded
    clock = Clock()
    table = SessionTable(Config(persistent_client_expiration=60), store, clock=clock)
    table.restore()
    assert "was-connected" in table.sessions
    assert store.session_expiry("was-connected") == SessionExpiry(START, None)
    clock.now += 59
    table.tick(0.0)
    assert "was-connected" in table.sessions
    clock.now += 2
    table.tick(0.0)
    assert "was-connected" not in table.sessions
    assert store.session_ids() == []


def test_a_clean_session_has_no_deadline_and_leaves_nothing_to_expire() -> None:
    clock = Clock()
    with broker_with(clock, persistent_client_expiration=0.5) as running:
        with RawClient(running.port) as client:
            client.connect("clean", clean_session=True)
        assert running.wait_for(lambda broker: "clean" not in broker.sessions)
        assert running.call(lambda broker: len(broker.table.deadlines)) == 0


# The deadline rule and its heap -------------------------------------------------------


def test_the_configured_expiration_0_means_never_but_a_sessions_own_0_means_at_once() -> None:
    left = SessionExpiry(disconnected_at=100.0)
    assert expiry_deadline(left, 0) is None
    assert expiry_deadline(left, 30) == 130.0
    assert expiry_deadline(SessionExpiry(100.0, 5.0), 30) == 105.0  # its own wins
    assert expiry_deadline(SessionExpiry(100.0, 0.0), 30) == 100.0
    assert expiry_deadline(SessionExpiry(100.0, math.inf), 30) is None
    assert expiry_deadline(SessionExpiry(None, 5.0), 30) is None  # connected


def test_deadlines_come_due_earliest_first_a_bounded_number_at_a_time() -> None:
    deadlines = Deadlines()
    for client_id, at in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("later", 9.0)):
        deadlines.set(client_id, at)
    deadlines.set("b", 8.0)  # left again: the new deadline replaces the old
    deadlines.set("gone", 0.5)
    deadlines.clear("gone")  # came back
    assert deadlines.due(5.0, limit=1) == ["a"]
    assert deadlines.due(5.0, limit=10) == ["c"]
    assert deadlines.due(8.5, limit=10) == ["b"]
    assert len(deadlines) == 1
    assert deadlines.due(100.0, limit=10) == ["later"]


def test_a_client_that_keeps_reconnecting_does_not_grow_the_deadlines() -> None:
    deadlines = Deadlines()
    for second in range(10_000):
        deadlines.set("flapping", second + 3600.0)
        deadlines.clear("flapping")
    deadlines.set("flapping", 20_000.0)
    assert len(deadlines._heap) < 200  # stale entries are dropped, not kept for an hour
    assert deadlines.due(30_000.0, limit=10) == ["flapping"]
