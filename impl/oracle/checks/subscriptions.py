"""SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (3.8 - 3.11)."""

from __future__ import annotations

from mqttref.impl.oracle.flows import deliveries, publish, require, subscribe, summary
from mqttref.impl.oracle.scenario import Context, check
from mqttref.impl.packets import QoS, SubAck, Subscribe, Subscription, UnsubAck, Unsubscribe


@check("MQTT-3.8.4-1", "MQTT-3.8.4-2", "MQTT-3.8.4-4", "MQTT-3.8.4-5", "MQTT-3.9.3-1",
       "MQTT-3.9.3-2", "MQTT-2.3.1-7",
       summary="one SUBSCRIBE, three filters: one SUBACK, same id, a code per filter in order")
async def suback_answers_each_filter(ctx: Context) -> None:
    probe = await ctx.client("c1")
    asked = (QoS.EXACTLY_ONCE, QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE)
    subs = tuple(Subscription(ctx.topic("sa", str(n)), q) for n, q in enumerate(asked))
    await probe.send(Subscribe(4660, subs))
    suback = await probe.expect(SubAck)
    require(suback.packet_id == 4660, f"SUBACK id {suback.packet_id} for SUBSCRIBE id 4660")
    codes = suback.return_codes
    require(len(codes) == 3, f"three filters need three return codes; got {codes}")
    for code, qos in zip(codes, asked, strict=True):
        require(code in (0, 1, 2, 0x80), f"return code 0x{code:02X} is reserved [MQTT-3.9.3-2]")
        require(code == 0x80 or code <= qos,
                f"return codes {codes} for requests {[int(q) for q in asked]}: out of order or"
                " granting more than asked")
    require(not await probe.quiet(), "one SUBACK only for one SUBSCRIBE")
    pub = await ctx.client("pub")
    for n, code in enumerate(codes):
        if code == 0x80:
            continue
        await publish(pub, ctx.topic("sa", str(n)), b"x", QoS.EXACTLY_ONCE)
        got = await deliveries(probe, at_least=1)
        require([int(m.qos) for m in got] == [code],
                f"filter {n} granted {code}: delivery {summary(got)} [MQTT-3.8.4-4]")


@check("MQTT-3.8.4-3", summary="subscribing again replaces the subscription (new QoS, one copy)")
async def resubscribe_replaces(ctx: Context) -> None:
    topic = ctx.topic("replace")
    sub = await ctx.subscriber("sub", (topic, QoS.EXACTLY_ONCE))
    await subscribe(sub, (topic, QoS.AT_MOST_ONCE))
    pub = await ctx.client("pub")
    await publish(pub, topic, b"once", QoS.EXACTLY_ONCE)
    got = summary(await deliveries(sub, at_least=1))
    require(got == [(topic, b"once", 0, False)],
            f"the replacing subscription (QoS 0) delivers one copy at QoS 0; got {got}")


@check("MQTT-3.10.4-1", "MQTT-3.10.4-2", "MQTT-3.10.4-4", "MQTT-3.10.4-5", "MQTT-3.10.4-6",
       "MQTT-2.3.1-7",
       summary="UNSUBSCRIBE: exact filter comparison, one UNSUBACK with the id, even for no match")
async def unsubscribe_flow(ctx: Context) -> None:
    base = ctx.topic("unsub")
    sub = await ctx.subscriber("sub", (base + "/+", QoS.AT_LEAST_ONCE),
                               (base + "/a", QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    await sub.send(Unsubscribe(777, (base + "/#", base + "/b")))
    ack = await sub.expect(UnsubAck, "UNSUBACK although nothing matched [MQTT-3.10.4-5]")
    require(ack.packet_id == 777, f"UNSUBACK id {ack.packet_id} for UNSUBSCRIBE id 777")
    await publish(pub, base + "/a", b"both", QoS.AT_LEAST_ONCE)
    got = await deliveries(sub, at_least=1)
    require(len(got) in (1, 2),
            f"'#' and 'b' matched no filter exactly; both subscriptions remain; got {summary(got)}")
    await sub.send(Unsubscribe(778, (base + "/+", base + "/a")))
    ack = await sub.expect(UnsubAck)
    require(ack.packet_id == 778, f"UNSUBACK id {ack.packet_id} for UNSUBSCRIBE id 778")
    require(not await sub.quiet(), "one UNSUBACK only for one UNSUBSCRIBE [MQTT-3.10.4-6]")
    await publish(pub, base + "/a", b"gone", QoS.AT_LEAST_ONCE)
    got = await deliveries(sub)
    require(not got, f"after unsubscribing both filters nothing arrives; got {summary(got)}")


@check("MQTT-3.8.3-2", summary="wildcard filters: granted, or refused with 0x80 if unsupported")
async def wildcard_subscription_support(ctx: Context) -> None:
    probe = await ctx.client("c1")
    await probe.send(Subscribe(9, (Subscription(ctx.topic("wild", "+"), QoS.AT_LEAST_ONCE),
                                   Subscription(ctx.topic("wild", "#"), QoS.AT_LEAST_ONCE))))
    suback = await probe.expect(SubAck)
    require(all(code in (0, 1, 0x80) for code in suback.return_codes),
            f"return codes {suback.return_codes}")
    if 0x80 in suback.return_codes:
        ctx.trace.note("the server refuses wildcard subscriptions (allowed)")
