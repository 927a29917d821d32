"""Quality of service flows, DUP, granted QoS and ordering (3.3, 4.3, 4.6)."""

from __future__ import annotations

from mqttref.impl.oracle import raw
from mqttref.impl.oracle.flows import deliveries, publish, require, summary
from mqttref.impl.oracle.probe import Deviation
from mqttref.impl.oracle.scenario import Context, check
from mqttref.impl.packets import (
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    UnsubAck,
    Unsubscribe,
)


@check("MQTT-4.3.1-1", "MQTT-2.3.1-5", "MQTT-3.3.1-2", "MQTT-3.3.2-3", "MQTT-4.5.0-1",
       "MQTT-3.3.2-1",
       summary="QoS 0: delivered once with QoS 0, DUP 0, the exact topic and payload")
async def qos0_delivery(ctx: Context) -> None:
    topic = ctx.topic("qos0")
    sub = await ctx.subscriber("sub", (topic, QoS.AT_MOST_ONCE))
    pub = await ctx.client("pub")
    payload = bytes(range(256))
    await publish(pub, topic, payload)
    got = summary(await deliveries(sub, at_least=1))
    require(got == [(topic, payload, 0, False)],
            f"expected one QoS 0 copy with the payload intact; got {got}")


@check("MQTT-3.3.4-1", "MQTT-2.3.1-6", "MQTT-4.3.2-2", "MQTT-4.3.2-1", "MQTT-2.3.1-1",
       summary="QoS 1: PUBACK with the id; a reused id after PUBACK is a new message")
