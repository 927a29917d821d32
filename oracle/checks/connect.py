"""CONNECT and CONNACK: the first packets, client identifiers, keep alive (3.1, 3.2).

Every step cites the statement that makes its outcome the server's business;
refusals and closes cite the reaction rules (MQTT-3.1.4-1, MQTT-3.2.2-4/-5,
MQTT-4.8.0-1, ...), never the client-side rules our probes break on purpose
(MQTT-3.1.0-1, MQTT-3.1.2-9/-11/-13/-14/-15/-22, MQTT-3.1.3-3/-4/-7/-10/-11).
An absence ("nothing was delivered") counts only next to a control message
that had to arrive and did.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    QoS,
    Will,
)
from mqttref.oracle import raw
from mqttref.oracle.checks.common import refused_without_connack, still_serving
from mqttref.oracle.evidence import observe
from mqttref.oracle.flows import (
    acknowledge,
    check_outgoing,
    first_packet_is_connack,
    publish,
    require,
    subscribe,
)
from mqttref.oracle.probe import (
    Closed,
    Deviation,
    Garbled,
    Inconclusive,
    NotApplicable,
    Probe,
    Received,
    describe,
)
from mqttref.oracle.scenario import V311, Context, check

KEEP_ALIVES = (2, 3, 4)
"""Keep alives of the silent clients of ``keep_alive_expiry_closes``: deadlines of 3, 4.5
and 6 s, spread so that a server that only sweeps now and then cannot meet them all."""

ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

DELIVERY = "[MQTT-3.3.5-1]"
"""A PUBLISH matching a subscription must be delivered: the control messages."""


async def _close(probe: Probe, why: str, bound: float | None = None) -> list[Packet]:
    """Wait for the server's close without recording it as evidence yet.

    For scenarios that must first rule out a coincidental close before the
    close counts; a missing close is a deviation from ``why``.
    """
    try:
        return await probe.wait_close(bound)
    except Deviation as exc:
        raise Deviation(f"{exc}: {why}") from None


def _answers(seen: list[Packet]) -> str:
    return f"; it answered {', '.join(describe(p) for p in seen)} first" if seen else ""


async def _arrivals(probe: Probe, payload: bytes, why: str) -> list[Publish]:
    """Every PUBLISH reaching ``probe`` until the one carrying ``payload`` and quiet after it.

    The message carrying ``payload`` is owed (``why`` cites what owes it) with
    no deadline in the specification: it must arrive within the obligation
    bound. Each PUBLISH is acknowledged as it arrives. The messages returned
    are what a check of an absence looks at: the absence means something only
    because the owed message came through the same subscriber.
    """
    bound = probe.timing.obligation_bound
    deadline = time.monotonic() + bound
    messages: list[Publish] = []

    async def take(packets: list[Packet]) -> None:
        for message in check_outgoing(probe, packets):
            messages.append(message)
            await acknowledge(probe, message)

    def arrived() -> bool:
        return any(m.payload == payload for m in messages)

    waiting, probe.pending = probe.pending, []
    await take(waiting)
    while not arrived():
        event = await probe.next_event(max(deadline - time.monotonic(), 0.0))
        if isinstance(event, Received):
            await take([event.packet])
        elif isinstance(event, Garbled):
            raise Deviation(f"{probe.name}: the server sent malformed bytes: {event.error}")
        else:
            break
    late = "" if arrived() else f"; not within {bound:.1f}s"
    require(arrived(), f"{probe.name}: {payload!r} must arrive: {why}{late}")
    await take(await probe.quiet())
    return messages


async def _before_connect(ctx: Context, kind: str, data: bytes) -> None:
    """``kind`` as the first packet of a connection: closed, nothing answered [MQTT-4.8.0-1].

    A silent connection opened first tells a reaction to the packet from a
    server that closes every connection without CONNECT after a while: if the
    silent one is closed too, the close is no evidence.
    """
    idle = await ctx.open("idle")
    probe = await ctx.open(f"{kind.lower()[:3]}1st")
    await probe.send(data, f"{kind} as the first packet, before any CONNECT")
    why = f"a {kind} before CONNECT is a protocol violation [MQTT-4.8.0-1]"
    seen = await _close(probe, why)
    await asyncio.sleep(0)
    if idle.closed is not None:
        raise Inconclusive(f"the server also closed a connection that sent nothing: the close"
                           f" after a {kind} before CONNECT is no reaction to it")
    require(not seen, f"{probe.name}: {why}: the server must close the connection without"
            f" processing it{_answers(seen)}")


@check("MQTT-4.8.0-1",
       summary="PINGREQ, SUBSCRIBE or PUBLISH before CONNECT: closed unanswered, not delivered")
async def first_packet_must_be_connect(ctx: Context) -> None:
    """A packet other than CONNECT first breaks [MQTT-3.1.0-1], which binds the client;
    the server's reaction is judged under [MQTT-4.8.0-1]: close, process nothing.

    Each packet is its own scenario. A DISCONNECT first is not tried: a valid
    DISCONNECT ends the connection too, so its close would tell nothing.
    """
    for kind, data in (("PINGREQ", bytes((0xC0, 0))),
                       ("SUBSCRIBE", raw.subscribe(1, (ctx.topic("early", "sub"), 0)))):
        async with ctx.scenario(f"{kind} before CONNECT"):
            await _before_connect(ctx, kind, data)
    async with ctx.scenario("PUBLISH before CONNECT"):
        topic = ctx.topic("early")
        watcher = await ctx.subscriber("watch", (topic, QoS.AT_MOST_ONCE))
        await _before_connect(ctx, "PUBLISH", raw.publish(topic, b"before connect"))
        pub = await ctx.client("pub")
        await publish(pub, topic, b"control", QoS.AT_LEAST_ONCE)
        got = await _arrivals(watcher, b"control",
                              f"a PUBLISH from a connected client to a subscribed topic {DELIVERY}")
        early = [m for m in got if m.payload == b"before connect"]
        require(not early, "watch: a PUBLISH sent before CONNECT is a protocol violation; it"
                " must not be processed, only its connection closed [MQTT-4.8.0-1]"
                + ("; it was delivered" if early else ""))


@check("MQTT-3.1.0-2", summary="a second CONNECT on one connection closes it, unanswered")
async def second_connect_closes(ctx: Context) -> None:
    """The second CONNECT carries another client id, so the close cannot be a takeover
    of the connection's own client id [MQTT-3.1.4-2]; a CONNACK to it would show it was
    processed as a CONNECT rather than as a protocol violation [MQTT-3.1.0-2]."""
    probe = await ctx.client("c1")
    await probe.send(Connect(V311, ctx.client_id("two"), True, 60),
                     "second CONNECT, another client id")
    why = "a second CONNECT is a protocol violation [MQTT-3.1.0-2]"
    seen = await _close(probe, why)
    require(not seen, f"c1: {why}: the server must disconnect without answering it{_answers(seen)}")


async def _accepted(ctx: Context, name: str, client_id: str) -> None:
    """A CONNECT with ``client_id`` and clean session 1: CONNACK 0, session present 0."""
    why = f"a client id of {len(client_id)} characters from the 62 allowed [MQTT-3.1.3-5]"
    probe = await ctx.open(name)
    await probe.send(Connect(V311, client_id, True, 60))
    connack = await first_packet_is_connack(probe, f"{why} [MQTT-3.1.4-4]")
    if connack.return_code in (0x03, 0x04, 0x05):
        raise NotApplicable(f"refuses a valid CONNECT with return code 0x{connack.return_code:02X}"
                            " (allowed by Table 3.1 of section 3.2.2.3)")
    require(connack.return_code == 0,
            f"{name}: {why} must be allowed: CONNACK return code 0 [MQTT-3.1.4-4], got"
            f" 0x{connack.return_code:02X}")
    require(not connack.session_present,
            f"{name}: an accepted clean session 1 must get session present 0 [MQTT-3.2.2-1]")
    await probe.send(Disconnect())


@check("MQTT-3.2.0-1", "MQTT-3.1.4-4", "MQTT-3.2.2-1", "MQTT-3.1.3-5",
       summary="valid CONNECTs with 23- and 5-character ids: CONNACK 0, session present 0")
async def connack_accepts_valid_connect(ctx: Context) -> None:
    """The 23-character id draws from the whole alphabet of [MQTT-3.1.3-5] (upper case
    included); the short one stays at 5 characters so that it cannot take over a client
    of someone else using the broker."""
    async with ctx.scenario("23-character client id"):
        tail = "".join(ctx.rng.choice(ALNUM) for _ in range(23))
        await _accepted(ctx, "c1", (ctx.token + tail)[:23])
    async with ctx.scenario("5-character client id"):
        await _accepted(ctx, "c2", ALNUM[ctx.rng.randrange(10, 62)] + ctx.token[:4])


@check("MQTT-3.1.2-2", "MQTT-3.2.2-4", "MQTT-3.2.2-5",
       summary="protocol level 7: CONNACK 0x01, session present 0, then close")
async def unsupported_protocol_level(ctx: Context) -> None:
    probe = await ctx.open("c1")
    await probe.send(raw.connect(ctx.client_id("lvl"), level=7), "CONNECT 'MQTT' level 7")
    connack = await first_packet_is_connack(probe, "for an unsupported level [MQTT-3.1.2-2]")
    require(connack.return_code == 0x01, "c1: an unsupported level must be refused with 0x01"
            f" [MQTT-3.1.2-2], got 0x{connack.return_code:02X}")
    require(not connack.session_present,
            "c1: a refusing CONNACK must have session present 0 [MQTT-3.2.2-4]")
    await probe.wait_close(why="after CONNACK 0x01 [MQTT-3.1.2-2] [MQTT-3.2.2-5]")


@check("MQTT-3.1.2-1", summary="protocol name 'MQTX': never accepted as MQTT 3.1.1")
async def wrong_protocol_name(ctx: Context) -> None:
    """The server MAY disconnect, or go on under another specification, never under this
    one [MQTT-3.1.2-1]: a CONNACK 0 accepts the client as MQTT. Silence is the second
    choice and leaves nothing to judge."""
    probe = await ctx.open("c1")
    await probe.send(raw.connect(ctx.client_id("nam"), name=b"MQTX"), "CONNECT 'MQTX' level 4")
    event = await probe.next_event(ctx.timing.reply_bound)
    if event is None:
        raise NotApplicable("keeps a connection whose CONNECT names the protocol 'MQTX' open"
                            " without answering: it MAY go on under another specification"
                            " [MQTT-3.1.2-1]")
    if isinstance(event, Garbled):
        raise Deviation(f"c1: the server sent malformed bytes: {event.error}")
    if isinstance(event, Received):
        packet = event.packet
        require(not (isinstance(packet, ConnAck) and packet.return_code == 0),
                "c1: a CONNECT naming the protocol 'MQTX' must not be processed as MQTT 3.1.1"
                f" [MQTT-3.1.2-1]; got {describe(packet)}")
        if isinstance(packet, ConnAck):
            await probe.wait_close(why=f"after CONNACK 0x{packet.return_code:02X}"
                                   " [MQTT-3.2.2-5]")
            return
        raise Inconclusive(f"the server answered a CONNECT naming 'MQTX' with {describe(packet)}")
    require(isinstance(event, Closed), "c1: a CONNECT naming the protocol 'MQTX' was not"
            " accepted: the server disconnected [MQTT-3.1.2-1]")
    await still_serving(ctx)


@check("MQTT-3.1.2-3", "MQTT-3.1.4-1", summary="CONNECT reserved flag 1: closed without CONNACK")
async def connect_reserved_flag(ctx: Context) -> None:
    await refused_without_connack(
        ctx, "c1", raw.connect(ctx.client_id("rsv"), flags=0x03), "CONNECT with reserved flag 1",
        why="[MQTT-3.1.2-3]",
    )


@check("MQTT-3.1.3-8", "MQTT-3.1.3-9", "MQTT-3.2.2-4", "MQTT-3.2.2-5",
       summary="empty client id with clean session 0: CONNACK 0x02, then close")
async def empty_client_id_persistent_rejected(ctx: Context) -> None:
    """The probe breaks [MQTT-3.1.3-7] (client side) on purpose; the server's answer is
    [MQTT-3.1.3-8], and its close after the 0x02 is also that of [MQTT-3.1.3-9]."""
    probe = await ctx.open("c1")
    await probe.send(Connect(V311, "", False, 60), "empty client id, clean session 0")
    connack = await first_packet_is_connack(probe, "0x02 for an empty id [MQTT-3.1.3-8]")
    require(connack.return_code != 0, "c1: an empty id with clean session 0 must be refused"
            " with 0x02 [MQTT-3.1.3-8], got 0x00")
    require(connack.return_code == 0x02, "c1: an empty id with clean session 0 must be refused"
            " with 0x02 [MQTT-3.1.3-8], the code of a rejected client id [MQTT-3.1.3-9], got"
            f" 0x{connack.return_code:02X}")
    require(not connack.session_present,
            "c1: a refusing CONNACK must have session present 0 [MQTT-3.2.2-4]")
    await probe.wait_close(why="after CONNACK 0x02 [MQTT-3.1.3-8] [MQTT-3.1.3-9] [MQTT-3.2.2-5]")


async def _refused_then_data(ctx: Context, label: str, connect: bytes, note: str,
                             why: str) -> None:
    """A refused CONNECT followed, in the same write, by a QoS 1 PUBLISH.

    ``why`` cites the statement that makes the refusal mandatory: an acceptance
    blocks the scenario on it. The PUBLISH must not be processed
    [MQTT-3.1.4-5]: no PUBACK, no delivery, while a control message published
    afterwards by a connected client does reach the same subscriber.
    """
    topic = ctx.topic("refused", label)
    watcher = await ctx.subscriber("watch", (topic, QoS.AT_MOST_ONCE))
    probe = await ctx.open("c1")
    data = connect + raw.publish(topic, b"must not be processed", flags=0x02, packet_id=7)
    await probe.send(data, f"{note} + QoS 1 PUBLISH id 7 in one write")
    connack = await first_packet_is_connack(probe, why)
    if connack.return_code == 0:
        raise Deviation(f"c1: {note} must be refused {why}, it was accepted")
    seen = await probe.wait_close(why=f"after CONNACK 0x{connack.return_code:02X} [MQTT-3.2.2-5]")
    if any(isinstance(p, PubAck) for p in seen):
        raise Deviation("c1: the server acknowledged a PUBLISH sent after a CONNECT it refused"
                        f" [MQTT-3.1.4-5]{_answers(seen)}")
    pub = await ctx.client("pub")
    await publish(pub, topic, b"control", QoS.AT_LEAST_ONCE)
    got = await _arrivals(watcher, b"control",
                          f"a PUBLISH from a connected client to a subscribed topic {DELIVERY}")
    leaked = [m for m in got if m.payload == b"must not be processed"]
    require(not leaked, "watch: data sent after a refused CONNECT must not be processed"
            " [MQTT-3.1.4-5]" + ("; its PUBLISH was delivered" if leaked else ""))


@check("MQTT-3.1.4-5", summary="data after a refused CONNECT is not processed")
async def nothing_processed_after_refused_connect(ctx: Context) -> None:
    """Two refusals every server must make: an empty id with clean session 0
    [MQTT-3.1.3-8] and an unsupported protocol level [MQTT-3.1.2-2]."""
    async with ctx.scenario("after an empty id with clean session 0"):
        await _refused_then_data(ctx, "empty-id", raw.connect("", flags=0x00),
                                 "CONNECT with an empty id and clean session 0", "[MQTT-3.1.3-8]")
    async with ctx.scenario("after protocol level 7"):
        await _refused_then_data(ctx, "level", raw.connect(ctx.client_id("lvl"), level=7),
                                 "CONNECT with protocol level 7", "[MQTT-3.1.2-2]")


def _empty_id_code(connack: ConnAck) -> None:
    """The return codes a CONNECT with an empty client id may get, and what each means.

    0 allows it [MQTT-3.1.3-6]; 0x02 rejects the id [MQTT-3.1.3-9]; 0x03 to 0x05
    refuse the connection for reasons Table 3.1 allows any server. Any other
    code (0x01 is for the protocol level) rejects the id with the wrong code.
    """
    code = connack.return_code
    if code in (0x03, 0x04, 0x05):
        raise NotApplicable(f"refuses a CONNECT with an empty client id with return code"
                            f" 0x{code:02X} (allowed by Table 3.1 of section 3.2.2.3)")
    if code not in (0x00, 0x02):
        raise Deviation(f"an empty client id is either allowed (return code 0) or rejected with"
                        f" 0x02 [MQTT-3.1.3-9]; got 0x{code:02X}")


@check("MQTT-3.1.3-6",
       summary="empty client id with clean session 1: a unique id assigned, or 0x02 and close")
async def empty_client_id_clean_session(ctx: Context) -> None:
    """A server MAY allow an empty client id; if it does, each such client gets a unique
    id of its own [MQTT-3.1.3-6]: a second empty-id client must not take over the first.
    A refusal with 0x02 is the legal choice (3.1.3-6 is then NOT APPLICABLE), and the
    close after it is still judged [MQTT-3.1.3-9] [MQTT-3.2.2-5]."""
    first = await ctx.open("c1")
    await first.send(Connect(V311, "", True, 60), "empty client id, clean session 1")
    owed = "(0, or 0x02 rejecting the id [MQTT-3.1.3-9])"
    connack = await first_packet_is_connack(first, owed)
    _empty_id_code(connack)
    if connack.return_code == 0x02:
        require(not connack.session_present,
                "c1: a refusing CONNACK must have session present 0 [MQTT-3.2.2-4]")
        await first.wait_close(why="after CONNACK 0x02 [MQTT-3.1.3-9] [MQTT-3.2.2-5]")
        raise NotApplicable("refuses an empty client id with CONNACK 0x02 (allowed: a server MAY"
                            " allow empty ids [MQTT-3.1.3-6])", "MQTT-3.1.3-6")
    require(not connack.session_present,
            "c1: an accepted clean session 1 must get session present 0 [MQTT-3.2.2-1]")
    second = await ctx.open("c2")
    await second.send(Connect(V311, "", True, 60), "a second empty client id, clean session 1")
    connack2 = await first_packet_is_connack(second, owed)
    _empty_id_code(connack2)
    if connack2.return_code == 0x02:
        raise NotApplicable("refuses a second empty client id while the first is connected"
                            " (allowed: a server MAY allow empty ids [MQTT-3.1.3-6])",
                            "MQTT-3.1.3-6")
    require(not connack2.session_present,
            "c2: an accepted clean session 1 must get session present 0 [MQTT-3.2.2-1]")
    require(await first.is_open(), "c1: two clients with empty ids must each be assigned a"
            " unique client id [MQTT-3.1.3-6]: the second must not take over the first")


@check("MQTT-3.1.4-2", "MQTT-3.1.3-2", "MQTT-3.1.2-6", "MQTT-3.1.4-3",
       summary="same client id again: the old connection closed; clean 1 starts afresh,"
               " clean 0 resumes the session")
async def takeover_closes_existing(ctx: Context) -> None:
    """A second connection with a connected client's id closes the first [MQTT-3.1.4-2].
    With clean session 1 the old subscription is gone [MQTT-3.1.2-6] [MQTT-3.1.4-3]: a
    message to it is not delivered while one to the new session's own subscription is.
    With clean session 0 the session the client id identifies goes on [MQTT-3.1.3-2]:
    session present 1 and the old subscription delivers. The subscription is judged
    before the flag: with session present 1 (the session was found by its client id)
    one that no longer delivers was lost from the resumed session [MQTT-3.1.2-4]
    [MQTT-4.1.0-1]; with session present 0 the session is gone [MQTT-3.1.2-4]; one
    that delivers makes session present 0 the flag's fault [MQTT-3.2.2-2]."""
    async with ctx.scenario("takeover with clean session 1"):
        cid = ctx.client_id("tko")
        stale, fresh = ctx.topic("takeover", "old"), ctx.topic("takeover", "new")
        old = await ctx.subscriber("old", (stale, QoS.AT_MOST_ONCE), client_id=cid, clean=False)
        new = await ctx.client("new", cid, clean=True, session_present=False)
        await old.wait_close(why="the same client id connected again [MQTT-3.1.4-2]")
        await subscribe(new, (fresh, QoS.AT_MOST_ONCE))
        pub = await ctx.client("pub")
        await publish(pub, stale, b"to the old session", QoS.AT_LEAST_ONCE)
        await publish(pub, fresh, b"to the new session", QoS.AT_LEAST_ONCE)
        got = await _arrivals(new, b"to the new session",
                              f"a PUBLISH to the new session's subscription {DELIVERY}")
        reused = [m for m in got if m.payload == b"to the old session"]
        require(not reused, "new: clean session 1 must discard the previous session, its"
                " subscription included [MQTT-3.1.2-6] [MQTT-3.1.4-3]"
                + ("; the old subscription delivered" if reused else ""))
    async with ctx.scenario("takeover with clean session 0"):
        cid = ctx.client_id("tkp")
        topic = ctx.topic("takeover", "kept")
        old = await ctx.subscriber("old", (topic, QoS.AT_MOST_ONCE), client_id=cid, clean=False)
        new = await ctx.open("new")
        await new.send(Connect(V311, cid, False, 60))
        ack = await first_packet_is_connack(new)
        if ack.return_code in (0x03, 0x04, 0x05):
            raise NotApplicable(f"refuses a valid CONNECT with return code"
                                f" 0x{ack.return_code:02X} (allowed by Table 3.1, section 3.2.2.3)")
        require(ack.return_code == 0,
                "new: a valid CONNECT must be accepted with return code 0 [MQTT-3.1.4-4]")
        await old.wait_close(why="the same client id connected again [MQTT-3.1.4-2]")
        pub = await ctx.client("pub")
        await publish(pub, topic, b"to the resumed session", QoS.AT_LEAST_ONCE)
        if ack.session_present:  # found by the client id: the subscription was lost from it
            lost = ("session present 1, and the resumed session must go on with its state, its"
                    " subscription included [MQTT-3.1.2-4] [MQTT-4.1.0-1]")
        else:  # the session is gone, as the flag says
            lost = ("the session the client id identifies must be stored and resumed"
                    " [MQTT-3.1.2-4]: session present 0, and its subscription does not deliver")
        await _arrivals(new, b"to the resumed session", lost)
        observe("new: the session the client id identifies went on after the takeover, its"
                " subscription delivering to the new connection [MQTT-3.1.3-2] [MQTT-3.1.4-3]"
                " [MQTT-3.1.2-4]")
        require(ack.session_present, "new: the session was resumed (its subscription delivers):"
                " CONNACK session present must be 1 [MQTT-3.2.2-2]")


