"""What a 5.0 server answers a PUBLISH with, by its QoS (3.3.4), and the Packet Identifier
each answer carries (2.2.1).

The identifiers are chosen far apart (65535, 256, 1...) so that a server answering with a
counter of its own, or with the last identifier it saw, is caught.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Packet,
    PingReq,
    PingResp,
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
from mqttref.oracle.checks5._steps import next_answer
from mqttref.oracle.checks5.common import check5, connect5, subscribe5
from mqttref.oracle.evidence import Deviation, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Probe, Received, describe
from mqttref.oracle.scenario import Context


async def _answer(probe: Probe, why: str) -> Packet:
    """The next packet from the server, owed for ``why``."""
    event = await next_answer(probe)
    if not isinstance(event, Received):
        raise Deviation(f"{probe.name}: no answer within {probe.timing.reply_bound:.1f}s"
                        f" {why}" if event is None else
                        f"{probe.name}: the connection ended instead of the answer {why}")
    return event.packet


def _is(probe: Probe, packet: Packet, expected: tuple[type[Packet], int], why: str,
        rule: str) -> None:
    kind, packet_id = expected
    require(isinstance(packet, kind), f"{probe.name}: {describe(packet)} arrived; the answer"
            f" must be {kind.__name__.upper()} {why}")
    got = getattr(packet, "packet_id", None)
    require(got == packet_id, f"{probe.name}: {kind.__name__.upper()} carries Packet"
            f" Identifier {got}, the packet it answers carried {packet_id} {rule}")


@check5("MQTT-3.3.4-1", "MQTT-2.2.1-5", "MQTT-2.2.1-6",
        summary="a QoS 0 PUBLISH gets no answer, QoS 1 a PUBACK, QoS 2 a PUBREC then a"
        " PUBCOMP, each with the PUBLISH's Packet Identifier; the server's PUBREL carries its"
        " PUBLISH's; SUBACK and UNSUBACK carry their request's")
async def acknowledgement_identifiers_v5(ctx: Context) -> None:
    top = ctx.profile5.maximum_qos
    topic, other = ctx.topic("ackid", "pub"), ctx.topic("ackid", "sub")
    probe, _ = await connect5(ctx, "acks")
    await probe.send(Subscribe(65535, (Subscription(other, QoS.AT_MOST_ONCE),)))
    suback = await _answer(probe, "(SUBACK for SUBSCRIBE) [MQTT-3.8.4-1]")
    _is(probe, suback, (SubAck, 65535), "for SUBSCRIBE [MQTT-3.8.4-1]", "[MQTT-2.2.1-6]")
    async with ctx.scenario("QoS 0"):
        await probe.send(Publish(topic, b"q0"), note="a QoS 0 PUBLISH, then PINGREQ")
        await probe.send(PingReq())
        answer = await _answer(probe, "(PINGRESP for PINGREQ) [MQTT-3.12.4-1]")
        require(isinstance(answer, PingResp), f"acks: {describe(answer)} answered a QoS 0"
                " PUBLISH, which gets no answer (before the PINGRESP) [MQTT-3.3.4-1]")
    async with ctx.scenario("QoS 1"):
        if top < 1:
            raise NotApplicable("declares Maximum QoS 0 in CONNACK (3.2.2.3.4)")
        await probe.send(Publish(topic, b"q1", QoS.AT_LEAST_ONCE, False, False, 256))
        packet = await _answer(probe, "(PUBACK for a QoS 1 PUBLISH) [MQTT-3.3.4-1]")
        _is(probe, packet, (PubAck, 256), "for a QoS 1 PUBLISH [MQTT-3.3.4-1]",
            "[MQTT-2.2.1-5]")
    async with ctx.scenario("QoS 2"):
        if top < 2:
            raise NotApplicable(f"declares Maximum QoS {top} in CONNACK (3.2.2.3.4)")
        sub, _ = await connect5(ctx, "sub")
        await subscribe5(sub, Subscription(topic, QoS.EXACTLY_ONCE))
        await probe.send(Publish(topic, b"q2", QoS.EXACTLY_ONCE, False, False, 1))
        rec = await _answer(probe, "(PUBREC for a QoS 2 PUBLISH) [MQTT-3.3.4-1]")
        _is(probe, rec, (PubRec, 1), "for a QoS 2 PUBLISH [MQTT-3.3.4-1]", "[MQTT-2.2.1-5]")
        await probe.send(PubRel(1))
        comp = await _answer(probe, "(PUBCOMP for PUBREL) [MQTT-4.3.3-11]")
        _is(probe, comp, (PubComp, 1), "for PUBREL [MQTT-4.3.3-11]", "[MQTT-2.2.1-5]")
        delivery = await sub.expect(Publish, "the message on the subscribed topic"
                                    " [MQTT-3.3.4-1]")
        require(delivery.qos == QoS.EXACTLY_ONCE and delivery.packet_id is not None,
                f"sub: {describe(delivery)} must come at QoS 2, the QoS granted and published"
                " [MQTT-3.8.4-8]")
        assert delivery.packet_id is not None
        await sub.send(PubRec(delivery.packet_id))
        rel = await _answer(sub, "(PUBREL for PUBREC) [MQTT-4.3.3-4]")
        _is(sub, rel, (PubRel, delivery.packet_id), "for PUBREC [MQTT-4.3.3-4]",
            "[MQTT-2.2.1-5]")
        await sub.send(PubComp(delivery.packet_id))
    await probe.send(Unsubscribe(32768, (other,)))
    unsuback = await _answer(probe, "(UNSUBACK for UNSUBSCRIBE) [MQTT-3.10.4-4]")
    _is(probe, unsuback, (UnsubAck, 32768), "for UNSUBSCRIBE [MQTT-3.10.4-4]",
        "[MQTT-2.2.1-6]")
