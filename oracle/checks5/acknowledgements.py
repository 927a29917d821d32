"""Every acknowledgement a 5.0 server sends, to a client whose Maximum Packet Size leaves
no room for a Reason String or User Properties: SUBACK, UNSUBACK, PUBACK, PUBREC, PUBREL
and PUBCOMP each still come, carry a Reason Code of their table, and fit.

The client asks for the smallest Maximum Packet Size that still holds the server's CONNACK
and the one message it is to receive, and draws the acknowledgements a server most likely
explains: an UNSUBACK for a filter never subscribed (0x11), a PUBACK for a message no one
receives (0x10), a PUBCOMP for an unknown Packet Identifier (0x92). A server may explain
any of them, but not beyond the client's limit (3.4.2.2.2 and the like for each packet);
dropping the acknowledgement instead breaks the rule that it be sent.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Packet,
    Properties,
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
)
from mqttref.oracle.checks5._closing import size
from mqttref.oracle.checks5.common import (
    PUBACK_CODES,
    PUBCOMP_CODES,
    PUBREL_CODES,
    SUBACK_CODES,
    UNSUBACK_CODES,
    check5,
    connect5,
)
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Probe, describe
from mqttref.oracle.scenario import Context

Q1, Q2 = QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE

SIZE_RULES = {
    "PUBACK": "[MQTT-3.4.2-2] [MQTT-3.4.2-3]", "PUBREC": "[MQTT-3.5.2-2] [MQTT-3.5.2-3]",
    "PUBREL": "[MQTT-3.6.2-2] [MQTT-3.6.2-3]", "PUBCOMP": "[MQTT-3.7.2-2] [MQTT-3.7.2-3]",
    "SUBACK": "[MQTT-3.9.2-1] [MQTT-3.9.2-2]", "UNSUBACK": "[MQTT-3.11.2-1] [MQTT-3.11.2-2]",
}
"""Per packet, the two statements that keep its Reason String and User Properties within
the receiver's Maximum Packet Size."""


_QOS2 = ("MQTT-3.5.2-2", "MQTT-3.5.2-3", "MQTT-3.6.2-1", "MQTT-3.6.2-2", "MQTT-3.6.2-3")
"""What only a QoS 2 flow lets a client judge."""


def _fits(probe: Probe, packet: Packet, limit: int, cause: str) -> None:
    kind = packet.packet_type.name
    require(size(packet) <= limit, f"{probe.name}: {describe(packet)} ({size(packet)} bytes,"
            f" for {cause}) must fit the client's Maximum Packet Size {limit}, its Reason String"
            f" and User Properties left out where they do not {SIZE_RULES[kind]}")


@check5("MQTT-3.4.2-2", "MQTT-3.4.2-3", "MQTT-3.5.2-2", "MQTT-3.5.2-3", "MQTT-3.6.2-1",
        "MQTT-3.6.2-2", "MQTT-3.6.2-3", "MQTT-3.7.2-1", "MQTT-3.7.2-2", "MQTT-3.7.2-3",
        "MQTT-3.8.4-1", "MQTT-3.8.4-2", "MQTT-3.8.4-6", "MQTT-3.9.2-1", "MQTT-3.9.2-2",
        "MQTT-3.9.3-2", "MQTT-3.11.2-1", "MQTT-3.11.2-2",
        summary="to a client with a tight Maximum Packet Size every acknowledgement (SUBACK,"
        " UNSUBACK, PUBACK, PUBREC, PUBREL, PUBCOMP) still comes, fits, and carries a Reason"
        " Code of its table")
