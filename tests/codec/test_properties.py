"""MQTT 5.0 properties (2.2.2): duplicates, strangers, bad values, unknown identifiers."""

from __future__ import annotations

import pytest

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import MalformedPacket, ProtocolError, ReasonCode
from mqttref.impl.codec.packets import Properties, ProtocolLevel, Publish, SubAck
from tests.strategies import PROPERTY_TABLE

from .wirebytes import accepts, connect, frame, props, rejects, string, u16

V5 = ProtocolLevel.MQTT_5
MALFORMED = ReasonCode.MALFORMED_PACKET
PROTOCOL = ReasonCode.PROTOCOL_ERROR

# One well-formed encoding of each property (identifier + value).
ENCODED = {
    "payload_format_indicator": b"\x01\x01",
    "message_expiry_interval": b"\x02\x00\x00\x00\x0a",
    "content_type": b"\x03" + string("text/plain"),
    "response_topic": b"\x08" + string("reply/to"),
    "correlation_data": b"\x09" + u16(2) + b"id",
    "subscription_identifiers": b"\x0b\x05",
    "session_expiry_interval": b"\x11\x00\x00\x00\x0a",
    "assigned_client_identifier": b"\x12" + string("auto-1"),
    "server_keep_alive": b"\x13\x00\x0a",
    "authentication_method": b"\x15" + string("SCRAM"),
    "authentication_data": b"\x16" + u16(1) + b"x",
    "request_problem_information": b"\x17\x00",
    "will_delay_interval": b"\x18\x00\x00\x00\x05",
    "request_response_information": b"\x19\x01",
    "response_information": b"\x1a" + string("info"),
    "server_reference": b"\x1c" + string("other:1883"),
    "reason_string": b"\x1f" + string("why"),
    "receive_maximum": b"\x21\x00\x0a",
    "topic_alias_maximum": b"\x22\x00\x0a",
    "topic_alias": b"\x23\x00\x01",
    "maximum_qos": b"\x24\x01",
    "retain_available": b"\x25\x00",
    "user_properties": b"\x26" + string("k") + string("v"),
    "maximum_packet_size": b"\x27\x00\x00\x04\x00",
    "wildcard_subscription_available": b"\x28\x01",
    "subscription_identifier_available": b"\x29\x01",
    "shared_subscription_available": b"\x2a\x01",
}
REPEATABLE = {"user_properties", "subscription_identifiers"}


def publish_with(*items: bytes) -> bytes:
    return frame(0x30, string("a/b") + props(*items) + b"payload")


def connack_with(*items: bytes) -> bytes:
    return frame(0x20, b"\x00\x00" + props(*items))


def carrier(name: str) -> tuple[str, object]:
    """A packet type on which ``name`` is allowed, and a builder for it."""
    allowed = PROPERTY_TABLE[name][2]
    if "PUBLISH" in allowed:
        return "PUBLISH", publish_with
    if "CONNACK" in allowed:
        return "CONNACK", connack_with
    return "WILL", None


SINGLE = sorted(n for n in ENCODED if n not in REPEATABLE and carrier(n)[1] is not None)


@pytest.mark.parametrize("name", SINGLE)
def test_a_property_given_twice_is_a_protocol_error(name: str) -> None:
    """Each property's section: "It is a Protocol Error to include ... more than once"."""
    build = carrier(name)[1]
    data = build(ENCODED[name], ENCODED[name])  # type: ignore[operator]
    rejects(data, ProtocolError, PROTOCOL, "§2.2.2.2", level=V5)


@pytest.mark.parametrize("name", SINGLE)
def test_the_same_property_once_is_accepted(name: str) -> None:
    build = carrier(name)[1]
    assert len(accepts(build(ENCODED[name]), level=V5)) == 1  # type: ignore[operator]


def test_user_properties_may_repeat_even_with_the_same_name_and_keep_their_order() -> None:
    pairs = [("k", "2"), ("a", "1"), ("k", "1")]
    data = publish_with(*[b"\x26" + string(k) + string(v) for k, v in pairs])
    packet = accepts(data, level=V5)[0]
    assert packet.properties.user_properties == tuple(pairs)  # type: ignore[union-attr]


