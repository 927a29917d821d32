"""How a 5.0 server writes its packets (chapter 2, 1.5.5, 3.2.2.1, 3.3.1), read from the
bytes as they arrived, and its close on a fixed header the text calls malformed.

The probe's strict decoder already refuses much of what is judged here, but a refusal
only says that something is wrong; the bytes say which rule: a Remaining Length or
Property Length written in more bytes than needed [MQTT-1.5.5-1], a reserved flag bit
not at the value Table 2-2 lists [MQTT-2.1.3-1], a QoS 0 PUBLISH with a Packet
Identifier [MQTT-2.2.1-2] or with DUP 1 [MQTT-3.3.1-2], no Property Length where there
are no properties [MQTT-2.2.2-1], CONNACK flag bits 7-1 not 0 [MQTT-3.2.2-1]. The
scenario makes the server write each kind of packet it sends, a Remaining Length of
three bytes, a Subscription Identifier of two, and a QoS 0 copy of a message published
at QoS 1 with DUP 1 (where a server that copies the flags byte breaks 3.3.1-2).
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    PingReq,
    PingResp,
    Properties,
    PubAck,
    Publish,
    QoS,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from mqttref.oracle import raw
from mqttref.oracle.checks5 import _wire
from mqttref.oracle.checks5._steps import closes_unanswered
from mqttref.oracle.checks5.common import (
    check5,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import Deviation
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Probe
from mqttref.oracle.scenario import Context

KEEP = Properties(session_expiry_interval=10)
BIG = 20_000
"""A payload whose PUBLISH needs a three-byte Remaining Length."""
IDENTIFIER = 200
"""A Subscription Identifier that needs two bytes."""


def _publish_body(name: str, frame: _wire.Frame, payloads: dict[bytes, str]) -> None:
    """A PUBLISH's Packet Identifier (only at QoS 1 and 2), Property Length and payload."""
    body = frame.body
    qos = (frame.flags >> 1) & 0x03
    topic_end = 2 + int.from_bytes(body[:2], "big")
    start = topic_end + (2 if qos else 0)
    block = _wire.properties_at(body, start)
    rest = body[block.end:] if block is not None else None
    if rest in payloads:
        assert block is not None
        require(block.length_minimal, f"{name}: the PUBLISH carrying {payloads[rest]} writes its"
                f" Property Length {block.length} in more bytes than needed [MQTT-1.5.5-1]")
        for ident, value, fewest in block.varints:
            require(fewest, f"{name}: property 0x{ident:02X} = {value} written in more bytes"
                    " than needed [MQTT-1.5.5-1]")
            if value >= 128:
                require(True, f"{name}: Subscription Identifier {value} written in the fewest"
                        " bytes [MQTT-1.5.5-1]")
        if not qos:
            require(True, f"{name}: the QoS 0 PUBLISH carrying {payloads[rest]} has no Packet"
                    " Identifier [MQTT-2.2.1-2]")
        if block.length == 0:
            require(True, f"{name}: the PUBLISH carrying {payloads[rest]} has no properties and"
                    " says so with a Property Length of 0 [MQTT-2.2.2-1]")
        return
    for known, label in payloads.items():
        if not qos and body[topic_end + 2:].endswith(known) and (
                (b := _wire.properties_at(body, topic_end + 2)) is not None
                and body[b.end:] == known):
            raise Deviation(f"{name}: the QoS 0 PUBLISH carrying {label} has two bytes"
                            f" {body[topic_end:topic_end + 2].hex()} between its topic and its"
                            " Property Length: a Packet Identifier [MQTT-2.2.1-2]")
        if body[start:] == known:
            raise Deviation(f"{name}: the PUBLISH carrying {label} has no Property Length; with"
                            " no properties it must hold a Property Length of 0"
                            " [MQTT-2.2.2-1]")


