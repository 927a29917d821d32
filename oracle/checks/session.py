"""Sessions across connections: CleanSession, stored state, redelivery (3.1.2.4, 4.1, 4.4).

This module also holds the steps the retain and will checks share (``_owed``,
``_subscribed``, ``_connect``, ``_hang_up``): what a server owes with no deadline
in the specification (a queued message, a re-send, a will, a retained message for
a new subscription) is waited for up to ``Timing.obligation_bound`` and reported
"not within N s", never judged absent after a bare quiescence window; and an
absence ("nothing else arrived") is only evidence after a control message that
had to arrive did arrive in the same wait.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Will,
)
from mqttref.oracle.evidence import Deviation, Inconclusive, NotApplicable, observe
from mqttref.oracle.flows import (
    acknowledge,
    check_outgoing,
    first_packet_is_connack,
    granted_text,
    publish,
    require,
    subscribe,
    summary,
)
from mqttref.oracle.probe import Closed, Probe, Received
from mqttref.oracle.scenario import V311, Context, check

# --- steps shared with retain.py and will.py ------------------------------------------


async def _collect(probe: Probe, done: Callable[[list[Packet]], bool], *,
                   on_publish: Callable[[Publish], Awaitable[None]] | None = None,
                   ) -> tuple[list[Packet], bool]:
    """Packets that arrive until ``done(packets)`` holds, then until a quiescence window.

    Waits at most ``Timing.obligation_bound`` for ``done``; returns the packets
    (pending ones first) and whether the server closed the connection. Judges
    nothing but the sender's rules ``check_outgoing`` applies to PUBLISHes.
    ``on_publish`` (a coroutine function) is awaited for each PUBLISH as it
    arrives, e.g. to acknowledge it.
    """
    deadline = time.monotonic() + probe.timing.obligation_bound
    packets: list[Packet] = []

    async def take(packet: Packet) -> None:
        packets.append(packet)
        for message in check_outgoing(probe, [packet]):
            if on_publish is not None:
                await on_publish(message)

    while True:
        if probe.pending:
            await take(probe.pending.pop(0))
            continue
        wait = probe.timing.window if done(packets) else deadline - time.monotonic()
        if wait <= 0:
            return packets, False
        event = await probe.next_event(wait)
        if event is None:
            return packets, False
        if isinstance(event, Received):
            await take(event.packet)
        elif isinstance(event, Closed):
            return packets, True
        else:
            raise Deviation(f"{probe.name}: server sent malformed bytes: {event.error}")


async def _owed(probe: Probe, wanted: Iterable[bytes], why: str, *,
                ack: bool = True) -> list[Publish]:
    """The PUBLISHes that arrive until one with each payload of ``wanted`` has come.

    For deliveries the specification owes without a deadline: they are waited for
    up to ``Timing.obligation_bound`` in all; one still missing then is a deviation from
    the statements ``why`` cites ("not within N s"); all arriving is an
    observation of them. Everything else that arrives until a quiescence window
    passes is returned too, acknowledged as it arrives unless ``ack`` is false;
    packets other than PUBLISH stay pending.
    """
    got, missing, closed = await _awaited(probe, wanted, ack=ack)
    if missing:
        raise Deviation(_missing_text(probe, why, missing, closed, got))
    observe(f"{probe.name}: {why}")
    return got


async def _awaited(probe: Probe, wanted: Iterable[bytes], *,
                   ack: bool = True) -> tuple[list[Publish], list[bytes], bool]:
    """``_owed`` without the verdict: (what arrived, the payloads still missing,
    whether the server closed the connection).

    For a step that must know whether a delivery came before it can say which
    statement its absence contradicts (the caller judges, citing that one).
    """
    missing = list(wanted)
    got: list[Publish] = []

    async def take(message: Publish) -> None:
        got.append(message)
        if message.payload in missing:
            missing.remove(message.payload)
        if ack:
            await acknowledge(probe, message)

    packets, closed = await _collect(probe, lambda _: not missing, on_publish=take)
    others: list[Packet] = [p for p in packets if not isinstance(p, Publish)]
    probe.pending = others + probe.pending
    return got, missing, closed


def _missing_text(probe: Probe, why: str, missing: Iterable[bytes], closed: bool,
                  got: list[Publish]) -> str:
    """How ``_owed`` reports owed payloads that did not come ("not within N s")."""
    bound = probe.timing.obligation_bound
    how = "the server closed the connection first" if closed else f"not within {bound:.1f} s"
    return (f"{probe.name}: {why}: {', '.join(repr(p) for p in missing)} {how}"
            f" (received {summary(got)})")


def _copies(messages: list[Publish], payload: bytes) -> list[Publish]:
    return [m for m in messages if m.payload == payload]


async def _grant(probe: Probe, *filters: tuple[str, QoS]) -> tuple[int, ...]:
    """SUBSCRIBE and return the granted QoS per filter.

    A lower grant is the server's right [MQTT-3.8.4-6]: the caller goes on at
    what was granted. A refusal (0x80, [MQTT-3.8.4-5]) leaves nothing to judge.
    """
    suback = await subscribe(probe, *filters, exact=False)
    for code, (topic_filter, qos) in zip(suback.return_codes, filters, strict=True):
        if code == 0x80:
            raise NotApplicable(granted_text(int(qos), code, topic_filter))
    return suback.return_codes


async def _subscribed(ctx: Context, name: str, *filters: tuple[str, QoS],
                      client_id: str | None = None,
                      clean: bool = True) -> tuple[Probe, tuple[int, ...]]:
    """A connected client subscribed to ``filters``, with the QoS granted for each."""
    probe = await ctx.client(name, client_id, clean=clean)
    return probe, await _grant(probe, *filters)


async def _connect(ctx: Context, name: str, client_id: str, *, clean: bool,
                   will: Will | None = None) -> tuple[Probe, ConnAck]:
    """A connected client and its CONNACK, for checks that judge session present."""
    if not clean:
        ctx.persistent.add(client_id)
    probe = await ctx.open(name)
    await probe.send(Connect(V311, client_id, clean, 60, will))
    connack = await first_packet_is_connack(probe)
    if connack.return_code in (0x03, 0x04, 0x05):
        raise NotApplicable(f"refuses a valid CONNECT with return code 0x{connack.return_code:02X}"
                            " (allowed by Table 3.1 of section 3.2.2.3)")
    require(connack.return_code == 0,
            f"{name}: a valid CONNECT must be accepted with return code 0 [MQTT-3.1.4-4]")
    return probe, connack


async def _hang_up(probe: Probe) -> None:
    """DISCONNECT, then close, as the client must [MQTT-3.14.4-1].

    Waits briefly (judging nothing) for the server to close first, so that it
    has processed the DISCONNECT before the scenario goes on.
    """
    await probe.send(Disconnect())
    with contextlib.suppress(Deviation):
        await probe.wait_close(probe.timing.bound(1.0))
    probe.abort()


async def _ping(probe: Probe) -> None:
    """A PINGREQ round trip: the server has processed everything sent before it."""
    await probe.send(PingReq())
    await probe.expect(PingResp, "PINGRESP for PINGREQ [MQTT-3.12.4-1]")


# --- checks ---------------------------------------------------------------------------


def _resumed_text(name: str, ack: ConnAck, what: str) -> str:
    """Why a resumed session's state missing ``what`` is a deviation, and from what.

    The flag says which: with session present 1 the server resumed a session that
    lost that state [MQTT-3.1.2-4] [MQTT-4.1.0-1]; with session present 0 it
    (truthfully) had no session stored for the client id [MQTT-3.1.2-4].
    """
    if ack.session_present:
        return (f"{name}: session present 1, and the resumed session must go on with its state"
                f" ({what}) [MQTT-3.1.2-4] [MQTT-4.1.0-1]")
    return (f"{name}: the session (clean session 0) must be stored after the connection ended"
            f" and resumed [MQTT-3.1.2-4]: session present 0, and {what}")


def _present_after_state(name: str, ack: ConnAck, seen: str) -> None:
    """Session present judged once the session's state was seen kept (``seen``)."""
    require(ack.session_present,
            f"{name}: the server had the session stored ({seen}): CONNACK session present must"
            " be 1 [MQTT-3.2.2-2]")


