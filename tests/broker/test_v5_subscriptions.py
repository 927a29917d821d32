"""Subscription identifiers and shared subscriptions in the broker's core (MQTT 5.0).

Driven like ``test_v5_core.py``: the sans-IO session table, registry and
connection cores, clients that speak level 5, a made-up clock. Identifiers:
3.8.2.1.2 and 3.3.4; shared subscriptions: 4.8.2.
"""

from __future__ import annotations

import pytest

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Properties,
    PubAck,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Unsubscribe,
)
from tests.broker.test_protocol_core import World, subscribe
from tests.broker.test_v5_core import V5, Client5, accept5, connect5, disconnect_of, subscribe5

Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
R = ReasonCode
EXPIRES = Properties(session_expiry_interval=3600)


@pytest.fixture
def world() -> World:
    return World()


def publishes(client: Client5) -> list[Publish]:
    return [p for p in client.received() if isinstance(p, Publish)]


def with_id(identifier: int, *subs: Subscription, packet_id: int = 1) -> Subscribe:
    return Subscribe(packet_id, subs, Properties(subscription_identifiers=(identifier,)))


def raw_subscribe(topic_filter: str, options: int) -> bytes:
    """A level-5 SUBSCRIBE built by hand: the encoder refuses to write the bad ones."""
    name = topic_filter.encode()
    body = b"\x00\x01" + b"\x00" + len(name).to_bytes(2, "big") + name + bytes([options])
    return bytes([0x82, len(body)]) + body


# --- CONNACK and configuration -----------------------------------------------------------


def test_connack_declares_both_available_by_leaving_the_properties_out(world: World) -> None:
    _client, connack = connect5(world, "c")
    assert connack.properties.subscription_identifier_available is None  # 1 by default
    assert connack.properties.shared_subscription_available is None  # 3.2.2.3.12, .13


def test_with_both_keys_off_connack_says_0_and_the_refusals_stay() -> None:
    world = World(Config(port=0, shared_subscriptions=False, subscription_identifiers=False))
    client, connack = connect5(world, "c")
    assert connack.properties.subscription_identifier_available == 0
    assert connack.properties.shared_subscription_available == 0
    suback = subscribe5(client, Subscription("$share/g/t", Q1), Subscription("t", Q1))
    assert suback.return_codes == (R.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, 1)
    client.send(with_id(5, Subscription("t", Q1), packet_id=2), now=1.0)
    assert disconnect_of(client.received()).reason_code == R.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED


# --- subscription identifiers ----------------------------------------------------------------


@pytest.mark.parametrize("qos", [Q0, Q1, Q2])
def test_a_message_carries_the_identifier_of_the_subscription_it_matched(
    world: World, qos: QoS,
) -> None:
    """The Subscription Identifier given with the SUBSCRIBE comes back with the message it
    matched, at each QoS [MQTT-3.3.4-3]."""
    sub, _ = connect5(world, "sub")
    sub.send(with_id(7, Subscription("a/+", Q2)), now=0.0)
    sub.received()
    pub, _ = connect5(world, "pub")
    pub.send(Publish("a/b", b"m", qos, packet_id=1 if qos else None), now=1.0)
    [message] = publishes(sub)
    assert message.properties.subscription_identifiers == (7,)  # [MQTT-3.3.4-3]


def test_overlapping_subscriptions_give_one_copy_with_every_identifier(world: World) -> None:
    """One copy for three overlapping filters, at their highest QoS [MQTT-3.3.4-2], with the
    identifiers of the two that have one [MQTT-3.3.4-4]."""
    sub, _ = connect5(world, "sub")
    sub.send(with_id(1, Subscription("a/#", Q0)), now=0.0)
    sub.send(with_id(2, Subscription("a/+", Q1), packet_id=2), now=0.0)
    sub.send(Subscribe(3, (Subscription("+/b", Q0),)), now=0.0)  # no identifier
    sub.received()
    pub, _ = connect5(world, "pub")
    pub.send(Publish("a/b", b"m", Q1, packet_id=1), now=1.0)
    [message] = publishes(sub)  # one copy, at the highest QoS [MQTT-3.3.4-2]
    assert message.qos == Q1
    assert sorted(message.properties.subscription_identifiers) == [1, 2]  # [MQTT-3.3.4-4]