async def _close_time(probe: Probe, until: float) -> float | None:
    """When ``probe`` was closed (monotonic), or None if still open at ``until``."""
    while True:
        event = await probe.next_event(max(until - time.monotonic(), 0.0))
        if event is None:
            return None
        if isinstance(event, Closed):
            return time.monotonic()
        if isinstance(event, Garbled):
            raise Deviation(f"{probe.name}: the server sent malformed bytes: {event.error}")
        probe.pending.append(event.packet)


async def _keep_talking(probe: Probe, interval: float, stop: asyncio.Event) -> bool:
    """PINGREQ every ``interval`` until ``stop``; False when the server closed meanwhile.

    A PINGREQ sent on an open connection and not answered while it stays open
    is a deviation [MQTT-3.12.4-1]; a close is reported, not judged here.
    """
    while not stop.is_set():
        if _is_closed(probe):
            return False
        await probe.send(PingReq())
        try:
            await probe.expect(PingResp, "PINGRESP to a PINGREQ [MQTT-3.12.4-1]")
        except Deviation:
            if _is_closed(probe):
                return False
            raise
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return not _is_closed(probe)


def _is_closed(probe: Probe) -> bool:
    """Whether the server has closed ``probe`` (read afresh after every await)."""
    return probe.closed is not None


