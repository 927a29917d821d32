"""No Local among overlapping subscriptions, in the broker's core (MQTT 5.0).

A client's own message matches its No Local filters too, but they may not forward it
[MQTT-3.8.3-3]; so they add nothing to the one copy its other matching filters send:
not their QoS [MQTT-3.3.4-2], not their Subscription Identifiers [MQTT-3.3.4-4], not
their Retain As Published [MQTT-3.3.1-12, MQTT-3.3.1-13]. For everybody else's
messages a No Local filter counts like any other. Driven like ``test_v5_core.py``:
the sans-IO session table, registry and connection cores, a made-up clock.
"""

from __future__ import annotations

import pytest

from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Properties,
    Publish,
    PubRel,
    QoS,
    Subscribe,
    Subscription,
    Unsubscribe,
)
from mqttref.impl.message import Message
from tests.broker.test_protocol_core import World, subscribe
from tests.broker.test_v5_core import V5, Client5, accept5, connect5, subscribe5

Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
EXPIRES = Properties(session_expiry_interval=3600)


@pytest.fixture
def world() -> World:
    return World()


def publishes(client: Client5) -> list[Publish]:
    return [p for p in client.received() if isinstance(p, Publish)]


def with_id(identifier: int, *subs: Subscription, packet_id: int = 1) -> Subscribe:
    return Subscribe(packet_id, subs, Properties(subscription_identifiers=(identifier,)))


def publish(client: Client5, topic: str, qos: QoS, *, retain: bool = False,
            now: float = 1.0) -> None:
    """One PUBLISH, its QoS 2 flow finished (the broker forwards on PUBLISH)."""
    client.send(Publish(topic, b"m", qos, retain, packet_id=7 if qos else None), now=now)
    if qos is Q2:
        client.send(PubRel(7), now=now)


def overlapping(client: Client5) -> None:
    """'a/#' with No Local at QoS 2 (identifier 1) and 'a/b' at QoS 0 (identifier 2)."""
    client.send(with_id(1, Subscription("a/#", Q2, no_local=True)), now=0.0)
    client.send(with_id(2, Subscription("a/b", Q0), packet_id=2), now=0.0)
    client.received()


# --- QoS and identifiers of the one copy ----------------------------------------------------


@pytest.mark.parametrize("qos", [Q0, Q1, Q2])
def test_a_no_local_filter_neither_raises_the_qos_of_an_own_message_nor_adds_its_identifier(
    world: World, qos: QoS,
) -> None:
    client, _ = connect5(world, "c")
    overlapping(client)
    publish(client, "a/b", qos)
    [own] = publishes(client)
    assert own.qos == Q0  # only 'a/b' may forward it: its QoS 0, not 2 [MQTT-3.3.4-2]
    assert own.properties.subscription_identifiers == (2,)  # [MQTT-3.3.4-4]


def test_the_same_no_local_filter_counts_for_another_clients_message(world: World) -> None:
    client, _ = connect5(world, "c")
    overlapping(client)
    other, _ = connect5(world, "o")
    publish(other, "a/b", Q2)
    [copy] = publishes(client)
    assert copy.qos == Q2
    assert sorted(copy.properties.subscription_identifiers) == [1, 2]


def test_an_own_message_carries_the_identifiers_of_every_filter_that_may_forward_it(
    world: World,
) -> None:
    client, _ = connect5(world, "c")
    client.send(with_id(1, Subscription("a/#", Q0)), now=0.0)
    client.send(with_id(2, Subscription("a/+", Q1), packet_id=2), now=0.0)
    client.send(with_id(3, Subscription("a/b", Q2, no_local=True), packet_id=3), now=0.0)
    client.send(Subscribe(4, (Subscription("+/b", Q0),)), now=0.0)  # no identifier
    client.received()
    publish(client, "a/b", Q2)
    [own] = publishes(client)  # one copy
    assert own.qos == Q1  # the highest of 'a/#', 'a/+' and '+/b'
    assert sorted(own.properties.subscription_identifiers) == [1, 2]


def test_an_identifier_shared_with_a_no_local_filter_is_carried_once_for_the_other(
    world: World,
) -> None:
    client, _ = connect5(world, "c")
    client.send(with_id(5, Subscription("a/#", Q1, no_local=True), Subscription("a/b", Q1)),
                now=0.0)
    client.received()
    publish(client, "a/b", Q1)
    assert [p.properties.subscription_identifiers for p in publishes(client)] == [(5,)]
    other, _ = connect5(world, "o")
    publish(other, "a/b", Q1)  # both filters forward it: one identifier each
    assert [p.properties.subscription_identifiers for p in publishes(client)] == [(5, 5)]


# --- which filters hold an own message back ---------------------------------------------------


def test_only_no_local_filters_matching_hold_an_own_message_back_from_its_publisher(
    world: World,
) -> None:
    client, _ = connect5(world, "c")
    subscribe5(client, Subscription("a/#", Q2, no_local=True),
               Subscription("a/+", Q1, no_local=True), Subscription("x", Q0))
    other, _ = connect5(world, "o")
    subscribe5(other, Subscription("a/b", Q1))
    publish(client, "a/b", Q1)
    assert publishes(client) == []  # [MQTT-3.8.3-3]
    assert [p.payload for p in publishes(other)] == [b"m"]
    publish(other, "a/b", Q1, now=2.0)
    assert [p.qos for p in publishes(client)] == [Q1]  # the other's message: both count


