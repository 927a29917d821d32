"""Timers that must not cut what is in progress: a Message Expiry Interval running out in
the middle of a QoS 2 flow (4.3.3), either way, and a Session Expiry Interval running out
while the connection is still open (4.1).

Three situations are set up, then one wait of an interval of 1 s plus the measurement
margin lets every timer run out together:

- the server sent the subscriber a QoS 2 PUBLISH whose message expires: the PUBREC after
  the expiry still gets its PUBREL, with 0x00 (0x92 would say the flow was dropped);
- the server sent PUBREC for a QoS 2 PUBLISH whose message expires: the PUBREL after the
  expiry still gets PUBCOMP 0x00;
- a client connected with a Session Expiry Interval of 1 s is still subscribed after it.
"""

from __future__ import annotations

import asyncio

from mqttref.impl.codec.packets import (
    Properties,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Subscription,
)
from mqttref.oracle.checks5.common import check5, collect_until, connect5, publish5, subscribe5
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.scenario import Context

Q1, Q2 = QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
EXPIRES = Properties(message_expiry_interval=1)


@check5("MQTT-4.3.3-7", "MQTT-4.3.3-13", "MQTT-4.1.0-1",
        summary="a QoS 2 flow goes on after its message expired, as sender (PUBREL 0x00) and"
        " as receiver (PUBCOMP 0x00); a Session Expiry Interval does not run while connected")
async def flows_outlive_expiry_v5(ctx: Context) -> None:
    two = ctx.profile5.maximum_qos == 2
    kept = ctx.topic("expiry", "kept")
    held, _ = await connect5(ctx, "held", props=Properties(session_expiry_interval=1))
    await subscribe5(held, Subscription(kept, Q1), exact=False)
    pub, _ = await connect5(ctx, "pub")
    out: Publish | None = None
    if two:
        topic = ctx.topic("expiry", "out")
        sub, _ = await connect5(ctx, "sub")
        suback = await subscribe5(sub, Subscription(topic, Q2), exact=False)
        await publish5(pub, topic, b"expires", Q2, props=EXPIRES)
        out = await sub.expect(Publish, "the message the subscription matches [MQTT-3.3.4-1]")
        if suback.return_codes[0] < 2 or out.qos < 2:
            out = None
        await pub.send(Publish(ctx.topic("expiry", "in"), b"in", Q2, False, False, 88, EXPIRES))
        await pub.expect(PubRec, "PUBREC for a QoS 2 PUBLISH [MQTT-4.3.3-8]")
    await asyncio.sleep(ctx.timing.spec_deadline(1.0))  # every interval of 1 s has run out
    async with ctx.scenario("session kept while connected"):
        await publish5(pub, kept, b"still", Q1)
        await collect_until(held, b"still", "(a Session Expiry Interval of 1 s counts from the"
                            " close: while the connection is open the session and its"
                            " subscription stay) [MQTT-4.1.0-1]")
    if not two:
        raise NotApplicable(f"declares Maximum QoS {ctx.profile5.maximum_qos}: no QoS 2 flow"
                            " (3.2.2.3.4)", "MQTT-4.3.3-7", "MQTT-4.3.3-13")
    async with ctx.scenario("receiver"):
        await pub.send(PubRel(88), note="after the message's expiry")
        comp = await pub.expect(PubComp, "PUBCOMP for PUBREL, expiry or not [MQTT-4.3.3-13]")
        require(comp.packet_id == 88 and comp.reason_code == 0x00, f"pub: the QoS 2 flow must"
                f" go on after the message expired: PUBCOMP 88 0x00, got {comp.packet_id}"
                f" 0x{comp.reason_code:02X} [MQTT-4.3.3-13]")
    async with ctx.scenario("sender"):
        if out is None or out.packet_id is None:
            raise NotApplicable("delivers the QoS 2 message at a lower QoS (a lower grant is"
                                " allowed [MQTT-3.8.4-7]): no QoS 2 flow from the server",
                                "MQTT-4.3.3-7")
        await sub.send(PubRec(out.packet_id), note="after the message's expiry")
        rel = await sub.expect(PubRel, "PUBREL for PUBREC, expiry or not [MQTT-4.3.3-7]")
        require(rel.packet_id == out.packet_id and rel.reason_code == 0x00,
                f"sub: a PUBLISH sent is no longer subject to expiry: PUBREL {out.packet_id}"
                f" 0x00, got {rel.packet_id} 0x{rel.reason_code:02X} [MQTT-4.3.3-7]")
        await sub.send(PubComp(rel.packet_id))
