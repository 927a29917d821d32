"""MQTT 5.0 in the broker's protocol core, driven with no event loop.

The same sans-IO parts as ``test_protocol_core.py`` (session table, registry,
memory store, connection supervisor), with clients that speak level 5: what
CONNACK states, session expiry and Clean Start, topic aliases, reason codes on
acknowledgements, the server's DISCONNECT on every close it starts, and
messages crossing levels.
"""

from __future__ import annotations

import attrs
import pytest

from mqttref.impl.broker.config import Config
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from tests.broker.test_protocol_core import Client, RecordingEdge, World

V5, V311 = ProtocolLevel.MQTT_5, ProtocolLevel.MQTT_3_1_1
Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
R = ReasonCode


@attrs.define
class Client5:
    """A level-5 client of the core: packets in at level 5, what it is sent decoded at 5."""

    inner: Client

    @property
    def core(self):  # type: ignore[no-untyped-def]
        return self.inner.core

    def send(self, *packets: Packet, now: float) -> None:
        self.inner.core.receive(b"".join(encode(p, V5) for p in packets), now)

    def received(self) -> list[Packet]:
        return self.inner.received()

    def closed(self) -> bool:
        return self.inner.closed()


def accept5(world: World, now: float = 0.0) -> Client5:
    edge = RecordingEdge()
    from mqttref.impl.broker.protocol import Connection

    client = Client(Connection(world.ports, edge, now), edge,
                    Decoder(role=Role.CLIENT, protocol_level=V5))
    world.supervisor.adopt(client.core, edge)
    return Client5(client)


def connect5(world: World, client_id: str, now: float = 0.0, *,
             properties: Properties = NO_PROPERTIES, **fields: object) -> tuple[Client5, ConnAck]:
    client = accept5(world, now)
    client.send(Connect(V5, client_id, properties=properties, **fields),  # type: ignore[arg-type]
                now=now)
    [connack] = client.received()
    assert isinstance(connack, ConnAck)
    return client, connack


def subscribe5(client: Client5, *subs: Subscription, now: float = 0.0) -> SubAck:
    client.send(Subscribe(1, subs), now=now)
    [suback] = [p for p in client.received() if isinstance(p, SubAck)]
    return suback


@pytest.fixture
def world() -> World:
    return World()


def disconnect_of(packets: list[Packet]) -> Disconnect:
    [disconnect] = [p for p in packets if isinstance(p, Disconnect)]
    return disconnect


# --- CONNECT and CONNACK -----------------------------------------------------------------


def test_connack_states_the_brokers_limits_and_choices(world: World) -> None:
    _client, connack = connect5(world, "a")
    assert connack.return_code == R.SUCCESS
    props = connack.properties
    assert props.maximum_packet_size == world.config.max_packet_size  # 3.2.2.3.6
    assert props.topic_alias_maximum == world.config.topic_alias_maximum  # 3.2.2.3.8
    assert props.receive_maximum == world.config.max_awaiting_rel  # 3.2.2.3.3
    assert props.subscription_identifier_available is None  # available: the default
    assert props.shared_subscription_available is None
    assert props.maximum_qos is None
    assert props.retain_available is None


def test_an_empty_client_id_is_assigned_one_and_told(world: World) -> None:
    """A zero-length ClientID is given one, returned in CONNACK's Assigned Client
    Identifier, and the session is kept under it [MQTT-3.1.3-7]."""
    _client, connack = connect5(world, "")
    assigned = connack.properties.assigned_client_identifier
    assert assigned  # [MQTT-3.2.2-16]
    assert assigned in world.table.sessions


def test_a_keep_alive_above_the_maximum_is_lowered_by_server_keep_alive() -> None:
    world = World(Config(port=0, max_keep_alive=30))
    client, connack = connect5(world, "k", keep_alive=600)
    assert connack.return_code == R.SUCCESS  # 3.1.1 would refuse; 5.0 can say so
    assert connack.properties.server_keep_alive == 30  # [MQTT-3.2.2-21]
    client.core.timer(30 * world.config.keep_alive_factor + 0.1)
    assert disconnect_of(client.received()).reason_code == R.KEEP_ALIVE_TIMEOUT


