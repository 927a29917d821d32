"""BAD-INPUTS.md at MQTT 5.0, over real sockets: each bad input gets its reason code
(CONNACK before the session, DISCONNECT after), and a bystander connected before it
notices nothing."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import pytest

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import ConnAck, Connect, Disconnect, Packet, ProtocolLevel
from tests.broker.test_bad_inputs import Bystander, string
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import CLOSED, RawClient

V5 = ProtocolLevel.MQTT_5
R = ReasonCode


@pytest.fixture
def bystander(broker: BrokerThread) -> Iterator[Bystander]:
    """A 3.1.1 client connected before the bad input; it must not notice anything."""
    watcher = Bystander(broker)
    yield watcher
    watcher.client.disconnect()


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def props(block: bytes) -> bytes:
    return varint(len(block)) + block


def connect_bytes(properties: bytes = b"", client_id: str = "offender") -> bytes:
    body = string("MQTT") + bytes([5, 0x02]) + b"\x00\x3c" + props(properties) + string(client_id)
    return packet(0x10, body)


def publish_bytes(topic: str, properties: bytes, qos: int = 0, payload: bytes = b"x") -> bytes:
    body = string(topic) + (struct.pack("!H", 1) if qos else b"") + props(properties) + payload
    return packet(0x30 | qos << 1, body)


def subscribe_bytes(topic_filter: str, properties: bytes = b"", options: int = 1) -> bytes:
    body = struct.pack("!H", 1) + props(properties) + string(topic_filter) + bytes([options])
    return packet(0x82, body)


def client5(broker: BrokerThread) -> RawClient:
    client = RawClient(broker.port)
    client.decoder.protocol_level = V5
    return client


def connected5(broker: BrokerThread) -> RawClient:
    client = client5(broker)
    client.send_bytes(encode(Connect(V5, "offender"), V5))
    connack = client.receive()
    assert isinstance(connack, ConnAck)
    assert connack.return_code == R.SUCCESS
    return client


def answer_then_close(client: RawClient) -> Packet | str:
    first = client.receive()
    assert client.receive() == CLOSED
    return first


CONNECT_CASES = {
    # A property repeated (2.2.2.2): a Protocol Error.
    "session expiry twice": (connect_bytes(b"\x11\x00\x00\x00\x0a" * 2), R.PROTOCOL_ERROR),
    # A property not allowed on CONNECT (Topic Alias belongs to PUBLISH): malformed.
    "topic alias on connect": (connect_bytes(b"\x23\x00\x01"), R.MALFORMED_PACKET),
    # Receive Maximum 0 is a Protocol Error (3.1.2.11.3).
    "receive maximum 0": (connect_bytes(b"\x21\x00\x00"), R.PROTOCOL_ERROR),
    # Maximum Packet Size 0 is a Protocol Error (3.1.2.11.4).
    "maximum packet size 0": (connect_bytes(b"\x27\x00\x00\x00\x00"), R.PROTOCOL_ERROR),
    # Request Problem Information other than 0 or 1 (3.1.2.11.7).
    "problem information 2": (connect_bytes(b"\x17\x02"), R.PROTOCOL_ERROR),
}


@pytest.mark.parametrize("case", CONNECT_CASES)
def test_a_bad_5_0_connect_is_refused_in_connack_with_its_reason(
    broker: BrokerThread, bystander: Bystander, case: str,
) -> None:
    """A CONNECT that does not match the format of 3.1 is refused and the connection closed
    [MQTT-3.1.4-1]."""
    data, reason = CONNECT_CASES[case]
    with client5(broker) as client:
        client.send_bytes(data)
        answer = answer_then_close(client)
        # Either CONNACK with the reason, or (where the decoder cannot tell the level
        # yet) a plain close: never acceptance.
        assert answer == CLOSED or (isinstance(answer, ConnAck)
                                    and answer.return_code == reason), answer
    assert bystander.still_served()


AFTER_CONNACK = {
    "topic alias 0": (publish_bytes("t", b"\x23\x00\x00"), R.TOPIC_ALIAS_INVALID),
    "topic alias above the maximum": (publish_bytes("t", b"\x23\x00\x0b"),
                                      R.TOPIC_ALIAS_INVALID),
    "alias never set": (publish_bytes("", b"\x23\x00\x02"), R.PROTOCOL_ERROR),
    "subscription identifier 0": (subscribe_bytes("t", b"\x0b\x00"), R.PROTOCOL_ERROR),
    "shared subscription with a wildcard in the group": (
        subscribe_bytes("$share/g+/t"), R.PROTOCOL_ERROR),
    "no local on a shared subscription": (subscribe_bytes("$share/g/t", options=0x05),
                                          R.PROTOCOL_ERROR),
    "a property repeated on publish": (publish_bytes("t", b"\x01\x01" * 2), R.PROTOCOL_ERROR),
    "a property not allowed on publish": (publish_bytes("t", b"\x11\x00\x00\x00\x01"),
                                          R.MALFORMED_PACKET),
    "subscription identifier from a client": (publish_bytes("t", b"\x0b\x05"),
                                              R.PROTOCOL_ERROR),
    "reserved subscription option bits": (subscribe_bytes("t", options=0xC1),
                                          R.MALFORMED_PACKET),
    # Retain Handling 3 is a Protocol Error (3.8.3.1).
    "retain handling 3": (subscribe_bytes("t", options=0x31), R.PROTOCOL_ERROR),
}


@pytest.mark.parametrize("case", AFTER_CONNACK)
def test_a_bad_5_0_packet_after_connack_is_disconnect_with_its_reason(
    broker: BrokerThread, bystander: Bystander, case: str,
) -> None:
    """A Malformed Packet or Protocol Error with a reason code given: DISCONNECT with it and
    the close [MQTT-4.13.1-1]."""
    data, reason = AFTER_CONNACK[case]
    with connected5(broker) as client:
        client.send_bytes(data)
        answer = answer_then_close(client)
        if case.startswith("shared subscription with a wildcard"):
            # A share name with a wildcard: a Protocol Error [MQTT-4.8.2-2] or, where the
            # broker reads it as a filter it cannot grant, SUBACK 0x8F; never granted.
            assert isinstance(answer, Disconnect) or getattr(answer, "return_codes", None) in (
                (R.TOPIC_FILTER_INVALID,), (R.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,)), answer
        else:
            assert isinstance(answer, Disconnect), answer
            assert answer.reason_code == reason, answer
    assert bystander.still_served()


def test_a_packet_above_the_brokers_maximum_is_disconnect_0x95(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """DISCONNECT 0x95 is followed by the close, as any code of 0x80 or more [MQTT-4.13.2-1]."""
    broker = start_broker(max_packet_size=1000)
    with connected5(broker) as client:
        client.send_bytes(publish_bytes("t", b"", payload=b"x" * 2000))
        answer = answer_then_close(client)
        assert isinstance(answer, Disconnect)
        assert answer.reason_code == R.PACKET_TOO_LARGE
