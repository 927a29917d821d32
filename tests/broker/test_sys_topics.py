"""The broker's status under ``$SYS/broker/...`` (issue 18): the sans-IO choice of what
to publish (only what changed, the version once), and over sockets: the values arrive
retained and follow connects and disconnects, a ``#`` subscriber gets none
[MQTT-4.7.2-1], ``sys_interval = 0`` publishes nothing, a client cannot overwrite them,
and the ACL's read rules hide them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from mqttref import __version__
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.sys_topics import BrokerStatus, SysTopics, is_sys_topic, payloads
from mqttref.impl.codec.codec import Decoder, Role
from mqttref.impl.codec.errors import ConfigError, ReasonCode
from mqttref.impl.codec.packets import (
    Connect,
    Packet,
    ProtocolLevel,
    PubAck,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Will,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import RawClient

V311, V5 = ProtocolLevel.MQTT_3_1_1, ProtocolLevel.MQTT_5
SYS = "$SYS/broker/"
VERSION = f"mqttref version {__version__}".encode()

STATUS = BrokerStatus(
    uptime=12.7, clients_connected=2, clients_disconnected=1, clients_maximum=3,
    bytes_received=100, bytes_sent=200, messages_sent=7, messages_received=8, subscriptions=4,
    retained=5,
    store_messages=6, store_bytes=300,
)


# The sans-IO part ------------------------------------------------------------------------


def test_the_first_update_publishes_every_topic_with_mosquittos_names_and_formats() -> None:
    due = dict(SysTopics("1.2.3").due(STATUS))
    assert due == {
        SYS + "version": b"mqttref version 1.2.3",
        SYS + "uptime": b"12 seconds",
        SYS + "clients/connected": b"2",
        SYS + "clients/disconnected": b"1",
        SYS + "clients/total": b"3",
        SYS + "clients/maximum": b"3",
        SYS + "bytes/received": b"100",
        SYS + "bytes/sent": b"200",
        SYS + "messages/received": b"8",
        SYS + "messages/sent": b"7",
        SYS + "subscriptions/count": b"4",
        SYS + "retained messages/count": b"5",
        SYS + "store/messages/count": b"6",
        SYS + "store/messages/bytes": b"300",
    }


def test_later_updates_publish_only_the_values_that_changed_and_the_version_never_again(
) -> None:
    sys_topics = SysTopics("1.2.3")
    sys_topics.due(STATUS)
    assert sys_topics.due(STATUS) == []
    assert sys_topics.due(attrs.evolve(STATUS, uptime=12.9)) == []  # still "12 seconds"
    later = attrs.evolve(STATUS, uptime=13.0, clients_connected=1, bytes_sent=250)
    assert sys_topics.due(later) == [
        (SYS + "uptime", b"13 seconds"),
        (SYS + "clients/connected", b"1"),
        (SYS + "clients/total", b"2"),
        (SYS + "bytes/sent", b"250"),
    ]
    assert sys_topics.last == payloads(later, "1.2.3")


def test_the_sys_tree_is_sys_itself_and_what_lies_below_it() -> None:
    assert is_sys_topic("$SYS")
    assert is_sys_topic("$SYS/broker/uptime")
    assert is_sys_topic("$SYS/")
    assert not is_sys_topic("$SYSTEM/x")
    assert not is_sys_topic("SYS/x")
    assert not is_sys_topic("a/$SYS")
    assert not is_sys_topic("$sys/x")


@pytest.mark.parametrize("value", [-1, "10", True, 1e10])
def test_sys_interval_must_be_a_number_of_seconds(value: object) -> None:
    with pytest.raises(ConfigError, match="sys_interval"):
        Config(sys_interval=value)  # type: ignore[arg-type]


# Over sockets ----------------------------------------------------------------------------


class Client:
    """A raw client at one protocol level."""

    def __init__(self, port: int, client_id: str, level: ProtocolLevel = V311, *,
                 user: str | None = None, password: bytes | None = None,
                 clean: bool = True) -> None:
        self.raw = RawClient(port)
        self.level = level
        self.raw.decoder = Decoder(role=Role.CLIENT, protocol_level=level)
        self.send(Connect(level, client_id, clean, username=user, password=password))
        assert self.raw.receive().return_code == 0  # type: ignore[union-attr]

    def send(self, packet: Packet) -> None:
        self.raw.send(packet, self.level)

    def subscribe(self, *filters: str) -> tuple[int, ...]:
        self.send(Subscribe(1, tuple(Subscription(f, QoS.AT_MOST_ONCE) for f in filters)))
        packet = self.raw.receive()
        assert isinstance(packet, SubAck), packet
        return tuple(packet.return_codes)

    def publishes(self, seconds: float) -> list[Publish]:
        """The PUBLISHes that arrive within ``seconds``."""
        got: list[Publish] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                packet = self.raw.receive(left)
            except TimeoutError:
                break
            if isinstance(packet, Publish):
                got.append(packet)
        return got

    def wait_for(self, topic: str, payload: bytes, timeout: float = 3.0) -> Publish:
        """The first PUBLISH of ``payload`` on ``topic``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        seen: list[tuple[str, bytes]] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                packet = self.raw.receive(left)
            except TimeoutError:
                break
            if isinstance(packet, Publish):
                if (packet.topic, packet.payload) == (topic, payload):
                    return packet
                seen.append((packet.topic, packet.payload))
        raise AssertionError(f"no {payload!r} on {topic}; got {seen}")

    def close(self) -> None:
        self.raw.sock.close()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def test_a_subscriber_gets_the_values_retained_and_clients_connected_follows_the_clients(
        start_broker: Callable[..., BrokerThread], clients: list[Client]) -> None:
    broker = start_broker(sys_interval=0.1)
    port = broker.port
    watcher = Client(port, "watcher")
    clients.append(watcher)
    assert watcher.subscribe(SYS + "#") == (0,)
    first = {p.topic: p for p in watcher.publishes(0.05)}  # the retained values, at once
    assert first[SYS + "version"].payload == VERSION
    assert all(p.retain for p in first.values())
    assert first[SYS + "uptime"].payload.endswith(b" seconds")
    watcher.wait_for(SYS + "clients/connected", b"1")
    other = Client(port, "other", clean=False)
    watcher.wait_for(SYS + "clients/connected", b"2")
    other.close()
    watcher.wait_for(SYS + "clients/connected", b"1")
    watcher.wait_for(SYS + "clients/disconnected", b"1")  # its session is kept
    late = Client(port, "late")
    clients.append(late)
    late.subscribe(SYS + "clients/maximum", SYS + "version")
    got = {p.topic: p for p in late.publishes(0.05)}
    assert got[SYS + "clients/maximum"].retain
    assert got[SYS + "version"].payload == VERSION


