"""Crashes injected into the running broker are logged, contained and repaired.

Faults are injected the way the stateful tests inject them: by replacing a
method of the implementation for the duration of one test.
"""

from __future__ import annotations

import logging

import pytest

from mqttref.impl.broker.protocol import Connection
from mqttref.impl.broker.session import Session
from mqttref.impl.broker.topic import TopicServer
from mqttref.impl.codec.packets import PingReq, QoS, Will
from mqttref.impl.message import Message
from tests.broker.paho_client import Paho
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import CLOSED, RawClient


def test_a_crashed_topic_server_is_rebuilt_with_its_subscriptions_and_retained_message(
    broker: BrokerThread, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    subscriber = Paho(broker.port, "sub").connect()
    subscriber.subscribe("crash/+", 1)
    publisher = Paho(broker.port, "pub").connect()
    publisher.publish("crash/a", b"retained", 1, retain=True)
    assert subscriber.expect()[0].payload == b"retained"
    original = TopicServer.publish
    crashes: list[str] = []

    def crash_once(self: TopicServer, message: Message, now: float) -> None:
        if not crashes:
            crashes.append(self.name)
            raise RuntimeError("injected crash in a topic server")
        original(self, message, now)

    monkeypatch.setattr(TopicServer, "publish", crash_once)
    with caplog.at_level(logging.ERROR, logger="mqttref.broker"):
        publisher.publish("crash/a", b"lost in the crash", 1)
        publisher.publish("crash/a", b"after the crash", 1)
        assert subscriber.expect()[0].payload == b"after the crash"
    assert crashes == ["crash/a"]
    assert "injected crash in a topic server" in caplog.text
    assert broker.call(lambda b: b.registry.supervisor.restarts) == 1
    late = Paho(broker.port, "late").connect()
    late.subscribe("crash/a", 1)
    assert late.expect()[0].payload == b"retained"  # the retained message survived
    publisher.disconnect()
    subscriber.disconnect()


def test_a_session_that_crashes_on_delivery_loses_only_its_own_connection(
    broker: BrokerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = Paho(broker.port, "healthy").connect()
    healthy.subscribe("s", 0)
    watcher = Paho(broker.port, "watcher").connect()
    watcher.subscribe("wills/#", 0)
    broken = Paho(broker.port, "broken", will=("wills/broken", b"crashed", 0, False)).connect()
    broken.subscribe("s", 0)
    original = Session.deliver

    def crash_for_broken(self: Session, message: Message, qos: QoS, now: float, *,
                         retain: bool = False) -> None:
        if self.client_id == "broken":
            raise RuntimeError("injected crash in a session")
        original(self, message, qos, now, retain=retain)

    monkeypatch.setattr(Session, "deliver", crash_for_broken)
    Paho(broker.port, "pub").connect().publish("s", b"for everyone", 1)
    assert healthy.expect()[0].payload == b"for everyone"
    assert broken.disconnected.wait(5)
    assert watcher.expect()[0].payload == b"crashed"
    assert broker.call(lambda b: b.registry.supervisor.restarts) == 0


def test_a_crashing_connection_is_closed_with_its_will_and_others_carry_on(
    broker: BrokerThread, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = Paho(broker.port, "watcher").connect()
    watcher.subscribe("wills/#", 0)

    def crash(self: Connection, packet: object, now: float) -> None:
        raise RuntimeError("injected crash in a connection")

    monkeypatch.setattr(Connection, "on_pingreq", crash)
    with caplog.at_level(logging.ERROR, logger="mqttref.broker"), \
            RawClient(broker.port) as client:
        client.connect("crasher", will=Will("wills/crasher", b"bye"))
        client.send(PingReq())
        assert client.receive() == CLOSED
    assert "injected crash in a connection" in caplog.text
    assert "crasher" in caplog.text
    assert watcher.expect()[0].payload == b"bye"
    assert broker.call(lambda b: b.connections.crashes) == 1
    watcher.subscribe("still", 0)
    Paho(broker.port, "pub").connect().publish("still", b"working", 0)
    assert watcher.expect()[0].payload == b"working"
