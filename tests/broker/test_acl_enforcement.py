"""The ACL enforced over sockets (issue 18): SUBACK 0x80 / 0x87 for a denied filter, a
denied PUBLISH routed to nobody (3.1.1: still acknowledged; 5.0: 0x87), read access
checked per subscriber at delivery (retained messages too), %c and %u patterns, a
denied will, and SIGHUP reloading the files without dropping a client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqttref.impl.codec.codec import Decoder, Role
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Packet,
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
    Will,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peers import free_port, wait_for_port
from tests.helpers.raw_client import RawClient

V311, V5 = ProtocolLevel.MQTT_3_1_1, ProtocolLevel.MQTT_5

ACL = """\
# anonymous clients: only their own corner
pattern readwrite clients/%c/#
pattern read inbox/%u

user writer
topic write sensors/#
topic write other/#

user reader
topic read sensors/#
topic deny sensors/private/#

user spy
topic read #
"""
USERS = {"writer": "w", "reader": "r", "spy": "s"}


class Client:
    """A raw client at one protocol level, for reading exactly what the broker sends."""

    def __init__(self, port: int, client_id: str, user: str | None, level: ProtocolLevel,
                 will: Will | None = None) -> None:
        self.raw = RawClient(port)
        self.level = level
        self.raw.decoder = Decoder(role=Role.CLIENT, protocol_level=level)
        password = USERS[user].encode() if user is not None else None
        self.send(Connect(level, client_id, will=will, username=user, password=password))
        packet = self.raw.receive()
        assert isinstance(packet, ConnAck), packet
        self.connack = packet

    def send(self, packet: Packet) -> None:
        self.raw.send(packet, self.level)

    def receive(self) -> Packet | str:
        return self.raw.receive()

    def subscribe(self, *filters: str) -> tuple[int, ...]:
        self.send(Subscribe(1, tuple(Subscription(f, QoS.AT_LEAST_ONCE) for f in filters)))
        packet = self.raw.receive()
        assert isinstance(packet, SubAck), packet
        return tuple(packet.return_codes)

    def publish(self, topic: str, qos: QoS = QoS.AT_LEAST_ONCE, *, retain: bool = False,
                packet_id: int = 7) -> Packet | str | None:
        self.send(Publish(topic, b"m", qos, retain, packet_id=packet_id if qos else None))
        return self.raw.receive() if qos else None

    def topics(self) -> list[str]:
        """The topics of the PUBLISHes that arrive until the line goes quiet."""
        return [p.topic for p in self.raw.receive_all(quiet=0.2) if isinstance(p, Publish)]

    def close(self) -> None:
        self.raw.sock.close()


@pytest.fixture
def acl_broker(tmp_path: Path, start_broker: Callable[..., BrokerThread]) -> BrokerThread:
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    return start_broker(acl_file=str(acl), users=USERS)


@pytest.fixture
def connect(acl_broker: BrokerThread) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(client_id: str, user: str | None, level: ProtocolLevel = V311,
             will: Will | None = None) -> Client:
        made.append(Client(acl_broker.port, client_id, user, level, will))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.mark.parametrize(("level", "refused"), [(V311, 0x80), (V5, 0x87)])
def test_a_denied_filter_is_refused_in_suback_and_the_others_granted(
        connect: Callable[..., Client], level: ProtocolLevel, refused: int) -> None:
    reader = connect("r1", "reader", level)
    assert reader.subscribe("sensors/#", "other/#", "sensors/private/#") == (1, refused,
                                                                             refused)


def test_a_denied_publish_at_3_1_1_is_acknowledged_and_reaches_nobody(
        connect: Callable[..., Client]) -> None:
    spy = connect("s1", "spy")
    assert spy.subscribe("#") == (1,)
    reader = connect("r1", "reader")
    assert reader.publish("sensors/a") == PubAck(7)  # reader may not write
    assert reader.publish("sensors/b", QoS.EXACTLY_ONCE, packet_id=8) == PubRec(8)
    reader.send(PubRel(8))
    assert reader.receive() == PubComp(8)
    writer = connect("w1", "writer")
    assert writer.publish("sensors/c") == PubAck(7)
    assert spy.topics() == ["sensors/c"]


def test_a_denied_publish_at_5_0_gets_0x87_and_reaches_nobody(
        connect: Callable[..., Client]) -> None:
    spy = connect("s1", "spy")
    assert spy.subscribe("#") == (1,)
    reader = connect("r1", "reader", V5)
    assert reader.publish("sensors/a") == PubAck(7, 0x87)
    assert reader.publish("sensors/b", QoS.EXACTLY_ONCE, packet_id=8) == PubRec(8, 0x87)
    assert reader.publish("sensors/c", QoS.AT_MOST_ONCE) is None
    writer = connect("w1", "writer", V5)
    assert writer.publish("sensors/d") == PubAck(7)
    assert spy.topics() == ["sensors/d"]
    reader.send(PingReq())
    assert reader.receive() == PingResp()  # still connected


def test_read_access_is_checked_per_subscriber_at_delivery_retained_ones_too(
        connect: Callable[..., Client]) -> None:
    writer = connect("w1", "writer")
    for topic in ("sensors/private/r", "sensors/public/r"):
        assert writer.publish(topic, retain=True) == PubAck(7)
    reader = connect("r1", "reader")
    spy = connect("s1", "spy", V5)
    assert reader.subscribe("sensors/#") == (1,)
    assert sorted(reader.topics()) == ["sensors/public/r"]
    assert spy.subscribe("sensors/#") == (1,)
    assert sorted(spy.topics()) == ["sensors/private/r", "sensors/public/r"]
    assert writer.publish("sensors/private/live") == PubAck(7)
    assert writer.publish("sensors/public/live") == PubAck(7)
    assert reader.topics() == ["sensors/public/live"]
    assert spy.topics() == ["sensors/private/live", "sensors/public/live"]


def test_patterns_give_each_client_its_own_client_id_and_user_name_topics(
        connect: Callable[..., Client]) -> None:
    anonymous = connect("dev1", None)
    assert anonymous.subscribe("clients/dev1/#", "clients/dev2/#", "inbox/dev1") == (
        1, 0x80, 0x80)
    reader = connect("r1", "reader", V5)
    assert reader.subscribe("inbox/reader", "inbox/writer") == (1, 0x87)
    assert anonymous.publish("clients/dev1/x") == PubAck(7)
    assert anonymous.topics() == ["clients/dev1/x"]


@pytest.mark.parametrize(("level", "refused"), [(V311, 0x05), (V5, 0x87)])
def test_a_will_the_client_may_not_publish_refuses_the_connect(
        connect: Callable[..., Client], level: ProtocolLevel, refused: int) -> None:
    assert connect("r1", "reader", level, Will("sensors/x", b"gone")).connack.return_code \
        == refused
    assert connect("w1", "writer", level, Will("sensors/x", b"gone")).connack.return_code == 0


def test_sighup_reloads_the_acl_without_dropping_a_connected_client(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("user spy\ntopic read #\nuser writer\ntopic write nothing\n")
    config = tmp_path / "broker.toml"
    config.write_text(f'acl_file = "{acl}"\nusers = {{ spy = "s", writer = "w" }}\n')
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mqttref.cli", "broker", "-c", str(config), "--memory", "-p",
         str(port)], stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, process=process)
        spy = Client(port, "s1", "spy", V311)
        writer = Client(port, "w1", "writer", V5)
        assert spy.subscribe("sensors/#") == (1,)
        assert writer.publish("sensors/a") == PubAck(7, 0x87)
        acl.write_text("user spy\ntopic read #\nuser writer\ntopic write sensors/#\n")
        os.kill(process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while writer.publish("sensors/b") != PubAck(7):
            assert time.monotonic() < deadline, "the reload never took effect"
            time.sleep(0.05)
        assert spy.topics() == ["sensors/b"]
        acl.write_text("user spy\nbogus line\n")  # a bad file: the old rules stay
        os.kill(process.pid, signal.SIGHUP)
        time.sleep(0.3)
        assert writer.publish("sensors/c") == PubAck(7)
        assert spy.topics() == ["sensors/c"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert f"{acl}:2: unknown keyword 'bogus'" in stderr
