"""MQTT 5.0 Application Message properties on the way through the server (3.3.2.3): the
ones it must forward unaltered, and the Message Expiry Interval it must count down and
enforce."""

from __future__ import annotations

import asyncio
import time

from mqttref.impl.codec.packets import (
    Properties,
    Publish,
    QoS,
    Subscription,
)
from mqttref.oracle.checks5.common import (
    acknowledge,
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

FORWARDED = Properties(
    payload_format_indicator=1,
    content_type="text/x-mqttref; charset=utf-8",
    response_topic="mqttref-check/replies/\u00e9t\u00e9",
    correlation_data=b"\x00\x01corr\xff",
    user_properties=(("b", "2"), ("a", "1"), ("b", "1"),
                     ("z\u00e9", "")),
)
"""Values chosen so that a normalising or re-ordering server is caught: non-ASCII text,
binary data with NUL and 0xFF, a repeated and a non-sorted User Property name."""


@check5("MQTT-3.3.2-4", "MQTT-3.3.2-15", "MQTT-3.3.2-16", "MQTT-3.3.2-17", "MQTT-3.3.2-18",
        "MQTT-3.3.2-20",
        summary="Payload Format Indicator, Content Type, Response Topic, Correlation Data and"
        " User Properties reach the subscriber unaltered, User Properties in order")
async def message_properties_forwarded_v5(ctx: Context) -> None:
    topic = ctx.topic("props")
    sub, _ = await connect5(ctx, "sub")
    await subscribe5(sub, Subscription(topic, Q1), exact=False)
    pub, _ = await connect5(ctx, "pub")
    await publish5(pub, topic, "caf\u00e9".encode(), Q1, props=FORWARDED)
    await publish5(pub, topic, b"end", Q1)
    before = await collect_until(sub, b"end", "(a message the subscription matches)"
                                 " [MQTT-3.3.4-1]")
    got = next((m for m in before if m.payload == "caf\u00e9".encode()), None)
    require(got is not None, "sub: the message with properties must be delivered before the"
            " next one on its topic [MQTT-3.3.4-1]")
    assert got is not None
    props = got.properties
    sent = list(FORWARDED.user_properties)
    arrived = list(props.user_properties)
    # Each property is its own statement: all are judged, so that one altered does not
    # hide another (a deviation ends the check).
    judged = (
        ("Payload Format Indicator", FORWARDED.payload_format_indicator,
         props.payload_format_indicator, "[MQTT-3.3.2-4]"),
        ("Content Type", FORWARDED.content_type, props.content_type, "[MQTT-3.3.2-20]"),
        ("Response Topic", FORWARDED.response_topic, props.response_topic, "[MQTT-3.3.2-15]"),
        ("Correlation Data", FORWARDED.correlation_data, props.correlation_data,
         "[MQTT-3.3.2-16]"),
        ("set of User Properties", sorted(sent, key=repr), sorted(arrived, key=repr),
         "[MQTT-3.3.2-17]"),
    )
    altered = []
    for what, published, forwarded, rule in judged:
        if forwarded == published:
            require(True, f"sub: the {what} arrived unaltered {rule}")
        else:
            altered.append(f"the {what} must be forwarded unaltered, sent {published!r}, got"
                           f" {forwarded!r} {rule}")
    require(not altered, "sub: " + "; ".join(altered))
    require(arrived == sent, f"sub: the User Properties must keep their order, sent {sent},"
            f" got {arrived} [MQTT-3.3.2-18]")


@check5("MQTT-3.3.2-5", "MQTT-3.3.2-6",
        summary="a delivered message carries its Message Expiry Interval less its wait; one"
        " that expired while its subscriber was away is not delivered; the same for a"
        " retained message sent at SUBSCRIBE")
async def message_expiry_v5(ctx: Context) -> None:
    # The retained messages wait out the other scenarios' sleeps: no wait of their own.
    kept, stale = ctx.topic("expiry", "rkept"), ctx.topic("expiry", "rstale")
    retained = ctx.profile5.retain_available
    if retained:
        setter, _ = await connect5(ctx, "setter")
        ctx.retained.update((kept, stale))
        await publish5(setter, kept, b"kept", Q1, retain=True,
                       props=Properties(message_expiry_interval=60))
        await publish5(setter, stale, b"stale", Q1, retain=True,
                       props=Properties(message_expiry_interval=1))
    stored = time.monotonic()
    async with ctx.scenario("counted down"):
        topic = ctx.topic("expiry", "live")
        cid = ctx.client_id("live")
        sub, _ = await connect5(ctx, "sub", cid, props=Properties(session_expiry_interval=30))
        await subscribe5(sub, Subscription(topic, Q1), exact=False)
        await sub.disconnect()
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"waits", Q1, props=Properties(message_expiry_interval=60))
        sent = time.monotonic()
        # The message waits in the server at least this long, in whole seconds.
        await asyncio.sleep(ctx.timing.spec_deadline(1))
        back, connack = await connect5(ctx, "back", cid, clean=False,
                                       props=Properties(session_expiry_interval=30))
        if not connack.session_present:
            raise Inconclusive("the session was not resumed (judged by"
                               " session_v5_expiry_and_clean_start)")
        await publish5(pub, topic, b"end", Q1)
        before = await collect_until(back, b"end", "(published after the reconnection)"
                                     " [MQTT-3.3.4-1]")
        waited = time.monotonic() - sent
        got = [m for m in before if m.payload == b"waits"]
        require(bool(got), "back: the QoS 1 message published to the session's subscription"
                " while it was away must be delivered before a later one on its topic"
                " [MQTT-4.5.0-1]")
        left = got[0].properties.message_expiry_interval
        # Whole seconds: the value may be rounded either way by less than one second.
        require(left is not None and 60 - waited - 1 <= left <= 59,
                f"back: after waiting {waited:.1f}s in the server the message must carry its"
                f" Message Expiry Interval 60 less the wait, got {left} [MQTT-3.3.2-6]")
    async with ctx.scenario("expired while away"):
        topic = ctx.topic("expiry", "gone")
        cid = ctx.client_id("away")
        sub, _ = await connect5(ctx, "sub", cid, props=Properties(session_expiry_interval=30))
        await subscribe5(sub, Subscription(topic, Q1), exact=False)
        await sub.disconnect()
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"stale", Q1, props=Properties(message_expiry_interval=1))
        # The interval counts whole seconds: one more for a server that ticks in seconds.
        await asyncio.sleep(ctx.timing.spec_deadline(1 + 1))
        back, connack = await connect5(ctx, "back", cid, clean=False,
                                       props=Properties(session_expiry_interval=30))
        if not connack.session_present:
            raise Inconclusive("the session was not resumed (judged by"
                               " session_v5_expiry_and_clean_start)")
        await publish5(pub, topic, b"fresh", Q1)
        before = await collect_until(back, b"fresh", "(published after the reconnection)"
                                     " [MQTT-3.3.4-1]")
        require(all(m.payload != b"stale" for m in before),
                "back: a message whose Message Expiry Interval (1 s) passed before onward"
                " delivery could start must be deleted, not delivered [MQTT-3.3.2-5]")
    async with ctx.scenario("retained, counted down"):
        if not retained:
            raise NotApplicable("declares Retain Available 0 in CONNACK (3.2.2.3.5)")
        # Both retained messages have waited at least this long (1 s, +1 for whole seconds).
        await asyncio.sleep(max(0.0, ctx.timing.spec_deadline(1 + 1)
                                - (time.monotonic() - stored)))
        sub, _ = await connect5(ctx, "rsub")
        await subscribe5(sub, Subscription(kept, Q1), exact=False)
        message = await sub.expect(Publish, "the retained message at SUBSCRIBE (Retain Handling 0)"
                               " [MQTT-3.3.1-9]")
        waited = time.monotonic() - stored
        await acknowledge(sub, message)
        require(message.payload == b"kept", f"rsub: the retained message of {kept!r} must be sent"
                f" at SUBSCRIBE, got {message.payload!r} [MQTT-3.3.1-9]")
        left = message.properties.message_expiry_interval
        require(left is not None and 60 - waited - 1 <= left <= 59,
                f"rsub: a retained message stored {waited:.1f}s ago with Message Expiry"
                f" Interval 60 must carry 60 less its wait, got {left} [MQTT-3.3.2-6]")
    async with ctx.scenario("retained, expired"):
        if not retained:
            raise NotApplicable("declares Retain Available 0 in CONNACK (3.2.2.3.5)")
        await asyncio.sleep(max(0.0, ctx.timing.spec_deadline(1 + 1)
                                - (time.monotonic() - stored)))
        sub, _ = await connect5(ctx, "rsub")
        await subscribe5(sub, Subscription(stale, Q1), exact=False)
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, stale, b"live", Q1)
        before = await collect_until(sub, b"live", "(a message the new subscription matches)"
                                     " [MQTT-3.3.4-1]")
        require(all(m.payload != b"stale" for m in before),
                "rsub: a retained message whose Message Expiry Interval (1 s) has passed must"
                " not be sent to a new subscriber [MQTT-3.3.2-5]")
