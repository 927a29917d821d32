"""Known attacks on brokers (``BAD-INPUTS.md``) that no normative statement names.

The specification leaves the outcome open here (a server may close, or cope),
so these checks accept either and judge only what must never happen: a
wrong answer, or harm to the next client. They cite no statement and are
reported apart from the per-statement verdicts.
"""

from __future__ import annotations

from mqttref.impl.oracle import raw
from mqttref.impl.oracle.checks.common import still_serving
from mqttref.impl.oracle.flows import deliveries, require, summary
from mqttref.impl.oracle.probe import Closed, Event, Received, describe
from mqttref.impl.oracle.scenario import Context, check
from mqttref.impl.packets import PingResp, QoS, SubAck


@check(robustness=True,
       summary="a Remaining Length announcing ~256 MB, never sent: others still served")
async def huge_remaining_length_announced(ctx: Context) -> None:
    probe = await ctx.client("big")
    await probe.send(bytes((0x30,)) + raw.varint(268_435_455) + b"\x00\x01a",
                     "PUBLISH announcing 268,435,455 bytes, then 3 bytes")
    await still_serving(ctx)
    ctx.trace.note(f"the announcing connection is {'closed' if probe.closed else 'open'}")


@check(robustness=True,
       summary="SUBSCRIBE to a filter of 65,000 levels: SUBACK or close, others still served")
async def very_deep_topic_filter(ctx: Context) -> None:
    probe = await ctx.client("deep")
    deep = ctx.topic("deep") + "/" * 65_000
    await probe.send(raw.subscribe(1, (deep[:65_535], 0)), "SUBSCRIBE to P/deep/ + 65,000 '/'")
    event = await probe.next_event(ctx.timing.reply_bound)
    require(isinstance(event, Closed) or (isinstance(event, Received)
                                          and isinstance(event.packet, SubAck)),
            f"expected a SUBACK or a close; got {event}")
    await still_serving(ctx)


@check(robustness=True,
       summary="PINGREQ with a non-minimal Remaining Length (80 00): PINGRESP or close")
async def non_minimal_remaining_length(ctx: Context) -> None:
    probe = await ctx.client("vbi")
    await probe.send(bytes((0xC0, 0x80, 0x00)), "PINGREQ with Remaining Length bytes 80 00")
    event = await probe.next_event(ctx.timing.reply_bound)
    require(isinstance(event, Closed) or (isinstance(event, Received)
                                          and isinstance(event.packet, PingResp)),
            f"expected PINGRESP or a close; got {_show(event)}")
    await still_serving(ctx)


def _show(event: Event | None) -> str:
    return describe(event.packet) if isinstance(event, Received) else repr(event)


@check(robustness=True,
       summary="control characters in a topic name: refused (close) or delivered unchanged")
async def control_characters_in_topic(ctx: Context) -> None:
    watcher = await ctx.subscriber("watch", (ctx.topic("+"), QoS.AT_MOST_ONCE))
    topic = ctx.topic("ctl\x01\x1b[2J")
    probe = await ctx.client("ctl")
    await probe.send(raw.publish(topic, b"ctl"), "PUBLISH to a topic holding U+0001 and ESC")
    got = await deliveries(watcher)
    require(all(m.topic == topic for m in got), f"the topic name was altered: {summary(got)}")
    ctx.trace.note(f"the server {'delivered' if got else 'did not deliver'} the message")
