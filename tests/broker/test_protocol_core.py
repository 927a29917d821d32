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
from mqttref.impl.broker.protocol import HANDLERS, Connection, unexpected
from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.broker.supervisor import ConnectionSupervisor
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
    peer: str = "10.0.0.1:1234"
    identity: str | None = None
    aborted: bool = False

    def abort(self) -> None:
        self.aborted = True

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
    supervisor: ConnectionSupervisor = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.table = SessionTable(self.config, MemoryStore())
        self.supervisor = ConnectionSupervisor(self.config)
        self.ports = BrokerPorts(config=self.config, sessions=self.table,
                                 router=self.table.registry, memory=self.table.memory,
                                 connections=self.supervisor)

    def accept(self, now: float = 0.0, peer: str = "10.0.0.1:1234") -> Client:
        edge = RecordingEdge(peer=peer)
        client = Client(Connection(self.ports, edge, now), edge)
        self.supervisor.adopt(client.core, edge)
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


# --- isolation: one slow client costs only itself ------------------------------------------


def published(packets: list[Packet]) -> list[bytes]:
    return [p.payload for p in packets if isinstance(p, Publish)]


def acknowledge(client: Client, *, now: float) -> None:
    """The client answers every QoS 1 PUBLISH it was sent since the last call."""
    for packet in client.received():
        if isinstance(packet, Publish) and packet.packet_id is not None:
            client.send(PubAck(packet.packet_id), now=now)


def test_a_publisher_never_waits_for_a_congested_subscriber(world: World) -> None:
    slow = world.connect("slow")
    subscribe(slow, "t", Q1)
    slow.received()
    slow.core.writing_paused()  # its socket's buffer is full
    pub = world.connect("pub")
    pub.send(Publish("t", b"m", Q1, packet_id=1), now=1.0)
    assert pub.reading()
    assert pub.received() == [PubAck(1)]
    assert world.table.sessions["slow"].queued_bytes > 0  # the message waits for it...
    slow.core.writing_resumed(2.0)
    assert published(slow.received()) == [b"m"]  # ...and goes once it drains


def test_a_subscriber_that_never_acknowledges_does_not_slow_a_publisher() -> None:
    world = World(Config(port=0, max_inflight=5, max_queued=10))
    greedy = world.connect("greedy")
    subscribe(greedy, "#", Q1)
    good = world.connect("good")
    subscribe(good, "t", Q1)
    pub = world.connect("pub")
    for n in range(1, 51):
        pub.send(Publish("t", b"%d" % n, Q1, packet_id=n), now=float(n))
        assert pub.reading()
        assert pub.received() == [PubAck(n)]
        acknowledge(good, now=float(n))
    session = world.table.sessions["greedy"]
    assert len(session.inflight) == 5
    assert len(session.queue) == 10
    assert session.dropped == 35  # the newest go: its own loss, counted
    assert world.table.sessions["good"].dropped == 0


def test_a_session_queue_is_bounded_in_bytes_as_well_as_in_messages() -> None:
    world = World(Config(port=0, max_inflight=1, max_queued_bytes=5_000))
    greedy = world.connect("greedy")
    subscribe(greedy, "t", Q1)
    pub = world.connect("pub")
    for n in range(1, 11):
        pub.send(Publish("t", b"x" * 1_000, Q1, packet_id=n), now=1.0)
    session = world.table.sessions["greedy"]
    assert len(session.inflight) == 1
    assert 0 < session.queued_bytes <= 5_000
    assert len(session.queue) + session.dropped == 9
    assert session.dropped >= 4