@check("MQTT-3.1.2-24",
       summary="keep alive 2, 3 and 4 s and silence: each closed within 1.5 times it plus"
               " the margin, while a client sending PINGREQ stays")
async def keep_alive_expiry_closes(ctx: Context) -> None:
    """Silent clients with keep alives of 2, 3 and 4 s must each be disconnected within
    one and a half times their keep alive [MQTT-3.1.2-24] (``Timing.spec_deadline``
    adds the one measurement margin), counted from the CONNACK. They run at once, with
    deadlines 1.5 s apart, so a server that checks keep alives only every few seconds
    cannot meet them all by luck. A close before the keep alive itself has passed, or
    of a client that kept sending PINGREQ at half its keep alive, is not a keep-alive
    close: no evidence either way."""
    talker = await ctx.client("talk", keep_alive=KEEP_ALIVES[0])
    silent: list[tuple[int, Probe, float, float]] = []
    for keep_alive in KEEP_ALIVES:
        before = time.monotonic()
        probe = await ctx.client(f"ka{keep_alive}", keep_alive=keep_alive)
        silent.append((keep_alive, probe, before, time.monotonic()))
    stop = asyncio.Event()
    talking = asyncio.create_task(_keep_talking(talker, KEEP_ALIVES[0] / 2, stop))
    deadlines = [start + ctx.timing.spec_deadline(1.5 * ka) for ka, _, _, start in silent]
    try:
        closes = await asyncio.gather(*(_close_time(probe, deadline) for (_, probe, _, _), deadline
                                        in zip(silent, deadlines, strict=True)))
        late = [n for n, at in enumerate(closes) if at is None]
        if late:  # how late, for the report: wait a little longer for those
            extra = ctx.timing.reply_bound
            more = await asyncio.gather(*(_close_time(silent[n][1], deadlines[n] + extra)
                                          for n in late))
            for n, at in zip(late, more, strict=True):
                closes[n] = at
    finally:
        stop.set()
        still_talking = await talking
    timings = []
    for (ka, _, _, start), deadline, at in zip(silent, deadlines, closes, strict=True):
        took = f"closed after {at - start:.2f}s" if at is not None else "still open"
        timings.append(f"keep alive {ka}s: {took} (deadline {deadline - start:.2f}s)")
    summary = "; ".join(timings)
    ctx.trace.note(summary)
    overdue = [ka for (ka, _, _, _), deadline, at in zip(silent, deadlines, closes, strict=True)
               if at is None or at > deadline]
    if overdue:
        raise Deviation(f"a client silent for one and a half times its keep alive must be"
                        f" disconnected [MQTT-3.1.2-24]; not within that (plus"
                        f" {ctx.timing.spec_deadline(0):.1f}s margin) for keep alive"
                        f" {', '.join(f'{ka}s' for ka in overdue)}: {summary}")
    early = [ka for (ka, _, before, _), at in zip(silent, closes, strict=True)
             if at is not None and at - before < ka]
    if early or not still_talking:
        why = (f"closed before the keep alive itself had passed (keep alive"
               f" {', '.join(f'{ka}s' for ka in early)})" if early
               else "also closed the client that kept sending PINGREQ")
        raise Inconclusive(f"the server {why}: its closes are not keep-alive closes ({summary})")
    for (ka, _, _, start), at in zip(silent, closes, strict=True):
        assert at is not None
        observe(f"ka{ka}: silent with keep alive {ka}s: disconnected after {at - start:.2f}s,"
                " within one and a half times the keep alive [MQTT-3.1.2-24]")


