"""Quality of service flows, DUP, granted QoS and ordering (3.3, 4.3, 4.6).

The server is judged in both of its roles: as the receiver of a client's
PUBLISH (its acknowledgements, its duplicate suppression) and as the sender of
the copies it delivers (QoS, DUP, packet ids, PUBREL). The two roles are judged
apart, so that a broker that grants at most QoS 1 [MQTT-3.8.4-6] or closes a
QoS 2 publisher [MQTT-3.3.5-2] is still judged on everything its choice leaves
observable: a QoS 2 receiver test needs no QoS 2 subscriber.

Messages are told apart by payload, never by a packet id under test; the ids a
check chooses for its own PUBLISHes lie far from what a fresh per-connection
counter produces, so a broker that echoes its own counter cannot pass by
coincidence. The helpers starting with ``_`` are shared with ``subscriptions``
and ``topics``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from mqttref.impl.codec.packets import (
    Packet,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    UnsubAck,
    Unsubscribe,
)
from mqttref.oracle import raw
from mqttref.oracle.evidence import observe
from mqttref.oracle.flows import (
    acknowledge,
    check_outgoing,
    granted_text,
    publish,
    require,
    subscribe,
    summary,
)
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

P = TypeVar("P", bound=Packet)

# --- helpers shared by the checks of qos, subscriptions and topics -------------------------


def _far_id(ctx: Context, room: int = 1) -> int:
    """A packet id that a fresh per-connection counter would not produce.

    ``room`` consecutive ids from the returned one are free as well.
    """
    return ctx.rng.randrange(1000, 60000 - room)


def _publishable(ctx: Context) -> QoS:
    """The highest QoS this broker lets a client publish at (it may close a QoS 2
    publisher instead of authorizing it [MQTT-3.3.5-2])."""
    return QoS.EXACTLY_ONCE if ctx.profile.qos2_publish else QoS.AT_LEAST_ONCE


async def _granted(probe: Probe, *filters: tuple[str, QoS]) -> tuple[int, ...]:
    """Subscribe and return the granted QoS of each filter, whatever was granted.

    A lower grant is the server's right [MQTT-3.8.4-6]: callers go on at it. A
    refusal (0x80, allowed [MQTT-3.8.4-5]) leaves the check nothing to observe on
    that filter: NOT APPLICABLE, naming the refusal.
    """
    suback = await subscribe(probe, *filters, exact=False)
    for code, (topic_filter, qos) in zip(suback.return_codes, filters, strict=True):
        if code == 0x80:
            raise NotApplicable(granted_text(int(qos), code, topic_filter))
    return suback.return_codes


def _has(*payloads: bytes) -> Callable[[list[Publish]], bool]:
    """A stop condition for ``_arrivals``: every one of ``payloads`` has arrived."""
    wanted = set(payloads)
    return lambda got: wanted <= {m.payload for m in got}


async def _arrivals(probe: Probe, until: Callable[[list[Publish]], bool],
                    bound: float) -> list[Publish]:
    """Every PUBLISH that arrives, acknowledged as it arrives, until ``until`` holds.

    Delivery to a subscriber has no deadline in the specification: while
    ``until`` does not hold, the wait ends only when nothing has arrived for
    ``bound`` seconds (``ctx.timing.obligation_bound``), so a broker that is still
    delivering is given the time it takes. Once ``until`` holds, one quiescence
    window more collects what else is on its way (extra copies, messages that
    must not arrive). A close ends the wait. Returns what arrived, oldest first;
    the caller judges what is missing ("not within ``bound`` s").
    """
    got: list[Publish] = []
    while True:
        batch, probe.pending = probe.pending, []
        if not batch:
            event = await probe.next_event(probe.timing.window if until(got) else bound)
            if event is None or isinstance(event, Closed):
                return got
            if isinstance(event, Garbled):
                raise Deviation(f"{probe.name}: the server sent malformed bytes: {event.error}")
            assert isinstance(event, Received)
            batch = [event.packet]
        for message in check_outgoing(probe, batch):
            got.append(message)
            if probe.closed is None:
                await acknowledge(probe, message)


def _onward(messages: Iterable[Publish]) -> list[Publish]:
    """The deliveries among ``messages``, without re-sends.

    A DUP=1 copy with the packet id of an earlier copy of the same payload is
    that copy sent again [MQTT-3.3.1-1], not a second delivery.
    """
    seen: set[tuple[bytes, int]] = set()
    out: list[Publish] = []
    for m in messages:
        key = (m.payload, m.packet_id or 0)
        if m.dup and m.packet_id is not None and key in seen:
            continue
        seen.add(key)
        out.append(m)
    return out


def _arrived(condition: bool, who: str, what: str, bound: float,
             rule: str = "[MQTT-4.5.0-1]") -> None:
    """Judge a delivery owed with no deadline in the spec.

    ``require`` with two wordings: evidence "``what``: delivered" when it holds, a
    deviation "``what``: not delivered within ``bound`` s" when not; ``rule``
    cites the statement that owes the delivery.
    """
    if not condition:
        raise Deviation(f"{who}: {what}: not delivered within {bound:.1f}s {rule}")
    observe(f"{who}: {what}: delivered {rule}")


def _copies(messages: Iterable[Publish], payload: bytes) -> list[Publish]:
    return [m for m in _onward(messages) if m.payload == payload]


async def _first_ack(probe: Probe, kind: type[P], why: str, topic: str, qos: QoS) -> P:
    """The acknowledgement of the first PUBLISH of a message sent by hand.

    A close instead is the server refusing to authorize that PUBLISH, which it
    may [MQTT-3.3.5-2]: NOT APPLICABLE. Anything else missing is a deviation from
    what ``why`` cites.
    """
    try:
        return await probe.expect(kind, why)
    except Deviation:
        if probe.closed is not None and not probe.pending:
            raise NotApplicable(
                f"closes the connection on a QoS {int(qos)} PUBLISH to {topic!r} instead of"
                " acknowledging it: it does not authorize that PUBLISH (allowed"
                " [MQTT-3.3.5-2])") from None
        raise


async def _leaks_after_unsubscribe(ctx: Context, sub: Probe, pub: Probe, witness: Probe, *,
                                   topics: Sequence[str], control: str) -> list[str]:
    """Which of ``topics`` (unsubscribed by ``sub``) still reach ``sub``.

    "Nothing arrived" is evidence only with controls: a message is published to
    each topic, then one to ``control`` (a topic ``sub`` is still subscribed
    to). The ``witness`` (subscribed to ``topics``) must receive the former, so
    the server did take them, and ``sub`` must receive the latter, published
    after them [MQTT-4.5.0-1]. Returns the topics whose message reached ``sub``.
    """
    bound = ctx.timing.obligation_bound
    sent = {f"after unsubscribe {n}".encode(): topic for n, topic in enumerate(topics)}
    for payload, topic in sent.items():
        await publish(pub, topic, payload, QoS.AT_LEAST_ONCE)
    await publish(pub, control, b"control", QoS.AT_LEAST_ONCE)
    seen = {m.payload for m in await _arrivals(witness, _has(*sent), bound)}
    _arrived(set(sent) <= seen, witness.name,
             f"the messages published to {sorted(sent.values())}, which it subscribes to", bound)
    got = await _arrivals(sub, _has(b"control"), bound)
    _arrived(any(m.payload == b"control" for m in got), sub.name,
             f"the later message to {control!r}, which it is still subscribed to", bound)
    return [sent[m.payload] for m in got if m.payload in sent]


QOS2_PUBLISH = "PUBREC for a QoS 2 PUBLISH [MQTT-3.3.4-1] [MQTT-4.3.3-2]"

# --- the checks -----------------------------------------------------------------------------


@check("MQTT-4.3.1-1", "MQTT-2.3.1-5", "MQTT-3.3.1-2", "MQTT-3.3.2-3", "MQTT-4.5.0-1",
       "MQTT-3.3.2-1",
       summary="QoS 0: delivered with QoS 0, DUP 0, no packet id, the exact topic and payload")
async def qos0_delivery(ctx: Context) -> None:
    """A QoS 0 message reaches the subscriber [MQTT-4.5.0-1] as a PUBLISH with QoS 0
    and DUP 0 [MQTT-4.3.1-1] [MQTT-3.3.1-2], with the topic name it was published
    to, a UTF-8 string [MQTT-3.3.2-1] that matches the filter [MQTT-3.3.2-3]. A packet id in a QoS
    0 PUBLISH [MQTT-2.3.1-5] would show as two extra bytes before the payload: all
    256 byte values arrive exactly as sent only without one."""
    topic = ctx.topic("qos0")
    sub = await ctx.client("sub")
    await _granted(sub, (topic, QoS.AT_MOST_ONCE))
    pub = await ctx.client("pub")
    payload = bytes(range(256))
    await publish(pub, topic, payload)
    bound = ctx.timing.obligation_bound
    got = await _arrivals(sub, bool, bound)
    _arrived(bool(got), "sub", f"the QoS 0 message published to {topic!r}", bound)
    first = got[0]
    require(first.qos == 0 and not first.dup,
            f"sub: a QoS 0 message must be sent with QoS 0 and DUP 0 [MQTT-4.3.1-1]"
            f" [MQTT-3.3.1-2]; got {describe(first)}")
    # The strict decoder took the topic name: a UTF-8 string, first in the variable header.
    observe(f"sub: the PUBLISH carries its topic name {first.topic!r} as a UTF-8 string"
            " [MQTT-3.3.2-1]")
    require(first.topic == topic,
            f"sub: the topic name must match the subscription's filter, {topic!r}, which has no"
            f" wildcard [MQTT-3.3.2-3]; got {first.topic!r}")
    if first.payload == payload or first.payload[2:] == payload:
        require(first.payload == payload,
                "sub: a QoS 0 PUBLISH must not contain a packet identifier: the payload must"
                " follow the topic name [MQTT-2.3.1-5]; got two bytes"
                f" {first.payload[:2].hex()} before it")
    else:
        raise Deviation(f"sub: the 256-byte payload must arrive as published [MQTT-4.5.0-1];"
                        f" got {len(first.payload)} other bytes")


@check("MQTT-3.3.4-1", "MQTT-2.3.1-6", "MQTT-4.3.2-2", "MQTT-4.3.2-1", "MQTT-2.3.1-1",
       summary="QoS 1: PUBACK with the id; an id reused after PUBACK is a new message")
async def qos1_flow(ctx: Context) -> None:
    """As receiver, the server answers a QoS 1 PUBLISH with a PUBACK [MQTT-3.3.4-1]
    carrying its packet id [MQTT-2.3.1-6]; after that PUBACK a PUBLISH with the same
    id is a new message, whatever its DUP flag [MQTT-4.3.2-2] (the second is sent
    with DUP=1 to show it). As sender to a QoS 1 subscriber, its first delivery has
    DUP 0 [MQTT-4.3.2-1] and a non-zero packet id [MQTT-2.3.1-1]; for the second, a
    DUP=1 would be the incoming flag propagated [MQTT-3.3.1-3]."""
    topic = ctx.topic("qos1")
    sub = await ctx.client("sub")
    (granted,) = await _granted(sub, (topic, QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    pid = _far_id(ctx)
    bound = ctx.timing.obligation_bound
    deliveries: list[Publish] = []
    for n, payload in enumerate((b"first", b"second")):
        await pub.send(Publish(topic, payload, QoS.AT_LEAST_ONCE, False, n > 0, pid),
                       "the same id again, after its PUBACK, DUP=1" if n else None)
        ack = await pub.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]")
        require(ack.packet_id == pid, f"pub: PUBACK id {ack.packet_id} must be the PUBLISH's id"
                f" {pid} [MQTT-2.3.1-6] [MQTT-4.3.2-2]")
        copies = _copies(await _arrivals(sub, _has(payload), bound), payload)
        rule = ("(a PUBLISH with the id of an acknowledged one is a new publication, whatever"
                " its DUP flag) [MQTT-4.3.2-2]") if n else "[MQTT-4.5.0-1]"
        _arrived(bool(copies), "sub", f"{payload!r}, published with id {pid}", bound, rule)
        deliveries.append(copies[0])
    if granted == 0:
        raise NotApplicable(granted_text(1, 0, topic), "MQTT-4.3.2-1", "MQTT-2.3.1-1")
    for message, rule in zip(deliveries, ("[MQTT-4.3.2-1]", "(its DUP=1 when published is not"
                                          " propagated) [MQTT-3.3.1-3]"), strict=True):
        require(message.qos == 1, f"sub: granted QoS 1, a QoS 1 message must arrive at QoS 1"
                f" [MQTT-3.8.4-6]; got {describe(message)}")
        require(not message.dup, "sub: the server's first sending of a QoS 1 message must have"
                f" DUP 0 {rule}; got {describe(message)}")
        require(bool(message.packet_id), "sub: a QoS 1 PUBLISH from the server carries a non-zero"
                f" packet identifier [MQTT-2.3.1-1]; got {describe(message)}")


async def _qos2_exchange(pub: Probe, topic: str, payload: bytes, pid: int) -> None:
    """PUBLISH at QoS 2 with ``pid``, then PUBREL, checking PUBREC and PUBCOMP ids
    (on a connection where the server already authorized a QoS 2 PUBLISH)."""
    await pub.send(Publish(topic, payload, QoS.EXACTLY_ONCE, False, False, pid))
    rec = await pub.expect(PubRec, QOS2_PUBLISH)
    require(rec.packet_id == pid, f"pub: PUBREC id {rec.packet_id} must be the PUBLISH's id {pid}"
            " [MQTT-2.3.1-6] [MQTT-4.3.3-2]")
    await pub.send(PubRel(pid))
    comp = await pub.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-2]")
    require(comp.packet_id == pid, f"pub: PUBCOMP id {comp.packet_id} must be the PUBREL's id"
            f" {pid} [MQTT-4.3.3-2]")


@check("MQTT-4.3.3-2", "MQTT-3.3.4-1", "MQTT-2.3.1-6",
       summary="QoS 2 receiver: a PUBLISH repeated before PUBREL is acknowledged, delivered once")
async def qos2_exactly_once(ctx: Context) -> None:
    """As receiver of a QoS 2 PUBLISH the server answers PUBREC [MQTT-3.3.4-1] with
    the id [MQTT-2.3.1-6]; a copy re-sent before PUBREL gets a PUBREC again and is
    not delivered twice; after PUBCOMP the id starts a new message [MQTT-4.3.3-2].
    The subscriber takes whatever QoS is granted: onward duplicates show at any."""
    topic = ctx.topic("qos2")
    sub = await ctx.client("sub")
    await _granted(sub, (topic, QoS.EXACTLY_ONCE))
    pub = await ctx.client("pub")
    pid = _far_id(ctx)
    await pub.send(Publish(topic, b"once", QoS.EXACTLY_ONCE, False, False, pid))
    rec = await _first_ack(pub, PubRec, QOS2_PUBLISH, topic, QoS.EXACTLY_ONCE)
    require(rec.packet_id == pid, f"pub: PUBREC id {rec.packet_id} must be the PUBLISH's id {pid}"
            " [MQTT-2.3.1-6] [MQTT-4.3.3-2]")
    await pub.send(Publish(topic, b"once", QoS.EXACTLY_ONCE, False, True, pid),
                   "re-sent before PUBREL, DUP=1")
    rec = await pub.expect(PubRec, "PUBREC for a PUBLISH re-sent before PUBREL [MQTT-4.3.3-2]")
    require(rec.packet_id == pid, f"pub: PUBREC id {rec.packet_id} must be the PUBLISH's id {pid}"
            " [MQTT-2.3.1-6] [MQTT-4.3.3-2]")
    await pub.send(PubRel(pid))
    comp = await pub.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-2]")
    require(comp.packet_id == pid, f"pub: PUBCOMP id {comp.packet_id} must be the PUBREL's id"
            f" {pid} [MQTT-4.3.3-2]")
    await _qos2_exchange(pub, topic, b"new", pid)
    bound = ctx.timing.obligation_bound
    got = await _arrivals(sub, _has(b"once", b"new"), bound)
    once, new = _copies(got, b"once"), _copies(got, b"new")
    _arrived(bool(once), "sub", "the QoS 2 message", bound)
    require(len(once) == 1, "sub: a PUBLISH re-sent before PUBREL must not cause a duplicate"
            " delivery [MQTT-4.3.3-2], and a subscriber gets duplicate copies only of a QoS 1"
            f" message granted at QoS 0 [MQTT-3.8.4-6]; got {summary(once)}")
    _arrived(bool(new), "sub", f"a QoS 2 PUBLISH with id {pid} after the PUBCOMP for that id",
             bound, "(a new publication) [MQTT-4.3.3-2]")


@check("MQTT-4.3.3-2",
       summary="one QoS 2 PUBLISH resent 10 times before PUBREL: 10 PUBRECs, one delivery")
async def qos2_resent_until_pubrel(ctx: Context) -> None:
    """"Until it has received the corresponding PUBREL packet, the Receiver MUST
    acknowledge any subsequent PUBLISH packet with the same Packet Identifier by
    sending a PUBREC" and deliver it once [MQTT-4.3.3-2]: the rule has no count. Only
    a close on the first copy is a refusal to authorize it [MQTT-3.3.5-2]."""
    topic = ctx.topic("qos2resend")
    sub = await ctx.client("sub")
    await _granted(sub, (topic, QoS.EXACTLY_ONCE))
    pub = await ctx.client("pub")
    pid = _far_id(ctx)
    for n in range(10):
        await pub.send(Publish(topic, b"resent", QoS.EXACTLY_ONCE, False, n > 0, pid),
                       f"copy {n + 1}" + (", DUP=1" if n else ""))
        why = f"PUBREC for copy {n + 1} [MQTT-4.3.3-2]"
        rec = await (pub.expect(PubRec, why) if n else
                     _first_ack(pub, PubRec, why, topic, QoS.EXACTLY_ONCE))
        require(rec.packet_id == pid, f"pub: PUBREC id {rec.packet_id} for copy {n + 1} must be"
                f" the PUBLISH's id {pid} [MQTT-4.3.3-2]")
    await pub.send(PubRel(pid))
    comp = await pub.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-2]")
    require(comp.packet_id == pid, f"pub: PUBCOMP id {comp.packet_id} [MQTT-4.3.3-2]")
    bound = ctx.timing.obligation_bound
    copies = _copies(await _arrivals(sub, _has(b"resent"), bound), b"resent")
    _arrived(bool(copies), "sub", "the QoS 2 message", bound)
    require(len(copies) == 1, "sub: ten copies before PUBREL must be delivered once"
            f" [MQTT-4.3.3-2]; got {len(copies)} deliveries")


@check("MQTT-4.3.3-1", "MQTT-2.3.1-6",
       summary="QoS 2 sender: PUBLISH DUP 0, PUBREL after PUBREC with the same id, no re-send")
async def qos2_server_as_sender(ctx: Context) -> None:
    """As sender to a QoS 2 subscriber the server sends the PUBLISH with QoS 2 and
    DUP 0, answers PUBREC with a PUBREL carrying the PUBLISH's id, and does not
    send the PUBLISH again after that PUBREL [MQTT-4.3.3-1] [MQTT-2.3.1-6]. The
    absence of a re-send is evidence only once a later message has arrived."""
    topic = ctx.topic("qos2out")
    sub = await ctx.subscriber("sub", (topic, QoS.EXACTLY_ONCE))
    pub = await ctx.client("pub")
    await publish(pub, topic, b"to deliver", QoS.EXACTLY_ONCE)
    message = await sub.expect(Publish, "delivery to the subscriber [MQTT-4.5.0-1]")
    require(message.qos == 2 and not message.dup,
            f"sub: a new QoS 2 message must be sent with QoS 2 and DUP 0 [MQTT-4.3.3-1];"
            f" got {describe(message)}")
    assert message.packet_id is not None
    await sub.send(PubRec(message.packet_id))
    rel = await sub.expect(PubRel, "PUBREL after PUBREC [MQTT-4.3.3-1]")
    require(rel.packet_id == message.packet_id,
            f"sub: PUBREL id {rel.packet_id} must be the PUBLISH's id {message.packet_id}"
            " [MQTT-4.3.3-1] [MQTT-2.3.1-6]")
    between = await sub.settle()
    await sub.send(PubComp(message.packet_id))
    await publish(pub, topic, b"later", QoS.EXACTLY_ONCE)
    bound = ctx.timing.obligation_bound
    got = [p for p in between if isinstance(p, Publish)]
    got += await _arrivals(sub, _has(b"later"), bound)
    _arrived(any(m.payload == b"later" for m in got), "sub", "a second QoS 2 message", bound)
    later = [m for m in got if m.payload == b"to deliver"]
    # A re-send is the same PUBLISH: its packet id, or DUP 1. A PUBLISH of the same
    # content under a new id with DUP 0 is a second delivery of one QoS 2 message,
    # which the server as QoS 2 receiver must not cause [MQTT-4.3.3-2].
    resent = [describe(m) for m in later if m.packet_id == message.packet_id or m.dup]
    require(not resent, "sub: after its PUBREL the server must not send the PUBLISH again"
            f" [MQTT-4.3.3-1]; got {resent}")
    require(not later, "sub: one QoS 2 message published once must be delivered once"
            f" [MQTT-4.3.3-2]; got it again as a new PUBLISH {[describe(m) for m in later]}")


@check("MQTT-3.3.1-3", summary="an incoming DUP=1 is not propagated to subscribers")
async def dup_not_propagated(ctx: Context) -> None:
    """The DUP flag of an outgoing PUBLISH says whether that PUBLISH is a re-send,
    nothing else: a message published with DUP=1 reaches a QoS 1 subscriber with
    DUP 0 on its first sending [MQTT-3.3.1-3]. At QoS 0 DUP is 0 anyway, so a lower
    grant leaves nothing to tell apart."""
    topic = ctx.topic("dup")
    sub = await ctx.client("sub")
    (granted,) = await _granted(sub, (topic, QoS.AT_LEAST_ONCE))
    if granted == 0:
        raise NotApplicable(granted_text(1, 0, topic))
    pub = await ctx.client("pub")
    pid = _far_id(ctx)
    await pub.send(Publish(topic, b"dup set", QoS.AT_LEAST_ONCE, False, True, pid), "DUP=1")
    ack = await pub.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]")
    require(ack.packet_id == pid, f"pub: PUBACK id {ack.packet_id} must be the PUBLISH's id {pid}"
            " [MQTT-2.3.1-6]")
    bound = ctx.timing.obligation_bound
    got = await _arrivals(sub, _has(b"dup set"), bound)
    _arrived(bool(got), "sub", "the message published with DUP=1", bound)
    require(not got[0].dup, "sub: the first sending of a message published with DUP=1 is no"
            f" re-send and must have DUP 0 [MQTT-3.3.1-3]; got {describe(got[0])}")


@check("MQTT-3.8.4-6", summary="delivered QoS is the minimum of published and granted QoS")
async def granted_qos_caps_delivery(ctx: Context) -> None:
    """Three subscribers ask for QoS 0, 1 and 2; each message, published at each
    QoS the broker accepts, reaches each at the minimum of the published QoS and
    the QoS actually granted [MQTT-3.8.4-6] (a lower grant is allowed; it changes
    the expected QoS, not the verdict). Copies at QoS 0 of a QoS 1 message may be
    repeated, as the statement permits."""
    topic = ctx.topic("downgrade")
    subs: dict[Probe, int] = {}
    for qos in QoS:
        probe = await ctx.client(f"sub{int(qos)}")
        (code,) = (await subscribe(probe, (topic, qos), exact=False)).return_codes
        if code == 0x80:
            ctx.trace.note(granted_text(int(qos), code, topic))
            continue
        subs[probe] = code
    if not subs:
        raise NotApplicable(f"refuses every subscription to {topic!r} with 0x80 (allowed"
                            " [MQTT-3.8.4-5])")
    pub = await ctx.client("pub")
    bound = ctx.timing.obligation_bound
    for published in range(int(_publishable(ctx)) + 1):
        payload = f"at {published}".encode()
        await publish(pub, topic, payload, QoS(published))
        for probe, granted in subs.items():
            copies = _copies(await _arrivals(probe, _has(payload), bound), payload)
            _arrived(bool(copies), probe.name, f"the QoS {published} message", bound)
            expected = min(published, granted)
            require(all(m.qos == expected for m in copies),
                    f"{probe.name}: published at QoS {published}, granted QoS {granted}: must"
                    f" arrive at QoS {expected} [MQTT-3.8.4-6]; got {summary(copies)}")


@check("MQTT-3.3.5-1",
       summary="overlapping subscriptions: a copy at the highest granted QoS (one or one each)")
async def overlapping_subscriptions(ctx: Context) -> None:
    """Two filters of one client match a message: it must reach the client at the
    highest QoS granted to them [MQTT-3.3.5-1] (capped by the published QoS), as one
    copy or one copy per subscription (both shapes are allowed). The lower QoS is
    asked for first, so a server that uses the first match fails. The check goes on
    at whatever is granted, as long as the two grants lead to different QoS."""
    base = ctx.topic("overlap")
    sub = await ctx.client("sub")
    low, high = await _granted(sub, (base + "/+", QoS.AT_MOST_ONCE),
                               (base + "/#", QoS.EXACTLY_ONCE))
    published = _publishable(ctx)
    at_low, at_high = min(published, low), min(published, high)
    if at_low == at_high:
        raise NotApplicable(f"grants QoS {low} to {base + '/+'!r} and QoS {high} to"
                            f" {base + '/#'!r} (allowed [MQTT-3.8.4-6]): a message published at"
                            f" QoS {int(published)} reaches both at QoS {at_low}, so the highest"
                            " cannot be told from the first")
    pub = await ctx.client("pub")
    await publish(pub, base + "/x", b"both match", published)
    bound = ctx.timing.obligation_bound
    copies = _copies(await _arrivals(sub, _has(b"both match"), bound), b"both match")
    _arrived(bool(copies), "sub", "the message both filters match", bound)
    levels = sorted(int(m.qos) for m in copies)
    best = max(at_low, at_high)
    require(best in levels,
            f"sub: filters granted QoS {low} and {high}, message published at QoS"
            f" {int(published)}: the client must get it at QoS {best}, as one copy or one per"
            f" subscription [MQTT-3.3.5-1]; got copies at QoS {levels}")
    # The copy at the highest QoS is there; a further one stands for the other
    # subscription and goes at that subscription's QoS, like any message sent in
    # response to a subscription [MQTT-3.8.4-6].
    require(levels in ([best], sorted([at_low, at_high])),
            f"sub: besides the copy at QoS {best}, at most one further copy, for the filter"
            f" granted QoS {low}, at QoS {at_low} [MQTT-3.8.4-6]; got copies at QoS {levels}")


async def _in_order(ctx: Context, qos: QoS) -> None:
    """30 PUBLISHes in one write (more than a typical in-flight window of 20): each
    must reach the subscriber [MQTT-4.5.0-1], in the order sent [MQTT-4.6.0-5]
    [MQTT-4.6.0-6]. Messages are told apart by payload; the publisher's packet ids
    are 30 consecutive ids far from a fresh counter's. Delivery has no deadline:
    the wait ends after ``obligation_bound`` without an arrival."""
    topic = ctx.topic("order", str(int(qos)))
    sub = await ctx.client("sub")
    await _granted(sub, (topic, QoS.EXACTLY_ONCE))
    pub = await ctx.client("pub")
    first_id = _far_id(ctx, 30)
    ids = [first_id + n for n in range(30)] if qos else [None] * 30
    sent = [f"{n:03d}".encode() for n in range(30)]
    data = b"".join(raw.publish(topic, p, flags=int(qos) << 1, packet_id=i)
                    for p, i in zip(sent, ids, strict=True))
    await pub.send(data, f"30 QoS {int(qos)} PUBLISHes, payloads 000 to 029, ids"
                   f" {ids[0]} to {ids[-1]}, in one write" if qos else
                   "30 QoS 0 PUBLISHes, payloads 000 to 029, in one write")
    await _publisher_flows(pub, topic, qos, [i for i in ids if i is not None])
    bound = ctx.timing.obligation_bound
    got = [m.payload for m in _onward(await _arrivals(sub, _has(*sent), bound))]
    arrived = [p for p in got if p in sent]
    if len(arrived) >= 2:
        require(arrived == sorted(arrived),
                f"sub: received in the order {b' '.join(arrived).decode()}: messages on one"
                " topic from one client must be sent in the order received [MQTT-4.6.0-5]"
                " [MQTT-4.6.0-6]")
    missing = [p for p in sent if p not in arrived]
    _arrived(not missing, "sub", "the 30 messages" + (
        f" ({len(missing)} missing: {b', '.join(missing).decode()}; waited after the last"
        " arrival)" if missing else ""), bound)


async def _publisher_flows(pub: Probe, topic: str, qos: QoS, ids: list[int]) -> None:
    """Complete the publisher's side of ``ids`` (PUBACK, or PUBREC/PUBREL/PUBCOMP)."""
    waiting = set(ids)
    for n in range(len(ids)):
        if qos == QoS.AT_LEAST_ONCE:
            ack: PubAck | PubRec = await pub.expect(
                PubAck, "PUBACK for each QoS 1 PUBLISH [MQTT-3.3.4-1]")
        elif n == 0:
            ack = await _first_ack(pub, PubRec, QOS2_PUBLISH, topic, qos)
        else:
            ack = await pub.expect(PubRec, QOS2_PUBLISH)
        require(ack.packet_id in waiting, f"pub: {describe(ack)} must carry the id of a PUBLISH"
                " not yet acknowledged [MQTT-2.3.1-6]")
        waiting.discard(ack.packet_id)
        if qos == QoS.EXACTLY_ONCE:
            await pub.send(PubRel(ack.packet_id))
    if qos == QoS.EXACTLY_ONCE:
        for _ in ids:
            await pub.expect(PubComp, "PUBCOMP for each PUBREL [MQTT-4.3.3-2]")


