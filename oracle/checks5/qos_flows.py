"""The QoS delivery protocols of 4.3 and the ordering of 4.6 at 5.0, from both sides.

As sender the server gives a QoS 0 PUBLISH DUP 0 and every QoS 1 and QoS 2 PUBLISH it has
in flight its own Packet Identifier (the subscriber acknowledges nothing until all have
come). As receiver it answers a QoS 1 PUBLISH with a PUBACK of its identifier, owning the
message, and takes the same identifier after that PUBACK, even with DUP 1, as a new
message; after a PUBREC of 0x80 or above the identifier likewise carries a new message.
Messages are told apart by payload, never by the identifier under test.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Disconnect,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Subscription,
)
from mqttref.oracle.checks.acl import topic_in
from mqttref.oracle.checks5.common import (
    PUBACK_CODES,
    check5,
    collect_until,
    connect5,
    needs_qos2,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import Inconclusive, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Closed, Probe, Received
from mqttref.oracle.scenario import Context

Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
KEEP = Properties(session_expiry_interval=30)
"""A session that outlives the connection, for messages queued while its client is away."""


@check5("MQTT-4.3.1-1", "MQTT-4.3.2-1", "MQTT-4.3.3-1",
        summary="the server's QoS 0 PUBLISH has DUP 0, and the QoS 1 and QoS 2 PUBLISH it has"
        " unacknowledged at once each carry a Packet Identifier of its own")
async def packet_identifiers_in_flight_v5(ctx: Context) -> None:
    topic, low = ctx.topic("ids"), ctx.topic("ids", "q0")
    sub, _ = await connect5(ctx, "sub")
    suback = await subscribe5(sub, Subscription(topic, Q2), Subscription(low, Q0), exact=False)
    granted = suback.return_codes[0]
    if granted < 1:
        raise NotApplicable(f"grants QoS {granted} for a QoS 2 subscription (allowed"
                            " [MQTT-3.8.4-7]): no QoS 1 or 2 PUBLISH to the client")
    pub, _ = await connect5(ctx, "pub")
    # First the QoS 0 delivery, which a server may drop: it is judged if it comes.
    await publish5(pub, low, b"zero", Q1)
    sent = [(f"one{n}".encode(), Q1) for n in range(3)]
    if granted == 2 and ctx.profile5.maximum_qos == 2:
        sent += [(f"two{n}".encode(), Q2) for n in range(3)]
    for payload, qos in sent:
        await publish5(pub, topic, payload, qos)
    held: list[Publish] = []
    zero: list[Publish] = []
    while len(held) < len(sent):
        message = await sub.expect(Publish, "a message the subscription matches, owed to the"
                                   " client within its Receive Maximum [MQTT-3.3.4-1]")
        (zero if message.payload == b"zero" else held).append(message)
    async with ctx.scenario("QoS 0"):
        if not zero:
            raise Inconclusive("the QoS 0 delivery did not come before the later messages (a"
                               " server may drop a QoS 0 message)")
        require(zero[0].qos == Q0 and not zero[0].dup, f"sub: a QoS 1 message on a QoS 0"
                f" subscription must be sent with QoS 0 and DUP 0, got QoS {int(zero[0].qos)}"
                f" DUP {int(zero[0].dup)} [MQTT-4.3.1-1]")
    in_flight = [m for m in held if m.qos > 0]
    ids = [m.packet_id for m in in_flight]
    rule = "[MQTT-4.3.2-1]" + (" [MQTT-4.3.3-1]" if any(m.qos == Q2 for m in held) else "")
    require(len(set(ids)) == len(ids), f"sub: the {len(ids)} PUBLISH unacknowledged at once"
            f" must each have an unused Packet Identifier, got {ids} {rule}")
    if not any(m.qos == Q2 for m in held):
        raise NotApplicable(f"grants QoS {granted} for a QoS 2 subscription or declares"
                            f" Maximum QoS {ctx.profile5.maximum_qos} (allowed): no QoS 2"
                            " PUBLISH from the server", "MQTT-4.3.3-1")
    for message in in_flight:
        assert message.packet_id is not None
        if message.qos == Q1:
            await sub.send(PubAck(message.packet_id))
        else:
            await sub.send(PubRec(message.packet_id))
            rel = await sub.expect(PubRel, "PUBREL for PUBREC [MQTT-4.3.3-4]")
            await sub.send(PubComp(rel.packet_id))


@check5("MQTT-4.3.2-4", "MQTT-4.3.2-5",
        summary="a QoS 1 PUBLISH gets a PUBACK with its identifier and is delivered; after"
        " that PUBACK the same identifier with DUP 1 carries a new message, delivered too")
async def qos1_receiver_v5(ctx: Context) -> None:
    if ctx.profile5.maximum_qos < Q1:
        raise NotApplicable(f"declares Maximum QoS {ctx.profile5.maximum_qos}: a client may send"
                            " no QoS 1 PUBLISH [MQTT-3.2.2-11]")
    topic = ctx.topic("q1in")
    sub, _ = await connect5(ctx, "sub")
    await subscribe5(sub, Subscription(topic, Q1), exact=False)
    pub, _ = await connect5(ctx, "pub")
    packet_id = 4242
    await pub.send(Publish(topic, b"first", Q1, False, False, packet_id))
    ack = await pub.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]"
                           " [MQTT-4.3.2-4]")
    require(ack.packet_id == packet_id, f"pub: the PUBACK must carry the PUBLISH's identifier"
            f" {packet_id}, got {ack.packet_id} [MQTT-4.3.2-4]")
    if ack.reason_code >= 0x80:
        raise NotApplicable(f"refuses a QoS 1 PUBLISH with PUBACK 0x{ack.reason_code:02X} (a"
                            " refusal its Reason Codes allow, 3.4.2.1)")
    await pub.send(Publish(topic, b"again", Q1, False, True, packet_id),
                   note="the identifier again after its PUBACK, DUP 1, another payload")
    again = await pub.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]")
    require(again.packet_id == packet_id, f"pub: the PUBACK must carry the PUBLISH's identifier"
            f" {packet_id}, got {again.packet_id} [MQTT-4.3.2-4]")
    before = await collect_until(sub, b"again", "(after the PUBACK, a PUBLISH with the same"
                                 " identifier is a new message, whatever its DUP flag)"
                                 " [MQTT-4.3.2-5]")
    require(any(m.payload == b"first" for m in before), "sub: the message the server"
            " acknowledged with PUBACK is its own to deliver [MQTT-4.3.2-4]")


async def _interleaved(pub: Probe, topic: str, top: int) -> None:
    """Three messages at each QoS up to ``top``, interleaved: q0-0, q1-0, q2-0, q0-1, ..."""
    for n in range(3):
        for qos in range(top + 1):
            await publish5(pub, topic, f"q{qos}-{n}".encode(), QoS(qos))


def _in_order(name: str, before: list[Publish], top: int, how: str) -> None:
    """Each QoS's messages of ``_interleaved`` arrived in the order published [MQTT-4.6.0-5];
    a QoS 0 message may be lost, never reordered."""
    for qos in range(top + 1):
        got = [m.payload.decode() for m in before if m.payload.startswith(f"q{qos}-".encode())]
        want = [f"q{qos}-{n}" for n in range(3)]
        if qos:
            require(got == want, f"{name}: the QoS {qos} messages of one publisher on one topic"
                    f" must arrive in the order published{how}, {want}, got {got}"
                    " [MQTT-4.6.0-5]")
        else:
            require(got == [p for p in want if p in got], f"{name}: the QoS 0 messages that"
                    f" arrive must keep the order published{how}, {want}, got {got}"
                    " [MQTT-4.6.0-5]")


@check5("MQTT-4.6.0-5",
        summary="QoS 0, 1 and 2 messages published interleaved on one topic reach the"
        " subscriber in the order published, per QoS, both live and when queued for its"
        " session while it was away")
async def ordered_per_qos_v5(ctx: Context) -> None:
    async with ctx.scenario("live"):
        topic = ctx.topic("order")
        sub, _ = await connect5(ctx, "sub")
        suback = await subscribe5(sub, Subscription(topic, Q2), exact=False)
        top = min(suback.return_codes[0], ctx.profile5.maximum_qos)
        pub, _ = await connect5(ctx, "pub")
        await _interleaved(pub, topic, top)
        await publish5(pub, topic, b"end", Q1)
        before = await collect_until(sub, b"end", "(a later message on the topic)"
                                     " [MQTT-3.3.4-1]")
        _in_order("sub", before, top, "")
    async with ctx.scenario("queued while away"):
        # The messages wait in the session together and leave it together on the return:
        # the order is the server's to keep, not the order of arrival at its door.
        if ctx.profile5.maximum_qos < 1:
            raise NotApplicable(f"declares Maximum QoS {ctx.profile5.maximum_qos}: a client"
                                " may send no QoS 1 PUBLISH [MQTT-3.2.2-11]")
        topic, cid = ctx.topic("order", "queued"), ctx.client_id("away")
        away, connack = await connect5(ctx, "away", cid, props=KEEP)
        if connack.properties.session_expiry_interval == 0:
            raise NotApplicable("sets the Session Expiry Interval to 0 in CONNACK for a request"
                                f" of {KEEP.session_expiry_interval} s (the server's right,"
                                " 3.2.2.3.2)")
        suback = await subscribe5(away, Subscription(topic, Q2), exact=False)
        top = min(suback.return_codes[0], ctx.profile5.maximum_qos)
        if top < 1:
            raise NotApplicable(f"grants QoS {top} for a QoS 2 subscription (allowed"
                                " [MQTT-3.8.4-7]): no QoS 1 or 2 message to queue")
        await away.disconnect()
        pub, _ = await connect5(ctx, "pub")
        await _interleaved(pub, topic, top)
        back, connack = await connect5(ctx, "back", cid, clean=False, props=KEEP)
        if not connack.session_present:
            raise Inconclusive("the session was not resumed (judged by"
                               " session_v5_expiry_and_clean_start)")
        await publish5(pub, topic, b"end", Q1)
        before = await collect_until(back, b"end", "(published after the return)"
                                     " [MQTT-3.3.4-1]")
        arrived = {m.payload.decode() for m in before}
        lost = [f"q{qos}-{n}" for qos in range(1, top + 1) for n in range(3)
                if f"q{qos}-{n}" not in arrived]
        if lost:  # a loss is no reordering: the session checks judge it
            raise Inconclusive(f"back: {lost} did not come with the resumed session (judged"
                               " by session_v5_expiry_and_clean_start)")
        _in_order("back", before, top, ", also when queued while the client was away")


@check5("MQTT-4.3.3-9",
        summary="after a PUBREC of 0x80 or above (a refused payload or topic), a QoS 2 PUBLISH"
        " with the same identifier is a new message: accepted and delivered")
async def identifier_after_refused_pubrec_v5(ctx: Context) -> None:
    needs_qos2(ctx, "PUBLISH may be sent to it")
    topic = ctx.topic("newid")
    sub, _ = await connect5(ctx, "sub")
    await subscribe5(sub, Subscription(topic, Q1), exact=False)
    pub, _ = await connect5(ctx, "pub")
    if await publish5(pub, topic, b"baseline", Q2) is None:
        raise Inconclusive("no PUBREC for the baseline QoS 2 PUBLISH")
    packet_id = 77
    refused = await _refusal(ctx, pub, packet_id)
    await pub.send(Publish(topic, b"new", Q2, False, False, packet_id),
                   note=f"a new message with the identifier refused by PUBREC 0x{refused:02X}")
    rec = await pub.expect(PubRec, "PUBREC for a QoS 2 PUBLISH [MQTT-4.3.3-8]")
    require(rec.packet_id == packet_id and rec.reason_code < 0x80,
            f"pub: a PUBLISH like the accepted baseline, with the identifier a PUBREC"
            f" 0x{refused:02X} refused, must be taken as a new message, got PUBREC"
            f" {rec.packet_id} 0x{rec.reason_code:02X} [MQTT-4.3.3-9]")
    await pub.send(PubRel(packet_id))
    await pub.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-11]")
    await collect_until(sub, b"new", "(the PUBLISH after a refused PUBREC with the same"
                        " identifier is a new message) [MQTT-4.3.3-9]")


async def _refusal(ctx: Context, pub: Probe, packet_id: int) -> int:
    """Send QoS 2 PUBLISHes a server may refuse, with ``packet_id``, until one is; its
    PUBREC code. None refused: NOT APPLICABLE, each acceptance being allowed."""
    candidates = [(ctx.topic("newid", "utf8"), b"\xff\xfe", Properties(payload_format_indicator=1),
                   "a payload the Payload Format Indicator calls UTF-8 that is not (0x99)")]
    candidates += [(topic_in(f, ctx.token), b"acl", Properties(), f"a topic in --denied-filter"
                    f" {f!r} (0x87)") for f in ctx.denied_filters]
    accepted: list[str] = []
    for topic, payload, props, what in candidates:
        await pub.send(Publish(topic, payload, Q2, False, False, packet_id, props), note=what)
        rec = await _pubrec_or_disconnect(pub, what)
        require(rec.reason_code in PUBACK_CODES, f"pub: PUBREC 0x{rec.reason_code:02X} must be"
                " a PUBREC Reason Code [MQTT-3.5.2-1]")
        if rec.reason_code >= 0x80:
            return rec.reason_code
        accepted.append(what)
        await pub.send(PubRel(packet_id))
        await pub.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-11]")
    raise NotApplicable(f"accepts every QoS 2 PUBLISH the check offers it to refuse"
                        f" ({'; '.join(accepted)}): a server MAY check them (3.3.2.3.2, 4.11)")


async def _pubrec_or_disconnect(pub: Probe, what: str) -> PubRec:
    """The PUBREC for a PUBLISH the server may refuse; a refusal by DISCONNECT, which the
    spec allows as well (3.3.2.3.2, 3.14.2.1), leaves no PUBREC to judge."""
    event = await pub.next_event(pub.timing.reply_bound)
    if isinstance(event, Received) and isinstance(event.packet, PubRec):
        return event.packet
    if isinstance(event, Closed) or (isinstance(event, Received)
                                     and isinstance(event.packet, Disconnect)):
        raise NotApplicable(f"refuses {what} by closing the connection (allowed, 3.3.2.3.2):"
                            " no PUBREC of 0x80 or above to go on from")
    if isinstance(event, Received):
        pub.pending.append(event.packet)
    return await pub.expect(PubRec, "PUBREC for a QoS 2 PUBLISH [MQTT-4.3.3-8]")