def test_a_publish_may_carry_several_subscription_identifiers() -> None:
    data = publish_with(b"\x0b\x01", b"\x0b\x80\x01")
    packet = accepts(data, level=V5)[0]
    assert packet.properties.subscription_identifiers == (1, 128)  # type: ignore[union-attr]


def test_a_server_refuses_a_subscription_identifier_on_a_client_publish() -> None:
    """"A PUBLISH packet sent from a Client to a Server MUST NOT contain a Subscription
    Identifier" [MQTT-3.3.4-6]; a client receives them from the server."""
    data = publish_with(b"\x0b\x01")
    rejects(data, ProtocolError, PROTOCOL, "MQTT-3.3.4-6", level=V5, role=Role.SERVER)
    assert len(Decoder(role=Role.CLIENT, protocol_level=V5).feed(data)) == 1


def test_a_subscribe_with_two_subscription_identifiers_is_a_protocol_error() -> None:
    body = u16(1) + props(b"\x0b\x01", b"\x0b\x02") + string("a") + b"\x00"
    rejects(frame(0x82, body), ProtocolError, PROTOCOL, "§3.8.2.1.2", level=V5)


NOT_ON_PUBLISH = sorted(n for n in ENCODED if "PUBLISH" not in PROPERTY_TABLE[n][2])
NOT_ON_CONNACK = sorted(n for n in ENCODED if "CONNACK" not in PROPERTY_TABLE[n][2])


@pytest.mark.parametrize("name", NOT_ON_PUBLISH)
def test_a_property_not_allowed_on_publish_is_malformed(name: str) -> None:
    """2.2.2.2: "an Identifier which is not valid for its packet type" is a Malformed Packet."""
    rejects(publish_with(ENCODED[name]), MalformedPacket, MALFORMED, "§2.2.2.2", level=V5)


@pytest.mark.parametrize("name", NOT_ON_CONNACK)
def test_a_property_not_allowed_on_connack_is_malformed(name: str) -> None:
    rejects(connack_with(ENCODED[name]), MalformedPacket, MALFORMED, "§2.2.2.2", level=V5)


def test_a_publish_property_in_the_connect_properties_is_malformed() -> None:
    data = connect(level=5, properties=props(ENCODED["content_type"]))
    rejects(data, MalformedPacket, MALFORMED, "§2.2.2.2")


def test_will_delay_is_allowed_in_will_properties_but_not_in_connect_properties() -> None:
    will_payload = string("c") + props(ENCODED["will_delay_interval"]) + string("w") + u16(0)
    packet = accepts(connect(level=5, flags=0x06, payload=will_payload))[0]
    assert packet.will.properties.will_delay_interval == 5  # type: ignore[union-attr]
    rejects(connect(level=5, properties=props(ENCODED["will_delay_interval"])), MalformedPacket,
            MALFORMED, "§2.2.2.2")


@pytest.mark.parametrize("ident", [0x00, 0x04, 0x0A, 0x10, 0x14, 0x1B, 0x20, 0x2B, 0x7F])
def test_an_unknown_property_identifier_is_malformed(ident: int) -> None:
    rejects(publish_with(bytes([ident, 0x00])), MalformedPacket, MALFORMED, "§2.2.2.2",
            level=V5)


OUT_OF_RANGE = {
    "payload_format_indicator=2": publish_with(b"\x01\x02"),
    "subscription_identifier=0": publish_with(b"\x0b\x00"),
    "maximum_qos=2": connack_with(b"\x24\x02"),
    "retain_available=2": connack_with(b"\x25\x02"),
    "receive_maximum=0": connack_with(b"\x21\x00\x00"),
    "maximum_packet_size=0": connack_with(b"\x27\x00\x00\x00\x00"),
    "wildcard_subscription_available=9": connack_with(b"\x28\x09"),
    "subscription_identifier_available=2": connack_with(b"\x29\x02"),
    "shared_subscription_available=255": connack_with(b"\x2a\xff"),
    "request_problem_information=2": connect(level=5, properties=props(b"\x17\x02")),
    "request_response_information=2": connect(level=5, properties=props(b"\x19\x02")),
}