@check("MQTT-4.6.0-5", "MQTT-4.6.0-6", "MQTT-4.5.0-1",
       summary="30 QoS 0 messages from one client on one topic: all arrive, in order")
async def ordered_topic_qos0(ctx: Context) -> None:
    await _in_order(ctx, QoS.AT_MOST_ONCE)


@check("MQTT-4.6.0-5", "MQTT-4.6.0-6", "MQTT-4.5.0-1",
       summary="30 QoS 1 messages from one client on one topic: all arrive, in order")
async def ordered_topic_qos1(ctx: Context) -> None:
    await _in_order(ctx, QoS.AT_LEAST_ONCE)


@check("MQTT-4.6.0-5", "MQTT-4.6.0-6", "MQTT-4.5.0-1",
       summary="30 QoS 2 messages from one client on one topic: all arrive, in order")
async def ordered_topic_qos2(ctx: Context) -> None:
    await _in_order(ctx, QoS.EXACTLY_ONCE)


@check("MQTT-3.10.4-3", "MQTT-3.10.4-2",
       summary="unsubscribing mid-flow completes the QoS 1 or 2 delivery already started")
async def unsubscribe_completes_inflight(ctx: Context) -> None:
    """A server that deletes a subscription completes the QoS 1 and QoS 2 deliveries
    it has started [MQTT-3.10.4-3] and adds no new message for it [MQTT-3.10.4-2].
    QoS 2: PUBREC sent, then UNSUBSCRIBE: the PUBREL must still come. QoS 1: the
    PUBLISH left unacknowledged, then UNSUBSCRIBE and a reconnect with the session
    kept: the PUBLISH must be re-sent like any unacknowledged one [MQTT-4.4.0-1]
    (a message on a topic still subscribed to is the control)."""
    async with ctx.scenario("QoS 2 delivery started, then UNSUBSCRIBE"):
        await _unsubscribe_mid_qos2(ctx)
    async with ctx.scenario("QoS 1 delivery started, UNSUBSCRIBE, reconnect"):
        await _unsubscribe_mid_qos1(ctx)