@check("MQTT-3.12.4-1",
       summary="keep alive 1 s with PINGREQ every 0.5 s: each answered with PINGRESP")
async def keep_alive_kept_by_pingreq(ctx: Context) -> None:
    """PINGREQs paced within the keep alive over three keep-alive periods: each must be
    answered [MQTT-3.12.4-1]. The connection staying open is what a keep alive is for,
    but no statement requires it (MQTT-3.1.2-24 only requires closing silent clients),
    so a close ends the check inconclusive, not failed."""
    probe = await ctx.client("c1", keep_alive=1)
    stop = asyncio.Event()
    talking = asyncio.create_task(_keep_talking(probe, 0.5, stop))
    await asyncio.sleep(ctx.timing.bound(3.0))
    stop.set()
    if not await talking:
        raise Inconclusive("the server closed a client that sent PINGREQ every 0.5 s with keep"
                           " alive 1 s")


@check("MQTT-3.1.4-1", summary="password flag without user name flag: closed without CONNACK")
async def password_without_user_name(ctx: Context) -> None:
    """Breaks [MQTT-3.1.2-22] (client side): judged by the close [MQTT-3.1.4-1]."""
    data = raw.connect(ctx.client_id("pw"), flags=0x42, tail=raw.string(b"secret"))
    await refused_without_connack(ctx, "c1", data, "CONNECT with password flag, no user name flag")