@check("MQTT-3.2.2-2", "MQTT-3.2.2-3", "MQTT-3.2.2-1", "MQTT-3.1.2-4", "MQTT-3.1.2-6",
       "MQTT-3.1.4-3",
       summary="session present: 0 for a new session, 1 when resumed, 0 after clean session 1")
async def session_present_flag(ctx: Context) -> None:
    """One client id through four connections: new (0), resumed (1), clean (0), and
    clean session 0 again after the clean one discarded the session (0).

    Each flag of a session that may or may not exist is judged after the session's
    subscriptions showed whether it does: a message to them that arrives means the
    session was kept, one that does not means it is gone. Only then is a flag that
    says otherwise the flag's fault [MQTT-3.2.2-2] [MQTT-3.2.2-3], and a flag that
    tells the truth about a lost or leftover session is not blamed."""
    cid = ctx.client_id("sp")
    topic, topic3, control = ctx.topic("sp"), ctx.topic("sp", "c3"), ctx.topic("sp", "control")
    first, ack = await _connect(ctx, "c1", cid, clean=False)
    # A client id never used before has no session: session present 1 can only be false.
    require(not ack.session_present,
            "c1: clean session 0 with a client id that has no session gets a new session:"
            " CONNACK session present must be 0 [MQTT-3.2.2-3]")
    await _grant(first, (topic, QoS.AT_LEAST_ONCE))  # state worth storing
    await _hang_up(first)
    second, ack = await _connect(ctx, "c2", cid, clean=False)
    pub = await ctx.client("pub")
    await publish(pub, topic, b"to the stored session", QoS.AT_LEAST_ONCE)
    got, missing, closed = await _awaited(second, [b"to the stored session"])
    if missing:
        raise Deviation(_missing_text(second, _resumed_text(
            "c2", ack, "c1's subscription does not deliver"), missing, closed, got))
    observe("c2: c1's session (clean session 0) was stored after it disconnected and resumed:"
            " its subscription delivers [MQTT-3.1.2-4] [MQTT-3.1.4-3]")
    _present_after_state("c2", ack, "c1's subscription delivers")
    await _hang_up(second)
    third, ack = await _connect(ctx, "c3", cid, clean=True)
    require(not ack.session_present,
            "c3: clean session 1 is accepted with session present 0 [MQTT-3.2.2-1]")
    await _grant(third, (topic3, QoS.AT_LEAST_ONCE))
    await _hang_up(third)
    fourth, ack = await _connect(ctx, "c4", cid, clean=False)
    await _grant(fourth, (control, QoS.AT_LEAST_ONCE))
    for t, payload in ((topic, b"to c1's session"), (topic3, b"to c3's session"),
                       (control, b"control")):
        await publish(pub, t, payload, QoS.AT_LEAST_ONCE)
    got = await _owed(fourth, [b"control"], "a message matching the new session's subscription"
                      " must be delivered [MQTT-4.5.0-1]")
    stale = [m for m in got if m.topic in (topic, topic3)]
    require(not stale,
            "c4: c3's clean session 1 discarded the stored session, and its own ended with its"
            f" connection [MQTT-3.1.2-6]: neither one's subscription may deliver; got"
            f" {summary(stale)}")
    require(not ack.session_present,
            "c4: no session was left for the client id (neither c1's nor c3's subscription"
            " delivers): session present must be 0 [MQTT-3.2.2-3]")
    await _hang_up(fourth)


