"""Retained messages: stored, replaced, cleared, and the RETAIN flag on delivery (3.3.1.3)."""

from __future__ import annotations

from mqttref.impl.oracle.flows import deliveries, publish, require, subscribe, summary
from mqttref.impl.oracle.probe import Probe
from mqttref.impl.oracle.scenario import Context, check
from mqttref.impl.packets import Disconnect, QoS


async def _retain(ctx: Context, pub: Probe, topic: str, payload: bytes,
                  qos: QoS = QoS.AT_LEAST_ONCE) -> None:
    ctx.retained.add(topic)
    await publish(pub, topic, payload, qos, retain=True)


async def _newcomer(ctx: Context, name: str, topic_filter: str,
                    qos: QoS = QoS.AT_LEAST_ONCE) -> list[tuple[str, bytes, int, bool]]:
    probe = await ctx.client(name)
    await subscribe(probe, (topic_filter, qos))
    return summary(await deliveries(probe))


@check("MQTT-3.3.1-5", "MQTT-3.3.1-6", "MQTT-3.3.1-8",
       summary="a retained message goes to each new matching subscription with RETAIN=1")
async def retained_sent_to_new_subscription(ctx: Context) -> None:
    topic = ctx.topic("retain", "basic")
    pub = await ctx.client("pub")
    await _retain(ctx, pub, topic, b"kept")
    got = await _newcomer(ctx, "new1", topic)
    require(got == [(topic, b"kept", 1, True)],
            f"expected the retained message, RETAIN=1; got {got}")
    got = await _newcomer(ctx, "new2", ctx.topic("retain", "#"))
    require(got == [(topic, b"kept", 1, True)],
            f"a matching wildcard subscription must get it too, RETAIN=1; got {got}")


@check("MQTT-3.8.4-6", "MQTT-3.3.1-6",
       summary="a retained QoS 1 message reaches a new QoS 0 subscription at QoS 0")
async def retained_delivery_capped_by_granted_qos(ctx: Context) -> None:
    topic = ctx.topic("retain", "capped")
    pub = await ctx.client("pub")
    await _retain(ctx, pub, topic, b"capped")
    got = await _newcomer(ctx, "new", topic, QoS.AT_MOST_ONCE)
    require(len(got) == 1, f"the new subscription must get the retained message [MQTT-3.3.1-6];"
            f" got {got}")
    require(got == [(topic, b"capped", 0, True)],
            f"granted QoS 0 caps the delivery at QoS 0 [MQTT-3.8.4-6]; got {got}")


@check("MQTT-3.3.1-9", "MQTT-3.3.1-5",
       summary="an established subscription gets retained publications with RETAIN=0")