def test_refusals_carry_5_0_reason_codes() -> None:
    world = World(Config(port=0, users={"u": "p"}))
    client = accept5(world)
    client.send(Connect(V5, "c", username="u", password=b"wrong"), now=0.0)
    assert client.received() == [ConnAck(False, R.BAD_USER_NAME_OR_PASSWORD)]
    assert client.closed()
    client = accept5(world)
    client.send(Connect(V5, "x" * 2000), now=0.0)
    assert client.received() == [ConnAck(False, R.CLIENT_IDENTIFIER_NOT_VALID)]


def test_an_unsupported_authentication_method_is_refused_with_0x8c(world: World) -> None:
    client = accept5(world)
    client.send(Connect(V5, "c", properties=Properties(authentication_method="NOPE")),
                now=0.0)
    [connack] = client.received()
    assert isinstance(connack, ConnAck)
    assert (connack.session_present, connack.return_code) == (False, R.BAD_AUTHENTICATION_METHOD)


def test_a_session_expiry_above_the_maximum_is_lowered_and_told() -> None:
    world = World(Config(port=0, max_session_expiry_interval=100))
    _client, connack = connect5(world, "s",
                                properties=Properties(session_expiry_interval=1000))
    assert connack.properties.session_expiry_interval == 100


# --- sessions -----------------------------------------------------------------------------


def test_without_session_expiry_the_session_ends_with_the_connection(world: World) -> None:
    client, _ = connect5(world, "s", clean_session=False)
    client.send(Disconnect(), now=1.0)
    assert "s" not in world.table.sessions  # Session Expiry Interval absent = 0


def test_with_session_expiry_clean_start_0_resumes_the_session(world: World) -> None:
    """Clean Start 0 resumes the session kept after the close [MQTT-3.1.2-5], Session
    Present 1 [MQTT-3.2.2-3], its subscription there; Clean Start 1 gets Session Present 0
    [MQTT-3.2.2-2]."""
    props = Properties(session_expiry_interval=60)
    client, _ = connect5(world, "s", clean_session=False, properties=props)
    subscribe5(client, Subscription("t", Q1))
    client.send(Disconnect(), now=1.0)
    _again, connack = connect5(world, "s", 2.0, clean_session=False, properties=props)
    assert connack.session_present  # [MQTT-3.2.2-3]
    assert world.table.sessions["s"].subscriptions == {"t": Q1}
    _fresh, connack = connect5(world, "s", 3.0, clean_session=True, properties=props)
    assert not connack.session_present  # Clean Start 1 [MQTT-3.1.2-4]


def test_disconnect_may_not_set_an_expiry_where_connect_had_none(world: World) -> None:
    client, _ = connect5(world, "s")
    client.send(Disconnect(properties=Properties(session_expiry_interval=60)), now=1.0)
    assert disconnect_of(client.received()).reason_code == R.PROTOCOL_ERROR  # [MQTT-3.14.2-2]
    assert client.closed()


def test_disconnect_with_expiry_0_ends_a_persistent_session(world: World) -> None:
    client, _ = connect5(world, "s", properties=Properties(session_expiry_interval=60))
    client.send(Disconnect(properties=Properties(session_expiry_interval=0)), now=1.0)
    assert "s" not in world.table.sessions


def test_a_takeover_sends_the_old_connection_disconnect_0x8e(world: World) -> None:
    """A second connection with the Client Identifier: the old one is sent DISCONNECT 0x8E
    and closed [MQTT-3.1.4-3]."""
    old, _ = connect5(world, "same")
    _new, _ = connect5(world, "same", 1.0)
    assert disconnect_of(old.received()).reason_code == R.SESSION_TAKEN_OVER
    assert old.closed()


# --- PUBLISH and its acknowledgements -------------------------------------------------------


def test_puback_says_0x10_when_nobody_subscribed_and_0x00_when_someone_did(
    world: World,
) -> None:
    pub, _ = connect5(world, "pub")
    pub.send(Publish("nobody", b"m", Q1, packet_id=1), now=1.0)
    assert pub.received() == [PubAck(1, R.NO_MATCHING_SUBSCRIBERS)]
    sub, _ = connect5(world, "sub")
    subscribe5(sub, Subscription("t", Q1))
    pub.send(Publish("t", b"m", Q1, packet_id=2), now=1.0)
    assert pub.received() == [PubAck(2)]


