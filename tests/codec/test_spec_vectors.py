"""Byte-exact vectors from the specifications' non-normative examples.

MQTT 3.1.1 (OASIS Standard, 2014) and MQTT 5.0 (OASIS Standard, 2019); the
figure numbers are those of the specification documents.
"""

from __future__ import annotations

from mqttref.impl.codec.codec import decode_all, encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    Properties,
    ProtocolLevel,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Unsubscribe,
    Will,
)

V311 = ProtocolLevel.MQTT_3_1_1
V5 = ProtocolLevel.MQTT_5


def test_utf8_string_example_of_1_5_3() -> None:
    """Figure 1.2: "A" followed by U+2A6D4 is 00 05 41 F0 AA 9B 94."""
    packet = Publish("A\U0002a6d4", b"")
    wire = encode(packet)
    assert wire == bytes.fromhex("3007 0005 41F0AA9B94")
    assert decode_all(wire) == [packet]


def test_connect_variable_header_example_of_3_1_1() -> None:
    """Figure 3.6: name "MQTT", level 4, flags CE (user, password, will QoS 1, will, clean),
    keep alive 10."""
    packet = Connect(V311, "c", clean_session=True, keep_alive=10,
                     will=Will("w", b"m", QoS.AT_LEAST_ONCE), username="u", password=b"p")
    wire = encode(packet)
    variable_header = bytes.fromhex("0004 4D515454 04 CE 000A")
    assert wire[2:12] == variable_header
    assert wire[12:] == bytes.fromhex("0001 63  0001 77  0001 6D  0001 75  0001 70")
    assert decode_all(wire) == [packet]


def test_connect_variable_header_example_of_5_0() -> None:
    """Figure 3-7 (5.0): flags C2 (user, password, clean start), keep alive 10,
    properties of length 5: Session Expiry Interval (0x11) of 10."""
    packet = Connect(V5, "c", clean_session=True, keep_alive=10, username="u", password=b"p",
                     properties=Properties(session_expiry_interval=10))
    wire = encode(packet)
    assert wire[2:18] == bytes.fromhex("0004 4D515454 05 C2 000A 05 11 0000000A")
    assert decode_all(wire) == [packet]


def test_publish_variable_header_example_of_3_3_2() -> None:
    """Figure 3.11 (3.1.1): topic "a/b", packet identifier 10."""
    packet = Publish("a/b", b"", QoS.AT_LEAST_ONCE, packet_id=10)
    wire = encode(packet)
    assert wire == bytes.fromhex("3207 0003 612F62 000A")
    assert decode_all(wire) == [packet]


def test_subscribe_payload_example_of_3_8_3() -> None:
    """Figure 3.22 (3.1.1): "a/b" at QoS 1 and "c/d" at QoS 2, packet identifier 10."""
    packet = Subscribe(10, (Subscription("a/b", QoS.AT_LEAST_ONCE),
                            Subscription("c/d", QoS.EXACTLY_ONCE)))
    wire = encode(packet)
    assert wire == bytes.fromhex("820E 000A 0003 612F62 01 0003 632F64 02")
    assert decode_all(wire) == [packet]


def test_suback_payload_example_of_3_9_3() -> None:
    """Figure 3.26 (3.1.1): granted QoS 0, granted QoS 2, failure 0x80."""
    packet = SubAck(10, (0, 2, 0x80))
    wire = encode(packet)
    assert wire == bytes.fromhex("9005 000A 00 02 80")
    assert decode_all(wire) == [packet]


def test_unsubscribe_payload_example_of_3_10_3() -> None:
    """Figure 3.30 (3.1.1): "a/b" and "c/d"."""
    packet = Unsubscribe(10, ("a/b", "c/d"))
    wire = encode(packet)
    assert wire == bytes.fromhex("A20C 000A 0003 612F62 0003 632F64")
    assert decode_all(wire) == [packet]


def test_the_two_byte_packets_of_3_1_1() -> None:
    """PINGREQ, PINGRESP and DISCONNECT are a fixed header alone; CONNACK is four bytes."""
    assert encode(PingReq()) == b"\xc0\x00"
    assert encode(PingResp()) == b"\xd0\x00"
    assert encode(Disconnect()) == b"\xe0\x00"
    assert encode(ConnAck(False, 0)) == b"\x20\x02\x00\x00"
    assert encode(ConnAck(True, 0)) == b"\x20\x02\x01\x00"


def test_a_5_0_disconnect_with_success_and_no_properties_may_omit_both() -> None:
    """3.14.2.1: "If the Remaining Length is less than 1 the value of 0x00 ... is used"."""
    assert encode(Disconnect(), V5) == b"\xe0\x00"
    assert decode_all(b"\xe0\x00", protocol_level=V5) == [Disconnect()]
    assert decode_all(b"\xe0\x01\x00", protocol_level=V5) == [Disconnect()]
    assert decode_all(b"\xe0\x02\x00\x00", protocol_level=V5) == [Disconnect()]