@check("MQTT-3.1.4-1",
       summary="will retain without will flag: closed without CONNACK")
async def will_retain_without_will_flag(ctx: Context) -> None:
    """Breaks [MQTT-3.1.2-11] and [MQTT-3.1.2-15] (client side): judged by [MQTT-3.1.4-1]."""
    data = raw.connect(ctx.client_id("wr"), flags=0x22)
    await refused_without_connack(ctx, "c1", data, "CONNECT with will retain 1, will flag 0")


@check("MQTT-3.1.4-1",
       summary="will QoS 1 without will flag: closed without CONNACK")
async def will_qos_without_will_flag(ctx: Context) -> None:
    """Breaks [MQTT-3.1.2-11] and [MQTT-3.1.2-13] (client side): judged by [MQTT-3.1.4-1]."""
    data = raw.connect(ctx.client_id("wq"), flags=0x0A)
    await refused_without_connack(ctx, "c1", data, "CONNECT with will QoS 1, will flag 0")


@check("MQTT-3.1.4-1", summary="will QoS 3: closed without CONNACK")
async def will_qos_3(ctx: Context) -> None:
    """Breaks [MQTT-3.1.2-14] (client side): judged by [MQTT-3.1.4-1]."""
    tail = raw.string(ctx.topic("w")) + raw.string(b"will")
    data = raw.connect(ctx.client_id("w3"), flags=0x1E, tail=tail)
    await refused_without_connack(ctx, "c1", data, "CONNECT with will flag and will QoS 3")


