"""Fixed-header violations: Remaining Length, reserved flags, QoS, DUP, roles, size limit."""

from __future__ import annotations

import pytest

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import (
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    ReasonCode,
)
from mqttref.impl.codec.packets import (
    Packet,
    PacketType,
    PingReq,
    ProtocolLevel,
    Publish,
    QoS,
)

from .wirebytes import accepts, connect, frame, rejects, string, u16

V311 = ProtocolLevel.MQTT_3_1_1
V5 = ProtocolLevel.MQTT_5
MALFORMED = ReasonCode.MALFORMED_PACKET


def test_remaining_length_of_five_bytes_is_malformed() -> None:
    rejects(b"\x30\xff\xff\xff\xff\x01", MalformedPacket, MALFORMED, "§2.2.3")


def test_remaining_length_of_five_bytes_is_refused_before_the_fifth_byte_is_used() -> None:
    rejects(b"\x30\x80\x80\x80\x80", MalformedPacket, MALFORMED, "§2.2.3")


@pytest.mark.parametrize(
    "header",
    [b"\xc0\x80\x00", b"\xc0\x80\x80\x00", b"\xc0\x80\x80\x80\x00", b"\x30\x85\x00"],
    ids=["0-in-2", "0-in-3", "0-in-4", "5-in-2"],
)
def test_remaining_length_not_in_the_fewest_bytes_is_malformed(header: bytes) -> None:
    rejects(header, MalformedPacket, MALFORMED, "MQTT-1.5.5-1")


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_follows_the_table_of_2_2_3(value: int, encoded: bytes) -> None:
    """Table 2.4 of 3.1.1: the boundaries of each encoded size, both directions."""
    decoder = Decoder(max_packet_size=2**30)
    if value == 0:
        assert encode(PingReq()) == b"\xc0" + encoded
        assert decoder.feed(b"\xc0" + encoded) == [PingReq()]
        return
    assert decoder.feed(b"\x30" + encoded) == []  # the header alone waits for the body
    assert decoder.buffered == 1 + len(encoded)
    if value <= 2_097_152:  # a real PUBLISH of that Remaining Length
        packet = Publish("t", bytes(value - 3))
        wire = encode(packet)
        assert wire[: 1 + len(encoded)] == b"\x30" + encoded
        assert decoder.feed(wire[1 + len(encoded) :]) == [packet]


# Reserved flag bits of the fixed header (2.2.2, Table 2.2): each type, each wrong value.
VALID_BODIES = {
    PacketType.CONNECT: (connect()[2:], V311),
    PacketType.CONNACK: (b"\x00\x00", V311),
    PacketType.PUBACK: (u16(1), V311),
    PacketType.PUBREC: (u16(1), V311),
    PacketType.PUBREL: (u16(1), V311),
    PacketType.PUBCOMP: (u16(1), V311),
    PacketType.SUBSCRIBE: (u16(1) + string("a") + b"\x00", V311),
    PacketType.SUBACK: (u16(1) + b"\x00", V311),
    PacketType.UNSUBSCRIBE: (u16(1) + string("a"), V311),
    PacketType.UNSUBACK: (u16(1), V311),
    PacketType.PINGREQ: (b"", V311),
    PacketType.PINGRESP: (b"", V311),
    PacketType.DISCONNECT: (b"", V311),
    PacketType.AUTH: (b"\x00\x00", V5),
}
REQUIRED_FLAGS = {PacketType.PUBREL: 2, PacketType.SUBSCRIBE: 2, PacketType.UNSUBSCRIBE: 2}
FLAG_REFS = {
    PacketType.PUBREL: "MQTT-3.6.1-1",
    PacketType.SUBSCRIBE: "MQTT-3.8.1-1",
    PacketType.UNSUBSCRIBE: "MQTT-3.10.1-1",
}
FLAG_CASES = [
    (ptype, flags)
    for ptype in VALID_BODIES
    for flags in range(16)
    if flags != REQUIRED_FLAGS.get(ptype, 0)
]


@pytest.mark.parametrize("ptype", list(VALID_BODIES), ids=[t.name for t in VALID_BODIES])
def test_each_packet_type_with_its_required_flags_is_accepted(ptype: PacketType) -> None:
    body, level = VALID_BODIES[ptype]
    first = (ptype << 4) | REQUIRED_FLAGS.get(ptype, 0)
    assert len(accepts(frame(first, body), level=level)) == 1


@pytest.mark.parametrize(
    ("ptype", "flags"), FLAG_CASES, ids=[f"{t.name}-{f:x}" for t, f in FLAG_CASES]
)
def test_reserved_fixed_header_flags_are_malformed(ptype: PacketType, flags: int) -> None:
    body, level = VALID_BODIES[ptype]
    ref = FLAG_REFS.get(ptype, "MQTT-2.2.2-2")
    rejects(frame((ptype << 4) | flags, body), MalformedPacket, MALFORMED, ref, level=level)