def test_pubrel_for_an_unknown_packet_id_gets_pubcomp_0x92(world: World) -> None:
    client, _ = connect5(world, "c")
    client.send(PubRel(9), now=1.0)
    assert client.received() == [PubComp(9, R.PACKET_IDENTIFIER_NOT_FOUND)]


def test_properties_pass_through_unchanged_in_order(world: World) -> None:
    sub, _ = connect5(world, "sub")
    subscribe5(sub, Subscription("t", Q1))
    pub, _ = connect5(world, "pub")
    props = Properties(payload_format_indicator=1, content_type="text/plain",
                       response_topic="reply/here", correlation_data=b"\x00id",
                       user_properties=(("b", "2"), ("a", "1"), ("b", "3")))
    pub.send(Publish("t", b"m", Q1, packet_id=1, properties=props), now=1.0)
    [delivered] = [p for p in sub.received() if isinstance(p, Publish)]
    assert delivered.properties == props  # [MQTT-3.3.2-17, MQTT-3.3.2-18]


def test_messages_cross_levels_with_properties_dropped_or_absent(world: World) -> None:
    old = world.connect("old")  # a 3.1.1 client
    old.send(Subscribe(1, (Subscription("t", Q1),)), now=0.0)
    old.received()
    new, _ = connect5(world, "new")
    subscribe5(new, Subscription("t", Q1))
    new.send(Publish("t", b"from5", Q1, packet_id=1,
                     properties=Properties(user_properties=(("k", "v"),))),
             now=1.0)
    assert [p.payload for p in old.received() if isinstance(p, Publish)] == [b"from5"]
    old.send(Publish("t", b"from311", Q1, packet_id=2), now=2.0)
    got = [p for p in new.received() if isinstance(p, Publish)]
    assert [(p.payload, p.properties) for p in got] == [
        (b"from5", Properties(user_properties=(("k", "v"),))),
        (b"from311", NO_PROPERTIES),
    ]


def test_a_topic_alias_set_once_stands_for_its_topic(world: World) -> None:
    sub, _ = connect5(world, "sub")
    subscribe5(sub, Subscription("long/topic/name", Q0))
    pub, _ = connect5(world, "pub")
    pub.send(Publish("long/topic/name", b"1", properties=Properties(topic_alias=3)),
             Publish("", b"2", properties=Properties(topic_alias=3)), now=1.0)
    got = [p for p in sub.received() if isinstance(p, Publish)]
    assert [(p.topic, p.payload, p.properties.topic_alias) for p in got] == [
        ("long/topic/name", b"1", None), ("long/topic/name", b"2", None)]


@pytest.mark.parametrize("alias", [0, 11])
def test_a_topic_alias_outside_the_maximum_is_disconnect_0x94(world: World, alias: int) -> None:
    pub, _ = connect5(world, "pub")
    # Topic "t", property block: Topic Alias (0x23) = alias; our encoder refuses alias 0.
    pub.core.receive(b"\x30\x08\x00\x01t\x03\x23" + alias.to_bytes(2, "big") + b"1", 1.0)
    assert disconnect_of(pub.received()).reason_code == R.TOPIC_ALIAS_INVALID
    assert pub.closed()


def test_an_alias_never_set_is_a_protocol_error(world: World) -> None:
    pub, _ = connect5(world, "pub")
    pub.send(Publish("", b"1", properties=Properties(topic_alias=2)), now=1.0)
    assert disconnect_of(pub.received()).reason_code == R.PROTOCOL_ERROR


def test_a_qos_above_maximum_qos_is_disconnect_0x9b() -> None:
    world = World(Config(port=0, max_qos=1))
    pub, connack = connect5(world, "pub")
    assert connack.properties.maximum_qos == 1
    pub.send(Publish("t", b"1", Q2, packet_id=1), now=1.0)
    assert disconnect_of(pub.received()).reason_code == R.QOS_NOT_SUPPORTED


def test_retain_where_retain_is_not_available_is_disconnect_0x9a() -> None:
    world = World(Config(port=0, retain_available=False))
    pub, connack = connect5(world, "pub")
    assert connack.properties.retain_available == 0
    pub.send(Publish("t", b"1", retain=True), now=1.0)
    assert disconnect_of(pub.received()).reason_code == R.RETAIN_NOT_SUPPORTED


