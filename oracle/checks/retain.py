"""Retained messages: stored, replaced, cleared, and the RETAIN flag on delivery (3.3.1.3).

A retained message owed to a new subscription has no deadline in the
specification: it is waited for up to ``Timing.obligation_bound``. That a message
is *not* retained is judged only on a new client that, after subscribing to the
topic under test, subscribes in a SUBSCRIBE of its own to a control topic whose
retained message another newcomer was already seen to receive: the control must
arrive, and the message under test would have come before it. A control that was
seen stored and does not arrive is the new subscription not being sent it
[MQTT-3.3.1-6]; a first newcomer missing a retained message cannot tell "not
stored" [MQTT-3.3.1-5] from "not sent" [MQTT-3.3.1-6] and cites both. Each filter
is subscribed on its own, so that a server handling only the first filter of a
SUBSCRIBE [MQTT-3.8.4-4] cannot look like one that lost a retained message.
Subscriptions take the QoS granted (a lower grant is the server's right
[MQTT-3.8.4-6]), and a delivery is expected at the minimum of the message's QoS
and the grant.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import Publish, QoS
from mqttref.oracle.checks.session import (
    _connect,
    _copies,
    _grant,
    _hang_up,
    _owed,
    _ping,
    _subscribed,
)
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import publish, require, summary
from mqttref.oracle.probe import Probe
from mqttref.oracle.scenario import Context, check

CONTROL = b"control"

SENT_TO_NEW = "a new subscription must be sent the retained message of each matching topic"
CONTROL_SENT = (f"{SENT_TO_NEW}: the control topic's retained message, already seen stored (another"
                " new subscriber received it) [MQTT-3.3.1-6]")


async def _retain(ctx: Context, pub: Probe, topic: str, payload: bytes,
                  qos: QoS = QoS.AT_LEAST_ONCE) -> None:
    ctx.retained.add(topic)
    await publish(pub, topic, payload, qos, retain=True)


async def _control(ctx: Context, pub: Probe, label: str) -> str:
    """A topic holding a retained message that every newcomer below must receive.

    A first newcomer subscribed to it alone must receive it [MQTT-3.3.1-5]
    [MQTT-3.3.1-6]: from then on the message is known to be stored, and a later
    newcomer that misses it was not sent it [MQTT-3.3.1-6].
    """
    topic = ctx.topic("retain", label, "control")
    await _retain(ctx, pub, topic, CONTROL)
    await _newcomer(ctx, "seer", topic, owed=[CONTROL])
    return topic


async def _controlled(ctx: Context, name: str, topic_filter: str, control: str
                      ) -> list[Publish]:
    """What a new client gets that subscribes to ``topic_filter``, then to ``control``.

    Two SUBSCRIBEs: the filter under test first, the control (set up by
    ``_control``, so seen stored) in a SUBSCRIBE of its own, whose retained
    message must arrive [MQTT-3.3.1-6]. What the filter under test matches
    would have arrived before it.
    """
    probe, _ = await _subscribed(ctx, name, (topic_filter, QoS.AT_LEAST_ONCE))
    await _grant(probe, (control, QoS.AT_LEAST_ONCE))
    return await _owed(probe, [CONTROL], CONTROL_SENT)


async def _newcomer(ctx: Context, name: str, *filters: str, owed: list[bytes],
                    qos: QoS = QoS.AT_LEAST_ONCE,
                    why: str = f"{SENT_TO_NEW} [MQTT-3.3.1-5] [MQTT-3.3.1-6]",
                    ) -> tuple[list[Publish], tuple[int, ...]]:
    """A new client subscribing to ``filters`` at ``qos``: what arrives, and the grants.

    ``owed`` are the payloads whose retained messages must arrive; ``why`` cites
    what requires them.
    """
    probe, granted = await _subscribed(ctx, name, *((f, qos) for f in filters))
    return await _owed(probe, owed, why), granted


def _wildcards(ctx: Context) -> None:
    if not ctx.profile.wildcards:
        raise NotApplicable("refuses filters containing wildcards (allowed [MQTT-3.8.3-2])")


@check("MQTT-3.3.1-5", "MQTT-3.3.1-6", "MQTT-3.3.1-8",
       summary="a retained message goes to each new matching subscription with RETAIN=1")
async def retained_sent_to_new_subscription(ctx: Context) -> None:
    """A QoS 1 retained message is stored with its QoS [MQTT-3.3.1-5] and sent to a
    new subscription [MQTT-3.3.1-6] with RETAIN=1 [MQTT-3.3.1-8]. The subscription
    asks for QoS 2, so a server that forgot the message's QoS and sent it at the
    grant would be seen. A wildcard subscription gets the retained message of each
    topic it matches."""
    async with ctx.scenario("exact filter"):
        topic = ctx.topic("retain", "basic")
        pub = await ctx.client("pub")
        await _retain(ctx, pub, topic, b"kept")
        got, (granted,) = await _newcomer(ctx, "new1", topic, owed=[b"kept"],
                                          qos=QoS.EXACTLY_ONCE)
        due = min(1, granted)
        require(all(m.retain for m in _copies(got, b"kept")),
                "new1: a message sent because of a new subscription must have RETAIN=1"
                f" [MQTT-3.3.1-8]; got {summary(got)}")
        require(all(m.qos == due for m in _copies(got, b"kept")),
                f"new1: the retained message's QoS (1) must be stored with it [MQTT-3.3.1-5]:"
                f" granted QoS {granted}, it must arrive at QoS {due} [MQTT-3.8.4-6];"
                f" got {summary(got)}")
    async with ctx.scenario("wildcard filter matching two topics"):
        _wildcards(ctx)
        a, b = ctx.topic("retain", "two", "a"), ctx.topic("retain", "two", "b", "c")
        pub = await ctx.client("pub")
        await _retain(ctx, pub, a, b"on a")
        await _retain(ctx, pub, b, b"on b/c")
        got, _ = await _newcomer(ctx, "new2", ctx.topic("retain", "two", "#"),
                                 owed=[b"on a", b"on b/c"])
        require(all(m.retain for m in got),
                "new2: messages sent because of a new subscription must have RETAIN=1"
                f" [MQTT-3.3.1-8]; got {summary(got)}")


@check("MQTT-3.8.4-6", "MQTT-3.3.1-6",
       summary="a retained message reaches a new subscription at the lower of its QoS and the"
       " granted QoS")
async def retained_delivery_capped_by_granted_qos(ctx: Context) -> None:
    """A retained message goes out at the minimum of its own QoS and the QoS
    granted [MQTT-3.8.4-6]: a QoS 1 one to a QoS 0 subscription at QoS 0; a QoS 2
    one at QoS 2 to a QoS 2 grant and at QoS 1 to a QoS 1 grant (a server that
    grants at most QoS 1 sends it at QoS 1, as it may)."""
    async with ctx.scenario("QoS 1 retained, QoS 0 subscription"):
        topic = ctx.topic("retain", "capped")
        pub = await ctx.client("pub")
        await _retain(ctx, pub, topic, b"capped")
        got, (granted,) = await _newcomer(ctx, "new", topic, owed=[b"capped"],
                                          qos=QoS.AT_MOST_ONCE,
                                          why=f"{SENT_TO_NEW} [MQTT-3.3.1-6]")
        require(all(m.qos == min(1, granted) for m in _copies(got, b"capped")),
                f"new: a QoS 1 message to a subscription granted QoS {granted} must arrive at QoS"
                f" {min(1, granted)} [MQTT-3.8.4-6]; got {summary(got)}")
    async with ctx.scenario("QoS 2 retained, QoS 2 and QoS 1 subscriptions"):
        topic = ctx.topic("retain", "capped2")
        pub = await ctx.client("pub")
        await _retain(ctx, pub, topic, b"capped 2", QoS.EXACTLY_ONCE)
        for requested in (QoS.EXACTLY_ONCE, QoS.AT_LEAST_ONCE):
            name = f"new{int(requested)}"
            got, (granted,) = await _newcomer(ctx, name, topic, owed=[b"capped 2"],
                                              qos=requested,
                                              why=f"{SENT_TO_NEW} [MQTT-3.3.1-6]")
            due = min(2, granted)
            require(all(m.qos == due for m in _copies(got, b"capped 2")),
                    f"{name}: a QoS 2 message to a subscription granted QoS {granted} must"
                    f" arrive at QoS {due} [MQTT-3.8.4-6]; got {summary(got)}")


@check("MQTT-3.3.1-9", "MQTT-3.3.1-5",
       summary="an established subscription gets retained publications with RETAIN=0")
async def retain_flag_cleared_for_live_subscribers(ctx: Context) -> None:
    """A retained publication matching an established subscription goes out with
    RETAIN=0 [MQTT-3.3.1-9], while the same stored message [MQTT-3.3.1-5] goes to a
    new subscription with RETAIN=1: the flag says why it was sent."""
    topic = ctx.topic("retain", "live")
    sub, _ = await _subscribed(ctx, "sub", (topic, QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    await _retain(ctx, pub, topic, b"live")
    live = await _owed(sub, [b"live"], "a message matching an established subscription must be"
                       " delivered [MQTT-4.5.0-1]")
    require(all(not m.retain for m in _copies(live, b"live")),
            "sub: a PUBLISH sent because it matches an established subscription must have"
            f" RETAIN=0 [MQTT-3.3.1-9]; got {summary(live)}")
    got, _ = await _newcomer(ctx, "new", topic, owed=[b"live"])
    require(all(m.retain for m in _copies(got, b"live")),
            "new: the stored message sent because of a new subscription must have RETAIN=1"
            f" [MQTT-3.3.1-8]; got {summary(got)}")


@check("MQTT-3.3.1-10", "MQTT-3.3.1-11", "MQTT-3.3.1-5",
       summary="replace then clear: new value kept; empty retained PUBLISH forwarded, then gone")
async def retained_replace_and_clear(ctx: Context) -> None:
    """A second retained message on a topic replaces the first (only the last is
    sent [MQTT-3.3.1-5] [MQTT-3.3.1-6]); an empty retained PUBLISH is forwarded to
    subscribers as a normal message and removes the retained one [MQTT-3.3.1-10];
    an empty retained PUBLISH on a topic with none is not stored [MQTT-3.3.1-11]."""
    async with ctx.scenario("replace"):
        topic = ctx.topic("retain", "replace")
        pub = await ctx.client("pub")
        await _retain(ctx, pub, topic, b"old")
        await _retain(ctx, pub, topic, b"new")
        got, _ = await _newcomer(ctx, "new1", topic, owed=[b"new"])
        require(not _copies(got, b"old"),
                "new1: only the last retained message of the topic is stored and sent"
                f" [MQTT-3.3.1-5] [MQTT-3.3.1-6]; got {summary(got)}")
    async with ctx.scenario("clear"):
        topic = ctx.topic("retain", "clear")
        sub, _ = await _subscribed(ctx, "sub", (topic, QoS.AT_LEAST_ONCE))
        pub = await ctx.client("pub")
        control = await _control(ctx, pub, "clear")
        await _retain(ctx, pub, topic, b"value")
        await _owed(sub, [b"value"], "a message matching an established subscription must be"
                    " delivered [MQTT-4.5.0-1]")
        await _retain(ctx, pub, topic, b"")
        live = await _owed(sub, [b""], "a retained PUBLISH with an empty payload is processed as"
                           " normal and sent to matching subscriptions [MQTT-3.3.1-10]")
        require(all(not m.retain for m in _copies(live, b"")),
                "sub: it goes to the established subscription with RETAIN=0 [MQTT-3.3.1-9];"
                f" got {summary(live)}")
        got = await _controlled(ctx, "new2", topic, control)
        left = [m for m in got if m.topic == topic]
        require(not left,
                "new2: the empty retained PUBLISH must remove the retained message, and future"
                f" subscribers receive none [MQTT-3.3.1-10]; got {summary(left)}")
    async with ctx.scenario("zero-byte retained message on a topic with none"):
        topic = ctx.topic("retain", "empty")
        pub = await ctx.client("pub")
        control = await _control(ctx, pub, "empty")
        await _retain(ctx, pub, topic, b"")
        got = await _controlled(ctx, "new3", topic, control)
        left = [m for m in got if m.topic == topic]
        require(not left, "new3: a zero-byte retained message must not be stored"
                f" [MQTT-3.3.1-11]; got {summary(left)}")


@check("MQTT-3.3.1-7", summary="a QoS 0 retained message replaces a QoS 1 one (or clears it)")
async def qos0_retained_replaces(ctx: Context) -> None:
    """A QoS 0 retained message must discard the retained one before it; the server
    SHOULD keep the new one but MAY discard it [MQTT-3.3.1-7]: a new subscription
    gets the QoS 0 message or nothing on that topic, never the old QoS 1 one."""
    topic = ctx.topic("retain", "qos0")
    pub = await ctx.client("pub")
    control = await _control(ctx, pub, "qos0")
    await _retain(ctx, pub, topic, b"qos1 value")
    await _retain(ctx, pub, topic, b"qos0 value", QoS.AT_MOST_ONCE)
    await _ping(pub)
    got = await _controlled(ctx, "new", topic, control)
    require(not _copies(got, b"qos1 value"),
            "new: a QoS 0 retained message must discard the one retained before it"
            f" [MQTT-3.3.1-7]; got {summary(got)}")
    kept = _copies(got, b"qos0 value")
    ctx.trace.note(f"the QoS 0 retained message was {'kept' if kept else 'discarded'}"
                   " (kept SHOULD, discarded MAY: both allowed [MQTT-3.3.1-7])")
    if kept:
        require(all(m.qos == 0 for m in kept),
                "new: the kept QoS 0 message goes out at QoS 0 [MQTT-3.8.4-6];"
                f" got {summary(kept)}")
        require(all(m.retain for m in kept),
                "new: the kept QoS 0 message, sent because of a new subscription, has RETAIN=1"
                f" [MQTT-3.3.1-8]; got {summary(kept)}")


@check("MQTT-3.3.1-12", summary="RETAIN=0 neither stores nor replaces the retained message")
async def non_retained_keeps_retained(ctx: Context) -> None:
    """A RETAIN=0 PUBLISH must not remove or replace the retained message of its
    topic, and must not be stored itself [MQTT-3.3.1-12]."""
    async with ctx.scenario("does not replace"):
        topic = ctx.topic("retain", "keep")
        pub = await ctx.client("pub")
        await _retain(ctx, pub, topic, b"retained")
        await _newcomer(ctx, "before", topic, owed=[b"retained"])
        await publish(pub, topic, b"not retained", QoS.AT_LEAST_ONCE)
        got, _ = await _newcomer(ctx, "after", topic, owed=[b"retained"],
                                 why="a RETAIN=0 PUBLISH must not remove the retained message"
                                 " [MQTT-3.3.1-12]")
        require(not _copies(got, b"not retained"),
                "after: a RETAIN=0 PUBLISH must not replace the retained message [MQTT-3.3.1-12];"
                f" got {summary(got)}")
    async with ctx.scenario("is not stored"):
        topic = ctx.topic("retain", "never")
        pub = await ctx.client("pub")
        control = await _control(ctx, pub, "never")
        await publish(pub, topic, b"plain", QoS.AT_LEAST_ONCE)
        got = await _controlled(ctx, "new", topic, control)
        require(not _copies(got, b"plain"),
                f"new: a RETAIN=0 message must not be stored [MQTT-3.3.1-12]; got {summary(got)}")


@check("MQTT-3.8.4-3", summary="subscribing again to the same filter re-sends retained messages")
async def resubscribe_resends_retained(ctx: Context) -> None:
    """A SUBSCRIBE with a filter identical to an existing one replaces that
    subscription (its QoS too) and the retained messages matching it are re-sent
    [MQTT-3.8.4-3]. The second SUBSCRIBE asks for QoS 0: the re-sent message and
    the next live one come at QoS 0, which a server that added a second
    subscription instead of replacing the first would not do."""
    topic = ctx.topic("retain", "again")
    pub = await ctx.client("pub")
    await _retain(ctx, pub, topic, b"again")
    sub, (granted,) = await _subscribed(ctx, "sub", (topic, QoS.AT_LEAST_ONCE))
    await _owed(sub, [b"again"], f"{SENT_TO_NEW} [MQTT-3.3.1-6]")
    (regranted,) = await _grant(sub, (topic, QoS.AT_MOST_ONCE))
    again = await _owed(sub, [b"again"], "a SUBSCRIBE repeating a filter must re-send the"
                        " retained messages matching it [MQTT-3.8.4-3]")
    require(all(m.retain for m in again),
            "sub: a message sent because of a new subscription must have RETAIN=1 [MQTT-3.3.1-8];"
            f" got {summary(again)}")
    if regranted < granted:
        require(all(m.qos == regranted for m in again),
                f"sub: the repeated SUBSCRIBE (granted QoS {regranted}) completely replaces the"
                f" subscription granted QoS {granted} [MQTT-3.8.4-3]: the retained message is"
                f" re-sent at QoS {regranted}; got {summary(again)}")
    await publish(pub, topic, b"live", QoS.AT_LEAST_ONCE)
    live = await _owed(sub, [b"live"], "the replaced subscription goes on delivering"
                       " [MQTT-3.8.4-3]")
    if regranted < granted:
        require(all(m.qos == regranted for m in live),
                f"sub: one subscription remains, at the QoS {regranted} granted last"
                f" [MQTT-3.8.4-3]; got {summary(live)}")


@check("MQTT-3.1.2-7", summary="retained messages outlive the publisher's session")
async def retained_outlives_session(ctx: Context) -> None:
    """Retained messages are not session state: they must not be deleted when the
    publisher's session ends [MQTT-3.1.2-7], whether it was a clean session ending
    with its connection or a persistent one discarded by a clean-session connect.
    A first newcomer receives the message while the session lasts [MQTT-3.3.1-5]
    [MQTT-3.3.1-6]: only a message seen retained then and missing after the session
    ended was deleted with it."""
    for label, clean in (("clean session publisher", True),
                         ("persistent session publisher, session discarded", False)):
        async with ctx.scenario(label):
            topic = ctx.topic("retain", "session", "clean" if clean else "persistent")
            cid = ctx.client_id("rp")
            pub, _ = await _connect(ctx, "pub", cid, clean=clean)
            await _retain(ctx, pub, topic, b"survivor")
            await _newcomer(ctx, "before", topic, owed=[b"survivor"])
            await _hang_up(pub)
            # Reusing the client id with clean session 1 ends whatever session was left.
            end, _ = await _connect(ctx, "end", cid, clean=True)
            await _hang_up(end)
            await _newcomer(ctx, "new", topic, owed=[b"survivor"],
                            why="a retained message must not be deleted when the publisher's"
                            " session ends [MQTT-3.1.2-7]")


@check("MQTT-3.3.1-6", "MQTT-3.3.2-3",
       summary="a retained message is not sent to a filter that does not match it")
async def retained_only_to_matching_filters(ctx: Context) -> None:
    """A new subscription is sent the retained messages of the topics it matches
    [MQTT-3.3.1-6], and only those: a PUBLISH's topic must match the subscription's
    filter [MQTT-3.3.2-3]. Each newcomer then subscribes, in a SUBSCRIBE of its own,
    to a control topic whose retained message must arrive."""
    filters = (("a sibling topic", "sib", ("match", "b"), False),
               ("'+' one level deeper", "deeper", ("match", "a", "+"), True),
               ("'+' on another level", "other", ("+", "b"), True))
    for label, key, levels, wild in filters:
        async with ctx.scenario(label):
            if wild:
                _wildcards(ctx)
            topic = ctx.topic("retain", key, "match", "a")
            pub = await ctx.client("pub")
            control = await _control(ctx, pub, key)
            await _retain(ctx, pub, topic, b"only a")
            topic_filter = ctx.topic("retain", key, *levels)
            got = await _controlled(ctx, "new", topic_filter, control)
            require(all(m.topic == control for m in got),
                    f"new: {topic!r} does not match the filter {topic_filter!r}: only the control"
                    f" topic's message may be sent [MQTT-3.3.2-3]; got {summary(got)}")
