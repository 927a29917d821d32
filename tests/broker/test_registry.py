"""Registry and topic servers: routing, overlap, downgrade, retained, and crash rebuild."""

from __future__ import annotations

import logging

import pytest

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.session import Session
from mqttref.impl.broker.topic import TopicServer
from mqttref.impl.codec.packets import SUBACK_FAILURE, Publish, QoS
from mqttref.impl.message import Message
from mqttref.impl.store import MemoryStore
from tests.broker.recording import RecordingSink

Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE


class World:
    """A registry with sessions connected to recording sinks."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.store = MemoryStore()
        self.sessions: dict[str, Session] = {}
        self.sinks: dict[str, RecordingSink] = {}
        self.registry = Registry(self.config, self.store, self.sessions.get)

    def client(self, client_id: str) -> Session:
        session = Session(client_id, persistent=False, config=self.config, store=self.store)
        sink = RecordingSink()
        session.attach(sink, 0.0)
        self.sessions[client_id] = session
        self.sinks[client_id] = sink
        return session

    def publish(self, topic: str, payload: bytes = b"x", qos: QoS = Q0,
                retain: bool = False) -> None:
        self.registry.publish(Message(topic, payload, qos, retain), 0.0)

    def received(self, client_id: str) -> list[Publish]:
        return [p for p in self.sinks[client_id].take() if isinstance(p, Publish)]


def test_a_message_reaches_every_matching_subscriber_and_no_other() -> None:
    world = World()
    world.registry.subscribe(world.client("a"), "s/+", Q0)
    world.registry.subscribe(world.client("b"), "s/#", Q0)
    world.registry.subscribe(world.client("c"), "other", Q0)
    world.publish("s/1")
    assert len(world.received("a")) == len(world.received("b")) == 1
    assert world.received("c") == []


def test_qos_is_downgraded_to_the_granted_qos() -> None:
    """[MQTT-3.8.4-6]"""
    world = World()
    world.registry.subscribe(world.client("a"), "t", Q1)
    world.publish("t", qos=Q2)
    [packet] = world.received("a")
    assert packet.qos is Q1


def test_overlapping_subscriptions_deliver_once_at_the_highest_qos() -> None:
    """[MQTT-3.3.5-1]"""
    world = World()
    session = world.client("a")
    world.registry.subscribe(world.client("other"), "t/x", Q0)
    world.publish("t/x")  # the topic server exists before the subscriptions
    assert "t/x" in world.registry.topics
    world.registry.subscribe(session, "t/#", Q0)
    world.registry.subscribe(session, "t/+", Q2)
    world.publish("t/x", qos=Q2)
    [packet] = world.received("a")
    assert packet.qos is Q2
    world.registry.unsubscribe(session, "t/+")
    world.publish("t/x", qos=Q2)
    [packet] = world.received("a")
    assert packet.qos is Q0
    world.registry.unsubscribe(session, "t/#")
    world.publish("t/x", qos=Q2)
    assert world.received("a") == []


def test_retained_messages_are_set_replaced_and_cleared() -> None:
    """[MQTT-3.3.1-5, MQTT-3.3.1-10, MQTT-3.3.1-11]"""
    world = World()
    world.publish("r", b"one", Q1, retain=True)
    world.publish("r", b"two", Q1, retain=True)
    late = world.client("late")
    world.registry.subscribe(late, "r", Q1)
    world.registry.send_retained(late, "r", Q1, 0.0)
    [packet] = world.received("late")
    assert (packet.payload, packet.retain) == (b"two", True)
    world.publish("r", b"", Q0, retain=True)
    [cleared] = world.received("late")  # D8: the clearing message is forwarded
    assert (cleared.payload, cleared.retain) == (b"", False)
    assert world.store.get_retained("r") is None
    world.registry.send_retained(late, "r", Q1, 0.0)
    assert world.received("late") == []


def test_normal_forwarding_clears_retain() -> None:
    """[MQTT-3.3.1-9]"""
    world = World()
    world.registry.subscribe(world.client("a"), "r", Q0)
    world.publish("r", b"v", retain=True)
    [packet] = world.received("a")
    assert packet.retain is False


def test_wildcard_subscriptions_do_not_receive_dollar_topics() -> None:
    """[MQTT-4.7.2-1]"""
    world = World()
    world.registry.subscribe(world.client("all"), "#", Q0)
    world.registry.subscribe(world.client("sys"), "$SYS/#", Q0)
    world.publish("$SYS/x")
    world.publish("$other")
    assert world.received("all") == []
    assert [p.topic for p in world.received("sys")] == ["$SYS/x"]


def test_a_filter_deeper_than_the_limit_is_refused_with_0x80() -> None:
    world = World(Config(max_topic_levels=3))
    session = world.client("a")
    assert world.registry.subscribe(session, "a/b/c/d", Q1) == SUBACK_FAILURE
    assert world.registry.subscribe(session, "a/b/c", Q1) == Q1
    assert session.subscriptions == {"a/b/c": Q1}


def test_removing_a_session_leaves_no_subscription_behind() -> None:
    world = World()
    session = world.client("a")
    world.registry.subscribe(session, "x/#", Q1)
    world.publish("x/1")
    world.registry.remove_session(session)
    assert list(world.store.subscriptions()) == []
    assert len(world.registry.filters) == 0
    assert "x/1" not in world.registry.topics  # idle topic servers go too


def test_a_crashed_topic_server_is_rebuilt_with_subscribers_and_retained(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    world = World()
    world.registry.subscribe(world.client("a"), "k/#", Q1)
    world.publish("k/1", b"kept", Q1, retain=True)
    world.received("a")
    original = TopicServer.publish
    crashed: list[TopicServer] = []

    def crashing(self: TopicServer, message: Message, now: float) -> None:
        if not crashed:
            crashed.append(self)
            raise RuntimeError("injected topic server crash")
        original(self, message, now)

    monkeypatch.setattr(TopicServer, "publish", crashing)
    with caplog.at_level(logging.ERROR, logger="mqttref.broker"):
        world.publish("k/1", b"lost")
    assert "injected topic server crash" in caplog.text
    assert world.registry.supervisor.restarts == 1
    rebuilt = world.registry.topics.get("k/1")
    assert rebuilt is not None
    assert rebuilt is not crashed[0]
    assert rebuilt.retained is not None
    assert rebuilt.retained.payload == b"kept"
    assert set(rebuilt.subscribers) == {"a"}
    world.publish("k/1", b"after")
    assert [p.payload for p in world.received("a")] == [b"after"]


def test_topic_names_nobody_listens_to_leave_no_topic_server() -> None:
    world = World()
    for n in range(100):
        world.publish(f"nobody/{n}")
    assert len(world.registry.topics) == 0


def test_a_sweep_drops_topic_servers_without_retained_messages_and_delivery_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mqttref.impl.broker.registry as registry_module
    monkeypatch.setattr(registry_module, "TOPIC_SERVER_SWEEP", 10)
    world = World()
    world.registry._sweep_at = 10
    world.registry.subscribe(world.client("all"), "#", Q0)
    world.publish("kept", b"r", retain=True)
    for n in range(25):
        world.publish(f"invented/{n}")
    assert len(world.registry.topics) <= 11
    assert "kept" in world.registry.topics
    world.publish("invented/3")
    assert len(world.received("all")) == 27