QUEUED = ("the QoS 1 and 2 messages published while the persistent session was offline must be"
          " stored in it [MQTT-3.1.2-5] [MQTT-4.5.0-1] and delivered when it resumes"
          " [MQTT-3.1.2-4]")


@check("MQTT-3.1.2-4", "MQTT-3.1.2-5", "MQTT-4.1.0-1", "MQTT-3.1.3-2", "MQTT-4.5.0-1",
       summary="persistent session: subscriptions kept, QoS 1 and 2 messages queued offline")
async def persistent_session_queues_messages(ctx: Context) -> None:
    """Two persistent sessions go offline; messages for each are published; each
    client id gets back its own session's queued QoS 1 and 2 messages [MQTT-3.1.2-5]
    [MQTT-3.1.3-2], at the QoS granted. Queueing QoS 0 is optional (3.1.2.4): the
    QoS 0 message, and a message whose delivery a QoS 0 grant makes QoS 0, may or
    may not come and are not judged.

    Each subscription first delivers a message while its client is connected
    [MQTT-4.5.0-1], so that a message missing after the session went offline was
    lost by the session, not by a subscription that never worked (a server that
    handles only the first filter of a SUBSCRIBE [MQTT-3.8.4-4] is blamed
    elsewhere). Session present is judged once the session's state showed whether
    the session was kept."""
    cid, other = ctx.client_id("ps"), ctx.client_id("po")
    t1, t2, t0 = ctx.topic("ps", "q1"), ctx.topic("ps", "q2"), ctx.topic("ps", "q0")
    tb = ctx.topic("ps", "other")
    pub = await ctx.client("pub")
    sub, (g1, g2, _) = await _subscribed(
        ctx, "sub", (t1, QoS.AT_LEAST_ONCE), (t2, QoS.EXACTLY_ONCE), (t0, QoS.AT_MOST_ONCE),
        client_id=cid, clean=False)
    await _live(sub, pub, {t1: b"live q1", t2: b"live q2"})
    await _hang_up(sub)
    sub_b, (g_b,) = await _subscribed(ctx, "subB", (tb, QoS.AT_LEAST_ONCE), client_id=other,
                                      clean=False)
    await _live(sub_b, pub, {tb: b"live b"})
    await _hang_up(sub_b)
    await publish(pub, t1, b"offline qos1", QoS.AT_LEAST_ONCE)
    sent: list[tuple[bytes, int, int]] = [(b"offline qos1", 1, g1)]
    if ctx.profile.qos2_publish:
        await publish(pub, t2, b"offline qos2", QoS.EXACTLY_ONCE)
        sent.append((b"offline qos2", 2, g2))
    else:
        ctx.trace.note("the broker closes on a QoS 2 PUBLISH (allowed [MQTT-3.3.5-2]):"
                       " queueing is judged with QoS 1 only")
    await publish(pub, t0, b"offline qos0", QoS.AT_MOST_ONCE)
    await publish(pub, tb, b"for session B", QoS.AT_LEAST_ONCE)
    await _ping(pub)
    owed = [(p, published, granted) for p, published, granted in sent if granted >= 1]
    unowed = [f"{p!r} (QoS {published}, granted {granted})" for p, published, granted in sent
              if granted < 1]
    choice = ("grants QoS 0 for the QoS 1 and 2 requests (allowed [MQTT-3.8.4-6]): what an"
              " offline session is owed would be QoS 0 deliveries, which a server may queue or"
              " not (3.1.2.4)")
    back, ack = await _connect(ctx, "sub2", cid, clean=False)
    got = await _queued(back, ack, [p for p, _, _ in owed])
    for payload, published, granted in owed:
        due = min(published, granted)
        require(all(m.qos == due for m in _copies(got, payload)),
                f"sub2: {payload!r} published at QoS {published} to a subscription granted"
                f" QoS {granted} must arrive at QoS {due} [MQTT-3.8.4-6]; got {summary(got)}")
    if owed:
        require(not _copies(got, b"for session B"),
                "the state of another client id's session must not reach this client: state is"
                f" identified by the client id [MQTT-3.1.3-2]; got {summary(got)}")
    optional = ["b'offline qos0'", *unowed]
    came = [m.payload for m in got]
    ctx.trace.note(f"QoS 0 deliveries owed to the offline session (optional, 3.1.2.4; the profile"
                   f" says QoS 0 is queued: {ctx.profile.queues_qos0_offline}):"
                   f" {', '.join(optional)}; arrived: {came}")
    await publish(pub, t1, b"live again", QoS.AT_LEAST_ONCE)
    again, missing, closed = await _awaited(back, [b"live again"])
    if missing:
        raise Deviation(_missing_text(back, _resumed_text(
            "sub2", ack, "its subscription does not deliver"), missing, closed, again))
    observe("sub2: the resumed session keeps the subscriptions it had [MQTT-3.1.2-4] for the"
            " whole session [MQTT-4.1.0-1]")
    _present_after_state("sub2", ack, "its subscription delivers")
    if g_b < 1:
        raise NotApplicable(choice, "MQTT-3.1.3-2", *(() if owed else ("MQTT-3.1.2-5",
                                                                       "MQTT-4.5.0-1")))
    back_b, ack_b = await _connect(ctx, "subB2", other, clean=False)
    got_b = await _queued(back_b, ack_b, [b"for session B"])
    observe("subB2: session B's queued message was delivered to its own client id"
            " [MQTT-3.1.3-2]")
    require(not any(m.payload.startswith(b"offline") for m in got_b),
            "the other client id's messages must not reach session B [MQTT-3.1.3-2]; got"
            f" {summary(got_b)}")
    _present_after_state("subB2", ack_b, "its queued message arrived")
    if not owed:
        raise NotApplicable(choice, "MQTT-3.1.2-5", "MQTT-4.5.0-1")