def test_a_retained_message_sent_on_subscribe_carries_the_identifier(world: World) -> None:
    pub, _ = connect5(world, "pub")
    pub.send(Publish("r", b"kept", Q1, True, packet_id=1), now=0.0)
    sub, _ = connect5(world, "sub")
    sub.send(with_id(9, Subscription("r", Q1)), now=1.0)
    [retained] = publishes(sub)
    assert retained.retain
    assert retained.properties.subscription_identifiers == (9,)


def test_a_new_subscribe_to_the_same_filter_replaces_the_identifier(world: World) -> None:
    """A SUBSCRIBE to a filter already held replaces the subscription [MQTT-3.8.4-3], its
    identifier with it, and with none when the new one has none."""
    sub, _ = connect5(world, "sub")
    pub, _ = connect5(world, "pub")
    sub.send(with_id(3, Subscription("t", Q0)), now=0.0)
    sub.send(with_id(4, Subscription("t", Q0), packet_id=2), now=1.0)
    sub.received()
    pub.send(Publish("t", b"1"), now=2.0)
    assert [p.properties.subscription_identifiers for p in publishes(sub)] == [(4,)]
    sub.send(Subscribe(3, (Subscription("t", Q0),)), now=3.0)  # now without one
    sub.received()
    pub.send(Publish("t", b"2"), now=4.0)
    assert [p.properties.subscription_identifiers for p in publishes(sub)] == [()]


def test_unsubscribing_one_overlapping_filter_leaves_the_others_identifier(world: World) -> None:
    sub, _ = connect5(world, "sub")
    pub, _ = connect5(world, "pub")
    sub.send(with_id(1, Subscription("a/#", Q0)), now=0.0)
    sub.send(with_id(2, Subscription("a/b", Q0), packet_id=2), now=0.0)
    sub.send(Unsubscribe(3, ("a/#",)), now=1.0)
    sub.received()
    pub.send(Publish("a/b", b"m"), now=2.0)
    assert [p.properties.subscription_identifiers for p in publishes(sub)] == [(2,)]


def test_a_message_queued_while_away_still_carries_the_identifier(world: World) -> None:
    sub, _ = connect5(world, "sub", properties=EXPIRES)
    sub.send(with_id(11, Subscription("t", Q1)), now=0.0)
    sub.inner.core.connection_lost(1.0)
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"waiting", Q1, packet_id=1), now=2.0)
    again = accept5(world, 3.0)
    again.send(Connect(V5, "sub", clean_session=False, properties=EXPIRES), now=3.0)
    [connack, message] = again.received()
    assert isinstance(connack, ConnAck)
    assert connack.session_present
    assert isinstance(message, Publish)
    assert message.properties.subscription_identifiers == (11,)


# --- shared subscriptions ------------------------------------------------------------------


def test_each_message_goes_to_exactly_one_member_round_robin(world: World) -> None:
    a, _ = connect5(world, "a")
    b, _ = connect5(world, "b")
    plain, _ = connect5(world, "plain")
    assert subscribe5(a, Subscription("$share/g/t/+", Q1)).return_codes == (1,)
    assert subscribe5(b, Subscription("$share/g/t/+", Q1)).return_codes == (1,)
    subscribe5(plain, Subscription("t/#", Q0))
    pub, _ = connect5(world, "pub")
    sent = [f"m{i}".encode() for i in range(20)]
    for i, payload in enumerate(sent):
        pub.send(Publish("t/x", payload, Q1, packet_id=i + 1), now=1.0)
    got_a = [p.payload for p in publishes(a)]
    got_b = [p.payload for p in publishes(b)]
    assert sorted(got_a + got_b) == sorted(sent)  # each one to one member
    assert got_a
    assert got_b
    assert abs(len(got_a) - len(got_b)) <= 1  # round robin
    assert [p.payload for p in publishes(plain)] == sent  # independently of the group