async def qos1_flow(ctx: Context) -> None:
    topic = ctx.topic("qos1")
    sub = await ctx.subscriber("sub", (topic, QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    for attempt in (b"first", b"second"):
        await pub.send(Publish(topic, attempt, QoS.AT_LEAST_ONCE, False, False, 42))
        ack = await pub.expect(PubAck)
        require(ack.packet_id == 42, f"PUBACK id {ack.packet_id}, PUBLISH id 42 [MQTT-2.3.1-6]")
        got = await deliveries(sub, at_least=1)
        require(summary(got) == [(topic, attempt, 1, False)],
                f"{attempt!r} sent with id 42 after the previous PUBACK must be delivered as a new"
                f" message [MQTT-4.3.2-2]; got {summary(got)}")
        require(not got[0].dup, "a first delivery must have DUP=0 [MQTT-4.3.2-1]")


@check("MQTT-4.3.3-2", "MQTT-3.3.4-1", "MQTT-2.3.1-6",
       summary="QoS 2 receiver: a PUBLISH repeated before PUBREL is acknowledged, delivered once")
async def qos2_exactly_once(ctx: Context) -> None:
    topic = ctx.topic("qos2")
    sub = await ctx.subscriber("sub", (topic, QoS.EXACTLY_ONCE))
    pub = await ctx.client("pub")
    message = Publish(topic, b"once", QoS.EXACTLY_ONCE, False, False, 7)
    await pub.send(message)
    rec = await pub.expect(PubRec)
    require(rec.packet_id == 7, f"PUBREC id {rec.packet_id} for PUBLISH id 7")
    await pub.send(Publish(topic, b"once", QoS.EXACTLY_ONCE, False, True, 7), "resent, DUP=1")
    rec = await pub.expect(PubRec, "PUBREC for the repeated PUBLISH [MQTT-4.3.3-2]")
    require(rec.packet_id == 7, f"PUBREC id {rec.packet_id} for PUBLISH id 7")
    await pub.send(PubRel(7))
    comp = await pub.expect(PubComp)
    require(comp.packet_id == 7, f"PUBCOMP id {comp.packet_id} for PUBREL id 7")
    got = summary(await deliveries(sub, at_least=1))
    require(got == [(topic, b"once", 2, False)], f"expected exactly one delivery; got {got}")
    await pub.send(Publish(topic, b"new", QoS.EXACTLY_ONCE, False, False, 7), "id 7 reused")
    await pub.expect(PubRec)
    await pub.send(PubRel(7))
    await pub.expect(PubComp)
    got = summary(await deliveries(sub, at_least=1))
    require(got == [(topic, b"new", 2, False)],
            f"after PUBCOMP the id is free and a new PUBLISH is a new message; got {got}")


@check("MQTT-4.3.3-2",
       summary="one QoS 2 PUBLISH resent 10 times before PUBREL: 10 PUBRECs, one delivery")
async def qos2_resent_until_pubrel(ctx: Context) -> None:
    topic = ctx.topic("qos2resend")
    sub = await ctx.subscriber("sub", (topic, QoS.EXACTLY_ONCE))
    pub = await ctx.client("pub")
    for n in range(10):
        await pub.send(Publish(topic, b"resent", QoS.EXACTLY_ONCE, False, n > 0, 9),
                       f"copy {n + 1}" + (", DUP=1" if n else ""))
        rec = await pub.expect(PubRec, f"PUBREC for copy {n + 1} [MQTT-4.3.3-2]")
        require(rec.packet_id == 9, f"PUBREC id {rec.packet_id}")
    await pub.send(PubRel(9))
    await pub.expect(PubComp)
    got = summary(await deliveries(sub, at_least=1))
    require(got == [(topic, b"resent", 2, False)], f"exactly one delivery in all; got {got}")


@check("MQTT-4.3.3-1", "MQTT-2.3.1-6",
       summary="QoS 2 sender: PUBLISH DUP 0, PUBREL after PUBREC with the same id")
async def qos2_server_as_sender(ctx: Context) -> None:
    topic = ctx.topic("qos2out")
    sub = await ctx.subscriber("sub", (topic, QoS.EXACTLY_ONCE))
    pub = await ctx.client("pub")
    await publish(pub, topic, b"to deliver", QoS.EXACTLY_ONCE)
    message = await sub.expect(Publish)
    require(message.qos == 2 and not message.dup, f"expected QoS 2, DUP 0: {message}")
    assert message.packet_id is not None
    await sub.send(PubRec(message.packet_id))
    rel = await sub.expect(PubRel)
    require(rel.packet_id == message.packet_id, f"PUBREL id {rel.packet_id} != {message.packet_id}")
    await sub.send(PubComp(message.packet_id))
    rest = await sub.quiet()
    require(not rest, f"nothing more after PUBCOMP; got {rest}")


@check("MQTT-3.3.1-3", summary="an incoming DUP=1 is not propagated to subscribers")
async def dup_not_propagated(ctx: Context) -> None:
    topic = ctx.topic("dup")
    sub = await ctx.subscriber("sub", (topic, QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    await pub.send(Publish(topic, b"dup set", QoS.AT_LEAST_ONCE, False, True, 5), "DUP=1")
    await pub.expect(PubAck)
    got = await deliveries(sub, at_least=1)
    require([m.dup for m in got] == [False],
            "the forwarded copy is not a retransmission and must have DUP=0 [MQTT-3.3.1-3];"
            f" got DUP={[int(m.dup) for m in got]}")


@check("MQTT-3.8.4-6", summary="delivered QoS is the minimum of published and granted QoS")
async def granted_qos_caps_delivery(ctx: Context) -> None:
    topic = ctx.topic("downgrade")
    subs = {q: await ctx.subscriber(f"sub{int(q)}", (topic, q)) for q in QoS}
    pub = await ctx.client("pub")
    for published in QoS:
        await publish(pub, topic, f"at {int(published)}".encode(), published)
        for granted, probe in subs.items():
            got = await deliveries(probe, at_least=1)
            expected = min(published, granted)
            require([int(m.qos) for m in got] == [expected],
                    f"published at {int(published)}, granted {int(granted)}: expected one copy"
                    f" at QoS {expected}; got {summary(got)}")


@check("MQTT-3.3.5-1",
       summary="overlapping subscriptions: a copy at the highest granted QoS (one or one each)")
async def overlapping_subscriptions(ctx: Context) -> None:
    base = ctx.topic("overlap")
    sub = await ctx.subscriber("sub", (base + "/+", QoS.AT_MOST_ONCE),
                               (base + "/#", QoS.EXACTLY_ONCE))
    pub = await ctx.client("pub")
    await publish(pub, base + "/x", b"both match", QoS.EXACTLY_ONCE)
    got = await deliveries(sub, at_least=1)
    levels = sorted(int(m.qos) for m in got)
    require(levels in ([2], [0, 2]),
            "allowed: one copy at QoS 2, or one per subscription (QoS 0 and QoS 2);"
            f" got QoS {levels}")


async def _in_order(ctx: Context, qos: QoS) -> None:
    """30 PUBLISHes in one write (more than a typical in-flight window of 20), then
    every one must arrive [MQTT-4.5.0-1], in the order sent [MQTT-4.6.0-6]."""
    topic = ctx.topic("order", str(int(qos)))
    sub = await ctx.subscriber("sub", (topic, QoS.EXACTLY_ONCE))
    pub = await ctx.client("pub")
    sent = [f"{n:03d}".encode() for n in range(30)]
    data = b"".join(raw.publish(topic, p, flags=int(qos) << 1, packet_id=n + 1 if qos else None)
                    for n, p in enumerate(sent))
    await pub.send(data, f"30 QoS {int(qos)} PUBLISHes, payloads 000 to 029, in one write")
    for n in range(30 if qos else 0):
        if qos == QoS.AT_LEAST_ONCE:
            await pub.expect(PubAck)
        else:
            await pub.expect(PubRec)
            await pub.send(PubRel(n + 1))
            await pub.expect(PubComp)
    got = [m.payload for m in await deliveries(sub)]
    while len(got) < len(sent):
        try:
            got += [m.payload for m in await deliveries(sub, at_least=1)]
        except Deviation:
            break
    missing = sorted(set(sent) - set(got))
    require(not missing, f"{len(missing)} of the 30 messages never arrived"
            f" ({b', '.join(missing).decode()}) [MQTT-4.5.0-1]")
    require(got == sent, f"received in the order {b' '.join(got).decode()} [MQTT-4.6.0-6]")


@check("MQTT-4.6.0-5", "MQTT-4.6.0-6", "MQTT-4.5.0-1",
       summary="30 QoS 0 messages from one client on one topic: all arrive, in order")
async def ordered_topic_qos0(ctx: Context) -> None:
    await _in_order(ctx, QoS.AT_MOST_ONCE)


@check("MQTT-4.6.0-5", "MQTT-4.6.0-6", "MQTT-4.5.0-1",
       summary="30 QoS 1 messages from one client on one topic: all arrive, in order")
async def ordered_topic_qos1(ctx: Context) -> None:
    await _in_order(ctx, QoS.AT_LEAST_ONCE)


@check("MQTT-4.6.0-5", "MQTT-4.6.0-6", "MQTT-4.5.0-1",
       summary="30 QoS 2 messages from one client on one topic: all arrive, in order")
async def ordered_topic_qos2(ctx: Context) -> None:
    await _in_order(ctx, QoS.EXACTLY_ONCE)


@check("MQTT-3.10.4-3", "MQTT-3.10.4-2",
       summary="unsubscribing mid-flow completes the QoS 2 delivery already started")
async def unsubscribe_completes_inflight(ctx: Context) -> None:
    topic = ctx.topic("inflight")
    sub = await ctx.subscriber("sub", (topic, QoS.EXACTLY_ONCE))
    pub = await ctx.client("pub")
    await publish(pub, topic, b"started", QoS.EXACTLY_ONCE)
    message = await sub.expect(Publish)
    assert message.packet_id is not None
    await sub.send(PubRec(message.packet_id))
    await sub.send(Unsubscribe(sub.new_packet_id(), (topic,)))
    rel = await sub.expect(PubRel, "PUBREL completing the started delivery [MQTT-3.10.4-3]")
    require(rel.packet_id == message.packet_id, f"PUBREL id {rel.packet_id}")
    await sub.expect(UnsubAck)
    await sub.send(PubComp(message.packet_id))
    await publish(pub, topic, b"after unsubscribe", QoS.EXACTLY_ONCE)
    got = await deliveries(sub)
    require(not got, f"no new messages after UNSUBACK [MQTT-3.10.4-2]; got {summary(got)}")


@check("MQTT-3.3.1-2", "MQTT-4.8.0-1",
       summary="QoS 0 PUBLISH with DUP=1: accepted or closed (both allowed), never forwarded DUP=1")
async def qos0_with_dup(ctx: Context) -> None:
    topic = ctx.topic("dup0")
    sub = await ctx.subscriber("sub", (topic, QoS.AT_MOST_ONCE))
    pub = await ctx.client("pub")
    await pub.send(raw.publish(topic, b"dup on qos0", flags=0x08), "PUBLISH QoS 0 with DUP=1")
    open_ = await pub.is_open()
    ctx.trace.note(f"the server {'accepted' if open_ else 'closed'} (both allowed)")
    got = await deliveries(sub)
    require(all(not m.dup for m in got), f"a QoS 0 PUBLISH was forwarded with DUP=1: {got}")
