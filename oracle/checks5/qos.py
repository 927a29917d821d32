"""MQTT 5.0 QoS 1 and QoS 2 flows with the server on either side (4.3.2, 4.3.3).

As receiver, a QoS 2 PUBLISH repeated before PUBREL is acknowledged again and delivered
once; after PUBCOMP the same Packet Identifier carries a new message. As sender, the
server's PUBLISH carries DUP 0 and a non-zero identifier, and a PUBREC below 0x80 gets
its PUBREL. Messages are told apart by payload, never by the identifier under test.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from mqttref.oracle.checks5.common import (
    check5,
    collect_until,
    connect5,
    needs_qos2,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.scenario import Context

Q1, Q2 = QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE


@check5("MQTT-4.3.3-8", "MQTT-4.3.3-10", "MQTT-4.3.3-11", "MQTT-4.3.3-12",
        summary="a QoS 2 PUBLISH repeated before PUBREL gets PUBREC again and is delivered"
        " once; PUBREL gets PUBCOMP; then the same identifier carries a new message")
async def qos2_receiver_v5(ctx: Context) -> None:
    needs_qos2(ctx, "PUBLISH may be sent to it")
    topic = ctx.topic("q2in")
    sub, _ = await connect5(ctx, "sub")
    # At QoS 2: a server that duplicates only what it sends at QoS 2 is caught too.
    await subscribe5(sub, Subscription(topic, Q2), exact=False)
    pub, _ = await connect5(ctx, "pub")
    packet_id = 4242  # not what a fresh per-connection counter would hand out
    await pub.send(Publish(topic, b"once", Q2, False, False, packet_id))
    rec = await pub.expect(PubRec, "PUBREC for a QoS 2 PUBLISH [MQTT-4.3.3-8]")
    require(rec.packet_id == packet_id, f"pub: PUBREC must carry the PUBLISH's identifier"
            f" {packet_id}, got {rec.packet_id} [MQTT-4.3.3-8]")
    await pub.send(Publish(topic, b"once", Q2, False, True, packet_id), note="the same again")
    again = await pub.expect(PubRec, "PUBREC for the same QoS 2 PUBLISH before PUBREL"
                             " [MQTT-4.3.3-10]")
    require(again.packet_id == packet_id, f"pub: the repeated PUBLISH must be acknowledged with"
            f" PUBREC {packet_id}, got {again.packet_id} [MQTT-4.3.3-10]")
    await pub.send(PubRel(packet_id))
    comp = await pub.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-11]")
    require(comp.packet_id == packet_id, f"pub: PUBCOMP must carry the PUBREL's identifier"
            f" {packet_id}, got {comp.packet_id} [MQTT-4.3.3-11]")
    await pub.send(Publish(topic, b"new", Q2, False, False, packet_id),
                   note="the identifier again, after PUBCOMP")
    await pub.expect(PubRec, "PUBREC for a new QoS 2 PUBLISH [MQTT-4.3.3-8]")
    await pub.send(PubRel(packet_id))
    await pub.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-11]")
    before = await collect_until(sub, b"new", "(the identifier after PUBCOMP carries a new"
                                 " message) [MQTT-4.3.3-12]")
    copies = [m for m in before if m.payload == b"once"]
    require(len(copies) == 1, f"sub: the QoS 2 message sent twice before PUBREL must be"
            f" delivered once, got {len(copies)} copies [MQTT-4.3.3-10]")


@check5("MQTT-4.3.2-2", "MQTT-4.3.3-2", "MQTT-4.3.3-4", "MQTT-2.2.1-4",
        summary="the server's QoS 1 and QoS 2 PUBLISH carry DUP 0 and a non-zero identifier;"
        " a PUBREC below 0x80 gets PUBREL with the same identifier")
async def qos_sender_v5(ctx: Context) -> None:
    topic = ctx.topic("q2out")
    sub, _ = await connect5(ctx, "sub")
    top = min(2, ctx.profile5.maximum_qos)
    suback = await subscribe5(sub, Subscription(topic, Q2), exact=False)
    granted = suback.return_codes[0]
    pub, _ = await connect5(ctx, "pub")
    await publish5(pub, topic, b"one", Q1)
    first = await sub.expect(Publish, "the QoS 1 message the subscription matches"
                             " [MQTT-3.3.4-1]")
    require(first.qos == min(1, granted) and not first.dup,
            f"sub: a new QoS 1 PUBLISH from the server must have QoS {min(1, granted)} and DUP"
            f" 0, got QoS {int(first.qos)} DUP {int(first.dup)} [MQTT-4.3.2-2]")
    if first.qos > 0:
        require(first.packet_id not in (None, 0), f"sub: the server's QoS 1 PUBLISH must have"
                f" a non-zero identifier, got {first.packet_id} [MQTT-2.2.1-4]")
        await sub.send(PubAck(first.packet_id or 0))
    if granted < 2 or top < 2:
        raise NotApplicable(f"grants QoS {granted} for a QoS 2 subscription (allowed"
                            " [MQTT-3.8.4-7]); no QoS 2 PUBLISH to judge", "MQTT-4.3.3-2",
                            "MQTT-4.3.3-4")
    await publish5(pub, topic, b"two", Q2)
    second = await sub.expect(Publish, "the QoS 2 message the subscription matches"
                              " [MQTT-3.3.4-1]")
    require(second.qos == Q2 and not second.dup,
            f"sub: a new QoS 2 PUBLISH from the server must have QoS 2 and DUP 0, got QoS"
            f" {int(second.qos)} DUP {int(second.dup)} [MQTT-4.3.3-2]")
    require(second.packet_id not in (None, 0),
            f"sub: the server's QoS 2 PUBLISH must have a non-zero identifier, got"
            f" {second.packet_id} [MQTT-2.2.1-4]")
    assert second.packet_id is not None
    await sub.send(PubRec(second.packet_id))
    rel = await sub.expect(PubRel, "PUBREL after a PUBREC below 0x80 [MQTT-4.3.3-4]")
    require(rel.packet_id == second.packet_id, f"sub: PUBREL must carry the PUBLISH's"
            f" identifier {second.packet_id}, got {rel.packet_id} [MQTT-4.3.3-4]")
    await sub.send(PubComp(rel.packet_id))



@check5("MQTT-3.10.4-3",
        summary="a QoS 2 delivery begun before an UNSUBSCRIBE of its filter is completed:"
        " the PUBREC after the UNSUBACK gets its PUBREL")
async def unsubscribe_completes_delivery_v5(ctx: Context) -> None:
    needs_qos2(ctx, "message to deliver")
    topic = ctx.topic("unsubq2")
    sub, _ = await connect5(ctx, "sub")
    suback = await subscribe5(sub, Subscription(topic, Q2), exact=False)
    if suback.return_codes[0] < 2:
        raise NotApplicable(f"grants QoS {suback.return_codes[0]} for a QoS 2 subscription"
                            " (allowed [MQTT-3.8.4-7]): no QoS 2 delivery to complete")
    pub, _ = await connect5(ctx, "pub")
    await publish5(pub, topic, b"begun", Q2)
    begun = await sub.expect(Publish, "the QoS 2 message the subscription matches"
                             " [MQTT-3.3.4-1]")
    assert begun.packet_id is not None
    await sub.send(Unsubscribe(sub.new_packet_id(), (topic,)))
    await sub.expect(UnsubAck, "UNSUBACK for UNSUBSCRIBE [MQTT-3.10.4-4]")
    await sub.send(PubRec(begun.packet_id), note="after the UNSUBACK")
    rel = await sub.expect(PubRel, "PUBREL for the PUBREC of a delivery begun before the"
                           " UNSUBSCRIBE: the server must complete it [MQTT-3.10.4-3]")
    require(rel.packet_id == begun.packet_id and rel.reason_code == 0x00,
            f"sub: the PUBREL must carry the PUBLISH's identifier {begun.packet_id} and 0x00"
            f" (0x92 would say the delivery was dropped), got {rel.packet_id}"
            f" 0x{rel.reason_code:02X} [MQTT-3.10.4-3]")
    await sub.send(PubComp(rel.packet_id))