@check("MQTT-3.1.4-1",
       summary="will flag set but no will topic or message: closed without CONNACK")
async def will_flag_without_will_fields(ctx: Context) -> None:
    """Breaks [MQTT-3.1.2-9] (client side): judged by [MQTT-3.1.4-1]."""
    data = raw.connect(ctx.client_id("wf"), flags=0x06)
    await refused_without_connack(ctx, "c1", data, "CONNECT with will flag 1 and no will fields")


@check("MQTT-3.1.4-1", summary="CONNECT without payload: closed without CONNACK")
async def connect_without_client_id(ctx: Context) -> None:
    """Breaks [MQTT-3.1.3-3] (client side): judged by [MQTT-3.1.4-1]."""
    body = raw.string(b"MQTT") + bytes((4, 0x02)) + raw.u16(60)
    await refused_without_connack(ctx, "c1", raw.frame(0x10, body), "CONNECT with no payload")


_UTF8 = "(ill-formed UTF-8 [MQTT-1.5.3-1])"


@check("MQTT-1.5.3-1", "MQTT-3.1.4-1",
       summary="client id that is not UTF-8: closed without CONNACK")
async def client_id_ill_formed_utf8(ctx: Context) -> None:
    """Breaks [MQTT-3.1.3-4] (client side): the close is owed under [MQTT-1.5.3-1],
    without a CONNACK under [MQTT-3.1.4-1]."""
    data = raw.connect(b"mqr\xff\xfe" + ctx.token.encode())
    await refused_without_connack(ctx, "c1", data, "CONNECT with client id bytes FF FE", _UTF8)


