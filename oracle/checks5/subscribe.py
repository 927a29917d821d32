"""MQTT 5.0 subscriptions: the options No Local, Retain As Published and Retain Handling
(3.8.3.1), Subscription Identifiers (3.8.2.1.2, 3.3.4), and the PUBACK/PUBREC Reason
Codes of a message no one subscribes to (3.4.2.1, 3.5.2.1).

An absence (a message withheld) is judged only up to a marker published after it on
the same topic, which must arrive; a message is told apart by its payload.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import Properties, PubAck, Publish, QoS, Subscription
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
from mqttref.oracle.probe import Probe
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE


def _payloads(messages: list[Publish]) -> list[bytes]:
    return [m.payload for m in messages]


@check5("MQTT-3.8.3-3",
        summary="with No Local, the client's own message is not forwarded back to it while"
        " another client's message on the same topic is")
async def no_local_v5(ctx: Context) -> None:
    topic = ctx.topic("nolocal")
    own, _ = await connect5(ctx, "own")
    await subscribe5(own, Subscription(topic, Q1, no_local=True), exact=False)
    await publish5(own, topic, b"mine", Q1)
    other, _ = await connect5(ctx, "other")
    await publish5(other, topic, b"theirs", Q1)
    before = await collect_until(own, b"theirs", "(another client's message on the No Local"
                                 " subscription) [MQTT-3.3.4-1]")
    require(b"mine" not in _payloads(before), "own: a No Local subscription must not be sent"
            " the subscriber's own message (published before another client's, which came)"
            " [MQTT-3.8.3-3]")


@check5("MQTT-3.3.1-12", "MQTT-3.3.1-13",
        summary="a retained message forwarded live has RETAIN 0 on a Retain As Published 0"
        " subscription and RETAIN 1 on a Retain As Published 1 one")
async def retain_as_published_v5(ctx: Context) -> None:
    if not ctx.profile5.retain_available:
        raise NotApplicable("declares Retain Available 0 in CONNACK (3.2.2.3.5)")
    topic = ctx.topic("rap")
    plain, _ = await connect5(ctx, "rap0")
    await subscribe5(plain, Subscription(topic, Q1), exact=False)
    kept, _ = await connect5(ctx, "rap1")
    await subscribe5(kept, Subscription(topic, Q1, retain_as_published=True), exact=False)
    pub, _ = await connect5(ctx, "pub")
    ctx.retained.add(topic)
    await publish5(pub, topic, b"retained", Q1, retain=True)
    await publish5(pub, topic, b"marker", Q1)
    for probe, rule, want in ((plain, "[MQTT-3.3.1-12]", False), (kept, "[MQTT-3.3.1-13]", True)):
        before = await collect_until(probe, b"marker", "(a message the subscription matches)"
                                     " [MQTT-3.3.4-1]")
        copies = [m for m in before if m.payload == b"retained"]
        require(bool(copies), f"{probe.name}: the retained message published while subscribed"
                f" must be forwarded before the next one [MQTT-3.3.4-1]")
        require(all(m.retain is want for m in copies),
                f"{probe.name}: forwarded with RETAIN {int(copies[0].retain)}: with Retain As"
                f" Published {int(want)} it must be {int(want)} {rule}")


async def _retained_sent(ctx: Context, probe: Probe, topic: str, handling: int,
                         rule: str, *, sent: bool) -> None:
    """Subscribe with ``handling``; the retained message must (not) come before a marker."""
    await subscribe5(probe, Subscription(topic, Q1, retain_handling=handling), exact=False)
    pub, _ = await connect5(ctx, "pub")
    marker = f"marker{handling}{probe.new_packet_id()}".encode()
    await publish5(pub, topic, marker, Q1)
    before = await collect_until(probe, marker, "(a live message on the subscribed topic)"
                                 " [MQTT-3.3.4-1]")
    got = [m for m in before if m.payload == b"held"]
    if sent:
        require(bool(got), f"{probe.name}: Retain Handling {handling}: the retained message must"
                f" be sent on this subscription {rule}")
    else:
        require(not got, f"{probe.name}: Retain Handling {handling}: the retained message must"
                f" not be sent on this subscription {rule}")


@check5("MQTT-3.3.1-9", "MQTT-3.3.1-10", "MQTT-3.3.1-11", "MQTT-3.8.4-4",
        summary="Retain Handling 0 sends the retained message (again when a SUBSCRIBE replaces"
        " the subscription), 1 only for a new subscription, 2 never")
async def retain_handling_v5(ctx: Context) -> None:
    if not ctx.profile5.retain_available:
        raise NotApplicable("declares Retain Available 0 in CONNACK (3.2.2.3.5)")
    topic = ctx.topic("rh")
    pub, _ = await connect5(ctx, "setter")
    ctx.retained.add(topic)
    await publish5(pub, topic, b"held", Q1, retain=True)
    async with ctx.scenario("Retain Handling 0"):
        probe, _ = await connect5(ctx, "rh0")
        await _retained_sent(ctx, probe, topic, 0, "[MQTT-3.3.1-9]", sent=True)
        await _retained_sent(ctx, probe, topic, 0, "(the subscription existed and is"
                             " replaced) [MQTT-3.8.4-4]", sent=True)
    async with ctx.scenario("Retain Handling 1"):
        probe, _ = await connect5(ctx, "rh1")
        await _retained_sent(ctx, probe, topic, 1, "(a new subscription) [MQTT-3.3.1-10]",
                             sent=True)
        await _retained_sent(ctx, probe, topic, 1, "(the subscription existed)"
                             " [MQTT-3.3.1-10]", sent=False)
    async with ctx.scenario("Retain Handling 2"):
        probe, _ = await connect5(ctx, "rh2")
        await _retained_sent(ctx, probe, topic, 2, "[MQTT-3.3.1-11]", sent=False)


@check5("MQTT-3.3.4-3", "MQTT-3.3.4-4", "MQTT-3.3.4-5",
        summary="a message carries the Subscription Identifier of its subscription; for"
        " overlapping ones, one copy with all identifiers or one copy per subscription with"
        " its own")
async def subscription_identifiers_v5(ctx: Context) -> None:
    if not ctx.profile5.subscription_identifiers_available:
        raise NotApplicable("declares Subscription Identifiers Available 0 in CONNACK"
                            " (3.2.2.3.12)")
    async with ctx.scenario("one subscription"):
        topic = ctx.topic("sid", "one")
        sub, _ = await connect5(ctx, "sub")
        await subscribe5(sub, Subscription(topic, Q1), exact=False,
                         props=Properties(subscription_identifiers=(7,)))
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"m", Q1)
        await publish5(pub, topic, b"end", Q1)
        before = await collect_until(sub, b"end", "(a message the subscription matches)"
                                     " [MQTT-3.3.4-1]")
        copies = [m for m in before if m.payload == b"m"]
        require(bool(copies) and all(m.properties.subscription_identifiers == (7,)
                                     for m in copies),
                f"sub: the message must carry Subscription Identifier 7, the one its"
                f" subscription was made with, got"
                f" {[m.properties.subscription_identifiers for m in copies]} [MQTT-3.3.4-3]")
    if ctx.profile5.retain_available:
        async with ctx.scenario("the retained message a new subscription gets"):
            topic = ctx.topic("sid", "kept")
            pub, _ = await connect5(ctx, "rpub")
            await publish5(pub, topic, b"kept", Q1, retain=True)
            sub, _ = await connect5(ctx, "rsub")
            await subscribe5(sub, Subscription(topic, Q1), exact=False,
                             props=Properties(subscription_identifiers=(9,)))
            kept = await sub.expect(Publish, "the retained message the new subscription"
                                    " matches [MQTT-3.3.1-9]")
            if kept.qos > 0 and kept.packet_id is not None:
                await sub.send(PubAck(kept.packet_id))
            await publish5(pub, topic, b"", Q1, retain=True)  # the retained message removed
            require(kept.properties.subscription_identifiers == (9,),
                    f"rsub: the retained message sent for the subscription must carry its"
                    f" Subscription Identifier 9, got {kept.properties.subscription_identifiers}"
                    " [MQTT-3.3.4-3]")
    async with ctx.scenario("overlapping subscriptions"):
        if not ctx.profile5.wildcard_available:
            raise NotApplicable("declares Wildcard Subscription Available 0 in CONNACK"
                                " (3.2.2.3.11)", "MQTT-3.3.4-4", "MQTT-3.3.4-5")
        topic = ctx.topic("sid", "two")
        sub, _ = await connect5(ctx, "sub")
        await subscribe5(sub, Subscription(topic, Q1), exact=False,
                         props=Properties(subscription_identifiers=(3,)))
        await subscribe5(sub, Subscription(ctx.topic("sid", "+"), Q1), exact=False,
                         props=Properties(subscription_identifiers=(4,)))
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"m", Q1)
        await publish5(pub, topic, b"end", Q1)
        before = await collect_until(sub, b"end", "(a message the subscriptions match)"
                                     " [MQTT-3.3.4-1]")
        seen = sorted(sorted(m.properties.subscription_identifiers)
                      for m in before if m.payload == b"m")
        if len(seen) == 1:
            require(seen[0] == [3, 4], f"sub: one copy for two matching subscriptions must"
                    f" carry both their identifiers 3 and 4, got {seen[0]} [MQTT-3.3.4-4]"
                    " [MQTT-3.3.4-3]")
            raise NotApplicable("sends one copy for overlapping subscriptions (allowed,"
                                " 3.3.4)", "MQTT-3.3.4-5")
        require(seen == [[3], [4]], f"sub: one copy per matching subscription must carry that"
                f" subscription's identifier, 3 and 4, got {seen} [MQTT-3.3.4-5]"
                " [MQTT-3.3.4-3]")
        raise NotApplicable("sends one copy per overlapping subscription (allowed, 3.3.4)",
                            "MQTT-3.3.4-4")


@check5("MQTT-3.4.2-1", "MQTT-3.5.2-1",
        summary="a QoS 1 or QoS 2 message no one subscribes to is acknowledged with 0x00 or"
        " 0x10 (No matching subscribers)")
async def puback_reason_codes_v5(ctx: Context) -> None:
    topic = ctx.topic("nobody", "listens")
    pub, _ = await connect5(ctx, "pub")
    levels = [(QoS.AT_LEAST_ONCE, "PUBACK", "[MQTT-3.4.2-1]")]
    if ctx.profile5.maximum_qos == 2:
        levels.append((QoS.EXACTLY_ONCE, "PUBREC", "[MQTT-3.5.2-1]"))
    for qos, name, rule in levels:
        code = await publish5(pub, topic, f"q{int(qos)}".encode(), qos)
        require(code in (0x00, 0x10), f"pub: a {name} for a message with no subscribers must be"
                f" 0x00 (Success) or 0x10 (No matching subscribers), got 0x{code or 0:02X}"
                f" {rule}")
    needs_qos2(ctx, "PUBLISH to acknowledge", "MQTT-3.5.2-1")



@check5("MQTT-3.8.4-3", "MQTT-3.8.4-8", "MQTT-3.3.4-2",
        summary="a message comes at the lower of its QoS and the granted one; a SUBSCRIBE"
        " to a filter the session holds replaces that subscription; overlapping"
        " subscriptions get the message at the highest QoS among them")
async def subscription_qos_v5(ctx: Context) -> None:
    async with ctx.scenario("granted QoS 0, replaced by QoS 1"):
        topic = ctx.topic("subqos", "one")
        sub, _ = await connect5(ctx, "sub")
        await subscribe5(sub, Subscription(topic, QoS.AT_MOST_ONCE))
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"low", Q1)
        low = await sub.expect(Publish, "the message the subscription matches [MQTT-3.3.4-1]")
        require(low.payload == b"low" and low.qos == QoS.AT_MOST_ONCE,
                f"sub: a QoS 1 message on a subscription granted QoS 0 must come at QoS 0, got"
                f" {low.payload!r} at QoS {int(low.qos)} [MQTT-3.8.4-8]")
        require(not low.dup, "sub: a QoS 0 PUBLISH must have DUP 0 [MQTT-3.3.1-2]"
                " [MQTT-4.3.1-1]")
        suback = await subscribe5(sub, Subscription(topic, Q1), exact=False)
        granted = suback.return_codes[0]
        await publish5(pub, topic, b"high", Q1)
        await publish5(pub, topic, b"end", Q1)
        after = await collect_until(sub, b"end", "(a later message on the topic)"
                                    " [MQTT-3.3.4-1]")
        copies = [m for m in after if m.payload == b"high"]
        require(len(copies) == 1 and copies[0].qos == min(1, granted),
                f"sub: a SUBSCRIBE to the same filter must replace the subscription: one copy"
                f" at QoS {min(1, granted)} (granted {granted}), got"
                f" {[int(m.qos) for m in copies]} [MQTT-3.8.4-3]")
    async with ctx.scenario("overlapping subscriptions"):
        if not ctx.profile5.wildcard_available:
            raise NotApplicable("declares Wildcard Subscription Available 0 in CONNACK"
                                " (3.2.2.3.11)", "MQTT-3.3.4-2")
        topic = ctx.topic("subqos", "two")
        sub, _ = await connect5(ctx, "sub")
        await subscribe5(sub, Subscription(topic, QoS.AT_MOST_ONCE))
        suback = await subscribe5(sub, Subscription(ctx.topic("subqos", "+"), Q1), exact=False)
        top = min(1, suback.return_codes[0])
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"both", Q1)
        await publish5(pub, topic, b"end", Q1)
        before = await collect_until(sub, b"end", "(a later message on the topic)"
                                     " [MQTT-3.3.4-1]")
        levels = [int(m.qos) for m in before if m.payload == b"both"]
        require(bool(levels) and max(levels) == top,
                f"sub: a message matching subscriptions granted QoS 0 and {top} must come at"
                f" QoS {top} (one copy, or one of several), got {levels} [MQTT-3.3.4-2]")