async def _live(probe: Probe, pub: Probe, messages: dict[str, bytes]) -> None:
    """Each subscription of ``probe`` delivers one message while it is connected."""
    for topic, payload in messages.items():
        await publish(pub, topic, payload, QoS.AT_LEAST_ONCE)
    await _owed(probe, list(messages.values()), "a message matching a subscription of the"
                " connected session must be delivered [MQTT-4.5.0-1]")


async def _queued(probe: Probe, ack: ConnAck, payloads: list[bytes]) -> list[Publish]:
    """The messages queued for a session that went offline, on its resumption.

    All arriving is evidence of the queue [MQTT-3.1.2-5]; one missing is blamed
    on the queue with session present 1, on the session's loss with 0
    (``_resumed_text``).
    """
    got, missing, closed = await _awaited(probe, payloads)
    if missing:
        why = (QUEUED if ack.session_present
               else _resumed_text(probe.name, ack, "the messages queued for it do not arrive"))
        raise Deviation(_missing_text(probe, why, missing, closed, got))
    if payloads:
        observe(f"{probe.name}: {QUEUED}")
    return got


async def _hold(probe: Probe, payloads: list[bytes], keep: int, *,
                pubrec_held: bool = False) -> tuple[list[Publish], list[Publish]]:
    """Receive the PUBLISHes of ``payloads``; acknowledge all but the last ``keep``.

    Nothing is acknowledged while more are coming, so every message is in flight
    at once and the held ones carry ids a fresh per-connection counter would not
    produce (the acknowledged ones hold the lower ids). Acknowledgements go in the
    order the PUBLISHes arrived (as a client must: 4.6.0); a server that holds
    messages back beyond an in-flight window gets its oldest ones acknowledged to
    make room. With ``pubrec_held``, each held QoS 2 PUBLISH is answered with
    PUBREC and its PUBREL awaited, so a PUBREL is what stays unacknowledged.

    Returns (the messages in flight before the first acknowledgement, the held ones).
    """
    to_ack = len(payloads) - keep
    first: list[Publish] = []
    together: list[Publish] = []
    done = 0
    while len(first) < len(payloads):
        packets, _ = await _collect(probe, lambda got: any(isinstance(p, Publish) for p in got))
        batch = check_outgoing(probe, packets)
        probe.pending += [p for p in packets if not isinstance(p, Publish)]
        if not batch:
            break
        first += batch
        if not together:
            together = list(first)
        if len(first) < len(payloads):
            for message in first[done:min(to_ack, len(first))]:
                await acknowledge(probe, message)
                done += 1
    if not first:
        raise Deviation(f"{probe.name}: the subscription's messages must be delivered"
                        f" [MQTT-4.5.0-1]: none within {probe.timing.obligation_bound:.1f} s")
    for message in first[done:to_ack]:
        await acknowledge(probe, message)
    held = first[to_ack:]
    if not held:
        raise Inconclusive(f"only {len(first)} of the {len(payloads)} messages were delivered"
                           " before the end: none is left unacknowledged")
    if pubrec_held:
        for message in held:
            assert message.packet_id is not None
            await probe.send(PubRec(message.packet_id))
            rel = await probe.expect(PubRel, "PUBREL after our PUBREC [MQTT-4.3.3-1]")
            require(rel.packet_id == message.packet_id,
                    f"{probe.name}: PUBREL id {rel.packet_id} must be the PUBLISH's id"
                    f" {message.packet_id} [MQTT-4.3.3-1]")
    await _ping(probe)  # our acknowledgements were processed before we drop the connection
    return together, held