def test_subscribing_again_without_no_local_lets_own_messages_through(world: World) -> None:
    client, _ = connect5(world, "c")
    subscribe5(client, Subscription("t", Q1, no_local=True))
    publish(client, "t", Q1)
    assert publishes(client) == []
    client.send(Subscribe(2, (Subscription("t", Q1),)), now=2.0)  # replaces [MQTT-3.8.4-3]
    client.received()
    publish(client, "t", Q1, now=3.0)
    assert [p.qos for p in publishes(client)] == [Q1]


def test_unsubscribing_the_ordinary_filter_leaves_the_no_local_one_holding_back(
    world: World,
) -> None:
    client, _ = connect5(world, "c")
    overlapping(client)
    client.send(Unsubscribe(3, ("a/b",)), now=1.0)
    client.received()
    publish(client, "a/b", Q2, now=2.0)
    assert publishes(client) == []


# --- Retain As Published ----------------------------------------------------------------------


def test_retain_as_published_on_a_no_local_filter_does_not_keep_an_own_messages_retain(
    world: World,
) -> None:
    client, _ = connect5(world, "c")
    subscribe5(client, Subscription("a/#", Q0, no_local=True, retain_as_published=True),
               Subscription("a/b", Q0))
    publish(client, "a/b", Q0, retain=True)
    assert [p.retain for p in publishes(client)] == [False]  # [MQTT-3.3.1-12]
    other, _ = connect5(world, "o")
    publish(other, "a/b", Q0, retain=True, now=2.0)
    assert [p.retain for p in publishes(client)] == [True]  # [MQTT-3.3.1-13]


def test_retain_as_published_on_the_forwarding_filter_keeps_an_own_messages_retain(
    world: World,
) -> None:
    client, _ = connect5(world, "c")
    subscribe5(client, Subscription("a/#", Q0, no_local=True),
               Subscription("a/b", Q0, retain_as_published=True))
    publish(client, "a/b", Q0, retain=True)
    assert [p.retain for p in publishes(client)] == [True]  # [MQTT-3.3.1-13]


# --- what is kept, and 3.1.1 ----------------------------------------------------------------


def test_a_restored_session_still_resolves_its_own_messages_by_its_no_local_filters(
    world: World,
) -> None:
    client, _ = connect5(world, "c", properties=EXPIRES)
    client.send(with_id(1, Subscription("a/#", Q2, no_local=True)), now=0.0)
    client.send(with_id(2, Subscription("a/b", Q1), packet_id=2), now=0.0)
    client.inner.core.connection_lost(1.0)
    restarted = SessionTable(world.config, world.table.store)
    restarted.restore()  # as at a broker start: options and identifiers from the store
    restarted.registry.publish(Message("a/b", b"own", Q2, origin="c"), 2.0)
    restarted.registry.publish(Message("a/b", b"other", Q2, origin="o"), 2.0)
    queued = [(out.payload, out.qos, out.properties.subscription_identifiers)
              for _seq, out in restarted.sessions["c"].queue]
    assert [(payload, qos, sorted(ids)) for payload, qos, ids in queued] == [
        (b"own", Q1, [2]), (b"other", Q2, [1, 2])]


def test_a_rebuilt_topic_server_still_resolves_own_messages(world: World) -> None:
    client, _ = connect5(world, "c")
    overlapping(client)
    publish(client, "a/b", Q0)
    client.received()
    world.table.registry.restart_topic("a/b")  # as the topic supervisor does after a crash
    publish(client, "a/b", Q2, now=2.0)
    [own] = publishes(client)
    assert (own.qos, own.properties.subscription_identifiers) == (Q0, (2,))


def test_a_3_1_1_client_gets_its_own_message_at_the_highest_qos_of_its_filters(
    world: World,
) -> None:
    client = world.connect("c")
    subscribe(client, "a/#", Q2)
    subscribe(client, "a/b", Q0)
    client.send(Publish("a/b", b"m", Q2, packet_id=7), now=1.0)
    client.send(PubRel(7), now=1.0)
    assert [p.qos for p in client.received() if isinstance(p, Publish)] == [Q2]


def test_a_resumed_5_0_session_keeps_no_local_per_filter(world: World) -> None:
    client, _ = connect5(world, "c", properties=EXPIRES)
    overlapping(client)
    client.inner.core.connection_lost(1.0)
    again = accept5(world, 2.0)
    again.send(Connect(V5, "c", clean_session=False, properties=EXPIRES), now=2.0)
    [connack] = again.received()
    assert isinstance(connack, ConnAck)
    assert connack.session_present
    publish(again, "a/b", Q2, now=3.0)
    [own] = publishes(again)
    assert (own.qos, own.properties.subscription_identifiers) == (Q0, (2,))