def test_the_memory_mark_pauses_a_publisher_until_the_queues_drain(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World(Config(port=0, max_inflight=1, memory_high_water=10_000))
    slow = [world.connect(f"slow{n}") for n in range(3)]
    for client in slow:
        subscribe(client, "t", Q1)
        client.received()
    pub = world.connect("pub")
    n = 0
    while pub.reading():
        n += 1
        pub.send(Publish("t", b"x" * 1_000, Q1, packet_id=n), now=1.0)
        assert n < 100
    assert world.table.memory.queued_bytes <= 10_000
    assert pub.core.get_timer() == 1.0 + world.config.backpressure_timeout
    # The log says so, naming the largest queues.
    assert "memory_high_water reached" in caplog.text
    assert "'slow0'" in caplog.text
    for client in slow:  # the readers take their messages: the queues drain
        for _ in range(n):
            acknowledge(client, now=1.5)
    assert world.table.memory.queued_bytes <= world.table.memory.low_water
    assert pub.reading()


def test_the_pause_at_the_memory_mark_lasts_at_most_the_backpressure_timeout() -> None:
    world = World(Config(port=0, max_inflight=1, memory_high_water=3_000))
    slow = world.connect("slow")
    subscribe(slow, "t", Q1)
    pub = world.connect("pub")
    for n in range(1, 6):
        pub.send(Publish("t", b"x" * 1_000, Q1, packet_id=n), now=1.0)
    assert not pub.reading()
    pub.core.timer(1.0 + world.config.backpressure_timeout)
    assert pub.reading()
    # The wait is over: the next deadline is keep alive's (the default CONNECT has 60 s).
    assert pub.core.get_timer() == 1.0 + 60 * world.config.keep_alive_factor


def test_a_client_that_does_not_read_our_answers_is_not_read_either(world: World) -> None:
    pub = world.connect("pub", keep_alive=10)
    pub.edge.buffered = world.config.write_buffer_max + 1
    pub.core.writing_paused()
    assert not pub.reading()  # its own flow control: TCP now slows it
    pub.core.timer(100.0)
    assert not pub.closed()  # its silence is ours: keep alive does not expire
    pub.edge.buffered = 0
    pub.core.writing_resumed(101.0)
    assert pub.reading()


def test_a_long_queue_is_encoded_a_batch_at_a_time() -> None:
    world = World(Config(port=0, write_buffer_limit=10_000, max_inflight=100))
    pub = world.connect("pub")
    reader = world.connect("reader", clean_session=False)
    subscribe(reader, "t", Q1)
    reader.core.connection_lost(1.0)
    for n in range(1, 51):
        pub.send(Publish("t", b"x" * 1_000, Q1, packet_id=n), now=1.0)
    reader = world.accept(2.0)
    reader.send(Connect(V311, "reader", clean_session=False), now=2.0)
    batches = []
    while data := reader.core.data_to_send():
        batches.append(len(data))
    assert max(batches) < 10_000 + 1_100  # at most one message beyond the limit
    assert sum(batches) > 50_000  # and all 50 went out, batch by batch


def test_a_subscriber_that_takes_nothing_for_the_stall_timeout_is_closed() -> None:
    world = World(Config(port=0, max_inflight=1, stall_timeout=5.0))
    stuck = world.connect("stuck")
    subscribe(stuck, "t", Q1)
    busy = world.connect("busy")
    subscribe(busy, "t", Q1)
    pub = world.connect("pub")
    for n in range(1, 4):
        pub.send(Publish("t", b"m", Q1, packet_id=n), now=1.0)
    for now in (2.0, 4.0, 6.5):
        acknowledge(busy, now=now)  # slow but steady: it acknowledges
        world.supervisor.sweep(now)
    assert stuck.closed()
    assert stuck.core.close_reason == "stalled"
    assert not busy.closed()
    assert not pub.closed()


def test_without_a_stall_timeout_a_stuck_subscriber_stays(world: World) -> None:
    stuck = world.connect("stuck")
    subscribe(stuck, "t", Q1)
    stuck.core.writing_paused()
    pub = world.connect("pub")
    pub.send(Publish("t", b"m", Q1, packet_id=1), now=1.0)
    world.supervisor.sweep(10_000.0)
    assert not stuck.closed()


# --- the listener's caps -------------------------------------------------------------------


def test_sockets_without_connect_beyond_the_pending_cap_close_the_oldest() -> None:
    world = World(Config(port=0, max_pending_connections=3, max_pending_per_address=100))
    silent = [world.accept(peer=f"10.0.0.{n}:1") for n in range(3)]
    newest = world.accept(peer="10.0.0.9:1")
    assert silent[0].closed()
    assert not silent[1].closed()
    assert not newest.closed()
    newest.send(Connect(V311, "good"), now=0.5)
    assert newest.received() == [ConnAck(False, ConnectReturnCode.ACCEPTED)]


def test_one_address_cannot_take_every_pending_slot() -> None:
    world = World(Config(port=0, max_pending_connections=100, max_pending_per_address=2))
    a = [world.accept(peer=f"10.0.0.1:{n}") for n in range(3)]
    b = world.accept(peer="10.0.0.2:1")
    assert [c.closed() for c in a] == [True, False, False]
    assert not b.closed()


def test_max_connections_counts_connected_clients_not_silent_sockets() -> None:
    world = World(Config(port=0, max_connections=2, max_pending_connections=100))
    for n in range(10):
        world.accept(peer=f"10.0.0.{n}:1")  # silent
    world.connect("a")
    world.connect("b")
    third = world.accept()
    third.send(Connect(V311, "c"), now=0.0)
    assert third.received() == [ConnAck(False, ConnectReturnCode.SERVER_UNAVAILABLE)]
    assert world.supervisor.connected == 2


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
