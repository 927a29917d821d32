"""A persistent session resumes on another node: what it queued and what was in flight.

The session's state lives in JetStream (``impl/cluster/session_store.py``): a client
that comes back on another node gets its queued messages [MQTT-3.1.2-4] (the
session state of 3.1.2.4), QoS 1 unacknowledged messages again with DUP 1
[MQTT-4.4.0-1], and a QoS 2 message whose PUBREC it sent gets PUBREL, not the
PUBLISH again, so it is delivered exactly once (4.3.3). The last test kills the
node that held the session (SIGKILL, a child process): everything the node had
acknowledged to the publisher is there on the other node.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from mqttref.impl.codec.packets import PubAck, PubComp, Publish, PubRec, PubRel, QoS
from tests.broker.paho_client import Paho
from tests.cluster.sessions_nodes import (
    NatsServer,
    ProcessNode,
    SessionNode,
    require_nats_server,
    two_nodes,
)
from tests.helpers.raw_client import CLOSED, RawClient

LEASE = 2.0


@pytest.fixture
def nats() -> Iterator[NatsServer]:
    require_nats_server()
    server = NatsServer().start()
    yield server
    server.stop()


@pytest.fixture
def nodes(nats: NatsServer) -> Iterator[tuple[SessionNode, SessionNode]]:
    with two_nodes(nats.url, LEASE) as both:
        yield both


def test_messages_queued_on_one_node_are_delivered_on_another_in_order(
    nodes: tuple[SessionNode, SessionNode],
) -> None:
    """QoS 1 and QoS 2 messages queued for an absent client on n1 arrive when it
    resumes its session on n2, each once and, per topic, in the order published [MQTT-4.6.0-6]."""
    n1, n2 = nodes
    subscriber = Paho(n1.port, "away", clean_session=False).connect()
    assert subscriber.subscribe("queued/#", 2) == [2]
    subscriber.disconnect()
    publisher = Paho(n1.port, "pub").connect()
    sent = [(f"queued/{qos}", b"%d" % n, qos) for n in range(10) for qos in (1, 2)]
    for topic, payload, qos in sent:
        publisher.publish(topic, payload, qos)
    back = Paho(n2.port, "away", clean_session=False).connect()
    assert back.session_present is True
    got = [(m.topic, m.payload, m.qos) for m in back.expect(len(sent))]
    assert per_topic(got) == per_topic(sent)
    assert back.nothing_within(0.3)
    back.disconnect()
    publisher.disconnect()


def per_topic(messages: Sequence[tuple[str, bytes | bytearray, int]],
              ) -> dict[str, list[tuple[bytes | bytearray, int]]]:
    """Messages by topic, in the order they came: the order MQTT keeps (each topic is an
    ordered topic [MQTT-4.6.0-6]; across topics a broker may interleave)."""
    by_topic: dict[str, list[tuple[bytes | bytearray, int]]] = {}
    for topic, payload, qos in messages:
        by_topic.setdefault(topic, []).append((payload, qos))
    return by_topic


def _receive(client: RawClient) -> object:
    packet = client.receive()
    assert packet != CLOSED
    return packet


def test_an_unacknowledged_qos_1_message_is_sent_again_with_dup_on_the_other_node(
    nodes: tuple[SessionNode, SessionNode],
) -> None:
    """A QoS 1 PUBLISH the client never acknowledged on n1 is resent on n2 with DUP 1,
    the same packet identifier [MQTT-4.4.0-1]: at least once."""
    n1, n2 = nodes
    with RawClient(n1.port) as first:
        first.connect("dup1", clean_session=False)
        first.subscribe("once/#", QoS.AT_LEAST_ONCE)
        publisher = Paho(n1.port, "pub1").connect()
        publisher.publish("once/1", b"m", 1)
        sent = _receive(first)
        assert isinstance(sent, Publish)
        assert not sent.dup
    with RawClient(n2.port) as second:
        assert second.connect("dup1", clean_session=False).session_present
        again = _receive(second)
        assert isinstance(again, Publish)
        assert (again.topic, again.payload, again.dup, again.packet_id) == (
            "once/1", b"m", True, sent.packet_id)
        assert sent.packet_id is not None
        second.send(PubAck(sent.packet_id))
        assert second.receive_all(0.3) == []
    publisher.disconnect()


def test_a_qos_2_message_released_on_one_node_is_not_delivered_again_on_another(
    nodes: tuple[SessionNode, SessionNode],
) -> None:
    """The client sent PUBREC on n1 and left before PUBCOMP: on n2 the broker sends PUBREL
    again [MQTT-4.4.0-1] and never the PUBLISH, so the message is delivered exactly once."""
    n1, n2 = nodes
    with RawClient(n1.port) as first:
        first.connect("dup2", clean_session=False)
        first.subscribe("exactly/#", QoS.EXACTLY_ONCE)
        publisher = Paho(n1.port, "pub2").connect()
        publisher.publish("exactly/1", b"m", 2)
        sent = _receive(first)
        assert isinstance(sent, Publish)
        assert sent.packet_id is not None
        first.send(PubRec(sent.packet_id))
        assert _receive(first) == PubRel(sent.packet_id)
    with RawClient(n2.port) as second:
        assert second.connect("dup2", clean_session=False).session_present
        assert _receive(second) == PubRel(sent.packet_id)
        second.send(PubComp(sent.packet_id))
        assert second.receive_all(0.3) == []
    publisher.disconnect()


def test_what_a_killed_node_acknowledged_is_delivered_by_another(nats: NatsServer) -> None:
    """n1 (a child process) holds the session of an absent client and PUBACKs and PUBCOMPs
    messages for it, then is killed with SIGKILL: on n2 the client resumes its session
    (at once: nobody answers for n1 in NATS any more) with every acknowledged message,
    QoS 2 exactly once."""
    n1 = ProcessNode(nats.url, "n1", LEASE).start()
    n2 = SessionNode(nats.url, "n2", LEASE)
    try:
        subscriber = Paho(n1.port, "survivor", clean_session=False).connect()
        subscriber.subscribe("kept/#", 2)
        subscriber.disconnect()
        publisher = Paho(n1.port, "pub3").connect()
        sent = [(f"kept/{qos}", b"%d" % n, qos) for n in range(20) for qos in (1, 2)]
        for topic, payload, qos in sent:
            publisher.publish(topic, payload, qos)  # returns after PUBACK / PUBCOMP
        n1.kill()
        back = Paho(n2.port, "survivor", clean_session=False).connect()
        assert back.session_present is True
        got = [(m.topic, m.payload, m.qos) for m in back.expect(len(sent))]
        assert per_topic(got) == per_topic(sent), str(got)
        assert back.nothing_within(0.3)
        back.disconnect()
    finally:
        n1.kill()
        n2.stop()


def test_a_qos_2_publish_sent_again_on_another_node_is_not_delivered_twice(
    nodes: tuple[SessionNode, SessionNode],
) -> None:
    """The client's QoS 2 PUBLISH got PUBREC on n1 (delivered there, 4.3.3 method A); it
    left before PUBREL and sends the PUBLISH again with DUP 1 on n2: n2 answers PUBREC
    and does not deliver it a second time [MQTT-4.3.3-10], then PUBCOMP for its PUBREL."""
    n1, n2 = nodes
    watcher = Paho(n2.port, "watcher2").connect()
    assert watcher.subscribe("inbound/#", 2) == [2]
    first_try = Publish("inbound/1", b"once", QoS.EXACTLY_ONCE, packet_id=7)
    with RawClient(n1.port) as first:
        first.connect("sender", clean_session=False)
        first.send(first_try)
        assert _receive(first) == PubRec(7)
    with RawClient(n2.port) as second:
        assert second.connect("sender", clean_session=False).session_present
        second.send(Publish("inbound/1", b"once", QoS.EXACTLY_ONCE, dup=True, packet_id=7))
        assert _receive(second) == PubRec(7)
        second.send(PubRel(7))
        assert _receive(second) == PubComp(7)
    assert watcher.nothing_within(0.5), "delivered again on n2"
    watcher.disconnect()