@check("MQTT-3.3.1-1", "MQTT-4.4.0-1", "MQTT-2.3.1-4", "MQTT-4.6.0-1", "MQTT-4.3.2-1",
       "MQTT-4.1.0-1",
       summary="unacknowledged QoS 1 messages resent on reconnect: same ids, DUP=1, same order")
async def redelivery_on_reconnect(ctx: Context) -> None:
    """Eight QoS 1 messages in flight to a persistent session; the first five are
    acknowledged, the last three not, and the connection drops. On reconnect the
    three must be re-sent, told apart by payload, with DUP=1 [MQTT-3.3.1-1], their
    original packet ids [MQTT-4.4.0-1] (ids a fresh counter would not give them) and
    in their original order [MQTT-4.6.0-1]. Messages sent and not yet acknowledged
    are session state (3.1.2.4), kept for the whole session [MQTT-4.1.0-1]: one
    that is not re-sent was lost with the connection."""
    cid = ctx.client_id("rd")
    topic = ctx.topic("redeliver")
    sub, (granted,) = await _subscribed(ctx, "sub", (topic, QoS.AT_LEAST_ONCE), client_id=cid,
                                        clean=False)
    if granted == 0:
        raise NotApplicable(granted_text(1, granted, topic)
                            + ": QoS 0 deliveries are never unacknowledged")
    pub = await ctx.client("pub")
    payloads = [f"m{n}".encode() for n in range(8)]
    for payload in payloads:
        await publish(pub, topic, payload, QoS.AT_LEAST_ONCE)
    together, held = await _hold(sub, payloads, keep=3)
    require(all(not m.dup and m.qos == 1 for m in together),
            "a first delivery of a QoS 1 message has QoS 1 and DUP=0 [MQTT-4.3.2-1]; got"
            f" {[(m.payload, int(m.qos), int(m.dup)) for m in together]}")
    ids = [m.packet_id for m in together]
    require(len(set(ids)) == len(ids),
            f"{len(ids)} unacknowledged PUBLISHes in flight at once must have distinct ids"
            f" [MQTT-4.3.2-1] [MQTT-2.3.1-4]: {ids}")
    original = [(m.payload, m.packet_id) for m in held]
    if [i for _, i in original] == list(range(1, len(held) + 1)):
        ctx.trace.note("the held messages carry ids 1..n: a fresh counter would give the same")
    sub.abort()
    back, ack = await _connect(ctx, "sub2", cid, clean=False)
    again, missing, closed = await _awaited(back, [p for p, _ in original])
    if missing:
        why = ("unacknowledged QoS 1 PUBLISHes are session state, kept while the session lasts"
               " [MQTT-4.1.0-1], and must be re-sent when it resumes [MQTT-4.4.0-1]"
               if ack.session_present
               else _resumed_text("sub2", ack, "its unacknowledged PUBLISHes are not re-sent"))
        raise Deviation(_missing_text(back, why, missing, closed, again))
    observe("sub2: the unacknowledged QoS 1 PUBLISHes, session state [MQTT-4.1.0-1], were"
            " re-sent when the session resumed [MQTT-4.4.0-1]")
    _present_after_state("sub2", ack, "its unacknowledged PUBLISHes were re-sent")
    for payload, packet_id in original:
        copy = _copies(again, payload)[0]
        require(copy.dup, f"sub2: the re-sent {payload!r} must have DUP=1 [MQTT-3.3.1-1]")
        require(copy.packet_id == packet_id,
                f"sub2: {payload!r} must be re-sent with its original packet id {packet_id}, not"
                f" {copy.packet_id} [MQTT-4.4.0-1] [MQTT-2.3.1-4]")
    order = [m.payload for m in again if m.payload in dict(original)]
    order = [p for n, p in enumerate(order) if p not in order[:n]]
    require(order == [p for p, _ in original],
            "re-sent PUBLISHes must keep the order of the original ones [MQTT-4.6.0-1]:"
            f" originally {[p for p, _ in original]}, re-sent {order}")