async def retain_flag_cleared_for_live_subscribers(ctx: Context) -> None:
    topic = ctx.topic("retain", "live")
    sub = await ctx.subscriber("sub", (topic, QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    await _retain(ctx, pub, topic, b"live")
    got = summary(await deliveries(sub, at_least=1))
    require(got == [(topic, b"live", 1, False)], f"expected RETAIN=0 for a live match; got {got}")


@check("MQTT-3.3.1-10", "MQTT-3.3.1-11", "MQTT-3.3.1-5",
       summary="replace then clear: new value kept; empty retained PUBLISH forwarded, then gone")
async def retained_replace_and_clear(ctx: Context) -> None:
    topic = ctx.topic("retain", "clear")
    sub = await ctx.subscriber("sub", (topic, QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    await _retain(ctx, pub, topic, b"old")
    await _retain(ctx, pub, topic, b"new")
    got = await _newcomer(ctx, "new1", topic)
    require(got == [(topic, b"new", 1, True)],
            f"only the replacing message is kept [MQTT-3.3.1-5]; got {got}")
    await deliveries(sub, at_least=2)
    await _retain(ctx, pub, topic, b"")
    live = summary(await deliveries(sub, at_least=1))
    require(live == [(topic, b"", 1, False)],
            "an empty retained PUBLISH is forwarded as a normal message [MQTT-3.3.1-10];"
            f" got {live}")
    got = await _newcomer(ctx, "new2", topic)
    require(not got, "after the empty retained PUBLISH nothing is retained [MQTT-3.3.1-10]"
            f" [MQTT-3.3.1-11]; got {got}")


@check("MQTT-3.3.1-7", summary="a QoS 0 retained message replaces a QoS 1 one (or clears it)")
async def qos0_retained_replaces(ctx: Context) -> None:
    topic = ctx.topic("retain", "qos0")
    pub = await ctx.client("pub")
    await _retain(ctx, pub, topic, b"qos1 value")
    await _retain(ctx, pub, topic, b"qos0 value", QoS.AT_MOST_ONCE)
    await pub.settle()
    got = await _newcomer(ctx, "new", topic)
    require(got in ([(topic, b"qos0 value", 0, True)], []),
            f"the QoS 1 message must be discarded; the QoS 0 one kept (or dropped); got {got}")


@check("MQTT-3.3.1-12", summary="RETAIN=0 neither stores nor replaces the retained message")
async def non_retained_keeps_retained(ctx: Context) -> None:
    topic = ctx.topic("retain", "keep")
    pub = await ctx.client("pub")
    await _retain(ctx, pub, topic, b"retained")
    await publish(pub, topic, b"not retained", QoS.AT_LEAST_ONCE)
    got = await _newcomer(ctx, "new", topic)
    require(got == [(topic, b"retained", 1, True)], f"the retained message must stay; got {got}")
    other = ctx.topic("retain", "never")
    await publish(pub, other, b"plain", QoS.AT_LEAST_ONCE)
    got = await _newcomer(ctx, "new2", other)
    require(not got, f"a RETAIN=0 message must not be stored; got {got}")


@check("MQTT-3.8.4-3", summary="subscribing again to the same filter re-sends retained messages")
async def resubscribe_resends_retained(ctx: Context) -> None:
    topic = ctx.topic("retain", "again")
    pub = await ctx.client("pub")
    await _retain(ctx, pub, topic, b"again")
    sub = await ctx.subscriber("sub", (topic, QoS.AT_LEAST_ONCE))
    first = summary(await deliveries(sub, at_least=1))
    require(first == [(topic, b"again", 1, True)], f"first subscription: got {first}")
    await subscribe(sub, (topic, QoS.AT_LEAST_ONCE))
    second = summary(await deliveries(sub, at_least=1))
    require(second == [(topic, b"again", 1, True)],
            f"the retained message must be re-sent on re-subscription; got {second}")


@check("MQTT-3.1.2-7", summary="retained messages outlive the publisher's session")
async def retained_outlives_session(ctx: Context) -> None:
    topic = ctx.topic("retain", "session")
    pub = await ctx.client("pub", clean=True)
    await _retain(ctx, pub, topic, b"survivor")
    await pub.send(Disconnect())
    await pub.wait_close()
    got = await _newcomer(ctx, "new", topic)
    require(got == [(topic, b"survivor", 1, True)], f"expected the retained message; got {got}")


@check("MQTT-3.3.1-6", "MQTT-3.3.2-3",
       summary="a retained message is not sent to a filter that does not match it")
async def retained_only_to_matching_filters(ctx: Context) -> None:
    topic = ctx.topic("retain", "match", "a")
    pub = await ctx.client("pub")
    await _retain(ctx, pub, topic, b"only a")
    for n, topic_filter in enumerate((ctx.topic("retain", "match", "b"),
                                      ctx.topic("retain", "match", "a", "+"),
                                      ctx.topic("retain", "+", "b"))):
        got = await _newcomer(ctx, f"nm{n}", topic_filter)
        require(not got, f"filter {topic_filter!r} does not match {topic!r}; got {got}")