async def _unsubscribe_mid_qos2(ctx: Context) -> None:
    topic, control = ctx.topic("inflight2"), ctx.topic("inflight2c")
    sub = await ctx.client("sub2")
    await subscribe(sub, (topic, QoS.EXACTLY_ONCE))
    await _granted(sub, (control, QoS.AT_LEAST_ONCE))
    witness = await ctx.client("wit2")
    await _granted(witness, (topic, QoS.AT_MOST_ONCE))
    pub = await ctx.client("pub2")
    await publish(pub, topic, b"started", QoS.EXACTLY_ONCE)
    message = await sub.expect(Publish, "delivery to the subscriber [MQTT-4.5.0-1]")
    assert message.packet_id is not None
    await sub.send(PubRec(message.packet_id))
    await sub.send(Unsubscribe(_far_id(ctx), (topic,)))
    rel = await sub.expect(PubRel, "PUBREL completing the QoS 2 delivery started before the"
                           " UNSUBSCRIBE [MQTT-3.10.4-3]")
    require(rel.packet_id == message.packet_id,
            f"sub2: PUBREL id {rel.packet_id} must be the PUBLISH's id {message.packet_id}"
            " [MQTT-4.3.3-1]")
    await sub.expect(UnsubAck, "UNSUBACK for UNSUBSCRIBE [MQTT-3.10.4-4]")
    await sub.send(PubComp(message.packet_id))
    await _arrivals(witness, _has(b"started"), ctx.timing.obligation_bound)
    leaked = await _leaks_after_unsubscribe(ctx, sub, pub, witness, topics=[topic],
                                            control=control)
    require(not leaked, f"sub2: after UNSUBACK a message on {topic!r} was still delivered:"
            " the server must stop adding messages for a deleted subscription [MQTT-3.10.4-2]")