@check("MQTT-4.4.0-1", "MQTT-4.3.3-1", "MQTT-4.1.0-1",
       summary="QoS 2 after PUBREC: PUBREL (not the PUBLISH) resent on reconnect, same id")
async def pubrel_resent_on_reconnect(ctx: Context) -> None:
    """Five QoS 2 messages in flight to a persistent session; three complete, the
    last two get PUBREC (so the server sends PUBREL) but no PUBCOMP. On reconnect
    the server must re-send those two PUBRELs with their original ids
    [MQTT-4.4.0-1] (ids a fresh counter would not give) and must not re-send the
    two PUBLISHes [MQTT-4.3.3-1]. A QoS 2 message not completely acknowledged is
    session state (3.1.2.4), kept for the whole session [MQTT-4.1.0-1]."""
    if ctx.profile.max_qos < 2:
        raise NotApplicable(f"grants at most QoS {ctx.profile.max_qos} (allowed [MQTT-3.8.4-6]):"
                            " it never sends QoS 2 PUBLISHes, so there is no PUBREL to re-send")
    cid = ctx.client_id("rl")
    topic = ctx.topic("pubrel")
    sub = await ctx.subscriber("sub", (topic, QoS.EXACTLY_ONCE), client_id=cid, clean=False)
    pub = await ctx.client("pub")
    payloads = [f"q{n}".encode() for n in range(5)]
    for payload in payloads:
        await publish(pub, topic, payload, QoS.EXACTLY_ONCE)
    together, held = await _hold(sub, payloads, keep=2, pubrec_held=True)
    require(all(not m.dup and m.qos == 2 for m in together),
            "a first delivery of a QoS 2 message has QoS 2 and DUP=0 [MQTT-4.3.3-1]; got"
            f" {[(m.payload, int(m.qos), int(m.dup)) for m in together]}")
    ids = [m.packet_id for m in held if m.packet_id is not None]
    sub.abort()
    back, ack = await _connect(ctx, "sub2", cid, clean=False)

    def all_released(packets: list[Packet]) -> bool:
        return set(ids) <= {p.packet_id for p in packets if isinstance(p, PubRel)}

    packets, closed = await _collect(back, all_released)
    rels = [p.packet_id for p in packets if isinstance(p, PubRel)]
    if not all_released(packets):
        bound = ctx.timing.obligation_bound
        how = "the server closed the connection first" if closed else f"not within {bound:.1f} s"
        if len(set(rels)) >= len(ids):  # re-sent, but not under the ids they had
            raise Deviation(f"sub2: the unacknowledged PUBRELs must be re-sent with their"
                            f" original ids {ids} [MQTT-4.4.0-1]; PUBREL ids received: {rels}")
        if not ack.session_present:
            raise Deviation(_resumed_text("sub2", ack, f"the PUBRELs {ids} it had not completed"
                                          f" are not re-sent: {how}; PUBREL ids received:"
                                          f" {rels}"))
        raise Deviation(f"sub2: the QoS 2 messages not completely acknowledged are session state,"
                        f" kept while the session lasts [MQTT-4.1.0-1]: their PUBRELs must be"
                        f" re-sent with their original ids {ids} [MQTT-4.4.0-1]: {how}; PUBREL"
                        f" ids received: {rels}")
    observe(f"sub2: the unacknowledged PUBRELs, session state [MQTT-4.1.0-1], were re-sent with"
            f" their original ids {ids} [MQTT-4.4.0-1]")
    _present_after_state("sub2", ack, "its unacknowledged PUBRELs were re-sent")
    resent = [p for p in packets if isinstance(p, Publish) and p.payload in
              {m.payload for m in held}]
    require(not resent,
            "a PUBLISH must not be re-sent once its PUBREL was sent [MQTT-4.3.3-1]; got"
            f" {summary(resent)}")
    for packet_id in ids:
        await back.send(PubComp(packet_id))
    for message in check_outgoing(back, packets):
        await acknowledge(back, message)


