"""Known attacks on brokers (``BAD-INPUTS.md``) that no normative statement names.

The specification leaves the outcome open here (a server may close, or cope),
so these checks accept either and judge only what must never happen: a
wrong answer, or harm to the next client. They cite no statement and are
reported apart from the per-statement verdicts.
"""

from __future__ import annotations

import asyncio

from mqttref.impl.oracle import raw
from mqttref.impl.oracle.checks.common import still_serving
from mqttref.impl.oracle.flows import deliveries, first_packet_is_connack, require, summary
from mqttref.impl.oracle.probe import Closed, Deviation, Event, Received, describe
from mqttref.impl.oracle.scenario import Context, check
from mqttref.impl.packets import PingResp, QoS, SubAck


@check(robustness=True,
       summary="a Remaining Length announcing ~256 MB, never sent: others still served")
async def huge_remaining_length_announced(ctx: Context) -> None:
    anonymous = await ctx.open("anon")
    await anonymous.send(bytes((0x10,)) + raw.varint(268_435_455) + b"\x00\x04MQTT",
                         "as the first packet: CONNECT announcing 268,435,455 bytes, then 6")
    probe = await ctx.client("big")
    await probe.send(bytes((0x30,)) + raw.varint(268_435_455) + b"\x00\x01a",
                     "PUBLISH announcing 268,435,455 bytes, then 3 bytes")
    await still_serving(ctx)
    for p in (anonymous, probe):
        ctx.trace.note(f"{p.name}: the connection is {'closed' if p.closed else 'open'}")


@check(robustness=True,
       summary="client ids holding + and #: accepted or refused with 0x02, others still served")
async def wildcards_in_client_id(ctx: Context) -> None:
    probe = await ctx.open("c1")
    await probe.send(raw.connect(f"mqr{ctx.token}+#"), "CONNECT with client id 'mqr…+#'")
    connack = await first_packet_is_connack(probe)
    require(connack.return_code in (0x00, 0x02),
            f"return code 0x{connack.return_code:02X}: only 0 or 0x02 fit [MQTT-3.1.3-9]")
    await still_serving(ctx)


@check(robustness=True,
       summary="a subscriber that never reads its socket does not stall other clients")
async def slow_reader_does_not_block_others(ctx: Context) -> None:
    topic = ctx.topic("slow")
    reader, writer = await asyncio.open_connection(ctx.host, ctx.port)
    try:
        writer.write(raw.connect(ctx.client_id("slow")) + raw.subscribe(1, (topic, 0)))
        await writer.drain()
        ctx.trace.add("slow", "->", "CONNECT + SUBSCRIBE, then never reads again")
        pub = await ctx.client("pub")
        await pub.settle()
        chunk = b"".join(raw.publish(topic, bytes(10_000)) for _ in range(100))
        for _ in range(8):
            await pub.send(chunk, "100 QoS 0 PUBLISHes of 10 kB to the slow reader's topic")
        await still_serving(ctx)
        try:
            await pub.settle()
        except Deviation as exc:
            raise Deviation(f"{exc}: the publisher is stalled by a subscriber that does not read"
                            " (BAD-INPUTS.md: a slow reader must not block other clients)") from exc
    finally:
        writer.transport.abort()
        del reader


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
