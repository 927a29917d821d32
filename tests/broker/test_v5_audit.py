"""MQTT 5.0 statements an audit of the broker against Appendix B found unmet, each now a
specification: the limits CONNACK states bind the will too, a QoS 2 shared delivery stays
with its member, a 5.0 session resends only on reconnection and within the new Receive
Maximum, what the client cannot take is completed rather than retried, and the broker's
DISCONNECT fits the client's Maximum Packet Size and carries a code DISCONNECT has."""

from __future__ import annotations

from mqttref.impl.auth import SCRAM_SHA_256, ScramSha256Client
from mqttref.impl.broker.config import Config
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Properties,
    ProtocolLevel,
    PubAck,
    Publish,
    QoS,
    Subscription,
    Will,
)
from tests.broker.test_protocol_core import World
from tests.broker.test_v5_auth import scram_connect, scram_world
from tests.broker.test_v5_core import Client5, accept5, connect5, subscribe5

V5 = ProtocolLevel.MQTT_5
Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
R = ReasonCode
KEEP = Properties(session_expiry_interval=100)


def publishes(client: Client5) -> list[Publish]:
    return [p for p in client.received() if isinstance(p, Publish)]


def refusal(world: World, connect: Connect) -> int:
    client = accept5(world)
    client.send(connect, now=0.0)
    [connack] = client.received()
    assert isinstance(connack, ConnAck)
    assert client.closed()
    return connack.return_code


def test_a_will_qos_above_maximum_qos_is_refused_with_0x9b() -> None:
    """A Will QoS above the server's capability: the connection is refused (0x9B) and
    closed [MQTT-3.2.2-12]."""
    world = World(Config(port=0, max_qos=1))
    will = Will("w", b"p", Q2)
    assert refusal(world, Connect(V5, "x", will=will)) == R.QOS_NOT_SUPPORTED  # [MQTT-3.2.2-12]


def test_a_will_retain_where_retain_is_unavailable_is_refused_with_0x9a() -> None:
    """Will Retain 1 where retained messages are unsupported: refused (0x9A) and closed
    [MQTT-3.2.2-13]."""
    world = World(Config(port=0, retain_available=False))
    will = Will("w", b"p", Q0, retain=True)
    assert refusal(world, Connect(V5, "x", will=will)) == R.RETAIN_NOT_SUPPORTED  # [MQTT-3.2.2-13]


def test_a_qos_2_shared_message_once_sent_stays_with_its_member() -> None:
    """A member's session ends with a QoS 2 message sent to it: no other member gets it
    [MQTT-4.8.2-5]."""
    world = World()
    a, _ = connect5(world, "a")
    b, _ = connect5(world, "b")
    subscribe5(a, Subscription("$share/g/t", Q2))
    subscribe5(b, Subscription("$share/g/t", Q2))
    pub, _ = connect5(world, "pub")
    for n in range(1, 5):
        pub.send(Publish("t", b"%d" % n, Q2, packet_id=n), now=1.0)
    assert publishes(a)
    publishes(b)
    a.inner.core.connection_lost(3.0)
    assert publishes(b) == []  # [MQTT-4.8.2-5]


def test_a_5_0_session_does_not_resend_while_its_client_is_connected() -> None:
    """Resending happens only on reconnection, never at another time [MQTT-4.4.0-1]."""
    world = World(Config(port=0, retry_interval=1.0))
    sub, _ = connect5(world, "sub")
    subscribe5(sub, Subscription("t", Q1))
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"x", Q1, packet_id=1), now=1.0)
    assert len(publishes(sub)) == 1
    world.table.tick(10.0)
    assert publishes(sub) == []  # only on reconnection [MQTT-4.4.0-1]


def reconnect(world: World, now: float, properties: Properties) -> Client5:
    client = accept5(world, now)
    client.send(Connect(V5, "sub", clean_session=False, properties=properties), now=now)
    return client