async def _stale_after_control(pub: Probe, probe: Probe, stale: tuple[str, bytes],
                               control: tuple[str, bytes]) -> list[Publish]:
    """What ``probe`` got from the ``stale`` topic: a message is published there, then
    one on ``control`` (granted to ``probe`` first), and the absence is judged once the
    control message has arrived."""
    await _grant(probe, (control[0], QoS.AT_LEAST_ONCE))
    await publish(pub, stale[0], stale[1], QoS.AT_LEAST_ONCE)
    await publish(pub, control[0], control[1], QoS.AT_LEAST_ONCE)
    got = await _owed(probe, [control[1]],
                      "a message matching the new session's subscription must be delivered"
                      " [MQTT-4.5.0-1]")
    return [m for m in got if m.topic == stale[0]]


@check("MQTT-3.1.2-6", "MQTT-3.1.4-3",
       summary="clean session 1 discards the stored session: no subscription, no queue")
async def clean_session_discards_state(ctx: Context) -> None:
    """A persistent session with a subscription and a queued message, then the same
    client id with clean session 1: neither the queue nor the subscription may
    deliver to it, and its own subscription must not outlive it [MQTT-3.1.2-6]. Each
    absence is judged after a control message that had to arrive did."""
    cid = ctx.client_id("cs")
    topic, control = ctx.topic("clean", "old"), ctx.topic("clean", "control")
    later_control = ctx.topic("clean", "later")
    sub, _ = await _subscribed(ctx, "sub", (topic, QoS.AT_LEAST_ONCE), client_id=cid,
                               clean=False)
    await _hang_up(sub)
    pub = await ctx.client("pub")
    await publish(pub, topic, b"queued", QoS.AT_LEAST_ONCE)
    cleaner, ack = await _connect(ctx, "clean", cid, clean=True)
    require(not ack.session_present,
            "clean: clean session 1 is accepted with session present 0 [MQTT-3.2.2-1]")
    stale = await _stale_after_control(pub, cleaner, (topic, b"after clean"),
                                       (control, b"control"))
    require(not stale,
            "clean session 1 must discard the previous session [MQTT-3.1.2-6] [MQTT-3.1.4-3]:"
            f" neither its queue nor its subscription may deliver; got {summary(stale)}")
    await _hang_up(cleaner)
    later, ack = await _connect(ctx, "later", cid, clean=False)
    require(not ack.session_present,
            "later: the clean session ended with its connection and its state must not be"
            " reused [MQTT-3.1.2-6]: session present must be 0 [MQTT-3.2.2-3]")
    stale = await _stale_after_control(pub, later, (control, b"for the clean session"),
                                       (later_control, b"control 2"))
    require(not stale,
            "the clean session's subscription must not be reused by a later session"
            f" [MQTT-3.1.2-6]; got {summary(stale)}")
    await _hang_up(later)