def test_a_publish_only_a_group_matched_is_not_told_no_matching_subscribers(
    world: World,
) -> None:
    member, _ = connect5(world, "m")
    subscribe5(member, Subscription("$share/g/t", Q1))
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"m", Q1, packet_id=5), now=1.0)
    assert pub.received() == [PubAck(5)]  # not 0x10 (3.4.2.1)


def test_groups_with_the_same_filter_and_different_names_each_get_the_message(
    world: World,
) -> None:
    a, _ = connect5(world, "a")
    b, _ = connect5(world, "b")
    subscribe5(a, Subscription("$share/one/t", Q0))
    subscribe5(b, Subscription("$share/two/t", Q0))
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"m"), now=1.0)
    assert len(publishes(a)) == len(publishes(b)) == 1


def test_a_connected_member_is_chosen_before_a_disconnected_persistent_one(
    world: World,
) -> None:
    away, _ = connect5(world, "away", properties=EXPIRES)
    here, _ = connect5(world, "here")
    subscribe5(away, Subscription("$share/g/t", Q1))
    subscribe5(here, Subscription("$share/g/t", Q1))
    away.inner.core.connection_lost(1.0)
    pub, _ = connect5(world, "pub")
    for i in range(4):
        pub.send(Publish("t", b"%d" % i, Q1, packet_id=i + 1), now=2.0)
    assert len(publishes(here)) == 4
    assert not world.table.sessions["away"].queue


def test_a_member_that_leaves_hands_its_unacknowledged_messages_to_another(
    world: World,
) -> None:
    a, _ = connect5(world, "a")
    b, _ = connect5(world, "b")
    subscribe5(a, Subscription("$share/g/t", Q1))
    subscribe5(b, Subscription("$share/g/t", Q1))
    pub, _ = connect5(world, "pub")
    sent = [b"%d" % i for i in range(6)]
    for i, payload in enumerate(sent):
        pub.send(Publish("t", payload, Q1, packet_id=i + 1), now=1.0)
    to_a = publishes(a)
    to_b = [p.payload for p in publishes(b)]
    assert to_a
    assert to_b
    acknowledged = to_a[0]
    assert acknowledged.packet_id is not None
    a.send(PubAck(acknowledged.packet_id), now=2.0)
    a.inner.core.connection_lost(3.0)  # its session (expiry 0) ends with the connection
    handed = [p.payload for p in publishes(b)]
    assert sorted(handed) == sorted(p.payload for p in to_a[1:])  # 4.8.2
    assert sorted(to_b + handed + [acknowledged.payload]) == sorted(sent)


def test_a_message_refused_by_a_member_goes_to_nobody_else(world: World) -> None:
    a, _ = connect5(world, "a")
    b, _ = connect5(world, "b")
    subscribe5(a, Subscription("$share/g/t", Q1))
    subscribe5(b, Subscription("$share/g/t", Q1))
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"m", Q1, packet_id=1), now=1.0)
    [got] = publishes(a) or publishes(b)
    refuser = a if world.table.sessions["a"].inflight else b
    other = b if refuser is a else a
    assert got.packet_id is not None
    refuser.send(PubAck(got.packet_id, R.UNSPECIFIED_ERROR), now=2.0)
    refuser.inner.core.connection_lost(3.0)
    assert publishes(other) == []  # [MQTT-4.8.2-6]


def test_a_shared_subscription_gets_no_retained_messages(world: World) -> None:
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"kept", Q1, True, packet_id=1), now=0.0)
    member, _ = connect5(world, "m")
    subscribe5(member, Subscription("$share/g/t", Q1))
    assert publishes(member) == []  # 4.8.2
    pub.send(Publish("t", b"new", Q1, packet_id=2), now=1.0)
    assert [p.payload for p in publishes(member)] == [b"new"]