def _judge_frames(probe: Probe, payloads: dict[bytes, str], acks: dict[int, int]) -> None:
    """Every frame ``probe`` received: Remaining Length, reserved flags, CONNACK flags,
    Property Lengths; ``acks`` gives the number of Reason Codes a SUBACK or UNSUBACK
    answers (by packet type)."""
    name = probe.name
    for data in probe.frames:
        frame = _wire.parse(data)
        if frame is None:
            raise Deviation(f"{name}: a frame whose Remaining Length does not end within four"
                            f" bytes: {data[:8].hex(' ')} [MQTT-1.5.5-1]")
        require(_wire.minimal(frame.length, frame.length_bytes),
                f"{name}: {frame.name} with Remaining Length {frame.length} written in"
                f" {frame.length_bytes} bytes: the fewest are required [MQTT-1.5.5-1]")
        if frame.kind == 3:
            qos = (frame.flags >> 1) & 0x03
            require(qos != 3, f"{name}: a PUBLISH with both QoS bits set [MQTT-3.3.1-4]")
            if qos == 0:
                require(not frame.flags & 0x08, f"{name}: a QoS 0 PUBLISH with DUP 1 (flags"
                        f" 0x{frame.flags:X}): DUP must be 0 for all QoS 0 messages"
                        " [MQTT-3.3.1-2]")
            _publish_body(name, frame, payloads)
            continue
        expected = _wire.FIXED_FLAGS.get(frame.kind)
        if expected is None:
            continue
        require(frame.flags == expected, f"{name}: {frame.name} with flags"
                f" {frame.flags:04b}; Table 2-2 reserves them as {expected:04b}"
                " [MQTT-2.1.3-1]")
        if frame.kind == 2:
            require(not frame.body[0] & 0xFE, f"{name}: CONNACK Acknowledge Flags"
                    f" 0x{frame.body[0]:02X}: bits 7-1 are reserved and must be 0"
                    " [MQTT-3.2.2-1]")
            _property_length(name, frame, 2)
        elif frame.kind in acks:
            codes = acks[frame.kind]
            if len(frame.body) == 2 + codes:
                raise Deviation(f"{name}: {frame.name} holds its packet id and {codes} Reason"
                                " Code(s) and no Property Length; with no properties it must"
                                " hold a Property Length of 0 [MQTT-2.2.2-1]")
            _property_length(name, frame, 2)
        elif frame.kind in (4, 5, 6, 7) and frame.length >= 4:
            _property_length(name, frame, 3)


def _property_length(name: str, frame: _wire.Frame, at: int) -> None:
    block = _wire.properties_at(frame.body, at)
    if block is None:
        raise Deviation(f"{name}: {frame.name} has no Property Length that its bytes can hold"
                        f" ({frame.body[:12].hex(' ')}) [MQTT-2.2.2-1]")
    require(block.length_minimal, f"{name}: {frame.name} writes its Property Length"
            f" {block.length} in more bytes than needed [MQTT-1.5.5-1]")
    if block.length == 0:
        require(True, f"{name}: {frame.name} without properties has a Property Length of 0"
                " [MQTT-2.2.2-1]")


@check5("MQTT-1.5.5-1", "MQTT-2.1.3-1", "MQTT-2.2.1-2", "MQTT-2.2.2-1", "MQTT-3.2.2-1",
        "MQTT-3.3.1-2", "MQTT-3.3.1-4",
        summary="the server writes its packets as chapter 2 says: Variable Byte Integers in"
        " the fewest bytes, reserved flags as listed, CONNACK flag bits 7-1 at 0, a Property"
        " Length of 0 when there are no properties, and a QoS 0 copy of a QoS 1 DUP 1"
        " message with DUP 0 and no Packet Identifier")