def test_messages_received_counts_every_packet_the_clients_sent(
        start_broker: Callable[..., BrokerThread], clients: list[Client]) -> None:
    broker = start_broker(sys_interval=0.1)
    watcher = Client(broker.port, "watcher")
    clients.append(watcher)
    watcher.subscribe(SYS + "messages/received")
    watcher.wait_for(SYS + "messages/received", b"2")  # its CONNECT and SUBSCRIBE
    clients.append(Client(broker.port, "other"))
    watcher.wait_for(SYS + "messages/received", b"3")


def test_a_wildcard_subscriber_gets_no_sys_topic(
        start_broker: Callable[..., BrokerThread], clients: list[Client]) -> None:
    """[MQTT-4.7.2-1]: filters starting with # or + do not match topics starting with $."""
    broker = start_broker(sys_interval=0.05)
    everything = Client(broker.port, "everything")
    clients.append(everything)
    assert everything.subscribe("#", "+/broker/#", "+/+/uptime") == (0, 0, 0)
    assert [p.topic for p in everything.publishes(0.3)] == []
    assert broker.call(lambda b: b.publish_sys_topics(1e9)) > 0  # it does publish


def test_the_values_are_retained_in_memory_but_not_written_to_the_store(
        tmp_path: Path, start_broker: Callable[..., BrokerThread]) -> None:
    """This run's status: an uptime kept across a restart would be wrong."""
    broker = start_broker(sys_interval=60, store="sqlite", data_dir=str(tmp_path))
    retained = broker.call(lambda b: sorted(
        s.name for s in b.registry.topics.values() if s.retained is not None))
    assert SYS + "version" in retained
    assert SYS + "uptime" in retained
    assert broker.call(lambda b: [m.topic for m in b.store.retained()]) == []


