"""Every input of BAD-INPUTS.md that reaches a broker, sent on a raw socket.

Each test checks the specification's treatment for the offending connection
(a refusing CONNACK, a SUBACK 0x80, or a close) and that a bystander, a
client connected before the bad input, is still served afterwards.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    SUBACK_FAILURE,
    ConnAck,
    Connect,
    ConnectReturnCode,
    PingReq,
    PingResp,
    ProtocolLevel,
    PubAck,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Will,
)
from tests.broker.paho_client import Paho
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import CLOSED, RawClient


def string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def frame(first: int, body: bytes) -> bytes:
    length = len(body)
    header = bytearray([first])
    while True:
        byte, length = length % 128, length // 128
        header.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(header) + body


def publish_bytes(topic: str | bytes, payload: bytes = b"x", qos: int = 0,
                  packet_id: int = 1) -> bytes:
    body = string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return frame(0x30 | qos << 1, body)


def subscribe_bytes(topic_filter: str, qos: int = 0, packet_id: int = 1) -> bytes:
    return frame(0x82, struct.pack("!H", packet_id) + string(topic_filter) + bytes([qos]))


CONNECT = encode(Connect(ProtocolLevel.MQTT_3_1_1, "offender"))


class Bystander:
    """A client connected before the bad input; it must not notice anything."""

    def __init__(self, broker: BrokerThread) -> None:
        self.broker = broker
        self.client = Paho(broker.port, "bystander").connect()
        self.client.subscribe("bystander/#", 1)
        self.count = 0

    def still_served(self) -> bool:
        self.count += 1
        payload = f"still here {self.count}".encode()
        Paho(self.broker.port, f"helper-{self.count}").connect().publish(
            "bystander/check", payload, 1)
        return [m.payload for m in self.client.expect()] == [payload]


@pytest.fixture
def bystander(broker: BrokerThread) -> Iterator[Bystander]:
    watcher = Bystander(broker)
    yield watcher
    watcher.client.disconnect()


def offender(broker: BrokerThread, *, connect: bool = True) -> RawClient:
    client = RawClient(broker.port)
    if connect:
        client.send_bytes(CONNECT)
        assert client.receive() == ConnAck(False, 0)
    return client


def closes_without_answer(client: RawClient) -> bool:
    """The broker closes and sends nothing before (for inputs that deserve no reply)."""
    return client.receive_all(quiet=3.0) == [CLOSED]


# Packets in the wrong place ------------------------------------------------------------


@pytest.mark.parametrize(
    "first_packet",
    [
        encode(PingReq()), publish_bytes("t"), publish_bytes("t", qos=1),
        subscribe_bytes("t"), b"\xa2\x05\x00\x01\x00\x01t", b"\xe0\x00",
        b"\x40\x02\x00\x01", b"\x50\x02\x00\x01", b"\x62\x02\x00\x01",
        b"\x70\x02\x00\x01",
    ],
    ids=["PINGREQ", "PUBLISH", "PUBLISH-QoS1", "SUBSCRIBE", "UNSUBSCRIBE", "DISCONNECT",
         "PUBACK", "PUBREC", "PUBREL", "PUBCOMP"],
)
def test_a_packet_before_connect_closes_the_connection(
    broker: BrokerThread, bystander: Bystander, first_packet: bytes
) -> None:
    """[MQTT-3.1.0-1] (CVE-2023-0809, D2)"""
    with offender(broker, connect=False) as client:
        client.send_bytes(first_packet)
        assert closes_without_answer(client)
    assert bystander.still_served()


def test_a_second_connect_closes_the_connection(
    broker: BrokerThread, bystander: Bystander
) -> None:
    """[MQTT-3.1.0-2] (D1)"""
    with offender(broker) as client:
        client.send_bytes(CONNECT)
        assert closes_without_answer(client)
    assert bystander.still_served()


@pytest.mark.parametrize(
    "packet",
    [b"\x20\x02\x00\x00", b"\x90\x03\x00\x01\x00", b"\xb0\x02\x00\x01", b"\xd0\x00"],
    ids=["CONNACK", "SUBACK", "UNSUBACK", "PINGRESP"],
)
def test_a_server_only_packet_from_a_client_closes_it_and_publishes_its_will(
    broker: BrokerThread, bystander: Bystander, packet: bytes
) -> None:
    """[MQTT-4.8.0-1] (CVE-2021-28166)"""
    bystander.client.subscribe("wills/#", 0)
    with RawClient(broker.port) as client:
        client.send(Connect(ProtocolLevel.MQTT_3_1_1, "bad", will=Will("wills/bad", b"w")))
        assert client.receive() == ConnAck(False, 0)
        client.send_bytes(packet)
        assert closes_without_answer(client)
    assert [m.payload for m in bystander.client.expect()] == [b"w"]
    assert bystander.still_served()


# Malformed headers and packets ----------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\x30\x80\x80\x80\x80\x01",  # Remaining Length in 5 bytes
        b"\xc0\x80\x00",  # PINGREQ with a non-minimal Remaining Length
        b"\x30\x02\x00\x00",  # PUBLISH with a zero-length topic (CVE-2021-34432)
        b"\x32\x03\x00\x01a",  # QoS 1 PUBLISH without its packet id
        b"\x36\x05\x00\x01a\x00\x01",  # PUBLISH with QoS 3 (D3)
        b"\x38\x03\x00\x01a",  # QoS 0 PUBLISH with DUP=1 (D13: closing is allowed)
        publish_bytes("a/+/b"),  # wildcard in a topic name (D5)
        publish_bytes("a/#"),
        publish_bytes(b"a\x00b"),  # U+0000 in a topic
        publish_bytes(b"\xff\xfe"),  # not UTF-8
        publish_bytes("a\x1b[31mred"),  # control characters (terminal escapes)
        subscribe_bytes("t", qos=3),  # SUBSCRIBE requesting QoS 3 (D4)
        subscribe_bytes("a/#/b"),  # invalid wildcard filters (ReDoS elsewhere)
        subscribe_bytes("a+"),
        b"\x82\x02\x00\x01",  # SUBSCRIBE without any filter
        b"\x00\x00",  # reserved packet type 0
        b"\xf0\x00",  # AUTH at 3.1.1
        b"\x60\x02\x00\x01",  # PUBREL without its required flags 0010
    ],
    ids=[
        "remaining-length-5-bytes", "non-minimal-length", "empty-topic",
        "qos1-without-packet-id", "qos3-publish", "qos0-with-dup", "plus-in-topic",
        "hash-in-topic", "nul-in-topic", "invalid-utf8", "control-characters",
        "subscribe-qos3", "hash-not-last", "plus-inside-level", "subscribe-without-filter",
        "packet-type-0", "auth-at-311", "pubrel-wrong-flags",
    ],
)
def test_a_malformed_packet_closes_only_its_connection(
    broker: BrokerThread, bystander: Bystander, data: bytes
) -> None:
    bystander.client.subscribe("#", 0)
    with offender(broker) as client:
        client.send_bytes(data)
        assert closes_without_answer(client)
    assert bystander.still_served()  # and its "#" saw nothing of the bad packet before
    assert bystander.client.nothing_within(0.2)


def test_a_remaining_length_of_256_mb_is_refused_before_it_is_buffered(
    broker: BrokerThread, bystander: Bystander
) -> None:
    """CVE-2017-7651: the announced size alone closes the connection."""
    with offender(broker) as client:
        client.send_bytes(b"\x30\xff\xff\xff\x7f")
        started = time.monotonic()
        assert closes_without_answer(client)
        assert time.monotonic() - started < 3.5
    assert bystander.still_served()


def test_a_packet_over_max_packet_size_closes_and_one_under_it_is_delivered(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(max_packet_size=10_000)
    subscriber = Paho(broker.port, "sub").connect()
    subscriber.subscribe("big", 0)
    with offender(broker) as client:
        client.send_bytes(publish_bytes("big", b"x" * 9_000))
        client.send_bytes(publish_bytes("big", b"y" * 20_000))
        assert closes_without_answer(client)
    assert [len(m.payload) for m in subscriber.expect()] == [9_000]
    assert subscriber.nothing_within(0.3)


# CONNECT refusals --------------------------------------------------------------------------


def test_clean_session_0_with_an_empty_client_id_is_refused_with_0x02(
    broker: BrokerThread, bystander: Bystander
) -> None:
    """[MQTT-3.1.3-8] (D6)"""
    with RawClient(broker.port) as client:
        client.send(Connect(ProtocolLevel.MQTT_3_1_1, "", clean_session=False))
        assert client.receive_all() == [ConnAck(False, ConnectReturnCode.IDENTIFIER_REJECTED),
                                        CLOSED]
    assert bystander.still_served()


def test_an_empty_client_id_with_clean_session_1_is_given_one(broker: BrokerThread) -> None:
    """[MQTT-3.1.3-6]"""
    with RawClient(broker.port) as client:
        assert client.connect("") == ConnAck(False, 0)
        assert client.subscribe("x").return_codes == (0,)
        assert broker.call(lambda b: [cid for cid in b.sessions if cid.startswith("mqttref-")])


@pytest.mark.parametrize("level", [2, 6, 255])
def test_an_unknown_protocol_level_is_refused_with_0x01(
    broker: BrokerThread, bystander: Bystander, level: int
) -> None:
    """[MQTT-3.1.2-2]"""
    body = string("MQTT") + bytes([level, 0x02]) + b"\x00\x3c" + string("c")
    with RawClient(broker.port) as client:
        client.send_bytes(frame(0x10, body))
        assert client.receive_all() == [
            ConnAck(False, ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION), CLOSED]
    assert bystander.still_served()


def test_a_connect_of_an_unknown_protocol_level_is_refused_with_0x01(
    broker: BrokerThread,
) -> None:
    """[MQTT-3.1.2-2]: levels 3, 4 and 5 are spoken; level 6 gets 0x01 and the close."""
    body = string("MQTT") + bytes([6, 0x02]) + b"\x00\x3c" + string("six")
    with RawClient(broker.port) as client:
        client.send_bytes(frame(0x10, body))
        assert client.receive_all() == [
            ConnAck(False, ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION), CLOSED]


def test_a_wrong_protocol_name_closes_without_connack(
    broker: BrokerThread, bystander: Bystander
) -> None:
    """[MQTT-3.1.2-1]"""
    body = string("MQTX") + bytes([4, 0x02]) + b"\x00\x3c" + string("c")
    with RawClient(broker.port) as client:
        client.send_bytes(frame(0x10, body))
        assert closes_without_answer(client)
    assert bystander.still_served()


def test_an_mqtt_3_1_client_id_over_23_characters_is_refused_with_0x02(
    broker: BrokerThread,
) -> None:
    with RawClient(broker.port) as client:
        client.send(Connect(ProtocolLevel.MQTT_3_1, "x" * 24), ProtocolLevel.MQTT_3_1)
        assert client.receive_all() == [ConnAck(False, 2), CLOSED]


def test_a_keep_alive_over_the_maximum_is_refused_with_0x02(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """CVE-2020-13849: idle clients cannot pin resources for 18 hours."""
    broker = start_broker(max_keep_alive=60)
    with RawClient(broker.port) as client:
        client.send(Connect(ProtocolLevel.MQTT_3_1_1, "lazy", keep_alive=61))
        assert client.receive_all() == [ConnAck(False, 2), CLOSED]
    with RawClient(broker.port) as client:
        assert client.connect("fine", keep_alive=60) == ConnAck(False, 0)


def test_connections_beyond_the_maximum_are_refused_with_0x03(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(max_connections=2)
    with RawClient(broker.port) as one, RawClient(broker.port) as two:
        assert one.connect("one") == ConnAck(False, 0)
        assert two.connect("two") == ConnAck(False, 0)
        with RawClient(broker.port) as three:
            three.send(Connect(ProtocolLevel.MQTT_3_1_1, "three"))
            assert three.receive_all() == [ConnAck(False, 3), CLOSED]
        one.send(PingReq())
        assert one.receive() == PingResp()


def test_user_names_and_passwords_are_checked_with_0x04_and_0x05(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(users={"alice": "secret"}, allow_anonymous=False)
    cases = [
        (Connect(ProtocolLevel.MQTT_3_1_1, "a", username="alice", password=b"secret"), 0),
        (Connect(ProtocolLevel.MQTT_3_1_1, "b", username="alice", password=b"wrong"), 4),
        (Connect(ProtocolLevel.MQTT_3_1_1, "c", username="mallory", password=b"secret"), 4),
        (Connect(ProtocolLevel.MQTT_3_1_1, "d"), 5),
    ]
    for connect, code in cases:
        with RawClient(broker.port) as client:
            client.send(connect)
            assert client.receive() == ConnAck(False, code)


def test_a_client_that_never_sends_connect_is_closed_after_the_connect_timeout(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(connect_timeout=0.5)
    with RawClient(broker.port) as idle, RawClient(broker.port) as trickle:
        started = time.monotonic()
        trickle.send_bytes(CONNECT[:3])  # a CONNECT that never completes
        assert idle.receive(5) == CLOSED
        assert trickle.receive(5) == CLOSED
        assert 0.4 <= time.monotonic() - started < 3.0


# Resource exhaustion ------------------------------------------------------------------------


def test_qos2_publishes_reusing_one_packet_id_are_delivered_once_and_cost_nothing(
    broker: BrokerThread, bystander: Bystander
) -> None:
    """CVE-2023-28366: 1,000 PUBLISH with one id, never PUBREL."""
    bystander.client.subscribe("leak", 2)
    with offender(broker) as client:
        client.send_bytes(publish_bytes("leak", b"once", 2, packet_id=7) * 1000)
        replies = client.receive_all(quiet=0.5)
        assert len(replies) == 1000
        assert broker.call(lambda b: b.sessions["offender"].awaiting_rel) == {7}
    assert [m.payload for m in bystander.client.expect()] == [b"once"]
    assert bystander.still_served()


def test_too_many_qos2_messages_awaiting_pubrel_close_the_connection(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(max_awaiting_rel=10)
    with offender(broker) as client:
        client.send_bytes(b"".join(publish_bytes("t", b"", 2, n) for n in range(1, 12)))
        replies = client.receive_all(quiet=1.0)
        assert replies[-1] == CLOSED
        assert len(replies) == 11  # ten PUBRECs, then the close


def test_a_filter_of_65000_levels_is_refused_with_0x80_and_the_connection_kept(
    broker: BrokerThread,
) -> None:
    """CVE-2019-11779"""
    with offender(broker) as client:
        client.send_bytes(subscribe_bytes("/".join(["a"] * 65_000)[:65_000], 1))
        assert client.receive() == SubAck(1, (SUBACK_FAILURE,))
        client.send(Subscribe(2, (Subscription("ok/+", QoS.AT_LEAST_ONCE),
                                  Subscription("a\x07", QoS.AT_LEAST_ONCE))))
        assert client.receive() == SubAck(2, (1, SUBACK_FAILURE))
        client.send(PingReq())
        assert client.receive() == PingResp()


def test_a_topic_with_too_many_levels_closes_the_publisher(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(max_topic_levels=5)
    with offender(broker) as client:
        client.send_bytes(publish_bytes("a/b/c/d/e"))
        client.send(PingReq())
        assert client.receive() == PingResp()
        client.send_bytes(publish_bytes("a/b/c/d/e/f"))
        assert closes_without_answer(client)


def test_a_slow_reader_neither_blocks_others_nor_grows_memory_without_bound(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """A reader that takes 4 KB of 20 MB costs its own queue (bounded in bytes) and its
    own dropped messages; the publisher and the other subscriber never wait for it."""
    broker = start_broker(write_buffer_limit=64 * 1024, write_buffer_max=256 * 1024,
                          max_queued_bytes=16 * 1024 * 1024)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", broker.port))
    slow.sendall(encode(Connect(ProtocolLevel.MQTT_3_1_1, "slow"))
                 + subscribe_bytes("flood/#", 1))
    fast = Paho(broker.port, "fast").connect()
    fast.subscribe("flood/#", 1)
    payload = b"p" * 10_000
    count, window = 2_000, 100  # 20 MB in all, far more than the limits
    got = []
    with offender(broker) as publisher:
        for first in range(1, count + 1, window):
            ids = range(first, first + window)
            publisher.send_bytes(b"".join(
                publish_bytes("flood/x", payload + str(n).encode(), qos=1, packet_id=n)
                for n in ids))
            assert [publisher.receive(10) for _ in ids] == [PubAck(n) for n in ids]
            # paho takes each window before the next (the broker routes twice as fast
            # as paho reads: a subscriber slower than its publisher loses beyond its
            # queue's bounds, which is the point of the slow one here, not of this one).
            got.extend(fast.expect(window, timeout=10))
    assert sorted(int(m.payload[10_000:]) for m in got) == list(range(1, count + 1))
    dropped, queued_bytes = broker.call(
        lambda b: (b.sessions["slow"].dropped, b.sessions["slow"].queued_bytes))
    assert dropped > 0  # beyond its queue's bounds, its own messages go
    assert queued_bytes <= 16 * 1024 * 1024
    assert broker.call(lambda b: b.sessions["fast"].dropped) == 0
    buffered = broker.call(
        lambda b: [c.reading.write_buffer_size() for c in b.connections.connections
                   if c.client_id == "slow"])
    assert buffered
    assert buffered[0] <= 256 * 1024 + 20_000
    slow.close()


def test_a_subscriber_that_never_acknowledges_cannot_make_a_publisher_wait(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """It reads everything and sends no PUBACK: its window fills, its queue fills, then
    its own newest messages go. The publisher gets every PUBACK and the good subscriber
    every message, and the broker never paused the publisher (no memory mark met)."""
    broker = start_broker(max_inflight=20, max_queued=100)
    greedy = socket.create_connection(("127.0.0.1", broker.port))
    greedy.sendall(encode(Connect(ProtocolLevel.MQTT_3_1_1, "greedy"))
                   + subscribe_bytes("#", 1))
    taken = [0]

    def read_everything() -> None:
        while data := greedy.recv(65536):
            taken[0] += len(data)

    reader = threading.Thread(target=read_everything, daemon=True)
    reader.start()
    good = Paho(broker.port, "good").connect()
    good.subscribe("t", 1)
    count, window = 1_000, 50
    got = []
    with offender(broker) as publisher:
        for first in range(1, count + 1, window):
            ids = range(first, first + window)
            publisher.send_bytes(b"".join(
                publish_bytes("t", b"%d" % n, qos=1, packet_id=n) for n in ids))
            assert [publisher.receive(10) for _ in ids] == [PubAck(n) for n in ids]
            got.extend(good.expect(window, timeout=10))
    assert sorted(int(m.payload) for m in got) == list(range(1, count + 1))
    greedy_state = broker.call(lambda b: (len(b.sessions["greedy"].inflight),
                                          len(b.sessions["greedy"].queue),
                                          b.sessions["greedy"].dropped,
                                          b.table.memory.dropped))
    assert greedy_state == (20, 100, count - 120, 0)
    greedy.shutdown(socket.SHUT_RDWR)
    reader.join(5)
    greedy.close()


# Odd but legal -----------------------------------------------------------------------------


def test_a_dollar_topic_that_is_not_sys_is_routed_to_exact_subscribers_only(
    broker: BrokerThread, bystander: Bystander
) -> None:
    """CVE-2018-12543 made mosquitto exit; here it is just a topic."""
    bystander.client.subscribe("#", 0)
    exact = Paho(broker.port, "exact").connect()
    exact.subscribe("$weird/topic", 1)
    with offender(broker) as client:
        client.send_bytes(publish_bytes("$weird/topic", b"d", 1, 3))
        assert client.receive() == PubAck(3)
    assert [m.payload for m in exact.expect()] == [b"d"]
    assert bystander.client.nothing_within(0.3)
    assert bystander.still_served()


def test_client_ids_with_wildcards_are_plain_names(broker: BrokerThread) -> None:
    """CVE-2017-7650 was an ACL pattern bypass; here the id is just a name."""
    with RawClient(broker.port) as plus, RawClient(broker.port) as hash_:
        assert plus.connect("+") == ConnAck(False, 0)
        assert hash_.connect("#") == ConnAck(False, 0)
        plus.subscribe("ids/plus", QoS.AT_MOST_ONCE)
        hash_.subscribe("ids/hash", QoS.AT_MOST_ONCE)
        hash_.send(Publish("ids/plus", b"to plus"))
        assert plus.receive() == Publish("ids/plus", b"to plus")
        assert hash_.receive_all(quiet=0.3) == []


def test_after_connect_the_connect_timeout_gives_way_to_keep_alive(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(connect_timeout=0.3)
    with RawClient(broker.port) as forever, RawClient(broker.port) as short:
        assert forever.connect("no-keep-alive", keep_alive=0) == ConnAck(False, 0)
        assert short.connect("keep-alive-1", keep_alive=1) == ConnAck(False, 0)
        started = time.monotonic()
        assert short.receive(5) == CLOSED
        assert 1.3 <= time.monotonic() - started <= 3.0  # 1.5 x 1 s, not the 0.3 s
        forever.send(PingReq())
        assert forever.receive() == PingResp()
