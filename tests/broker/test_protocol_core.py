"""The server's protocol core, driven with no event loop: bytes and time in, bytes out.

Each test builds the broker's real sans-IO parts (session table, registry,
memory store, back-pressure record) and one ``protocol.Connection`` per
client, whose edge is a recorder: what the core writes is decoded with the
client side of the real codec, and time moves only when a test says so.
The dispatch table is covered pair by pair, as h2's tests cover its state
machine: every (connection state, packet type) either reaches its handler or
is the protocol error the specification names.
"""

from __future__ import annotations

import attrs
import pytest

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.ports import BrokerPorts
from mqttref.impl.broker.pressure import Pressure
from mqttref.impl.broker.protocol import HANDLERS, Connection, unexpected
from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ProtocolError
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    ConnectReturnCode,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from mqttref.impl.flow import ConnectionState
from mqttref.impl.store import MemoryStore

V311 = ProtocolLevel.MQTT_3_1_1
Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE


@attrs.define
class RecordingEdge:
    """The network edge as the core sees it; here it only writes things down."""

    ready: int = 0
    closed: bool = False
    reading: bool = True
    buffered: int = 0
    peer: str = "test"

    def output_ready(self) -> None:
        self.ready += 1

    def close_after_writing(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def write_buffer_size(self) -> int:
        return self.buffered


@attrs.define
class Client:
    """One client's connection core, its edge, and a decoder for what it is sent."""

    core: Connection
    edge: RecordingEdge
    decoder: Decoder = attrs.field(factory=lambda: Decoder(role=Role.CLIENT,
                                                           protocol_level=V311))

    def send(self, *packets: Packet, now: float) -> None:
        self.core.receive(b"".join(encode(p, V311) for p in packets), now)

    def closed(self) -> bool:
        """Whether the core has had its edge close (a call: mypy must not narrow it)."""
        return self.edge.closed

    def reading(self) -> bool:
        """Whether the core lets its edge read (a call, for the same reason)."""
        return self.edge.reading

    def received(self) -> list[Packet]:
        """What the core wrote since the last call, as packets; the edge closing
        takes the bytes still waiting, like ``SocketEdge.close_after_writing``."""
        return list(self.decoder.feed(self.core.data_to_send()))


@attrs.define
class World:
    """The broker's sans-IO parts, and nothing that needs an event loop."""

    config: Config = attrs.field(factory=lambda: Config(port=0))
    table: SessionTable = attrs.field(init=False)
    ports: BrokerPorts = attrs.field(init=False)
    open: list[Connection] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.table = SessionTable(self.config, MemoryStore())
        self.ports = BrokerPorts(config=self.config, sessions=self.table,
                                 router=self.table.registry, pressure=Pressure(),
                                 connections=self.open)

    def accept(self, now: float = 0.0) -> Client:
        edge = RecordingEdge()
        client = Client(Connection(self.ports, edge, now), edge)
        self.open.append(client.core)
        return client

    def connect(self, client_id: str, now: float = 0.0, **fields: object) -> Client:
        client = self.accept(now)
        client.send(Connect(V311, client_id, **fields), now=now)  # type: ignore[arg-type]
        assert client.received() == [ConnAck(False, ConnectReturnCode.ACCEPTED)]
        return client


@pytest.fixture
def world() -> World:
    return World()


def subscribe(client: Client, topic_filter: str, qos: QoS, now: float = 0.0) -> None:
    client.send(Subscribe(1, (Subscription(topic_filter, qos),)), now=now)
    assert client.received() == [SubAck(1, (qos,))]


# --- CONNECT ---------------------------------------------------------------------------


def test_connect_is_answered_by_connack_first_and_opens_a_session(world: World) -> None:
    client = world.accept()
    client.send(Connect(V311, "a"), now=0.0)
    assert client.edge.ready == 1
    assert client.received() == [ConnAck(False, ConnectReturnCode.ACCEPTED)]  # [MQTT-3.2.0-1]
    assert client.core.state is ConnectionState.CONNECTED
    assert world.table.sessions["a"].connection is client.core


def test_a_refused_connect_answers_with_its_code_and_closes(world: World) -> None:
    client = world.accept()
    client.send(Connect(V311, "", clean_session=False), now=0.0)  # [MQTT-3.1.3-8]
    assert client.received() == [ConnAck(False, ConnectReturnCode.IDENTIFIER_REJECTED)]
    assert client.closed()
    assert client.core.state is ConnectionState.CLOSED
    assert "" not in world.table.sessions


def test_a_resumed_session_is_reported_present(world: World) -> None:
    first = world.connect("p", clean_session=False)
    first.send(Disconnect(), now=1.0)
    client = world.accept(2.0)
    client.send(Connect(V311, "p", clean_session=False), now=2.0)
    assert client.received() == [ConnAck(True, ConnectReturnCode.ACCEPTED)]  # [MQTT-3.2.2-2]


def test_a_second_connection_with_the_same_client_id_takes_over(world: World) -> None:
    old = world.connect("same")
    new = world.connect("same", now=1.0)
    assert old.closed()  # [MQTT-3.1.4-2]
    assert world.table.sessions["same"].connection is new.core


# --- PUBLISH at each QoS ---------------------------------------------------------------


def test_qos0_publish_reaches_a_subscriber(world: World) -> None:
    sub = world.connect("sub")
    subscribe(sub, "t/#", Q0)
    pub = world.connect("pub")
    pub.send(Publish("t/x", b"zero"), now=1.0)
    assert pub.received() == []
    assert sub.received() == [Publish("t/x", b"zero")]


def test_qos1_publish_is_acknowledged_and_delivered_with_its_own_packet_id(
    world: World,
) -> None:
    sub = world.connect("sub")
    subscribe(sub, "t", Q1)
    pub = world.connect("pub")
    pub.send(Publish("t", b"one", Q1, packet_id=7), now=1.0)
    assert pub.received() == [PubAck(7)]  # [MQTT-4.3.2-2]
    (delivered,) = sub.received()
    assert isinstance(delivered, Publish)
    assert (delivered.payload, delivered.qos, delivered.dup) == (b"one", Q1, False)
    assert delivered.packet_id is not None
    assert world.table.sessions["sub"].inflight
    sub.send(PubAck(delivered.packet_id), now=1.5)
    assert not world.table.sessions["sub"].inflight


def test_qos2_publish_walks_both_flows_and_is_delivered_once(world: World) -> None:
    sub = world.connect("sub")
    subscribe(sub, "t", Q2)
    pub = world.connect("pub")
    pub.send(Publish("t", b"two", Q2, packet_id=9), now=1.0)
    assert pub.received() == [PubRec(9)]
    pub.send(Publish("t", b"two", Q2, dup=True, packet_id=9), now=1.1)  # a re-send
    assert pub.received() == [PubRec(9)]
    (delivered,) = sub.received()  # once [MQTT-4.3.3-2]
    assert isinstance(delivered, Publish)
    assert delivered.packet_id is not None
    pub.send(PubRel(9), now=1.2)
    assert pub.received() == [PubComp(9)]
    sub.send(PubRec(delivered.packet_id), now=1.3)
    assert sub.received() == [PubRel(delivered.packet_id)]  # [MQTT-4.3.3-1]
    sub.send(PubComp(delivered.packet_id), now=1.4)
    assert not world.table.sessions["sub"].inflight


def test_subscribe_and_unsubscribe_are_acknowledged(world: World) -> None:
    client = world.connect("c")
    client.send(Subscribe(3, (Subscription("a/+", Q2), Subscription("b", Q0))), now=1.0)
    assert client.received() == [SubAck(3, (Q2, Q0))]  # [MQTT-3.8.4-1]
    client.send(Unsubscribe(4, ("a/+",)), now=2.0)
    assert client.received() == [UnsubAck(4)]  # [MQTT-3.10.4-4]
    assert world.table.sessions["c"].subscriptions == {"b": Q0}


def test_pingreq_is_answered(world: World) -> None:
    client = world.connect("c")
    client.send(PingReq(), now=1.0)
    assert client.received() == [PingResp()]  # [MQTT-3.12.4-1]


# --- time: CONNECT timeout, keep alive, the will ----------------------------------------


def test_no_connect_within_the_connect_timeout_closes_without_a_will(world: World) -> None:
    client = world.accept(now=10.0)
    deadline = client.core.get_timer()
    assert deadline == 10.0 + world.config.connect_timeout
    client.core.timer(deadline - 0.01)
    assert not client.closed()
    client.core.timer(deadline)
    assert client.closed()


def test_keep_alive_expiry_closes_and_publishes_the_will(world: World) -> None:
    watcher = world.connect("watcher")
    subscribe(watcher, "wills/#", Q0)
    will = Will("wills/k", b"gone", Q0)
    client = world.connect("k", now=5.0, keep_alive=2, will=will)
    deadline = client.core.get_timer()
    assert deadline == 5.0 + 2 * world.config.keep_alive_factor  # [MQTT-3.1.2-24]
    client.send(PingReq(), now=6.0)  # activity moves the deadline
    assert client.core.get_timer() == 6.0 + 2 * world.config.keep_alive_factor
    client.core.timer(deadline)  # the old deadline: nothing to do
    assert not client.closed()
    client.core.timer(6.0 + 2 * world.config.keep_alive_factor)
    assert client.closed()
    assert client.core.close_reason == "keep alive expired"
    assert watcher.received() == [Publish("wills/k", b"gone")]  # [MQTT-3.1.2-8]


def test_a_disconnect_discards_the_will(world: World) -> None:
    watcher = world.connect("watcher")
    subscribe(watcher, "wills/#", Q0)
    client = world.connect("d", will=Will("wills/d", b"gone"))
    client.send(Disconnect(), now=1.0)
    assert client.closed()
    assert watcher.received() == []  # [MQTT-3.14.4-3]


def test_a_lost_connection_publishes_the_will(world: World) -> None:
    watcher = world.connect("watcher")
    subscribe(watcher, "wills/#", Q0)
    client = world.connect("l", will=Will("wills/l", b"lost"))
    client.core.connection_lost(3.0)
    assert watcher.received() == [Publish("wills/l", b"lost")]


# --- back-pressure ------------------------------------------------------------------------


def test_a_publisher_feeding_a_congested_reader_pauses_until_it_drains(world: World) -> None:
    slow = world.connect("slow")
    subscribe(slow, "t", Q0)
    slow.core.writing_paused()  # the edge's buffer is full
    pub = world.connect("pub")
    pub.send(Publish("t", b"m"), now=1.0)
    assert not pub.reading()
    assert pub.core.get_timer() == 1.0 + world.config.backpressure_timeout
    slow.core.writing_resumed(1.5)
    assert pub.reading()


def test_a_publisher_stops_waiting_after_the_backpressure_timeout(world: World) -> None:
    slow = world.connect("slow")
    subscribe(slow, "t", Q0)
    slow.core.writing_paused()
    pub = world.connect("pub")
    pub.send(Publish("t", b"m"), now=1.0)
    assert not pub.reading()
    pub.core.timer(1.0 + world.config.backpressure_timeout)
    assert pub.reading()
    # The wait is over: the next deadline is keep alive's (the default CONNECT has 60 s).
    assert pub.core.get_timer() == 1.0 + 60 * world.config.keep_alive_factor
    # ...and the stalled reader slows nobody now.
    pub.send(Publish("t", b"n"), now=2.0)
    assert pub.reading()


# --- the dispatch table, pair by pair ------------------------------------------------------

SAMPLES: dict[PacketType, Packet] = {
    PacketType.CONNECT: Connect(V311, "again"),
    PacketType.CONNACK: ConnAck(False, ConnectReturnCode.ACCEPTED),
    PacketType.PUBLISH: Publish("t", b"p", Q1, packet_id=5),
    PacketType.PUBACK: PubAck(5),
    PacketType.PUBREC: PubRec(5),
    PacketType.PUBREL: PubRel(5),
    PacketType.PUBCOMP: PubComp(5),
    PacketType.SUBSCRIBE: Subscribe(5, (Subscription("t", Q0),)),
    PacketType.SUBACK: SubAck(5, (Q0,)),
    PacketType.UNSUBSCRIBE: Unsubscribe(5, ("t",)),
    PacketType.UNSUBACK: UnsubAck(5),
    PacketType.PINGREQ: PingReq(),
    PacketType.PINGRESP: PingResp(),
    PacketType.DISCONNECT: Disconnect(),
}


def in_state(world: World, state: ConnectionState) -> Client:
    if state is ConnectionState.CONNECTING:
        return world.accept()
    return world.connect("pair")


@pytest.mark.parametrize("packet_type", list(SAMPLES), ids=lambda t: t.name)
@pytest.mark.parametrize("state", [ConnectionState.CONNECTING, ConnectionState.CONNECTED],
                         ids=lambda s: s.name)
def test_every_state_and_packet_type_pair_is_handled_or_a_named_protocol_error(
    world: World, state: ConnectionState, packet_type: PacketType
) -> None:
    client = in_state(world, state)
    packet = SAMPLES[packet_type]
    if (state, packet_type) in HANDLERS:
        client.core.handle_packet(packet, 1.0)
        return
    with pytest.raises(ProtocolError) as raised:
        client.core.handle_packet(packet, 1.0)
    expected = unexpected(state, packet_type)
    assert raised.value.ref == expected.ref
    if state is ConnectionState.CONNECTING:
        assert raised.value.ref == "MQTT-3.1.0-1"
    elif packet_type is PacketType.CONNECT:
        assert raised.value.ref == "MQTT-3.1.0-2"
    else:
        assert packet_type in {PacketType.CONNACK, PacketType.SUBACK, PacketType.UNSUBACK,
                               PacketType.PINGRESP}


def test_the_table_names_only_handlers_the_core_has() -> None:
    for (state, _), name in HANDLERS.items():
        assert state in (ConnectionState.CONNECTING, ConnectionState.CONNECTED)
        assert callable(getattr(Connection, name))


def test_a_protocol_error_on_the_wire_closes_with_the_will(world: World) -> None:
    watcher = world.connect("watcher")
    subscribe(watcher, "wills/#", Q0)
    client = world.connect("bad", will=Will("wills/bad", b"violated"))
    client.send(SubAck(1, (Q0,)), now=1.0)  # a server's packet [MQTT-4.8.0-1]
    assert client.closed()
    assert watcher.received() == [Publish("wills/bad", b"violated")]


def test_a_closed_core_ignores_what_still_arrives(world: World) -> None:
    client = world.connect("c")
    client.send(Disconnect(), now=1.0)
    client.send(PingReq(), now=2.0)
    assert client.received() == []