def test_sys_interval_0_publishes_nothing(
        start_broker: Callable[..., BrokerThread], clients: list[Client]) -> None:
    broker = start_broker(sys_interval=0)
    watcher = Client(broker.port, "watcher")
    clients.append(watcher)
    assert watcher.subscribe("$SYS/#") == (0,)
    assert watcher.publishes(0.3) == []
    assert broker.call(lambda b: b.registry.topics.names()) == []


@pytest.mark.parametrize(("level", "ack"), [(V311, PubAck(1)),
                                            (V5, PubAck(1, ReasonCode.NOT_AUTHORIZED))])
def test_a_client_publish_into_sys_is_refused_and_overwrites_nothing(
        start_broker: Callable[..., BrokerThread], clients: list[Client],
        level: ProtocolLevel, ack: PubAck) -> None:
    """As mosquitto: acknowledged at 3.1.1 (it cannot refuse one) and at 5.0 refused with
    0x87 Not authorized; routed to nobody, retained nowhere."""
    broker = start_broker(sys_interval=60)  # one update, at start: nothing overwrites later
    watcher = Client(broker.port, "watcher")
    forger = Client(broker.port, "forger", level)
    clients.extend((watcher, forger))
    watcher.subscribe("$SYS/#")
    watcher.publishes(0.05)  # the retained values
    for topic, packet_id in ((SYS + "version", 1), ("$SYS/new", 1), ("$SYS", 1)):
        forger.send(Publish(topic, b"forged", QoS.AT_LEAST_ONCE, True, packet_id=packet_id))
        assert forger.raw.receive() == ack
    assert watcher.publishes(0.1) == []
    late = Client(broker.port, "late")
    clients.append(late)
    late.subscribe("$SYS/#", "$SYS")
    got = {p.topic: p.payload for p in late.publishes(0.1)}
    assert got[SYS + "version"] == VERSION
    assert "$SYS/new" not in got
    assert "$SYS" not in got


def test_a_will_into_sys_is_dropped_and_overwrites_nothing(
        start_broker: Callable[..., BrokerThread], clients: list[Client]) -> None:
    """A will is the client's PUBLISH: accepted at CONNECT, as mosquitto does, and
    dropped when its time comes, so a client cannot forge a $SYS value by leaving."""
    broker = start_broker(sys_interval=60)
    watcher = Client(broker.port, "watcher")
    clients.append(watcher)
    watcher.subscribe("$SYS/#")
    watcher.publishes(0.05)  # the retained values
    raw = RawClient(broker.port)
    raw.send(Connect(V311, "leaver", True, 60, Will(SYS + "version", b"forged", QoS(1), True)),
             V311)
    assert raw.receive().return_code == 0  # type: ignore[union-attr]
    raw.sock.close()  # no DISCONNECT: the will is due
    assert watcher.publishes(0.2) == []
    late = Client(broker.port, "late")
    clients.append(late)
    late.subscribe(SYS + "version")
    assert [p.payload for p in late.publishes(0.1)] == [VERSION]


ACL = """\
user watcher
topic read $SYS/#
topic deny $SYS/broker/bytes/#

user spy
topic read #
"""


def test_the_acl_read_rules_hide_sys_values(
        tmp_path: Path, start_broker: Callable[..., BrokerThread],
        clients: list[Client]) -> None:
    """Read access is checked per subscriber at delivery: a deny rule withholds part of
    the tree, and ``topic read #`` grants no ``$SYS`` [MQTT-4.7.2-1]."""
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    broker = start_broker(sys_interval=0.05, acl_file=str(acl),
                          users={"watcher": "w", "spy": "s"})
    watcher = Client(broker.port, "w1", user="watcher", password=b"w")
    spy = Client(broker.port, "s1", user="spy", password=b"s")
    clients.extend((watcher, spy))
    assert spy.subscribe("$SYS/#", "#") == (0x80, 0)
    assert watcher.subscribe("$SYS/#") == (0,)
    topics = {p.topic for p in watcher.publishes(0.3)}
    assert SYS + "version" in topics
    assert SYS + "uptime" in topics
    assert not {t for t in topics if t.startswith(SYS + "bytes/")}
    assert spy.publishes(0.05) == []
