"""Known attacks on brokers (``BAD-INPUTS.md``) that no normative statement names.

The specification leaves the outcome open here (a server may close, or cope),
so these checks accept either and judge only what must never happen: a
wrong answer, or harm to the next client. They list no statement and are
reported apart from the per-statement verdicts; a deviation that cites no
statement fails them all the same. Where a step does observe a statement (a
CONNACK 0x02 followed by the close [MQTT-3.1.3-9], a topic name delivered with
its U+FEFF [MQTT-1.5.3-3]), its message cites it, so that the observation
counts as evidence for that statement and a contradiction is blamed on it.
"""

from __future__ import annotations

import asyncio
import time

from mqttref.impl.codec.packets import PingResp, PubAck, Publish, QoS, SubAck
from mqttref.oracle import raw
from mqttref.oracle.checks.malformed import others_served, until_close
from mqttref.oracle.connection import open_stream, with_credentials_raw
from mqttref.oracle.flows import first_packet_is_connack, require, subscribe
from mqttref.oracle.probe import (
    Closed,
    Deviation,
    Event,
    Garbled,
    NotApplicable,
    Probe,
    Received,
    describe,
)
from mqttref.oracle.scenario import Context, check


@check(robustness=True,
       summary="a Remaining Length announcing ~256 MB, never sent: others still served")
async def huge_remaining_length_announced(ctx: Context) -> None:
    """A peer that announces a huge packet and never sends it must not make the server
    reserve that memory up front, nor stall anyone else."""
    anonymous = await ctx.open("anon")
    await anonymous.send(bytes((0x10,)) + raw.varint(268_435_455) + b"\x00\x04MQTT",
                         "as the first packet: CONNECT announcing 268,435,455 bytes, then 6")
    probe = await ctx.client("big")
    await probe.send(bytes((0x30,)) + raw.varint(268_435_455) + b"\x00\x01a",
                     "PUBLISH announcing 268,435,455 bytes, then 3 bytes")
    await others_served(ctx)
    for p in (anonymous, probe):
        ctx.trace.note(f"{p.name}: the connection is {'closed' if p.closed else 'open'}")


@check(robustness=True,
       summary="client ids holding + and #: accepted, or refused with 0x02 and closed;"
               " others still served")
async def wildcards_in_client_id(ctx: Context) -> None:
    """A client id outside the characters a server must allow [MQTT-3.1.3-5] may be
    accepted, or rejected with CONNACK 0x02 and the close [MQTT-3.1.3-9]; the wildcard
    characters must not confuse anything else (no statement forbids a close without
    CONNACK here outright, so that outcome fails this check uncited)."""
    probe = await ctx.open("c1")
    await probe.send(raw.connect(f"mqr{ctx.token}+#"), "CONNECT with client id 'mqr…+#'")
    connack = await first_packet_is_connack(
        probe, "(a client id the server accepts, or rejects with CONNACK 0x02)")
    code = connack.return_code
    if code in (0x03, 0x04, 0x05):
        ctx.trace.note(f"c1: refused with 0x{code:02X}, a refusal Table 3.1 allows for"
                       " reasons other than the client id")
    else:
        require(code in (0x00, 0x02),
                f"c1: return code 0x{code:02X} to a well-formed CONNECT: only 0 (accepted)"
                " or 0x02 (client id rejected) fit a client id holding + and #")
    if code:
        closed, _ = await until_close(probe, ctx.timing.reply_bound)
        cites = "[MQTT-3.2.2-5] [MQTT-3.1.3-9]" if code == 0x02 else "[MQTT-3.2.2-5]"
        require(closed, f"c1: closed the connection after CONNACK 0x{code:02X} {cites}"
                if closed else f"c1: after CONNACK 0x{code:02X} the server must close the"
                f" connection {cites}; still open after {ctx.timing.reply_bound:.1f}s")
    await others_served(ctx)


@check(robustness=True,
       summary="a subscriber that never reads its socket does not stall other clients")
