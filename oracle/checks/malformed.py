"""Malformed packets and protocol violations from the client: the server must close.

Each check sends one bad packet on an accepted connection and requires the
server to close that connection, then requires that a fresh client is still
served: bad input must harm nobody else (``BAD-INPUTS.md``).

The rules the bad packets break (a reserved flag [MQTT-2.2.2-1], a non-zero
packet id [MQTT-2.3.1-1], a topic name that is UTF-8 [MQTT-3.3.2-1], no U+0000
in a topic [MQTT-4.7.3-2], a topic at least one character long [MQTT-4.7.3-1])
bind the party that *sends*, here our client: they are never cited against the
server for what the client sent. The server is judged by the statements that
say what a receiver must do with such a packet:

- the second sentences of MQTT-1.5.3-1 (ill-formed UTF-8) and MQTT-1.5.3-2
  (U+0000), of MQTT-3.3.1-4 (a PUBLISH with QoS 3): "it MUST close";
- MQTT-2.2.2-2 (invalid flags) and the fixed-header rules of PUBREL, SUBSCRIBE
  and UNSUBSCRIBE [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1], and the
  SUBSCRIBE payload rule [MQTT-3.8.3-4]: "treat ... as malformed and close";
- MQTT-4.8.0-1 for every other protocol violation, and MQTT-3.1.4-1 for a
  CONNECT that does not conform (close without a CONNACK).

Where a rule that binds the sender can be observed on the server, it is: a
server that forwarded a PUBLISH whose topic name breaks it would itself send
that topic name to a subscriber, so those checks watch with a subscriber and
judge the server as the sender (with a control message that must arrive, so
that "nothing forbidden arrived" is an observation).

A close is evidence because nothing else in the scenario closes the
connection: it was accepted just before, and a valid packet in the bad one's
place would be answered (a SUBACK, a PUBCOMP, a PINGRESP...), not closed on.
An acknowledgement that echoes a packet id 0 is decoded, not refused (the
probe does so): the echo rules ask for the same id, and only the close is
judged.
"""

from __future__ import annotations

import asyncio
import time