def test_packet_type_0_is_reserved() -> None:
    rejects(b"\x00\x00", MalformedPacket, MALFORMED, "§2.2.1")


def test_auth_below_mqtt_5_is_malformed() -> None:
    rejects(b"\xf0\x02\x00\x00", MalformedPacket, MALFORMED, "§2.2.1", level=V311)


@pytest.mark.parametrize("retain", [0, 1])
@pytest.mark.parametrize("dup", [0, 8])
def test_publish_with_both_qos_bits_set_is_malformed(dup: int, retain: int) -> None:
    body = string("a/b") + u16(1) + b"x"
    rejects(frame(0x36 | dup | retain, body), MalformedPacket, MALFORMED, "MQTT-3.3.1-4")


def test_publish_with_dup_at_qos_0_is_malformed() -> None:
    rejects(frame(0x38, string("a/b") + b"x"), MalformedPacket, MALFORMED, "MQTT-3.3.1-2")


SERVER_ONLY = [PacketType.CONNACK, PacketType.SUBACK, PacketType.UNSUBACK, PacketType.PINGRESP]
CLIENT_ONLY = [PacketType.CONNECT, PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE,
               PacketType.PINGREQ]  # fmt: skip


@pytest.mark.parametrize("ptype", SERVER_ONLY, ids=[t.name for t in SERVER_ONLY])
def test_a_server_refuses_packets_only_a_server_sends(ptype: PacketType) -> None:
    body, _ = VALID_BODIES[ptype]
    first = (ptype << 4) | REQUIRED_FLAGS.get(ptype, 0)
    rejects(frame(first, body), ProtocolError, ReasonCode.PROTOCOL_ERROR, "MQTT-4.8.0-1",
            level=V311, role=Role.SERVER)


@pytest.mark.parametrize("ptype", CLIENT_ONLY, ids=[t.name for t in CLIENT_ONLY])
def test_a_client_refuses_packets_only_a_client_sends(ptype: PacketType) -> None:
    body, _ = VALID_BODIES[ptype]
    first = (ptype << 4) | REQUIRED_FLAGS.get(ptype, 0)
    rejects(frame(first, body), ProtocolError, ReasonCode.PROTOCOL_ERROR, "MQTT-4.8.0-1",
            level=V311, role=Role.CLIENT)


@pytest.mark.parametrize("ptype", list(VALID_BODIES), ids=[t.name for t in VALID_BODIES])
def test_each_role_accepts_what_the_other_side_may_send(ptype: PacketType) -> None:
    body, level = VALID_BODIES[ptype]
    first = (ptype << 4) | REQUIRED_FLAGS.get(ptype, 0)
    role = Role.CLIENT if ptype in SERVER_ONLY else Role.SERVER
    assert len(Decoder(role=role, protocol_level=level).feed(frame(first, body))) == 1


def test_a_256_mb_publish_is_refused_from_its_fixed_header_alone() -> None:
    """BAD-INPUTS: ~256 MB announced by an unauthenticated client (CVE-2017-7651)."""
    decoder = Decoder(role=Role.SERVER, max_packet_size=1 << 20)
    header = b"\x30\xff\xff\xff\x7f"  # Remaining Length 268,435,455
    with pytest.raises(PacketTooLarge) as info:
        decoder.feed(header)
    assert info.value.reason_code is ReasonCode.PACKET_TOO_LARGE
    assert decoder.buffered == 0


def test_the_size_limit_counts_the_whole_packet_including_the_fixed_header() -> None:
    packet = Publish("t", bytes(10))
    wire = encode(packet)  # 2 + 3 + 10 = 15 bytes
    assert Decoder(max_packet_size=len(wire)).feed(wire) == [packet]
    with pytest.raises(PacketTooLarge):
        Decoder(max_packet_size=len(wire) - 1).feed(wire[:2])


def test_the_error_carries_the_packets_decoded_before_the_bad_one() -> None:
    good: list[Packet] = [
        Publish("a", b"1"), PingReq(), Publish("b", b"2", QoS.AT_LEAST_ONCE, packet_id=7)
    ]
    stream = b"".join(encode(p) for p in good) + b"\x36\x00"
    with pytest.raises(MalformedPacket) as info:
        Decoder(protocol_level=V311).feed(stream)
    assert info.value.packets == good


def test_the_error_holds_only_packets_of_the_failing_call() -> None:
    decoder = Decoder(protocol_level=V311)
    assert decoder.feed(encode(PingReq())) == [PingReq()]
    with pytest.raises(MalformedPacket) as info:
        decoder.feed(encode(Publish("a", b"")) + b"\x00\x00")
    assert info.value.packets == [Publish("a", b"")]


def test_a_too_large_packet_also_reports_the_packets_before_it() -> None:
    stream = encode(PingReq()) + b"\x30\xff\xff\x7f"
    with pytest.raises(PacketTooLarge) as info:
        Decoder(max_packet_size=1000).feed(stream)
    assert info.value.packets == [PingReq()]