async def slow_reader_does_not_block_others(ctx: Context) -> None:
    """8 MB of QoS 0 messages to a subscriber that never reads: the publisher and a fresh
    client must still be answered (BAD-INPUTS.md: a slow reader must not block others)."""
    topic = ctx.topic("slow")
    # Over the run's transport, as the run's user: a raw stream, not a Probe, since a
    # Probe reads everything that arrives.
    reader, writer = await open_stream(ctx.host, ctx.port, ctx.timing.reply_bound)
    try:
        writer.write(with_credentials_raw(raw.connect(ctx.client_id("slow")), ctx.level)
                     + raw.subscribe(1, (topic, 0)))
        await writer.drain()
        ctx.trace.add("slow", "->", "CONNECT + SUBSCRIBE, then never reads again")
        pub = await ctx.client("pub")
        await pub.settle()
        chunk = b"".join(raw.publish(topic, bytes(10_000)) for _ in range(100))
        bound = ctx.timing.reply_bound
        try:
            await asyncio.wait_for(_send_all(pub, chunk, 8), bound)
        except TimeoutError:
            raise Deviation(f"pub: the server did not take 8 MB of QoS 0 PUBLISHes within"
                            f" {bound:.1f}s: the publisher is stalled by a subscriber that does"
                            " not read (BAD-INPUTS.md: a slow reader must not block other"
                            " clients)") from None
        await others_served(ctx)
        try:
            await pub.settle()
        except Deviation as exc:
            raise Deviation(f"{exc}: the publisher is stalled by a subscriber that does not read"
                            " (BAD-INPUTS.md: a slow reader must not block other clients)") from exc
    finally:
        writer.transport.abort()
        del reader


async def _send_all(probe: Probe, chunk: bytes, times: int) -> None:
    for _ in range(times):
        await probe.send(chunk, "100 QoS 0 PUBLISHes of 10 kB to the slow reader's topic")


@check(robustness=True,
       summary="SUBSCRIBE to a filter of 65,000 levels: SUBACK or close, others still served")
async def very_deep_topic_filter(ctx: Context) -> None:
    """A filter of 65,000 empty levels is valid; a server may refuse it (0x80) or close
    (an implementation limit), but must neither hang nor fall over."""
    probe = await ctx.client("deep")
    deep = ctx.topic("deep") + "/" * 65_000
    await probe.send(raw.subscribe(1, (deep[:65_535], 0)), "SUBSCRIBE to P/deep/ + 65,000 '/'")
    event = await probe.next_event(ctx.timing.reply_bound)
    require(isinstance(event, Closed) or (isinstance(event, Received)
                                          and isinstance(event.packet, SubAck)),
            f"expected a SUBACK or a close; got {_show(event)}")
    await others_served(ctx)


@check(robustness=True,
       summary="PINGREQ with a non-minimal Remaining Length (80 00): PINGRESP or close")
async def non_minimal_remaining_length(ctx: Context) -> None:
    """3.1.1 does not require the minimal Remaining Length encoding (5.0 does): either
    answer is allowed, a hang or a wrong answer is not."""
    probe = await ctx.client("vbi")
    await probe.send(bytes((0xC0, 0x80, 0x00)), "PINGREQ with Remaining Length bytes 80 00")
    event = await probe.next_event(ctx.timing.reply_bound)
    require(isinstance(event, Closed) or (isinstance(event, Received)
                                          and isinstance(event.packet, PingResp)),
            f"expected PINGRESP or a close; got {_show(event)}")
    await others_served(ctx)


def _show(event: Event | None) -> str:
    if event is None:
        return "nothing"
    return describe(event.packet) if isinstance(event, Received) else repr(event)


CONTROL_LEVEL = "a\x01\x1b[2J\ufeffz"
"""A topic level with U+0001, an ANSI escape sequence (ESC is U+001B) and U+FEFF."""


async def _control_watcher(ctx: Context, topic: str) -> Probe | str:
    """A subscriber that receives ``topic``: through ``P/ctl/+`` when wildcards are granted,
    else through the topic itself as a filter; when the broker refuses both, the choice."""
    if ctx.profile.wildcards:
        topic_filter = ctx.topic("ctl", "+")
    elif "\x01" in ctx.profile.closing_characters + ctx.profile.refused_characters:
        return ("refuses wildcard filters (allowed [MQTT-3.8.3-2]) and filters holding a"
                " control character (section 1.5.3): no subscription can receive a topic name"
                " holding one")
    else:
        topic_filter = topic
    watcher = await ctx.client("watch")
    try:
        suback = await subscribe(watcher, (topic_filter, QoS.AT_MOST_ONCE), exact=False)
    except Deviation:
        if watcher.closed is None or topic_filter != topic:
            raise
        return ("closes the connection on a filter holding control characters (a MAY of"
                " section 1.5.3) and refuses wildcard filters (allowed [MQTT-3.8.3-2]): no"
                " subscription can receive the topic name")
    if suback.return_codes != (0,):
        return (f"refuses the filter {topic_filter!r} with 0x80 (allowed [MQTT-3.8.4-5]): no"
                " subscription can receive the topic name")
    return watcher