@check("MQTT-1.5.3-1", "MQTT-3.1.4-1",
       summary="will topic that is not UTF-8: closed without CONNACK")
async def will_topic_ill_formed_utf8(ctx: Context) -> None:
    """Breaks [MQTT-3.1.3-10] (client side): judged by [MQTT-1.5.3-1] and [MQTT-3.1.4-1]."""
    tail = raw.string(b"mqttref-check/\xc3\x28") + raw.string(b"will")
    data = raw.connect(ctx.client_id("wu"), flags=0x06, tail=tail)
    await refused_without_connack(ctx, "c1", data, "CONNECT with will topic bytes C3 28", _UTF8)


@check("MQTT-1.5.3-1", "MQTT-3.1.4-1",
       summary="user name that is not UTF-8: closed without CONNACK")
async def user_name_ill_formed_utf8(ctx: Context) -> None:
    """Breaks [MQTT-3.1.3-11] (client side): judged by [MQTT-1.5.3-1] and [MQTT-3.1.4-1]."""
    data = raw.connect(ctx.client_id("un"), flags=0x82, tail=raw.string(b"user\xed\xa0\x80"))
    await refused_without_connack(ctx, "c1", data,
                                  "CONNECT with user name holding an encoded surrogate", _UTF8)


@check("MQTT-3.14.1-1", "MQTT-3.14.4-3",
       summary="DISCONNECT with reserved flags: closed as a violation, so the will is published")