def test_on_reconnection_resends_stay_within_the_new_receive_maximum() -> None:
    world = World()
    sub, _ = connect5(world, "sub", properties=KEEP)
    subscribe5(sub, Subscription("t", Q1))
    pub, _ = connect5(world, "pub")
    for n in range(1, 6):
        pub.send(Publish("t", b"%d" % n, Q1, packet_id=n), now=1.0)
    assert len(publishes(sub)) == 5
    sub.inner.core.connection_lost(2.0)
    again = reconnect(world, 3.0, Properties(session_expiry_interval=100, receive_maximum=2))
    first = publishes(again)
    assert [(p.payload, p.dup) for p in first] == [(b"1", True), (b"2", True)]  # [MQTT-3.3.4-9]
    again.send(PubAck(first[0].packet_id or 0), now=4.0)
    assert [p.payload for p in publishes(again)] == [b"3"]  # one out, the next in


def test_a_message_too_large_for_the_reconnected_client_is_completed_not_retried() -> None:
    """Too large for the client's new Maximum Packet Size: discarded as if sent, so no
    longer in flight [MQTT-3.1.2-25]."""
    world = World()
    sub, _ = connect5(world, "sub", properties=KEEP)
    subscribe5(sub, Subscription("t", Q1))
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"x" * 200, Q1, packet_id=1), now=1.0)
    assert len(publishes(sub)) == 1
    sub.inner.core.connection_lost(2.0)
    reconnect(world, 3.0, Properties(session_expiry_interval=100, maximum_packet_size=100))
    session = world.table.sessions["sub"]
    assert not session.inflight  # [MQTT-3.1.2-25]
    assert session.dropped == 1


def test_the_brokers_disconnect_fits_the_clients_maximum_packet_size() -> None:
    """The broker's DISCONNECT stays within the client's Maximum Packet Size
    [MQTT-3.1.2-24]."""
    world = World(Config(port=0, topic_alias_maximum=2))
    client, _ = connect5(world, "small", properties=Properties(maximum_packet_size=20))
    client.send(Publish("t", b"x", properties=Properties(topic_alias=9)), now=1.0)
    disconnects = [p for p in client.received() if isinstance(p, Disconnect)]
    assert len(disconnects) == 1
    assert len(encode(disconnects[0], V5)) <= 20  # the Reason String left out [MQTT-3.1.2-24]
    assert disconnects[0].reason_code == R.TOPIC_ALIAS_INVALID


def test_a_failed_re_authentication_is_disconnect_0x87() -> None:
    """A failed re-authentication: DISCONNECT and the close [MQTT-4.12.1-2]."""
    world = scram_world()
    client, _scram, connack = scram_connect(world, "pencil")
    assert connack.return_code == R.SUCCESS
    impostor = ScramSha256Client("alice", "wrong")
    client.send(Auth(R.REAUTHENTICATE, Properties(
        authentication_method=SCRAM_SHA_256, authentication_data=impostor.initial_data())),
        now=1.0)
    [challenge] = client.received()
    assert isinstance(challenge, Auth)
    client.send(Auth(R.CONTINUE_AUTHENTICATION, Properties(
        authentication_method=SCRAM_SHA_256,
        authentication_data=impostor.challenge(challenge.properties.authentication_data))),
        now=1.1)
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == R.NOT_AUTHORIZED  # [MQTT-4.12.1-2]
    assert client.closed()
    assert world.supervisor.crashes == 0


def test_a_wildcard_filter_where_wildcards_are_unavailable_gets_0xa2() -> None:
    world = World(Config(port=0, refuse_wildcard_subscriptions=True))
    client, connack = connect5(world, "c")
    assert connack.properties.wildcard_subscription_available == 0
    suback = subscribe5(client, Subscription("a/+", Q1), Subscription("a/b", Q1))
    assert suback.return_codes == (R.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, 1)


def test_authentication_data_without_a_method_is_refused_with_0x82() -> None:
    props = Properties(authentication_data=b"data")
    assert refusal(World(), Connect(V5, "c", properties=props)) == R.PROTOCOL_ERROR