async def server_packet_encoding_v5(ctx: Context) -> None:
    profile = ctx.profile5
    low, high = ctx.topic("enc", "low"), ctx.topic("enc", "big")
    cid = ctx.client_id("enc")
    sub, _ = await connect5(ctx, "sub", cid, clean=False, props=KEEP)
    top = QoS(min(profile.maximum_qos, 2))
    props = (Properties(subscription_identifiers=(IDENTIFIER,))
             if profile.subscription_identifiers_available else Properties())
    # The granted QoS first: a code of 1 or 2 where the Property Length goes cannot be read
    # as one of 0, so a SUBACK without it shows as such [MQTT-2.2.2-1] (probe).
    await subscribe5(sub, Subscription(high, top), Subscription(low, QoS.AT_MOST_ONCE),
                     props=props, exact=False)
    pub, _ = await connect5(ctx, "pub")
    dup_payload, big_payload = b"sent with DUP 1", bytes(range(256)) * (BIG // 256)
    if profile.maximum_qos >= 1:
        await pub.send(Publish(low, dup_payload, QoS.AT_LEAST_ONCE, False, True, 7),
                       note="a QoS 1 PUBLISH with DUP 1 (as if re-sent)")
        await pub.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]")
    else:
        await publish5(pub, low, dup_payload)
    await publish5(pub, high, big_payload, top)
    await collect_until(sub, big_payload, "(a message on the subscribed topic)"
                        " [MQTT-3.3.4-1]")
    await sub.send(Unsubscribe(sub.new_packet_id(), (low,)))
    await sub.expect(UnsubAck, "UNSUBACK for UNSUBSCRIBE [MQTT-3.10.4-4]")
    await sub.send(PingReq())
    await sub.expect(PingResp, "PINGRESP for PINGREQ [MQTT-3.12.4-1]")
    sub.abort()
    back, connack = await connect5(ctx, "back", cid, clean=False, props=KEEP)
    payloads = {dup_payload: "the DUP 1 message", big_payload: f"the {BIG}-byte message"}
    for probe, acks in ((sub, {9: 2, 11: 1}), (pub, {}), (back, {})):
        _judge_frames(probe, payloads, acks)
    if len(big_payload) >= 16384:
        require(True, f"sub: a PUBLISH of over {BIG} bytes has its Remaining Length in the three"
                " bytes it needs [MQTT-1.5.5-1]")
    if connack.session_present:
        require(True, "back: the CONNACK with Session Present 1 has flag bits 7-1 at 0"
                " [MQTT-3.2.2-1]")


@check5("MQTT-4.13.1-1",
        summary="a PINGREQ or CONNECT with a reserved fixed-header flag set, and a PUBLISH"
        " with both QoS bits set, are Malformed Packets that close the connection")
async def malformed_fixed_header_v5(ctx: Context) -> None:
    # The flag rules bind the sender (2.1.3, 3.3.1.2): the server that receives such a
    # packet is judged by its duty to close on a Malformed Packet [MQTT-4.13.1-1].
    async with ctx.scenario("PINGREQ with a reserved flag set"):
        probe, _ = await connect5(ctx, "ping")
        await probe.send(bytes((0xC1, 0x00)), note="PINGREQ with flags 0001")
        await closes_unanswered(probe, "(a reserved flag not at its listed value makes a"
                                " Malformed Packet, 2.1.3) [MQTT-4.13.1-1]", ping=False)
    async with ctx.scenario("CONNECT with a reserved flag set"):
        probe = await ctx.open("conn")
        data = raw.connect5(ctx.client_id("conn"))
        await probe.send(bytes((0x12,)) + data[1:], note="CONNECT with fixed-header flags 0010")
        await closes_unanswered(probe, "(a reserved flag not at its listed value makes a"
                                " Malformed Packet, 2.1.3) [MQTT-3.1.4-1]", ping=False,
                                connack=True)
    async with ctx.scenario("PUBLISH with QoS bits 11"):
        probe, _ = await connect5(ctx, "q3")
        await probe.send(raw.publish5(ctx.topic("enc", "q3"), b"q3", qos=3, packet_id=1),
                         note="PUBLISH with both QoS bits set")
        await closes_unanswered(probe, "(a PUBLISH with both QoS bits set is a Malformed"
                                " Packet, 3.3.1.2) [MQTT-4.13.1-1]")