def test_the_clients_receive_maximum_bounds_what_is_in_flight_to_it(world: World) -> None:
    """The send quota starts above 0 and at most the client's Receive Maximum
    [MQTT-4.9.0-1]; at 0 no more QoS 1 PUBLISH until a PUBACK [MQTT-4.9.0-2]."""
    sub, _ = connect5(world, "sub", properties=Properties(receive_maximum=2))
    subscribe5(sub, Subscription("t", Q1))
    pub, _ = connect5(world, "pub")
    for n in range(1, 6):
        pub.send(Publish("t", b"%d" % n, Q1, packet_id=n), now=1.0)
    got = [p for p in sub.received() if isinstance(p, Publish)]
    assert [p.payload for p in got] == [b"1", b"2"]  # [MQTT-3.3.4-9]
    sub.send(PubAck(got[0].packet_id or 0), now=2.0)
    assert [p.payload for p in sub.received() if isinstance(p, Publish)] == [b"3"]


def test_a_packet_above_the_clients_maximum_is_not_sent_but_counted(world: World) -> None:
    """Nothing above the client's Maximum Packet Size is sent [MQTT-3.1.2-24]; the message
    is discarded as if sent [MQTT-3.1.2-25], and the next one goes."""
    sub, _ = connect5(world, "sub", properties=Properties(maximum_packet_size=100))
    subscribe5(sub, Subscription("t", Q1))
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"x" * 200, Q1, packet_id=1),
             Publish("t", b"small", Q1, packet_id=2), now=1.0)
    assert [p.payload for p in sub.received() if isinstance(p, Publish)] == [b"small"]
    assert world.table.sessions["sub"].dropped == 1  # [MQTT-3.1.2-25]


def test_a_queued_message_leaves_unsent_once_expired_and_else_carries_what_remains(
    world: World,
) -> None:
    props = Properties(session_expiry_interval=600)
    sub, _ = connect5(world, "sub", clean_session=False, properties=props)
    subscribe5(sub, Subscription("t", Q1))
    sub.send(Disconnect(), now=1.0)
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"short", Q1, packet_id=1,
                     properties=Properties(message_expiry_interval=5)),
             Publish("t", b"long", Q1, packet_id=2,
                     properties=Properties(message_expiry_interval=100)), now=1.0)
    again = accept5(world, 11.0)
    again.send(Connect(V5, "sub", clean_session=False, properties=props), now=11.0)
    got = [p for p in again.received() if isinstance(p, Publish)]
    assert [p.payload for p in got] == [b"long"]  # [MQTT-3.3.2-5]
    assert got[0].properties.message_expiry_interval == 90  # [MQTT-3.3.2-6]


# --- subscriptions ------------------------------------------------------------------------


def test_no_local_keeps_a_clients_own_messages_from_it(world: World) -> None:
    client, _ = connect5(world, "c")
    subscribe5(client, Subscription("t", Q0, no_local=True))
    client.send(Publish("t", b"own"), now=1.0)
    assert [p for p in client.received() if isinstance(p, Publish)] == []  # [MQTT-3.8.3-3]
    other, _ = connect5(world, "o")
    other.send(Publish("t", b"other"), now=1.0)
    assert [p.payload for p in client.received() if isinstance(p, Publish)] == [b"other"]


def test_retain_as_published_keeps_the_retain_flag_on_forwarded_messages(
    world: World,
) -> None:
    rap, _ = connect5(world, "rap")
    subscribe5(rap, Subscription("t", Q0, retain_as_published=True))
    plain, _ = connect5(world, "plain")
    subscribe5(plain, Subscription("t", Q0))
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"r", retain=True), now=1.0)
    assert [p.retain for p in rap.received() if isinstance(p, Publish)] == [True]
    assert [p.retain for p in plain.received() if isinstance(p, Publish)] == [False]