async def _unsubscribe_mid_qos1(ctx: Context) -> None:
    topic, control = ctx.topic("inflight1"), ctx.topic("inflight1c")
    cid = ctx.client_id("sub1")
    sub = await ctx.client("sub1", cid, clean=False)
    codes = await _granted(sub, (topic, QoS.AT_LEAST_ONCE), (control, QoS.AT_LEAST_ONCE))
    if 0 in codes:
        raise NotApplicable(granted_text(1, 0, topic if codes[0] == 0 else control))
    witness = await ctx.client("wit1")
    await _granted(witness, (topic, QoS.AT_MOST_ONCE))
    pub = await ctx.client("pub1")
    await publish(pub, topic, b"started", QoS.AT_LEAST_ONCE)
    await publish(pub, control, b"unacknowledged control", QoS.AT_LEAST_ONCE)
    for _ in range(2):
        await sub.expect(Publish, "delivery to the subscriber [MQTT-4.5.0-1]")
    await sub.send(Unsubscribe(_far_id(ctx), (topic,)), "both PUBLISHes left unacknowledged")
    await sub.expect(UnsubAck, "UNSUBACK for UNSUBSCRIBE [MQTT-3.10.4-4]")
    sub.abort()
    again = await ctx.client("sub1b", cid, clean=False, session_present=True)
    bound = ctx.timing.obligation_bound
    resent = {m.payload for m in await _arrivals(
        again, _has(b"started", b"unacknowledged control"), bound)}
    _arrived(b"unacknowledged control" in resent, "sub1b",
             f"the unacknowledged QoS 1 PUBLISH on {control!r}, re-sent as the session resumed",
             bound, "[MQTT-4.4.0-1] [MQTT-4.1.0-1]")
    _arrived(b"started" in resent, "sub1b",
             f"the unacknowledged QoS 1 PUBLISH on {topic!r}, whose subscription was deleted"
             " after its delivery started, re-sent as the session resumed", bound,
             "(the server must complete a delivery it started) [MQTT-3.10.4-3]")
    leaked = await _leaks_after_unsubscribe(ctx, again, pub, witness, topics=[topic],
                                            control=control)
    require(not leaked, f"sub1b: a message on {topic!r} was delivered after its subscription"
            " was deleted [MQTT-3.10.4-2]")