async def disconnect_reserved_flags(ctx: Context) -> None:
    """A valid DISCONNECT ends the connection too, so the close alone tells nothing. The
    will does: it is discarded on a DISCONNECT [MQTT-3.14.4-3] and published when the
    connection closes otherwise [MQTT-3.1.2-8], a protocol violation included (3.1.2.5).
    A client with a will sends a valid DISCONNECT first (its will must not appear), then
    another sends one with flags 0001: the server must validate the flags and disconnect
    it [MQTT-3.14.1-1] as for a violation, publishing its will."""
    topic = ctx.topic("will", "disconnect-flags")
    watcher = await ctx.subscriber("watch", (topic, QoS.AT_MOST_ONCE))
    valid = await ctx.client("valid", will=Will(topic, b"after a valid DISCONNECT"))
    await valid.send(Disconnect())
    try:
        await valid.wait_close()
    except Deviation:  # the server SHOULD close; a client MUST after DISCONNECT [MQTT-3.14.4-1]
        valid.abort()
    bad = await ctx.client("bad", will=Will(topic, b"after DISCONNECT flags 0001"))
    await bad.send(bytes((0xE1, 0)), "DISCONNECT with flags 0001")
    await _close(bad, "after a DISCONNECT with reserved flags set [MQTT-3.14.1-1]")
    got = await _arrivals(watcher, b"after DISCONNECT flags 0001",
                          "the will of a client closed for a DISCONNECT with reserved flags set:"
                          " that is no DISCONNECT but a violation [MQTT-3.14.1-1] [MQTT-3.1.2-8]")
    discarded = [m for m in got if m.payload == b"after a valid DISCONNECT"]
    require(not discarded, "watch: the will of a client that sent a valid DISCONNECT must be"
            " discarded [MQTT-3.14.4-3]" + ("; it was published" if discarded else ""))