from mqttref.impl.codec.packets import (
    Packet,
    PingReq,
    PingResp,
    ProtocolLevel,
    Publish,
    PubRec,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from mqttref.oracle import raw
from mqttref.oracle.flows import granted_text, publish, require
from mqttref.oracle.probe import (
    Closed,
    Deviation,
    Garbled,
    NotApplicable,
    Probe,
    Received,
    describe,
)
from mqttref.oracle.scenario import Context, check

V311 = ProtocolLevel.MQTT_3_1_1


# -- shared steps (also used by ``robustness``) ------------------------------------------


async def others_served(ctx: Context) -> None:
    """A fresh client is still served: the bad input harmed nobody else.

    Its CONNECT is owed a CONNACK 0 [MQTT-3.1.4-4] and its PINGREQ a PINGRESP
    [MQTT-3.12.4-1]. A broker that no longer accepts TCP connections after the
    bad input (it crashed) fails the first of these: it is not an accident of
    the network that the runner would report as inconclusive.
    """
    try:
        probe = await ctx.client("other")
    except (OSError, TimeoutError) as exc:
        raise Deviation(f"other: after the bad input a fresh client cannot connect ({exc!r}):"
                        " a valid CONNECT is owed a CONNACK [MQTT-3.1.4-4]") from exc
    await probe.send(PingReq())
    await probe.expect(PingResp, "PINGRESP to a PINGREQ [MQTT-3.12.4-1]")


async def until_close(probe: Probe, bound: float) -> tuple[bool, list[Packet]]:
    """Wait up to ``bound`` s for the server to close: (closed, packets that came first).

    Bytes the probe's strict codec refuses are a deviation of the server as the
    sender, blamed on the statement the codec cites.
    """
    deadline = time.monotonic() + bound
    seen, probe.pending = probe.pending, []
    while True:
        event = await probe.next_event(max(deadline - time.monotonic(), 0.0))
        if event is None:
            return False, seen
        if isinstance(event, Received):
            seen.append(event.packet)
        elif isinstance(event, Closed):
            return True, seen
        else:
            raise Deviation(f"{probe.name}: the server sent bytes the codec refuses:"
                            f" {event.error}")


async def _closes(probe: Probe, data: bytes, note: str, why: str, *, malformed: str = "") -> None:
    """``probe`` sends ``data``; the server must close the connection (``why`` cites the rule).

    With ``malformed`` (the statements that make the server "treat it as
    malformed and close"), an answer before the close is a deviation too: it
    treats the packet as a valid one. Otherwise the rule asks for the close
    only, and an answer first is reported in the trace, not judged.
    """
    await probe.send(data, note)
    bound = probe.timing.reply_bound
    closed, seen = await until_close(probe, bound)
    got = ", ".join(describe(p) for p in seen) or "nothing"
    require(closed,
            f"{probe.name}: closed the connection after {note} {why}" if closed else
            f"{probe.name}: the server must close the connection after {note} {why};"
            f" it is still open after {bound:.1f}s (received: {got})")
    answers = [describe(p) for p in seen if not isinstance(p, Publish)]
    if malformed:
        require(not answers,
                f"{probe.name}: {note} must be treated as malformed and the connection closed"
                f" {malformed}" + (f"; the server answered {', '.join(answers)} first"
                                   if answers else ", without an answer"))
    elif answers:
        probe.trace.note(f"{probe.name}: answered {', '.join(answers)} before closing"
                         " (not judged: the rule asks for the close)")


async def _violation(ctx: Context, data: bytes, note: str, why: str, *,
                     malformed: str = "") -> None:
    """One bad packet on a fresh accepted connection: closed; others still served."""
    probe = await ctx.client("bad")
    await _closes(probe, data, note, why, malformed=malformed)
    await others_served(ctx)


# -- a server as the sender of a topic name it must have refused -------------------------


async def _watcher(ctx: Context, topic_filter: str) -> Probe | None:
    """A subscriber to a wildcard filter, or None when the broker refuses wildcard filters."""
    if not ctx.profile.wildcards:
        return None
    probe = await ctx.client("watch")
    await probe.send(Subscribe(probe.new_packet_id(), (Subscription(topic_filter, QoS(0)),)))
    # The SUBACK's shape is not what this check judges; a refusal is a legal choice.
    suback = await probe.expect(SubAck, "SUBACK for SUBSCRIBE [MQTT-3.8.4-1]")
    codes = suback.return_codes
    if codes != (0,):
        ctx.trace.note(f"watch: {granted_text(0, codes[0] if codes else 0x80, topic_filter)}")
        return None
    return probe


async def _not_forwarded(ctx: Context, area: str, data: bytes, note: str,
                         sender: tuple[str, ...], *, topic_filter: str = "") -> None:
    """A PUBLISH with a topic name the sender rules forbid is never sent on by the server.

    A subscriber to ``topic_filter`` (by default ``P/<area>/#``) watches while a
    client sends ``data`` (whose topic name it matches), then another client publishes a
    control message there. The control is owed to the subscriber
    [MQTT-4.5.0-1]; the forbidden topic name must not reach it before: the
    server would then send it, breaking the ``sender`` rules itself. The
    probe's strict codec refuses such a topic name, citing one of them.
    """
    cites = " ".join(f"[{sid}]" for sid in sender)
    watcher = await _watcher(ctx, topic_filter or ctx.topic(area, "#"))
    if watcher is None:
        raise NotApplicable("refuses wildcard filters (allowed [MQTT-3.8.3-2]): no subscription"
                            f" can receive a PUBLISH with {note}", *sender)
    bad = await ctx.client("bad")
    await bad.send(data, f"PUBLISH with {note}")
    await bad.send(PingReq(), "is the PUBLISH processed?")
    ctx.trace.note(f"bad: {await _answered_or_closed(bad)} (the close is judged by another"
                   " scenario)")
    await others_served(ctx)
    ctl = await ctx.client("ctl")
    control = b"control after a forbidden topic name"
    await publish(ctl, ctx.topic(area, "ok"), control, QoS.AT_LEAST_ONCE)
    bound = ctx.timing.obligation_bound
    deadline = time.monotonic() + bound
    while True:
        event = await watcher.next_event(max(deadline - time.monotonic(), 0.0))
        if event is None or isinstance(event, Closed):
            how = "the server closed its connection" if event else "nothing"
            raise Deviation(f"watch: the control message published to {ctx.topic(area, 'ok')!r}"
                            f" was not delivered within {bound:.1f}s ({how}) [MQTT-4.5.0-1]")
        if isinstance(event, Received):
            packet = event.packet
            if isinstance(packet, Publish) and packet.payload == control:
                require(True, "watch: the control message arrived [MQTT-4.5.0-1]")
                break
            ctx.trace.note(f"watch: {describe(packet)} arrived before the control message"
                           " (not judged: a copy the server altered, or another message)")
            continue
        if any(f"[{sid}]" in event.error for sid in sender):
            raise Deviation(f"watch: the server sent the subscriber {note}"
                            f" {cites} (the codec refuses it: {event.error})")
        raise Deviation(f"watch: the server sent bytes the codec refuses: {event.error}")
    require(True, f"watch: no PUBLISH with {note} reached the subscriber before the control"
                  f" message published after it {cites}")


async def _answered_or_closed(probe: Probe) -> str:
    """Wait for the PINGRESP to a PINGREQ just sent, or the close: the packets before are
    processed."""
    deadline = time.monotonic() + probe.timing.reply_bound
    while True:
        event = await probe.next_event(max(deadline - time.monotonic(), 0.0))
        if event is None:
            return "neither closed nor answered the PINGREQ"
        if isinstance(event, Closed):
            return "closed the connection"
        if isinstance(event, Garbled):
            return f"sent bytes the codec refuses: {event.error}"
        if isinstance(event.packet, PingResp):
            return "answered the PINGREQ: the connection stays open"


# -- PUBLISH -----------------------------------------------------------------------------


@check("MQTT-3.3.1-4", summary="PUBLISH with both QoS bits set: closed [ORACLE D3]")
async def publish_qos_3(ctx: Context) -> None:
    """A PUBLISH with both QoS bits set: "it MUST close" [MQTT-3.3.1-4], second sentence."""
    await _violation(ctx, raw.publish(ctx.topic("q3"), b"x", flags=0x06, packet_id=1),
                     "PUBLISH with QoS bits 11", "[MQTT-3.3.1-4]")


@check("MQTT-4.8.0-1", "MQTT-3.3.2-2", "MQTT-4.7.1-1",
       summary="PUBLISH to a topic name with + or #: closed, never sent on [ORACLE D5]")
async def publish_wildcard_topic_name(ctx: Context) -> None:
    """A wildcard in a topic name breaks the sender's rule [MQTT-3.3.2-2] [MQTT-4.7.1-1].

    Received from a client it is a protocol violation: the server closes
    [MQTT-4.8.0-1]. Sending it on to a subscriber would make the server break
    those rules itself, which is what they are judged on here.
    """
    for wildcard in ("+", "#"):
        async with ctx.scenario(f"{wildcard} in a topic name: closed"):
            await _violation(ctx, raw.publish(ctx.topic("w", wildcard), b"wild"),
                             f"PUBLISH to P/w/{wildcard}", "[MQTT-4.8.0-1]")
        async with ctx.scenario(f"{wildcard} in a topic name: never sent on"):
            area = f"w{ord(wildcard)}"
            await _not_forwarded(ctx, area, raw.publish(ctx.topic(area, wildcard), b"wild"),
                                 f"a topic name holding {wildcard!r}",
                                 ("MQTT-3.3.2-2", "MQTT-4.7.1-1"))


@check("MQTT-4.8.0-1", "MQTT-4.7.3-1",
       summary="PUBLISH with a zero-length topic name: closed, never sent on")
async def publish_empty_topic(ctx: Context) -> None:
    """A topic name must be at least one character long [MQTT-4.7.3-1].

    From a client, an empty one is a protocol violation: the server closes
    [MQTT-4.8.0-1]. A server that sent it on (to a subscriber of ``#``, the
    one filter that can match it) would break the rule itself [MQTT-4.7.3-1].
    """
    async with ctx.scenario("closed"):
        await _violation(ctx, raw.publish(b"", b"no topic"), "PUBLISH with an empty topic name",
                         "[MQTT-4.8.0-1]")
    async with ctx.scenario("never sent on"):
        await _not_forwarded(ctx, "empty", raw.publish(b"", b"no topic"),
                             "an empty topic name", ("MQTT-4.7.3-1",), topic_filter="#")


@check("MQTT-1.5.3-2", "MQTT-4.7.3-2", summary="PUBLISH with U+0000 in the topic name: closed,"
       " never sent on")
async def publish_null_in_topic(ctx: Context) -> None:
    """U+0000 in a string: "a receiver ... MUST close" [MQTT-1.5.3-2].

    A server that sent the topic name on would itself send U+0000 in a topic
    name [MQTT-4.7.3-2] [MQTT-1.5.3-2].
    """
    async with ctx.scenario("closed"):
        await _violation(ctx, raw.publish(ctx.topic("nul\x00x"), b"x"),
                         "PUBLISH topic with U+0000", "[MQTT-1.5.3-2]")
    async with ctx.scenario("never sent on"):
        await _not_forwarded(ctx, "nul", raw.publish(ctx.topic("nul", "a\x00b"), b"x"),
                             "a topic name holding U+0000", ("MQTT-4.7.3-2", "MQTT-1.5.3-2"))


@check("MQTT-1.5.3-1", "MQTT-3.3.2-1",
       summary="PUBLISH topic with ill-formed UTF-8: closed, never sent on")
async def publish_ill_formed_topic(ctx: Context) -> None:
    """Ill-formed UTF-8: "it MUST close the Network Connection" [MQTT-1.5.3-1].

    A server that sent the bytes on would itself send a topic name that is not
    a UTF-8 string [MQTT-3.3.2-1] [MQTT-1.5.3-1].
    """
    async with ctx.scenario("closed"):
        await _violation(ctx, raw.publish(ctx.topic("bad").encode() + b"/\xc3\x28", b"x"),
                         "PUBLISH topic bytes ... C3 28", "[MQTT-1.5.3-1]")
    async with ctx.scenario("never sent on"):
        await _not_forwarded(ctx, "utf", raw.publish(ctx.topic("utf").encode() + b"/\xc3\x28"),
                             "a topic name holding the ill-formed UTF-8 bytes C3 28",
                             ("MQTT-3.3.2-1", "MQTT-1.5.3-1"))


@check("MQTT-1.5.3-1", summary="PUBLISH topic holding an encoded surrogate (U+D800): closed")
async def publish_surrogate_topic(ctx: Context) -> None:
    """An encoded surrogate is ill-formed UTF-8: the server closes [MQTT-1.5.3-1]."""
    await _violation(ctx, raw.publish(ctx.topic("sur").encode() + b"/\xed\xa0\x80", b"x"),
                     "PUBLISH topic bytes ... ED A0 80", "[MQTT-1.5.3-1]")


@check("MQTT-4.8.0-1", summary="QoS 1 PUBLISH cut short before its packet id: closed")
async def publish_without_packet_id(ctx: Context) -> None:
    """A QoS 1 PUBLISH whose Remaining Length ends after the topic has no packet id field.

    The packet cannot be parsed as section 3.3.2 lays it out: a protocol
    violation the server closes on [MQTT-4.8.0-1].
    """
    topic = raw.string(ctx.topic("noid"))
    await _violation(ctx, raw.frame(0x32, topic), "PUBLISH QoS 1 ending after the topic",
                     "[MQTT-4.8.0-1]")


# -- SUBSCRIBE and UNSUBSCRIBE -----------------------------------------------------------


@check("MQTT-3.8.3-4", summary="SUBSCRIBE requesting QoS 3: closed, unanswered [ORACLE D4]")
async def subscribe_qos_3(ctx: Context) -> None:
    """"treat a SUBSCRIBE packet as malformed and close ... if QoS is not 0,1 or 2"."""
    await _violation(ctx, raw.subscribe(1, (ctx.topic("q3"), 3)), "SUBSCRIBE requesting QoS 3",
                     "[MQTT-3.8.3-4]", malformed="[MQTT-3.8.3-4]")


@check("MQTT-3.8.3-4",
       summary="SUBSCRIBE with reserved bits set in the options byte: closed, unanswered")
async def subscribe_reserved_option_bits(ctx: Context) -> None:
    """"... as malformed and close ... if any of Reserved bits in the payload are non-zero"."""
    await _violation(ctx, raw.subscribe(1, (ctx.topic("rb"), 0x05)),
                     "SUBSCRIBE with options byte 0x05", "[MQTT-3.8.3-4]",
                     malformed="[MQTT-3.8.3-4]")


@check("MQTT-4.8.0-1", summary="SUBSCRIBE with a zero-length topic filter: closed")
async def subscribe_empty_filter(ctx: Context) -> None:
    """A filter must be at least one character long (a client's rule, MQTT-4.7.3-1).

    Breaking it is a protocol violation: the server closes [MQTT-4.8.0-1].
    """
    await _violation(ctx, raw.subscribe(1, (b"", 0)), "SUBSCRIBE with an empty filter",
                     "[MQTT-4.8.0-1]")


@check("MQTT-1.5.3-2", summary="SUBSCRIBE with U+0000 in the filter: closed")
async def subscribe_null_in_filter(ctx: Context) -> None:
    """U+0000 in a string: "a receiver ... MUST close" [MQTT-1.5.3-2]."""
    await _violation(ctx, raw.subscribe(1, (ctx.topic("nul\x00x"), 0)),
                     "SUBSCRIBE filter with U+0000", "[MQTT-1.5.3-2]")


@check("MQTT-1.5.3-1", summary="SUBSCRIBE filter with ill-formed UTF-8: closed")
async def subscribe_ill_formed_filter(ctx: Context) -> None:
    """Ill-formed UTF-8: the server closes [MQTT-1.5.3-1]."""
    await _violation(ctx, raw.subscribe(1, (ctx.topic("bad").encode() + b"/\xff", 0)),
                     "SUBSCRIBE filter bytes ... FF", "[MQTT-1.5.3-1]")


@check("MQTT-1.5.3-1", summary="UNSUBSCRIBE filter with ill-formed UTF-8: closed")
async def unsubscribe_ill_formed_filter(ctx: Context) -> None:
    """Ill-formed UTF-8: the server closes [MQTT-1.5.3-1]."""
    await _violation(ctx, raw.unsubscribe(1, ctx.topic("bad").encode() + b"/\xff"),
                     "UNSUBSCRIBE filter bytes ... FF", "[MQTT-1.5.3-1]")


@check("MQTT-4.8.0-1", summary="SUBSCRIBE without any filter: closed")
async def subscribe_without_payload(ctx: Context) -> None:
    """"A SUBSCRIBE packet with no payload is a protocol violation" (3.8.3): closed
    [MQTT-4.8.0-1]."""
    await _violation(ctx, raw.subscribe(1), "SUBSCRIBE with no topic filter", "[MQTT-4.8.0-1]")


@check("MQTT-4.8.0-1", summary="UNSUBSCRIBE without any filter: closed")
async def unsubscribe_without_payload(ctx: Context) -> None:
    """"An UNSUBSCRIBE packet with no payload is a protocol violation" (3.10.3): closed
    [MQTT-4.8.0-1]."""
    await _violation(ctx, raw.unsubscribe(1), "UNSUBSCRIBE with no topic filter",
                     "[MQTT-4.8.0-1]")


# -- fixed-header flags ------------------------------------------------------------------


@check("MQTT-3.8.1-1", "MQTT-2.2.2-2",
       summary="SUBSCRIBE with fixed-header flags 0000: closed, unanswered")
async def subscribe_bad_flags(ctx: Context) -> None:
    """"The Server MUST treat any other value as malformed and close" [MQTT-3.8.1-1]
    [MQTT-2.2.2-2]; a SUBACK would treat it as a valid SUBSCRIBE."""
    await _violation(ctx, raw.subscribe(1, (ctx.topic("f"), 0), flags=0x00),
                     "SUBSCRIBE with flags 0000", "[MQTT-3.8.1-1] [MQTT-2.2.2-2]",
                     malformed="[MQTT-3.8.1-1]")


@check("MQTT-3.10.1-1", "MQTT-2.2.2-2",
       summary="UNSUBSCRIBE with fixed-header flags 0000: closed, unanswered")
async def unsubscribe_bad_flags(ctx: Context) -> None:
    """"The Server MUST treat any other value as malformed and close" [MQTT-3.10.1-1]
    [MQTT-2.2.2-2]; an UNSUBACK would treat it as a valid UNSUBSCRIBE."""
    await _violation(ctx, raw.unsubscribe(1, ctx.topic("f"), flags=0x00),
                     "UNSUBSCRIBE with flags 0000", "[MQTT-3.10.1-1] [MQTT-2.2.2-2]",
                     malformed="[MQTT-3.10.1-1]")


@check("MQTT-3.6.1-1", "MQTT-2.2.2-2",
       summary="PUBREL with fixed-header flags 0000: closed, unanswered")
async def pubrel_bad_flags(ctx: Context) -> None:
    """"The Server MUST treat any other value as malformed and close" [MQTT-3.6.1-1]
    [MQTT-2.2.2-2]; a PUBCOMP would treat it as a valid PUBREL.

    The PUBREL releases a QoS 2 PUBLISH the server acknowledged, so that a
    valid PUBREL in its place is owed a PUBCOMP. A broker that does not take
    QoS 2 PUBLISHes (it closes on them [MQTT-3.3.5-2]) gets the PUBREL alone:
    its flags make it malformed whatever it refers to.
    """
    probe = await ctx.client("bad")
    if ctx.profile.qos2_publish:
        await probe.send(Publish(ctx.topic("rel"), b"x", QoS.EXACTLY_ONCE, False, False, 3))
        try:
            await probe.expect(PubRec, "PUBREC for a QoS 2 PUBLISH [MQTT-3.3.4-1]")
        except Deviation:
            if probe.closed is not None:
                raise NotApplicable("closes the connection on a QoS 2 PUBLISH instead of"
                                    " acknowledging it: it does not authorize it (allowed"
                                    " [MQTT-3.3.5-2])") from None
            raise
    else:
        ctx.trace.note("the broker closes on QoS 2 PUBLISHes (allowed [MQTT-3.3.5-2]):"
                       " the PUBREL refers to no message")
    await _closes(probe, bytes((0x60, 2, 0, 3)), "PUBREL with flags 0000",
                  "[MQTT-3.6.1-1] [MQTT-2.2.2-2]", malformed="[MQTT-3.6.1-1]")
    await others_served(ctx)


@check("MQTT-2.2.2-2", summary="PINGREQ with a reserved flag set: closed")
async def pingreq_bad_flags(ctx: Context) -> None:
    """PINGREQ's flags are reserved as 0000 (Table 2.2; a sender's rule, MQTT-2.2.2-1):
    "If invalid flags are received, the receiver MUST close" [MQTT-2.2.2-2]."""
    await _violation(ctx, bytes((0xC1, 0)), "PINGREQ with flags 0001", "[MQTT-2.2.2-2]")


# -- packets a client may not send -------------------------------------------------------


@check("MQTT-4.8.0-1",
       summary="a client sending CONNACK, SUBACK, UNSUBACK or PINGRESP: closed")
async def server_only_packets_close(ctx: Context) -> None:
    """These packets flow from server to client only (Table 2.1): from a client each is a
    protocol violation the server closes on [MQTT-4.8.0-1].

    The four connections wait for their close together, so that a broker that
    ignores them costs one reply bound, not four.
    """
    packets = {
        "CONNACK": bytes((0x20, 2, 0, 0)),
        "SUBACK": bytes((0x90, 3, 0, 1, 0)),
        "UNSUBACK": bytes((0xB0, 2, 0, 1)),
        "PINGRESP": bytes((0xD0, 0)),
    }
    probes = {kind: await ctx.client(kind.lower()[:6]) for kind in packets}
    for kind, data in packets.items():
        await probes[kind].send(data, f"{kind} from the client (a server-to-client packet)")
    bound = ctx.timing.reply_bound
    outcomes = await asyncio.gather(*(until_close(p, bound) for p in probes.values()))
    for kind, (closed, _) in zip(packets, outcomes, strict=True):
        if closed:
            require(True, f"{kind.lower()[:6]}: closed after a {kind} from the client"
                          " [MQTT-4.8.0-1]")
    stayed_open = [kind for kind, (closed, _) in zip(packets, outcomes, strict=True)
                   if not closed]
    require(not stayed_open,
            f"the connection stayed open for {bound:.1f}s after the client sent"
            f" {', '.join(stayed_open)}: a protocol violation must close it [MQTT-4.8.0-1]")
    await others_served(ctx)


@check("MQTT-4.8.0-1", summary="packet types 0 and 15 (reserved in 3.1.1): closed")
async def reserved_packet_types(ctx: Context) -> None:
    """Types 0 and 15 are "Reserved, Forbidden" (Table 2.1): a protocol violation
    [MQTT-4.8.0-1]."""
    for kind in (0x00, 0xF0):
        async with ctx.scenario(f"packet type {kind >> 4}"):
            await _violation(ctx, bytes((kind, 0)), f"packet type {kind >> 4}",
                             "[MQTT-4.8.0-1]")


# -- packet identifier 0 -----------------------------------------------------------------


@check("MQTT-4.8.0-1", summary="QoS 1 PUBLISH, SUBSCRIBE and UNSUBSCRIBE with packet id 0: closed")
async def packet_id_zero(ctx: Context) -> None:
    """These packets "MUST contain a non-zero 16-bit Packet Identifier" (a client's rule,
    MQTT-2.3.1-1): one with id 0 is a protocol violation the server closes on
    [MQTT-4.8.0-1].

    An acknowledgement echoing id 0 first is no deviation of the server's own
    sending rules (the echo rules ask for the same id); only the close is
    judged, and the probe decodes such echoes rather than refusing them.
    """
    cases = {
        "PUBLISH QoS 1 with packet id 0":
            raw.publish(ctx.topic("id0", "p"), b"x", flags=0x02, packet_id=0),
        "SUBSCRIBE with packet id 0": raw.subscribe(0, (ctx.topic("id0", "s"), 0)),
        "UNSUBSCRIBE with packet id 0": raw.unsubscribe(0, ctx.topic("id0", "u")),
    }
    probes = [await ctx.client(note.split()[0].lower()[:6]) for note in cases]
    for probe, (note, data) in zip(probes, cases.items(), strict=True):
        await probe.send(data, note)
    bound = ctx.timing.reply_bound
    # The three wait together: a broker that keeps them open costs one bound, not three.
    outcomes = await asyncio.gather(*(until_close(probe, bound) for probe in probes))
    stayed_open = []
    for probe, note, (closed, seen) in zip(probes, cases, outcomes, strict=True):
        got = ", ".join(describe(p) for p in seen) or "nothing"
        if closed:
            require(True, f"{probe.name}: closed the connection after {note} [MQTT-4.8.0-1]"
                          f" (received first: {got})")
        else:
            stayed_open.append(f"{note} (received: {got})")
    require(not stayed_open,
            f"the server must close the connection after a packet id 0 [MQTT-4.8.0-1]; still"
            f" open after {bound:.1f}s: {'; '.join(stayed_open)}")
    await others_served(ctx)


# -- framing and CONNECT -----------------------------------------------------------------


@check("MQTT-4.8.0-1", summary="a Remaining Length of five bytes: closed")
async def remaining_length_five_bytes(ctx: Context) -> None:
    """"The maximum number of bytes in the Remaining Length field is four" (2.2.3): a fifth
    is a protocol violation [MQTT-4.8.0-1]."""
    await _violation(ctx, bytes((0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01)),
                     "PUBLISH with Remaining Length FF FF FF FF 01", "[MQTT-4.8.0-1]")


@check("MQTT-3.1.4-1", "MQTT-4.8.0-1",
       summary="CONNECT cut short (Remaining Length past the end of the fields): closed,"
               " without CONNACK")
async def truncated_connect(ctx: Context) -> None:
    """A CONNECT whose fields end after the protocol level does not conform to 3.1: close
    "without sending a CONNACK" [MQTT-3.1.4-1], as for any protocol violation
    [MQTT-4.8.0-1]."""
    probe = await ctx.open("bad")
    await _closes(probe, raw.frame(0x10, raw.string(b"MQTT") + bytes((4,))),
                  "a CONNECT ending after the protocol level", "[MQTT-3.1.4-1] [MQTT-4.8.0-1]",
                  malformed="[MQTT-3.1.4-1]")
    await others_served(ctx)

