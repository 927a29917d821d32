"""What a 5.0 server's CONNACK declares is what it does (3.2.2.3.4, 3.2.2.3.5).

A server that does not support QoS 1 or 2 must say so with a Maximum QoS
[MQTT-3.2.2-9]: so a PUBLISH at any QoS up to the one declared (2 when absent) must not
be refused as "QoS not supported" (0x9B). A will it cannot keep its promise for, at a
QoS above its Maximum QoS or retained when it has no retained messages, must be refused
and the connection closed [MQTT-3.2.2-12] [MQTT-3.2.2-13]; these two are judged only on
a server whose CONNACK declares the limit.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Will,
)
from mqttref.oracle.checks5._steps import next_answer
from mqttref.oracle.checks5.common import V5, check5, closes_after_error, connect5
from mqttref.oracle.evidence import Deviation, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Closed, Received, describe
from mqttref.oracle.scenario import Context

QOS_NOT_SUPPORTED = 0x9B


async def _will_refused(ctx: Context, will: Will, what: str, rule: str) -> None:
    probe = await ctx.open("will")
    await probe.send(Connect(V5, ctx.client_id("will"), True, 60, will), note=f"with {what}")
    event = await next_answer(probe)
    if isinstance(event, Received) and isinstance(event.packet, ConnAck):
        code = event.packet.return_code
        require(code >= 0x80, f"will: CONNACK 0x{code:02X} accepts a CONNECT with {what}: the"
                f" server must reject it {rule}")
        probe.pending.append(event.packet)
    elif isinstance(event, Closed):
        require(True, f"will: closed without CONNACK on a CONNECT with {what} {rule}")
        return
    elif event is None:
        raise Deviation(f"will: neither a CONNACK nor the close within"
                        f" {ctx.timing.reply_bound:.1f}s of a CONNECT with {what} {rule}")
    await closes_after_error(probe, f"(a CONNECT with {what} must be rejected, then the"
                             f" connection closed) {rule}", connack=True)


@check5("MQTT-3.2.2-9", "MQTT-3.2.2-12", "MQTT-3.2.2-13",
        summary="a PUBLISH at every QoS up to the declared Maximum QoS is not refused as"
        " unsupported; a will above the Maximum QoS, or retained where Retain Available is 0,"
        " is rejected with the close")
async def declared_capabilities_v5(ctx: Context) -> None:
    top = ctx.profile5.maximum_qos
    async with ctx.scenario("every QoS up to the declared maximum"):
        if top == 0:
            raise NotApplicable("declares Maximum QoS 0: no QoS 1 or 2 PUBLISH to try"
                                " (3.2.2.3.4)", "MQTT-3.2.2-9")
        probe, _ = await connect5(ctx, "pub")
        declared = "absent: 2" if top == 2 else str(top)
        for qos in range(1, top + 1):
            await probe.send(Publish(ctx.topic("declared"), b"q", QoS(qos), False, False, qos))
            event = await next_answer(probe)
            if not isinstance(event, Received):
                raise NotApplicable(f"closes the connection on a QoS {qos} PUBLISH without a"
                                    " DISCONNECT naming QoS (a refusal of that PUBLISH,"
                                    " 3.3.4)")
            packet = event.packet
            why = (f"the CONNACK declares Maximum QoS {declared}, and a server that does not"
                   f" support QoS {qos} must declare a lower one [MQTT-3.2.2-9]")
            if isinstance(packet, Disconnect):
                require(packet.reason_code != QOS_NOT_SUPPORTED, f"pub: DISCONNECT 0x9B (QoS not"
                        f" supported) on a QoS {qos} PUBLISH: {why}")
                raise NotApplicable(f"refuses a QoS {qos} PUBLISH with DISCONNECT"
                                    f" 0x{packet.reason_code:02X}")
            require(isinstance(packet, (PubAck, PubRec)), f"pub: {describe(packet)} answered"
                    f" a QoS {qos} PUBLISH [MQTT-3.3.4-1]")
            assert isinstance(packet, (PubAck, PubRec))
            require(packet.reason_code != QOS_NOT_SUPPORTED, f"pub: 0x9B (QoS not supported)"
                    f" answers a QoS {qos} PUBLISH: {why}")
            if packet.reason_code >= 0x80:
                raise NotApplicable(f"refuses a QoS {qos} PUBLISH with"
                                    f" 0x{packet.reason_code:02X}")
            require(True, f"pub: a QoS {qos} PUBLISH was taken: {why}")
            if isinstance(packet, PubRec):
                await probe.send(PubRel(qos))
                await probe.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-11]")
    async with ctx.scenario("a will above the Maximum QoS"):
        if top == 2:
            raise NotApplicable("declares no Maximum QoS below 2: every Will QoS is within its"
                                " capabilities (3.2.2.3.4)", "MQTT-3.2.2-12")
        qos = QoS(top + 1)
        await _will_refused(ctx, Will(ctx.topic("declared", "will"), b"w", qos, False),
                            f"a Will QoS of {int(qos)} above the declared Maximum QoS {top}",
                            "[MQTT-3.2.2-12]")
    async with ctx.scenario("a retained will without retained messages"):
        if ctx.profile5.retain_available:
            raise NotApplicable("declares retained messages available (Retain Available"
                                " absent or 1, 3.2.2.3.5)", "MQTT-3.2.2-13")
        await _will_refused(ctx, Will(ctx.topic("declared", "will"), b"w", QoS.AT_MOST_ONCE,
                                      True),
                            "Will Retain 1 while the CONNACK declares Retain Available 0",
                            "[MQTT-3.2.2-13]")