@pytest.mark.parametrize("case", OUT_OF_RANGE, ids=OUT_OF_RANGE.keys())
def test_a_property_value_out_of_its_range_is_a_protocol_error(case: str) -> None:
    exc = rejects(OUT_OF_RANGE[case], ProtocolError, PROTOCOL, "§3 property definitions",
                  level=V5)
    assert case.split("=", maxsplit=1)[0] in str(exc)


def test_a_topic_alias_of_0_is_topic_alias_invalid() -> None:
    """[MQTT-3.3.2-8]: 0 is never an alias; the receiver answers 0x94 (3.3.2.3.4)."""
    exc = rejects(publish_with(b"\x23\x00\x00"), ProtocolError, ReasonCode.TOPIC_ALIAS_INVALID,
                  "MQTT-3.3.2-8",
                  level=V5)
    assert "Topic Alias of 0" in str(exc)


@pytest.mark.parametrize("topic", ["reply/+", "reply/#", "+"])
def test_a_response_topic_with_a_wildcard_is_a_protocol_error(topic: str) -> None:
    """"The Response Topic MUST NOT contain wildcard characters" [MQTT-3.3.2-14]."""
    rejects(publish_with(b"\x08" + string(topic)), ProtocolError, PROTOCOL, "MQTT-3.3.2-14",
            level=V5)
    will = string("c") + props(b"\x08" + string(topic)) + string("w") + u16(0)
    rejects(connect(level=5, flags=0x06, payload=will), ProtocolError, PROTOCOL,
            "MQTT-3.3.2-14")


def test_a_property_length_running_past_the_packet_is_malformed() -> None:
    data = frame(0x30, string("a") + b"\x10" + b"\x01\x01")
    rejects(data, MalformedPacket, MALFORMED, "§2.2.2.1", level=V5)


def test_a_property_cut_inside_its_value_is_malformed() -> None:
    data = frame(0x30, string("a") + b"\x02\x02\x00")  # a four byte integer given one byte
    rejects(data, MalformedPacket, MALFORMED, "§2.2.3", level=V5)


def test_a_property_length_not_in_the_fewest_bytes_is_malformed() -> None:
    data = frame(0x30, string("a") + b"\x80\x00" + b"x")
    rejects(data, MalformedPacket, MALFORMED, "MQTT-1.5.5-1", level=V5)


def test_properties_in_any_order_decode_to_the_same_value() -> None:
    """"There is no significance in the order of Properties with different Identifiers"."""
    items = [ENCODED["content_type"], ENCODED["topic_alias"], ENCODED["message_expiry_interval"]]
    forward = accepts(publish_with(*items), level=V5)
    backward = accepts(publish_with(*reversed(items)), level=V5)
    assert forward == backward
    assert forward[0].properties == Properties(  # type: ignore[union-attr]
        content_type="text/plain", topic_alias=1, message_expiry_interval=10
    )


def test_an_empty_topic_with_a_topic_alias_is_accepted_at_5() -> None:
    packet = Publish("", b"x", properties=Properties(topic_alias=3))
    assert accepts(encode(packet, V5), level=V5) == [packet]


def test_a_suback_reason_string_is_decoded() -> None:
    packet = SubAck(9, (0x00, 0x87), Properties(reason_string="quota"))
    assert accepts(encode(packet, V5), level=V5) == [packet]


INVALID_REASON = {
    "PUBACK-0x92": frame(0x40, u16(1) + b"\x92"),
    "PUBREL-0x10": frame(0x62, u16(1) + b"\x10"),
    "SUBACK-0x03": frame(0x90, u16(1) + b"\x00\x03"),
    "UNSUBACK-0x01": frame(0xB0, u16(1) + b"\x00\x01"),
    "DISCONNECT-0x01": frame(0xE0, b"\x01"),
    "AUTH-0x01": frame(0xF0, b"\x01\x00"),
    "CONNACK-0x01": frame(0x20, b"\x00\x01\x00"),
}


@pytest.mark.parametrize("case", INVALID_REASON, ids=INVALID_REASON.keys())
def test_a_reason_code_not_defined_for_the_packet_is_malformed(case: str) -> None:
    rejects(INVALID_REASON[case], MalformedPacket, MALFORMED, "§2.4", level=V5)