@check("MQTT-4.1.0-2", "MQTT-3.8.4-1",
       summary="a session lasts as long as its connection: a subscription keeps delivering")
async def session_lasts_with_connection(ctx: Context) -> None:
    """While the connection is open its session, and so its subscriptions, last
    [MQTT-4.1.0-2]: one message after another is delivered, and a later SUBSCRIBE is
    answered [MQTT-3.8.4-1] and adds to them."""
    topic, other = ctx.topic("lasting"), ctx.topic("lasting", "other")
    sub, _ = await _subscribed(ctx, "sub", (topic, QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    for n in range(3):
        payload = f"n{n}".encode()
        await publish(pub, topic, payload, QoS.AT_LEAST_ONCE)
        await _owed(sub, [payload], f"message {n + 1}: the subscription lasts while the"
                    " connection does [MQTT-4.1.0-2]")
    await _grant(sub, (other, QoS.AT_LEAST_ONCE))
    await publish(pub, topic, b"first filter", QoS.AT_LEAST_ONCE)
    await publish(pub, other, b"second filter", QoS.AT_LEAST_ONCE)
    await _owed(sub, [b"first filter", b"second filter"],
                "both subscriptions of the open session deliver [MQTT-4.1.0-2]")


@check("MQTT-3.1.2-4", "MQTT-3.2.2-2",
       summary="a persistent session outlives a close for a protocol violation (second CONNECT,"
       " QoS 3 PUBLISH)")
async def session_survives_violation_close(ctx: Context) -> None:
    """The session belongs to the client id, not to the connection: it must be
    stored after the server closes the connection for a protocol violation
    [MQTT-3.1.2-4]. The close itself is required by another statement, which is
    blamed when it does not happen.

    The session present flag is judged only after the stored subscription showed
    whether the session is still there: a message to it that arrives means the
    session was kept, so session present 0 is then a false flag [MQTT-3.2.2-2]; a
    message that does not arrive means the session was lost [MQTT-3.1.2-4], and a
    session present 0 that says so is truthful, not a second deviation."""
    cases: tuple[tuple[str, str, str], ...] = (
        ("a second CONNECT", "second", "[MQTT-3.1.0-2]"),
        ("a PUBLISH with QoS bits 11", "qos3", "[MQTT-3.3.1-4]"),
    )
    for how, label, rule in cases:
        async with ctx.scenario(how):
            cid = ctx.client_id("pv")
            topic = ctx.topic("violation", label)
            first, _ = await _subscribed(ctx, "c1", (topic, QoS.AT_LEAST_ONCE), client_id=cid,
                                         clean=False)
            if label == "second":
                await first.send(Connect(V311, cid, False, 60), "second CONNECT, clean session 0")
            else:
                await first.send(bytes((0x36, 0x03, 0x00, 0x01, 0x61)), "PUBLISH with QoS bits 11")
            await first.wait_close(why=f"{how} is a protocol violation the server must close the"
                                   f" connection for {rule}")
            back, ack = await _connect(ctx, "c2", cid, clean=False)
            pub = await ctx.client("pub")
            payload = how.encode()
            await publish(pub, topic, payload, QoS.AT_LEAST_ONCE)
            got, missing, closed = await _awaited(back, [payload])
            flag = int(ack.session_present)
            if missing:
                raise Deviation(_missing_text(
                    back, f"after the server closed the connection for {how}, the session"
                    f" stored for {cid!r} must remain, its subscription to {topic!r} included"
                    f" [MQTT-3.1.2-4] (CONNACK session present {flag})", missing, closed, got))
            observe(f"c2: after the server closed the connection for {how}, the stored"
                    " session's subscription still delivers [MQTT-3.1.2-4]")
            require(ack.session_present,
                    f"c2: the session stored for {cid!r} was resumed (its subscription still"
                    " delivers): CONNACK session present must be 1 [MQTT-3.2.2-2]")
            await _hang_up(back)