def test_a_members_identifier_comes_with_what_the_group_sends_it(world: World) -> None:
    member, _ = connect5(world, "m")
    member.send(with_id(42, Subscription("$share/g/t", Q0)), now=0.0)
    member.received()
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"m"), now=1.0)
    [message] = publishes(member)
    assert message.properties.subscription_identifiers == (42,)


def test_a_member_gets_its_own_message_through_the_group(world: World) -> None:
    """No Local is not allowed on a shared subscription, so nothing stops it here,
    even when the member's other subscriptions have No Local."""
    member, _ = connect5(world, "m")
    subscribe5(member, Subscription("$share/g/t", Q0), Subscription("x", Q0, no_local=True))
    member.send(Publish("t", b"mine"), now=1.0)
    assert [p.payload for p in publishes(member)] == [b"mine"]


@pytest.mark.parametrize("topic_filter", ["$share/g+/t", "$share/#/t", "$share//t", "$share/g"])
def test_a_malformed_share_name_closes_a_5_0_connection(world: World, topic_filter: str) -> None:
    """The codec refuses [MQTT-4.8.2-1, MQTT-4.8.2-2] as it refuses any malformed filter:
    a protocol violation, answered with DISCONNECT (its code 0x8F, Topic Filter invalid)."""
    client, _ = connect5(world, "c")
    client.inner.core.receive(raw_subscribe(topic_filter, 0x01), 1.0)
    assert disconnect_of(client.received()).reason_code == R.TOPIC_FILTER_INVALID
    assert client.closed()


@pytest.mark.parametrize("topic_filter", ["$share//t", "$share/g", "$share/g/"])
def test_a_malformed_share_name_gets_0x80_below_5_0(world: World, topic_filter: str) -> None:
    client = world.connect("old")
    client.send(Subscribe(1, (Subscription(topic_filter, Q1), Subscription("t", Q1))), now=0.0)
    assert client.received() == [SubAck(1, (0x80, 1))]


def test_no_local_on_a_shared_subscription_is_a_protocol_error(world: World) -> None:
    client, _ = connect5(world, "c")
    client.inner.core.receive(raw_subscribe("$share/g/t", 0x05), 1.0)  # QoS 1 + No Local
    assert disconnect_of(client.received()).reason_code == R.PROTOCOL_ERROR  # [MQTT-3.8.3-4]


def test_a_311_client_can_be_a_member_too(world: World) -> None:
    old = world.connect("old")
    subscribe(old, "$share/g/t", Q1)
    new, _ = connect5(world, "new")
    subscribe5(new, Subscription("$share/g/t", Q1))
    pub, _ = connect5(world, "pub")
    for i in range(4):
        pub.send(Publish("t", b"%d" % i, Q1, packet_id=i + 1), now=1.0)
    got_old = [p for p in old.received() if isinstance(p, Publish)]
    assert len(got_old) == 2
    assert len(publishes(new)) == 2


def test_unsubscribing_leaves_the_group(world: World) -> None:
    a, _ = connect5(world, "a")
    b, _ = connect5(world, "b")
    subscribe5(a, Subscription("$share/g/t", Q0))
    subscribe5(b, Subscription("$share/g/t", Q0))
    a.send(Unsubscribe(2, ("$share/g/t",)), now=1.0)
    a.received()
    pub, _ = connect5(world, "pub")
    for _ in range(3):
        pub.send(Publish("t", b"m"), now=2.0)
    assert publishes(a) == []
    assert len(publishes(b)) == 3


def test_a_group_is_restored_from_the_store_as_its_filter_string(world: World) -> None:
    member, _ = connect5(world, "m", properties=EXPIRES)
    subscribe5(member, Subscription("$share/g/t", Q1))
    member.inner.core.connection_lost(1.0)
    restarted = SessionTable(world.config, world.table.store)
    restarted.restore()
    [group] = restarted.registry.shared
    assert (group.key, group.inner, list(group.members)) == ("$share/g/t", "t", ["m"])

