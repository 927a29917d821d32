"""Topic Alias mappings last one Network Connection (3.3.2.3.4): a receiver must not carry
them from one connection to the next [MQTT-3.3.2-7], even when the session goes on.

As a receiver the server is judged on a PUBLISH that names only an alias set on the
previous connection of the same session: the message must not reach the topic that
alias stood for there (judged up to a marker published after it to that topic). As a
sender it is judged where it chose to send aliases: on the next connection its first
PUBLISH to the client may not use an alias alone, as if the old mapping held.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Disconnect,
    PingReq,
    Properties,
    Publish,
    QoS,
    Subscription,
)
from mqttref.oracle import raw
from mqttref.oracle.checks5._steps import watcher
from mqttref.oracle.checks5.common import (
    check5,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Probe, Received, describe
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE
KEEP = Properties(session_expiry_interval=10)
ALIASES = Properties(session_expiry_interval=10, topic_alias_maximum=5)


async def _leave(probe: Probe, ctx: Context) -> None:
    """DISCONNECT 0x00 and the end of the connection (the session stays, 10 s)."""
    await probe.send(Disconnect(0))
    await probe.next_event(ctx.timing.window)
    probe.abort()


@check5("MQTT-3.3.2-7",
        summary="a Topic Alias set on one connection means nothing on the next one of the"
        " same session: the server neither routes an alias-only PUBLISH to the old topic nor"
        " sends one itself")
async def topic_alias_per_connection_v5(ctx: Context) -> None:
    async with ctx.scenario("the server as receiver"):
        if ctx.profile5.topic_alias_maximum < 1:
            raise NotApplicable("accepts no Topic Alias from the client (Topic Alias Maximum"
                                " absent or 0, 3.2.2.3.8)")
        topic = ctx.topic("aliasscope", "in")
        watch = await watcher(ctx, "watch", topic)
        cid = ctx.client_id("alias")
        first, _ = await connect5(ctx, "first", cid, props=KEEP)
        await publish5(first, topic, b"mapped", Q1, props=Properties(topic_alias=1))
        await collect_until(watch, b"mapped", "(published with its topic and Topic Alias 1)"
                            " [MQTT-3.3.4-1]")
        await _leave(first, ctx)
        second, _ = await connect5(ctx, "second", cid, clean=False, props=KEEP)
        await second.send(raw.publish5(b"", b"carried", qos=1, packet_id=1,
                                       props=raw.properties(b"\x23" + raw.u16(1))),
                          note="PUBLISH with Topic Alias 1 alone, mapped on the last connection")
        await second.send(PingReq(), note="an answer, or the close, comes before its PINGRESP")
        event = await second.next_event(ctx.timing.reply_bound)
        if isinstance(event, Received):
            ctx.trace.note(f"second: answered {describe(event.packet)} (not judged here)")
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"marker", Q1)
        got = [m.payload for m in await collect_until(watch, b"marker", "(a message on the"
                                                      " watched topic) [MQTT-3.3.4-1]")]
        require(b"carried" not in got, f"watch: the PUBLISH with Topic Alias 1 alone reached"
                f" {topic!r}, the topic alias 1 stood for on the previous connection: a"
                " receiver must not carry Topic Alias mappings over [MQTT-3.3.2-7]")
    async with ctx.scenario("the server as sender"):
        topic = ctx.topic("aliasscope", "out")
        cid = ctx.client_id("recv")
        sub, _ = await connect5(ctx, "sub", cid, props=ALIASES)
        await subscribe5(sub, Subscription(topic, Q1), exact=False)
        pub, _ = await connect5(ctx, "pub")
        for payload in (b"one", b"two"):
            await publish5(pub, topic, payload, Q1)
        seen = await collect_until(sub, b"two", "(a message on the subscribed topic)"
                                   " [MQTT-3.3.4-1]")
        if not any(m.properties.topic_alias is not None for m in seen):
            raise NotApplicable("sends the client no Topic Alias on the first connection (its"
                                " choice, 3.3.2.3.4)")
        await _leave(sub, ctx)
        back, _ = await connect5(ctx, "back", cid, clean=False, props=ALIASES)
        await publish5(pub, topic, b"three", Q1)
        await publish5(pub, topic, b"end", Q1)
        later: list[Publish] = await collect_until(back, b"end", "(a message on the"
                                                   " subscribed topic) [MQTT-3.3.4-1]")
        first_copy = next((m for m in later if m.payload == b"three"), None)
        require(first_copy is not None, "back: 'three' must arrive before 'end', published"
                " after it on the same topic at the same QoS [MQTT-4.6.0-6]")
        assert first_copy is not None
        require(first_copy.topic != "", f"back: the first PUBLISH on the new connection must"
                f" carry its Topic Name, not an alias mapped on the last one, got"
                f" {describe(first_copy)} [MQTT-3.3.2-7]")