@check("MQTT-3.3.1-2", "MQTT-4.8.0-1",
       summary="QoS 0 PUBLISH with DUP=1: the connection is closed; never forwarded with DUP=1")
async def qos0_with_dup(ctx: Context) -> None:
    """A QoS 0 PUBLISH with DUP=1 breaks [MQTT-3.3.1-2]: a protocol violation, on which
    the server must close the connection [MQTT-4.8.0-1] (the spec states no other
    answer for it). A valid QoS 0 PUBLISH first, answered by a PINGRESP on the same
    connection, shows the close is the violation's. Whatever the server forwards
    has DUP 0 [MQTT-3.3.1-2]; a later message from another client is the control
    that makes "not forwarded with DUP=1" an observation."""
    topic = ctx.topic("dup0")
    sub = await ctx.client("sub")
    await _granted(sub, (topic, QoS.AT_MOST_ONCE))
    pub = await ctx.client("pub")
    await publish(pub, topic, b"valid")
    if not await pub.is_open():
        raise NotApplicable(f"closes the connection on a valid QoS 0 PUBLISH to {topic!r}: it"
                            " does not authorize that PUBLISH (allowed [MQTT-3.3.5-2])")
    await pub.send(raw.publish(topic, b"dup on qos0", flags=0x08), "PUBLISH QoS 0 with DUP=1")
    async with ctx.scenario("what is forwarded"):
        other = await ctx.client("other")
        await publish(other, topic, b"control")
        bound = ctx.timing.obligation_bound
        got = await _arrivals(sub, _has(b"valid", b"control"), bound)
        _arrived({b"valid", b"control"} <= {m.payload for m in got}, "sub",
                 "the two valid QoS 0 messages", bound)
        require(all(not m.dup for m in got), "sub: a QoS 0 message must be sent with DUP 0"
                f" [MQTT-3.3.1-2]; got {summary(got)} with DUP {[int(m.dup) for m in got]}")
    async with ctx.scenario("the close"):
        await pub.wait_close(why="a QoS 0 PUBLISH with DUP=1 breaks section 3.3.1.1, a protocol"
                             " violation [MQTT-4.8.0-1]")
