"""What a 5.0 server that declares a feature off does when a client uses it anyway.

The CONNACK properties of 3.2.2.3 make each use a Protocol Error with its own Reason
Code: a PUBLISH above Maximum QoS (0x9B, 3.2.2.3.4), a retained PUBLISH with Retain
Available 0 (0x9A, 3.2.2.3.5), a wildcard, a Subscription Identifier or a shared
subscription the server does not support (0xA2, 0xA1, 0x9E; 3.2.2.3.11-13). A Protocol
Error with a Reason Code closes the connection [MQTT-4.13.1-1]; for the three SUBSCRIBE
cases the Subscribe Reason Codes (3.9.3) also give the server a refusal in the SUBACK
with that code, which this check accepts as well. Only a use that is answered as if the
feature were there is a FAIL. A broker that declares every feature on leaves nothing
to judge here: NOT APPLICABLE, naming it.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import Properties, Publish, QoS, SubAck, Subscribe, Subscription
from mqttref.oracle.checks5.common import (
    SUBACK_CODES,
    check5,
    closes_after_error,
    connect5,
)
from mqttref.oracle.evidence import Deviation, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Closed, Received
from mqttref.oracle.scenario import Context

MAX_SENT = 4 * 1024 * 1024
"""The largest Maximum Packet Size the check exceeds (it sends one packet that size)."""


async def _subscribe_refused(ctx: Context, label: str, sub: Subscription, *,
                             props: Properties, code: int, section: str) -> None:
    probe, _ = await connect5(ctx, "use")
    await probe.send(Subscribe(probe.new_packet_id(), (sub,), props),
                     note=f"uses {label}, declared off")
    why = (f"{label} with the feature declared off is a Protocol Error ({section},"
           f" 0x{code:02X}) [MQTT-4.13.1-1]")
    event = await probe.next_event(probe.timing.reply_bound)
    if isinstance(event, Received) and isinstance(event.packet, SubAck):
        got = event.packet.return_codes
        require(len(got) == 1 and got[0] in SUBACK_CODES and got[0] >= 0x80,
                f"use: the SUBACK must refuse the subscription (a Subscribe Reason Code of 0x80"
                f" or above, 0x{code:02X} for this case), got {got} {why}")
        return
    if isinstance(event, Closed):
        require(True, f"use: closed: {why}")
        return
    if event is None:
        raise Deviation(f"use: neither a refusing SUBACK nor the close within"
                        f" {probe.timing.reply_bound:.1f}s {why}")
    if isinstance(event, Received):
        probe.pending.append(event.packet)
    await closes_after_error(probe, why)


@check5("MQTT-4.13.1-1",
        summary="using a feature the CONNACK declared off (QoS above Maximum QoS, RETAIN,"
        " wildcards, Subscription Identifiers, shared subscriptions) or exceeding its Maximum"
        " Packet Size is refused")
async def declared_off_features_refused_v5(ctx: Context) -> None:
    profile = ctx.profile5
    off = 0
    if profile.maximum_qos < 2:
        off += 1
        async with ctx.scenario("PUBLISH above Maximum QoS"):
            probe, _ = await connect5(ctx, "use")
            qos = QoS(profile.maximum_qos + 1)
            await probe.send(Publish(ctx.topic("maxqos"), b"q", qos, False, False, 1))
            await closes_after_error(probe, f"a QoS {int(qos)} PUBLISH above the declared"
                                     f" Maximum QoS {profile.maximum_qos} is a Protocol Error"
                                     " (3.2.2.3.4, 0x9B) [MQTT-4.13.1-1]")
    if not profile.retain_available:
        off += 1
        async with ctx.scenario("retained PUBLISH with Retain Available 0"):
            probe, _ = await connect5(ctx, "use")
            # Not added to ctx.retained: the janitor's clearing PUBLISH would be refused too.
            await probe.send(Publish(ctx.topic("noretain"), b"r", QoS.AT_MOST_ONCE, True))
            await closes_after_error(probe, "a PUBLISH with RETAIN 1 when Retain Available is 0"
                                     " is a Protocol Error (3.2.2.3.5, 0x9A) [MQTT-4.13.1-1]")
    cases = (
        (not profile.wildcard_available, "a wildcard filter",
         Subscription(ctx.topic("w", "#"), QoS.AT_MOST_ONCE), Properties(), 0xA2, "3.2.2.3.11"),
        (not profile.subscription_identifiers_available, "a Subscription Identifier",
         Subscription(ctx.topic("sid"), QoS.AT_MOST_ONCE),
         Properties(subscription_identifiers=(5,)), 0xA1, "3.2.2.3.12"),
        (not profile.shared_available, "a shared subscription",
         Subscription(f"$share/g/{ctx.topic('shared')}", QoS.AT_MOST_ONCE), Properties(),
         0x9E, "3.2.2.3.13"),
    )
    for declared_off, label, sub, props, code, section in cases:
        if declared_off:
            off += 1
            async with ctx.scenario(label):
                await _subscribe_refused(ctx, label, sub, props=props, code=code,
                                         section=section)
    limit = profile.maximum_packet_size
    if limit is not None and limit <= MAX_SENT:
        off += 1
        async with ctx.scenario("packet above the Maximum Packet Size"):
            probe, _ = await connect5(ctx, "use")
            topic = ctx.topic("big")
            # Fixed header (1 + 4 length bytes at most), topic, packet id, property length.
            overhead = 1 + 4 + 2 + len(topic.encode()) + 2 + 1
            await probe.send(Publish(topic, b"x" * (limit - overhead + 8), QoS.AT_LEAST_ONCE,
                                     False, False, 1),
                             note=f"a PUBLISH of just over the Maximum Packet Size {limit}")
            await closes_after_error(probe, f"a packet above the declared Maximum Packet Size"
                                     f" {limit} is a Protocol Error (3.2.2.3.6, 0x95)"
                                     " [MQTT-4.13.1-1]")
    if not off:
        raise NotApplicable("declares Maximum QoS 2, Retain, Wildcard, Subscription Identifier"
                            " and Shared Subscription available and no Maximum Packet Size the"
                            " check can exceed: nothing declared off to misuse (3.2.2.3)",
                            "MQTT-4.13.1-1")


@check5("MQTT-3.2.2-10",
        summary="a server declaring Maximum QoS 0 or 1 still answers a SUBSCRIBE requesting"
        " QoS 2 with a SUBACK")
async def maximum_qos_subscribe_v5(ctx: Context) -> None:
    declared = ctx.profile5.maximum_qos
    if declared == 2:
        raise NotApplicable("declares no Maximum QoS below 2: it supports QoS 2 PUBLISH"
                            " (3.2.2.3.4)")
    probe, _ = await connect5(ctx, "sub")
    packet_id = probe.new_packet_id()
    await probe.send(Subscribe(packet_id, (Subscription(ctx.topic("maxqos", "sub"),
                                                        QoS.EXACTLY_ONCE),)))
    suback = await probe.expect(SubAck, f"SUBACK for a QoS 2 SUBSCRIBE to a server declaring"
                                f" Maximum QoS {declared}: it must still accept it"
                                " [MQTT-3.2.2-10]")
    require(len(suback.return_codes) == 1 and suback.return_codes[0] in SUBACK_CODES,
            f"sub: the SUBACK must hold one Subscribe Reason Code, got {suback.return_codes}"
            " [MQTT-3.9.3-2]")