@pytest.mark.parametrize(("handling", "first", "again"), [(0, 1, 1), (1, 1, 0), (2, 0, 0)])
def test_retain_handling_decides_when_retained_messages_are_sent(
    world: World, handling: int, first: int, again: int,
) -> None:
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"kept", retain=True), now=0.0)
    sub, _ = connect5(world, "sub")
    sub.send(Subscribe(1, (Subscription("t", Q0, retain_handling=handling),)), now=1.0)
    assert len([p for p in sub.received() if isinstance(p, Publish)]) == first
    sub.send(Subscribe(2, (Subscription("t", Q0, retain_handling=handling),)), now=2.0)
    assert len([p for p in sub.received() if isinstance(p, Publish)]) == again


def test_unsuback_says_0x11_for_a_filter_never_subscribed(world: World) -> None:
    client, _ = connect5(world, "c")
    subscribe5(client, Subscription("t", Q1))
    client.send(Unsubscribe(2, ("t", "never")), now=1.0)
    assert client.received() == [UnsubAck(2, (R.SUCCESS, R.NO_SUBSCRIPTION_EXISTED))]


# --- wills and the server's DISCONNECT ------------------------------------------------------


def test_disconnect_0x04_publishes_the_will_and_0x00_does_not(world: World) -> None:
    """DISCONNECT 0x00 deletes the will [MQTT-3.1.2-10], so the close that follows
    publishes none; 0x04 asks for it [MQTT-3.1.2-8]."""
    watcher, _ = connect5(world, "w")
    subscribe5(watcher, Subscription("wills/#", Q0))
    will = Will("wills/a", b"gone")
    a, _ = connect5(world, "a", will=will)
    a.send(Disconnect(R.DISCONNECT_WITH_WILL), now=1.0)
    b, _ = connect5(world, "b", will=Will("wills/b", b"gone"))
    b.send(Disconnect(), now=1.0)
    assert [p.topic for p in watcher.received() if isinstance(p, Publish)] == ["wills/a"]


def test_a_protocol_error_after_connack_is_disconnect_with_its_reason(world: World) -> None:
    """A malformed packet after CONNACK: DISCONNECT with its reason code, then the close
    [MQTT-4.13.1-1]."""
    client, _ = connect5(world, "c")
    client.inner.core.receive(b"\x62\x02\x00\x01", 1.0)  # PUBREL is fine...
    client.received()
    client.inner.core.receive(b"\x10\x00", 1.0)  # ...a second CONNECT is not
    reason = disconnect_of(client.received()).reason_code
    assert reason in (R.PROTOCOL_ERROR, R.MALFORMED_PACKET)
    assert client.closed()


def test_a_311_client_is_never_sent_disconnect(world: World) -> None:
    old = world.connect("old", keep_alive=10)
    old.core.timer(100.0)
    assert old.closed()
    assert old.received() == []  # 3.1.1 has no server DISCONNECT


# --- will delay and will properties ---------------------------------------------------------


def will_watcher(world: World) -> Client5:
    watcher, _ = connect5(world, "watcher")
    subscribe5(watcher, Subscription("wills/#", Q0))
    return watcher


def wills(watcher: Client5) -> list[Publish]:
    return [p for p in watcher.received() if isinstance(p, Publish)]


def test_a_will_carries_its_properties_but_not_its_delay(world: World) -> None:
    watcher = will_watcher(world)
    props = Properties(content_type="text/plain", user_properties=(("why", "lost"),))
    client, _ = connect5(world, "w", will=Will("wills/w", b"gone", properties=props))
    client.core.connection_lost(1.0)
    [will] = wills(watcher)
    assert will.properties == props  # 3.1.3.2: passed on as PUBLISH properties


def test_a_delayed_will_waits_for_its_delay(world: World) -> None:
    """The will goes once its Will Delay Interval has passed, not before [MQTT-3.1.2-8]."""
    watcher = will_watcher(world)
    session = Properties(session_expiry_interval=600)
    client, _ = connect5(world, "w", properties=session, will=Will(
        "wills/w", b"gone", properties=Properties(will_delay_interval=10)))
    client.core.connection_lost(1.0)
    world.table.tick(5.0)
    assert wills(watcher) == []
    world.table.tick(11.0)
    assert [w.payload for w in wills(watcher)] == [b"gone"]