@check(robustness=True,
       summary="control characters in a topic name: closed (a MAY of 1.5.3) or delivered"
               " unchanged, U+FEFF kept")
async def control_characters_in_topic(ctx: Context) -> None:
    """A receiver of a control character "MAY close the Network Connection" (section
    1.5.3): closing is one allowed outcome, acknowledging is the other, and neither fails
    (the profile's ``closing_characters`` tells which one the broker takes for filters).

    An acknowledged message is owed to the subscriber [MQTT-4.5.0-1] with its topic
    name unchanged [MQTT-4.7.3-4]: not stripped of the escape sequence (which would hide
    terminal-escape injection from a reader of logs, not prevent it), and with its
    U+FEFF, which "MUST NOT be skipped over or stripped off" [MQTT-1.5.3-3].
    """
    topic = ctx.topic("ctl", CONTROL_LEVEL)
    watcher = await _control_watcher(ctx, topic)
    probe = await ctx.client("ctl")
    await probe.send(raw.publish(topic, b"ctl", flags=0x02, packet_id=7),
                     "QoS 1 PUBLISH id=7 to a topic holding U+0001, ESC [2J and U+FEFF")
    event = await probe.next_event(ctx.timing.reply_bound)
    if isinstance(event, Closed):
        filters = ("closes too" if "\x01" in ctx.profile.closing_characters
                   else "does not close")
        ctx.trace.note("the server closed the connection: it MAY for a control character"
                       f" (section 1.5.3); on U+0001 in a topic filter it {filters}")
        await others_served(ctx)
        return
    if isinstance(event, Garbled):
        raise Deviation(f"ctl: the server sent bytes the codec refuses: {event.error}")
    if isinstance(watcher, str):
        raise NotApplicable(f"{watcher}; the PUBLISH was not refused, so its delivery cannot"
                            " be judged")
    ack = event.packet if isinstance(event, Received) else None
    if not isinstance(ack, PubAck):
        raise Deviation(f"ctl: a QoS 1 PUBLISH must be answered with PUBACK [MQTT-3.3.4-1]"
                        f" (or the connection closed, section 1.5.3); got {_show(event)}")
    require(ack.packet_id == 7,
            f"ctl: PUBACK id {ack.packet_id} must equal the PUBLISH id 7 [MQTT-2.3.1-6]")
    got = await _delivered(watcher, ctx.timing.obligation_bound)
    if got is None:
        raise Deviation(f"watch: the acknowledged message was not delivered within"
                        f" {ctx.timing.obligation_bound:.1f}s [MQTT-4.5.0-1]")
    cites = "[MQTT-4.7.3-4]" if "\ufeff" in got.topic else "[MQTT-1.5.3-3] [MQTT-4.7.3-4]"
    require(got.topic == topic,
            "watch: the topic name arrives unchanged, U+FEFF and control characters kept"
            " [MQTT-1.5.3-3] [MQTT-4.7.3-4]" if got.topic == topic else
            f"watch: the topic name was altered: sent {topic!r}, delivered {got.topic!r}"
            f" {cites}")
    await others_served(ctx)


async def _delivered(watcher: Probe, bound: float) -> Publish | None:
    """The first PUBLISH with payload b"ctl" to arrive within ``bound`` s."""
    deadline = time.monotonic() + bound
    while True:
        event = await watcher.next_event(max(deadline - time.monotonic(), 0.0))
        if event is None or isinstance(event, Closed):
            return None
        if isinstance(event, Garbled):
            raise Deviation(f"watch: the server sent bytes the codec refuses: {event.error}")
        if isinstance(event.packet, Publish) and event.packet.payload == b"ctl":
            return event.packet
