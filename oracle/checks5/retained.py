"""MQTT 5.0 retained messages in the store (3.3.1.3): a RETAIN 1 PUBLISH replaces the
topic's retained message, an empty one removes it and is not stored itself, a RETAIN 0
PUBLISH leaves the store alone.

The store is read by a new subscription (Retain Handling 0), which is sent the topic's
retained message at SUBSCRIBE; what it holds is judged up to a live message published
after the SUBACK, which must arrive after whatever the store held.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import Publish, QoS, Subscription
from mqttref.oracle.checks5.common import (
    check5,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import Inconclusive, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE


async def _held(ctx: Context, topic: str, marker: bytes = b"live-marker") -> list[Publish]:
    """What a new subscription to ``topic`` is sent before a live message after it (its
    payload ``marker``, which a store read twice needs two of)."""
    sub, _ = await connect5(ctx, "reader")
    await subscribe5(sub, Subscription(topic, Q1), exact=False)
    pub, _ = await connect5(ctx, "live")
    await publish5(pub, topic, marker, Q1)
    return await collect_until(sub, marker, "(a live message on the subscribed"
                               " topic) [MQTT-3.3.4-1]")


@check5("MQTT-3.3.1-5", "MQTT-3.3.1-6", "MQTT-3.3.1-7", "MQTT-3.3.1-8",
        summary="a retained PUBLISH replaces the topic's retained message, a non-retained one"
        " neither replaces nor removes it, an empty one removes it (and is forwarded to"
        " current subscribers) and is never stored")
async def retained_messages_v5(ctx: Context) -> None:
    if not ctx.profile5.retain_available:
        raise NotApplicable("declares Retain Available 0 in CONNACK (3.2.2.3.5)")
    async with ctx.scenario("replaced"):
        topic = ctx.topic("retained", "replace")
        ctx.retained.add(topic)
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"first", Q1, retain=True)
        await publish5(pub, topic, b"second", Q1, retain=True)
        held = [m.payload for m in await _held(ctx, topic)]
        require(b"second" in held and b"first" not in held, f"reader: the second retained"
                f" PUBLISH must replace the first as the topic's retained message, got {held}"
                " [MQTT-3.3.1-5]")
    async with ctx.scenario("not replaced by RETAIN 0"):
        # The store is read before and after the RETAIN 0 PUBLISH: only a retained message
        # seen stored can be seen replaced or removed by it.
        topic = ctx.topic("retained", "kept")
        ctx.retained.add(topic)
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"kept", Q1, retain=True)
        held = [m.payload for m in await _held(ctx, topic, b"live-marker-1")]
        if b"kept" not in held:
            raise Inconclusive(f"the retained message was not stored (got {held}; judged by"
                               " the scenario 'replaced')")
        await publish5(pub, topic, b"plain", Q1)
        held = [m.payload for m in await _held(ctx, topic, b"live-marker-2")]
        require(held == [b"kept"], f"reader: a RETAIN 0 PUBLISH must neither be stored nor"
                f" remove or replace the retained message, got {held} [MQTT-3.3.1-8]")
    async with ctx.scenario("removed by an empty payload"):
        topic = ctx.topic("retained", "removed")
        ctx.retained.add(topic)
        current, _ = await connect5(ctx, "current")
        await subscribe5(current, Subscription(topic, Q1), exact=False)
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"held", Q1, retain=True)
        await publish5(pub, topic, b"", Q1, retain=True)
        await publish5(pub, topic, b"after", Q1)
        seen = [m.payload for m in await collect_until(current, b"after", "(a later message"
                                                       " on the topic) [MQTT-3.3.4-1]")]
        require(b"" in seen, f"current: an empty retained PUBLISH is processed normally: a"
                f" current subscriber must be sent it, got {seen} [MQTT-3.3.1-6]")
        held = [m.payload for m in await _held(ctx, topic)]
        require(b"held" not in held and b"" not in held, f"reader: an empty retained PUBLISH"
                f" must remove the topic's retained message, got {held} [MQTT-3.3.1-6]")
    async with ctx.scenario("an empty one alone"):
        topic = ctx.topic("retained", "empty")
        ctx.retained.add(topic)
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"", Q1, retain=True)
        held = [m.payload for m in await _held(ctx, topic)]
        require(b"" not in held, f"reader: a retained PUBLISH with an empty payload must not"
                f" be stored, got {held} [MQTT-3.3.1-7]")