def test_coming_back_before_the_delay_cancels_the_will(world: World) -> None:
    """A new connection for the session before the Will Delay Interval passes: the will is
    never sent [MQTT-3.1.3-9]."""
    watcher = will_watcher(world)
    session = Properties(session_expiry_interval=600)
    client, _ = connect5(world, "w", properties=session, will=Will(
        "wills/w", b"gone", properties=Properties(will_delay_interval=10)))
    client.core.connection_lost(1.0)
    connect5(world, "w", 2.0, clean_session=False, properties=session)
    world.table.tick(20.0)
    assert wills(watcher) == []  # [MQTT-3.1.3-9]


def test_a_session_that_ends_before_the_delay_publishes_the_will_then(world: World) -> None:
    """The session ends before the will delay: the will goes when the session ends
    [MQTT-3.1.2-8]."""
    watcher = will_watcher(world)
    client, _ = connect5(world, "w", will=Will(  # Session Expiry 0: ends with the connection
        "wills/w", b"gone", properties=Properties(will_delay_interval=100)))
    client.core.connection_lost(1.0)
    assert [w.payload for w in wills(watcher)] == [b"gone"]


def test_a_retained_message_keeps_its_properties_and_leaves_once_expired(
    world: World,
) -> None:
    pub, _ = connect5(world, "pub")
    props = Properties(content_type="text/plain", message_expiry_interval=10)
    pub.send(Publish("r", b"kept", retain=True, properties=props), now=0.0)
    early, _ = connect5(world, "early", 4.0)
    early.send(Subscribe(1, (Subscription("r", Q0),)), now=4.0)
    [got] = [p for p in early.received() if isinstance(p, Publish)]
    assert got.retain
    assert got.properties.content_type == "text/plain"
    assert got.properties.message_expiry_interval == 6  # what remains [MQTT-3.3.2-6]
    late, _ = connect5(world, "late", 11.0)
    late.send(Subscribe(1, (Subscription("r", Q0),)), now=11.0)
    assert [p for p in late.received() if isinstance(p, Publish)] == []
    assert world.table.registry.topics.get("r") is None or (
        world.table.registry.topics.get("r").retained is None)  # type: ignore[union-attr]


def test_with_send_topic_aliases_a_repeated_topic_goes_as_its_alias() -> None:
    """The broker's own aliases stay within the client's Topic Alias Maximum
    [MQTT-3.1.2-26]: with a maximum of 1, a second topic goes in full."""
    world = World(Config(port=0, send_topic_aliases=True))
    sub, _ = connect5(world, "sub", properties=Properties(topic_alias_maximum=1))
    subscribe5(sub, Subscription("a/#", Q1))
    pub, _ = connect5(world, "pub")
    for n, topic in enumerate(("a/long/topic", "a/long/topic", "a/other"), start=1):
        pub.send(Publish(topic, b"%d" % n, Q1, packet_id=n), now=1.0)
    got = [p for p in sub.received() if isinstance(p, Publish)]
    assert [(p.topic, p.properties.topic_alias) for p in got] == [
        ("a/long/topic", 1),  # the client learns the alias with the topic
        ("", 1),  # then the alias alone [MQTT-3.3.2-12]
        ("a/other", None),  # its maximum of 1 is used up: the topic in full
    ]


def test_without_the_clients_topic_alias_maximum_no_alias_is_sent() -> None:
    """Topic Alias Maximum absent: the broker sends no Topic Alias [MQTT-3.1.2-27]."""
    world = World(Config(port=0, send_topic_aliases=True))
    sub, _ = connect5(world, "sub")  # Topic Alias Maximum absent: 0 [MQTT-3.2.2-17]
    subscribe5(sub, Subscription("t", Q0))
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"1"), Publish("t", b"2"), now=1.0)
    assert [(p.topic, p.properties.topic_alias) for p in sub.received()
            if isinstance(p, Publish)] == [("t", None), ("t", None)]


def test_response_information_goes_only_to_a_client_that_asks() -> None:
    """Response Information only on request; without it none is returned [MQTT-3.1.2-28]."""
    world = World(Config(port=0, response_information="reply/%c/"))
    _asks, connack = connect5(world, "asks",
                              properties=Properties(request_response_information=1))
    assert connack.properties.response_information == "reply/asks/"
    _silent, connack = connect5(world, "silent")
    assert connack.properties.response_information is None  # [MQTT-3.1.2-28]