async def acknowledgements_within_maximum_packet_size_v5(ctx: Context) -> None:
    topic = ctx.topic("acks")
    top = QoS(min(2, ctx.profile5.maximum_qos))
    ref, connack = await connect5(ctx, "ref")
    await ref.close()
    delivered = Publish(topic, b"m", top, False, False, 65535 if top else None)
    limit = max(size(connack), size(delivered), 16)
    probe, _ = await connect5(ctx, "tight", props=Properties(maximum_packet_size=limit))
    # One scenario per acknowledgement: a deviation of one leaves the others judged.
    granted = 0x80
    async with ctx.scenario("SUBACK"):
        packet_id = probe.new_packet_id()
        await probe.send(Subscribe(packet_id, (Subscription(topic, top),
                                               Subscription(ctx.topic("acks", "other"), Q1))))
        suback = await probe.expect(SubAck, "SUBACK for SUBSCRIBE [MQTT-3.8.4-1]")
        codes = suback.return_codes
        require(suback.packet_id == packet_id, f"tight: SUBACK id {suback.packet_id} must"
                f" equal SUBSCRIBE id {packet_id} [MQTT-3.8.4-2]")
        require(len(codes) == 2, f"tight: SUBACK {codes} must hold a Reason Code for each of"
                " the 2 filters [MQTT-3.8.4-6]")
        require(all(code in SUBACK_CODES for code in codes), f"tight: SUBACK codes {codes}"
                " must be Subscribe Reason Codes [MQTT-3.9.3-2]")
        _fits(probe, suback, limit, "a SUBSCRIBE of two filters")
        granted = codes[0]
    async with ctx.scenario("UNSUBACK"):
        await probe.send(Unsubscribe(probe.new_packet_id(), (ctx.topic("acks", "never"),)))
        unsuback = await probe.expect(UnsubAck, "UNSUBACK for UNSUBSCRIBE [MQTT-3.10.4-4]")
        require(all(code in UNSUBACK_CODES for code in unsuback.reason_codes),
                f"tight: UNSUBACK codes {unsuback.reason_codes} must be Unsubscribe Reason"
                " Codes [MQTT-3.11.3-2]")
        _fits(probe, unsuback, limit, "an UNSUBSCRIBE of a filter never subscribed")
    async with ctx.scenario("PUBACK"):
        if top < Q1:
            raise NotApplicable(f"declares Maximum QoS {ctx.profile5.maximum_qos}: a client may"
                                " send no QoS 1 PUBLISH [MQTT-3.2.2-11]",
                                "MQTT-3.4.2-2", "MQTT-3.4.2-3")
        packet_id = probe.new_packet_id()
        await probe.send(Publish(ctx.topic("acks", "nobody"), b"n", Q1, False, False,
                                 packet_id))
        puback = await probe.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]")
        require(puback.reason_code in PUBACK_CODES, f"tight: PUBACK"
                f" 0x{puback.reason_code:02X} must be a PUBACK Reason Code [MQTT-3.4.2-1]")
        _fits(probe, puback, limit, "a QoS 1 PUBLISH no one subscribes to")
    async with ctx.scenario("PUBCOMP for an unknown identifier"):
        if top < Q2:
            raise NotApplicable(f"declares Maximum QoS {ctx.profile5.maximum_qos}: a client may"
                                " send no QoS 2 PUBLISH, so no PUBREL of its has a QoS 2 flow"
                                " to belong to (3.2.2.3.4, 4.3.3)",
                                "MQTT-3.7.2-1", "MQTT-3.7.2-2", "MQTT-3.7.2-3")
        await probe.send(PubRel(4321), note="a PUBREL for a Packet Identifier never used")
        comp = await probe.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-11]")
        _comp(probe, comp, limit, "a PUBREL of an unknown Packet Identifier")
    if top < Q2:
        raise NotApplicable(f"declares Maximum QoS {ctx.profile5.maximum_qos}: no QoS 2 flow,"
                            " so no PUBREC or PUBREL from the server (3.2.2.3.4)", *_QOS2)
    async with ctx.scenario("QoS 2 both ways"):
        await _qos2_both_ways(probe, topic, limit, granted)


async def _qos2_both_ways(probe: Probe, topic: str, limit: int, granted: int) -> None:
    mine = probe.new_packet_id()
    await probe.send(Publish(topic, b"m", Q2, False, False, mine))
    rec = await probe.expect(PubRec, "PUBREC for a QoS 2 PUBLISH [MQTT-4.3.3-8]")
    require(rec.reason_code in PUBACK_CODES, f"tight: PUBREC 0x{rec.reason_code:02X} must be a"
            " PUBREC Reason Code [MQTT-3.5.2-1]")
    _fits(probe, rec, limit, "a QoS 2 PUBLISH")
    await probe.send(PubRel(mine))
    _comp(probe, await probe.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-11]"), limit,
          "a PUBREL")
    # Its own message comes back on its QoS 2 subscription (no No Local): the server's PUBREL.
    if granted != Q2:
        raise NotApplicable(f"answers the QoS 2 subscription with 0x{granted:02X} (a lower"
                            " grant or a refusal is allowed, 3.9.3): no PUBREL from the server",
                            "MQTT-3.6.2-1", "MQTT-3.6.2-2", "MQTT-3.6.2-3")
    back = await probe.expect(Publish, "the message its subscription matches [MQTT-3.3.4-1]")
    require(back.qos == Q2 and back.packet_id is not None, f"tight: a QoS 2 message on a"
            f" subscription granted QoS 2 must come at QoS 2, got QoS {int(back.qos)}"
            " [MQTT-3.8.4-8]")
    assert back.packet_id is not None
    await probe.send(PubRec(back.packet_id))
    rel = await probe.expect(PubRel, "PUBREL for PUBREC [MQTT-4.3.3-4]")
    require(rel.reason_code in PUBREL_CODES, f"tight: PUBREL 0x{rel.reason_code:02X} must be a"
            " PUBREL Reason Code (0x00 or 0x92) [MQTT-3.6.2-1]")
    _fits(probe, rel, limit, "the client's PUBREC")
    await probe.send(PubComp(back.packet_id))


def _comp(probe: Probe, comp: PubComp, limit: int, cause: str) -> None:
    require(comp.reason_code in PUBCOMP_CODES, f"{probe.name}: PUBCOMP"
            f" 0x{comp.reason_code:02X} (for {cause}) must be a PUBCOMP Reason Code (0x00 or"
            " 0x92) [MQTT-3.7.2-1]")
    _fits(probe, comp, limit, cause)
