"""Will messages: published on an abrupt close, discarded on DISCONNECT (3.1.2.5 - 3.1.2.7).

A will is owed with no deadline in the specification: it is waited for up to
``Timing.obligation_bound`` ("not within N s"). That a will is *not* published is
judged only after a control will, from another client that drops its connection
later, has arrived at the same subscriber. The closes these checks lean on (a
second CONNECT, a QoS 3 PUBLISH, an expired keep alive) are required by other
statements, which the close steps cite: when the server does not close, those are
blamed and the will statements are not judged.
"""

from __future__ import annotations

import contextlib
import time

from mqttref.impl.codec.packets import Connect, Publish, QoS, Will
from mqttref.oracle.checks.session import (
    _awaited,
    _copies,
    _grant,
    _hang_up,
    _missing_text,
    _owed,
    _subscribed,
)
from mqttref.oracle.evidence import Deviation, Inconclusive, NotApplicable, observe
from mqttref.oracle.flows import first_packet_is_connack, publish, require, summary
from mqttref.oracle.probe import Probe
from mqttref.oracle.scenario import V311, Context, check

PUBLISHED = "the will must be published when the network connection closes without a" \
            " DISCONNECT [MQTT-3.1.2-8]"
CONTROL_WILL = b"control will"


async def _willer(ctx: Context, name: str, topic: str, payload: bytes, *,
                  qos: QoS = QoS.AT_LEAST_ONCE, retain: bool = False, keep_alive: int = 60,
                  client_id: str | None = None, clean: bool = True) -> Probe:
    """A connected client with a will.

    A server MAY check further restrictions on a CONNECT and refuse it, closing
    the connection (it SHOULD send a non-zero CONNACK first; section 3.1.4): a
    server that grants at most QoS 1 may refuse a QoS 2 will that way. That
    leaves a check of a QoS 2 will nothing to judge.
    """
    will = Will(topic, payload, qos, retain)
    if qos < QoS.EXACTLY_ONCE:
        return await ctx.client(name, client_id, clean=clean, keep_alive=keep_alive, will=will)
    cid = client_id if client_id is not None else ctx.client_id(name)
    if not clean:
        ctx.persistent.add(cid)
    probe = await ctx.open(name)
    await probe.send(Connect(V311, cid, clean, keep_alive, will))
    refused = ("refuses a CONNECT whose will has QoS 2{how}: a further restriction a server MAY"
               " check (section 3.1.4), leaving no QoS 2 will to publish")
    try:
        connack = await first_packet_is_connack(probe)
    except Deviation:
        if probe.closed is not None:
            raise NotApplicable(refused.format(how=" by closing the connection")) from None
        raise
    if connack.return_code != 0:
        raise NotApplicable(refused.format(how=f" with CONNACK 0x{connack.return_code:02X}"))
    return probe


async def _control_will(ctx: Context, topic: str) -> None:
    """Another client whose will, on ``topic``, is published now: the control."""
    control = await _willer(ctx, "ctrl", topic, CONTROL_WILL)
    control.abort()


async def _dropped_then_control(ctx: Context, watcher: Probe, topic: str, name: str,
                                client_id: str) -> list[Publish]:
    """A connection of ``client_id`` without a will (its persistent session resumed) is
    dropped, then a control will on ``topic`` is published: what ``watcher`` got, once
    the control will arrived, so that a silence before it is evidence."""
    dropped = await ctx.client(name, client_id, clean=False)
    dropped.abort()
    await _control_will(ctx, topic)
    return await _owed(watcher, [CONTROL_WILL], PUBLISHED)


@check("MQTT-3.1.2-8", "MQTT-3.1.2-16", "MQTT-3.1.2-10", "MQTT-3.3.1-9",
       summary="abrupt close: the will is published once, as a non-retained message")
async def will_published_on_abrupt_close(ctx: Context) -> None:
    """A dropped connection publishes the will [MQTT-3.1.2-8], once, to the live
    subscriber with RETAIN=0 [MQTT-3.3.1-9]; Will Retain 0 means it is not kept as
    a retained message [MQTT-3.1.2-16] (a new subscription gets only a control
    topic's retained message); and once published it is gone from the stored
    session [MQTT-3.1.2-10]: the same persistent session, resumed without a will
    and dropped again, publishes nothing."""
    topic, retained = ctx.topic("will", "abrupt"), ctx.topic("will", "abrupt-control")
    pub = await ctx.client("pub")
    ctx.retained.add(retained)
    await publish(pub, retained, b"retained control", QoS.AT_LEAST_ONCE, retain=True)
    watcher, (granted,) = await _subscribed(ctx, "watch", (topic, QoS.AT_LEAST_ONCE))
    cid = ctx.client_id("willer")
    willer = await _willer(ctx, "willer", topic, b"gone", client_id=cid, clean=False)
    willer.abort()
    got = _copies(await _owed(watcher, [b"gone"], PUBLISHED), b"gone")
    if granted >= 1:  # a QoS 0 grant allows duplicate copies of a QoS 1 message [MQTT-3.8.4-6]
        require(len(got) == 1, "watch: the will is published once and then removed"
                f" [MQTT-3.1.2-10]; got {summary(got)}")
    require(all(not m.retain for m in got), "watch: a PUBLISH sent because it matches an"
            f" established subscription must have RETAIN=0 [MQTT-3.3.1-9]; got {summary(got)}")
    require(all(m.qos == min(1, granted) for m in got),
            f"watch: a QoS 1 will to a subscription granted QoS {granted} arrives at QoS"
            f" {min(1, granted)} [MQTT-3.8.4-6]; got {summary(got)}")
    # Two SUBSCRIBEs: the will's topic, then the control on its own, so that a server
    # handling only the first filter of a SUBSCRIBE [MQTT-3.8.4-4] is not blamed here.
    new, _ = await _subscribed(ctx, "new", (topic, QoS.AT_LEAST_ONCE))
    await _grant(new, (retained, QoS.AT_LEAST_ONCE))
    later = await _owed(new, [b"retained control"], "a retained message must be stored"
                        " [MQTT-3.3.1-5] and a new subscription sent the retained message of"
                        " each matching topic [MQTT-3.3.1-6]")
    require(not _copies(later, b"gone"),
            "new: a will with Will Retain 0 must be published as a non-retained message"
            f" [MQTT-3.1.2-16]; a new subscription got {summary(later)}")
    rest = await _dropped_then_control(ctx, watcher, topic, "again", cid)
    require(not _copies(rest, b"gone"),
            "watch: a published will must be removed from the stored session [MQTT-3.1.2-10];"
            f" after the session was resumed without a will and dropped, got {summary(rest)}")


@check("MQTT-3.14.4-3", "MQTT-3.1.2-10", "MQTT-3.1.2-8",
       summary="DISCONNECT then close: the will is discarded, not published")
async def no_will_after_disconnect(ctx: Context) -> None:
    """On DISCONNECT the server discards the will without publishing it
    [MQTT-3.14.4-3] [MQTT-3.1.2-10]; a control client's will, dropped afterwards,
    arrives at the same subscriber [MQTT-3.1.2-8], so the silence is evidence."""
    topic = ctx.topic("will", "disconnect")
    watcher, _ = await _subscribed(ctx, "watch", (topic, QoS.AT_LEAST_ONCE))
    willer = await _willer(ctx, "willer", topic, b"must not appear")
    await _hang_up(willer)
    await _control_will(ctx, topic)
    got = await _owed(watcher, [CONTROL_WILL], PUBLISHED)
    require(not _copies(got, b"must not appear"),
            "watch: on DISCONNECT the will must be discarded without publishing it"
            f" [MQTT-3.14.4-3] [MQTT-3.1.2-10]; got {summary(got)}")


@check("MQTT-3.1.2-17", "MQTT-3.3.1-8", "MQTT-3.3.1-9",
       summary="will retain 1: published as a retained message")
async def will_published_retained(ctx: Context) -> None:
    """Will Retain 1: the will is published as a retained message [MQTT-3.1.2-17]:
    the live subscriber gets it with RETAIN=0 [MQTT-3.3.1-9], a later new
    subscription with RETAIN=1 [MQTT-3.3.1-8]."""
    topic = ctx.topic("will", "retained")
    ctx.retained.add(topic)
    willer = await _willer(ctx, "willer", topic, b"retained will", retain=True)
    watcher, _ = await _subscribed(ctx, "watch", (topic, QoS.AT_LEAST_ONCE))
    willer.abort()
    live = _copies(await _owed(watcher, [b"retained will"], PUBLISHED), b"retained will")
    require(all(not m.retain for m in live),
            "watch: a PUBLISH sent because it matches an established subscription must have"
            f" RETAIN=0 [MQTT-3.3.1-9]; got {summary(live)}")
    late, _ = await _subscribed(ctx, "late", (topic, QoS.AT_LEAST_ONCE))
    got = _copies(await _owed(late, [b"retained will"], "a will with Will Retain 1 must be"
                              " published as a retained message [MQTT-3.1.2-17]"),
                  b"retained will")
    require(all(m.retain for m in got),
            "late: a message sent because of a new subscription must have RETAIN=1"
            f" [MQTT-3.3.1-8]; got {summary(got)}")


@check("MQTT-3.1.2-8", "MQTT-3.8.4-6",
       summary="will QoS 2 reaches each subscriber at the lower of QoS 2 and its granted QoS")
async def will_qos_respected(ctx: Context) -> None:
    """A QoS 2 will goes out at the minimum of QoS 2 and each subscription's grant
    [MQTT-3.8.4-6]: at QoS 2 to a QoS 2 grant, at QoS 1 to a server's QoS 1 grant
    (it may grant less [MQTT-3.8.4-6]) and at QoS 0 to a QoS 0 subscription.

    The will was published [MQTT-3.1.2-8] when at least one subscriber got it; a
    subscriber then missing its copy is a message not added to the session of
    every client with a matching subscription [MQTT-4.5.0-1]."""
    topic = ctx.topic("will", "qos")
    high, (g_high,) = await _subscribed(ctx, "high", (topic, QoS.EXACTLY_ONCE))
    low, (g_low,) = await _subscribed(ctx, "low", (topic, QoS.AT_MOST_ONCE))
    willer = await _willer(ctx, "willer", topic, b"qos2 will", qos=QoS.EXACTLY_ONCE)
    willer.abort()
    waits = [(probe, granted, *await _awaited(probe, [b"qos2 will"]))
             for probe, granted in ((high, g_high), (low, g_low))]
    if all(missing for _, _, _, missing, _ in waits):
        probe, _, got_all, missing, closed = waits[0]
        raise Deviation(_missing_text(probe, PUBLISHED, missing, closed, got_all))
    for probe, _, got_all, missing, closed in waits:
        if missing:
            raise Deviation(_missing_text(
                probe, "the will was published (another subscriber received it): it must be"
                " added to the session of each client with a matching subscription"
                " [MQTT-4.5.0-1]", missing, closed, got_all))
    observe(f"high, low: {PUBLISHED}")
    for probe, granted, got_all, _, _ in waits:
        got = _copies(got_all, b"qos2 will")
        due = min(2, granted)
        require(all(m.qos == due for m in got),
                f"{probe.name}: a QoS 2 will to a subscription granted QoS {granted} must arrive"
                f" at QoS {due} [MQTT-3.8.4-6]; got {summary(got)}")


@check("MQTT-3.1.2-12", summary="no will flag: nothing published when the connection drops")
async def no_will_without_flag(ctx: Context) -> None:
    """A connection without the Will Flag publishes no will when it drops
    [MQTT-3.1.2-12], not even the will an earlier connection of the same persistent
    session carried (and discarded on DISCONNECT [MQTT-3.14.4-3]). Each silence is
    judged after a control will arrived."""
    topic = ctx.topic("will", "noflag")
    watcher, _ = await _subscribed(ctx, "watch", (topic, QoS.AT_LEAST_ONCE))
    cid = ctx.client_id("plain")
    first = await _willer(ctx, "first", topic, b"old will", client_id=cid, clean=False)
    await _hang_up(first)
    await _control_will(ctx, topic)
    got = await _owed(watcher, [CONTROL_WILL], PUBLISHED)
    require(not _copies(got, b"old will"),
            "watch: on DISCONNECT the will must be discarded without publishing it"
            f" [MQTT-3.14.4-3]; got {summary(got)}")
    got = await _dropped_then_control(ctx, watcher, topic, "plain", cid)
    require(not _copies(got, b"old will"),
            "watch: a connection with the Will Flag 0 must publish no will when it ends"
            f" [MQTT-3.1.2-12]; got {summary(got)}")


@check("MQTT-3.1.2-8",
       summary="keep alive expiry counts as a network failure: the will is published")
async def will_on_keep_alive_expiry(ctx: Context) -> None:
    """With keep alive 1 s and no packet from the client, the server disconnects
    it as if the network had failed (3.1.2.10), so the will is published
    [MQTT-3.1.2-8]. How soon the close must come [MQTT-3.1.2-24] is judged by
    ``keep_alive_expiry_closes`` alone, whose scenario is built so that a broker
    that sweeps its timers late is late on every run; here the close is only
    the precondition of the will, waited for however late it comes."""
    topic = ctx.topic("will", "keepalive")
    watcher, _ = await _subscribed(ctx, "watch", (topic, QoS.AT_LEAST_ONCE))
    before = time.monotonic()
    willer = await _willer(ctx, "willer", topic, b"timed out", keep_alive=1)
    with contextlib.suppress(Deviation):
        await willer.wait_close(ctx.timing.bound(15.0))
    if willer.closed is None:
        raise Inconclusive("the server did not close the idle connection within 15 s: no will"
                           " is owed yet (the close itself is judged by"
                           " keep_alive_expiry_closes)")
    if time.monotonic() - before < 1.0:
        raise Inconclusive("the server closed the connection before the keep alive itself had"
                           " passed: not a keep-alive close")
    await _owed(watcher, [b"timed out"], "a keep-alive close is a network failure: the will"
                " must be published [MQTT-3.1.2-8]")


@check("MQTT-3.1.2-8", "MQTT-4.8.0-1",
       summary="a close for a protocol violation publishes the will")
async def will_on_protocol_violation(ctx: Context) -> None:
    """A PUBLISH with both QoS bits set is a protocol violation the server must
    close the connection for [MQTT-3.3.1-4] [MQTT-4.8.0-1]; that close is not a
    DISCONNECT, so the will is published [MQTT-3.1.2-8]. The will is also what tells
    this close from a normal one."""
    topic = ctx.topic("will", "violation")
    watcher, _ = await _subscribed(ctx, "watch", (topic, QoS.AT_LEAST_ONCE))
    willer = await _willer(ctx, "willer", topic, b"violated")
    await willer.send(bytes((0x36, 0x03, 0x00, 0x01, 0x61)), "PUBLISH with QoS bits 11")
    await willer.wait_close(why="a PUBLISH with both QoS bits set is a protocol violation: the"
                            " server must close the connection [MQTT-3.3.1-4] [MQTT-4.8.0-1]")
    await _owed(watcher, [b"violated"], "a close for a protocol violation is not a DISCONNECT:"
                " the will must be published [MQTT-3.1.2-8]")


@check("MQTT-3.1.2-8",
       summary="a close for a second CONNECT (a protocol violation) publishes the will")
async def will_on_second_connect(ctx: Context) -> None:
    """Found by the model exploration against mosquitto 2.0.11 (findings M7); kept
    here so that it reproduces on every run. The second CONNECT is a protocol
    violation the server must close the connection for [MQTT-3.1.0-2], and a close
    for one is among the closes that publish the will (3.1.2.5) [MQTT-3.1.2-8]."""
    topic = ctx.topic("will", "second-connect")
    watcher, _ = await _subscribed(ctx, "watch", (topic, QoS.AT_LEAST_ONCE))
    cid = ctx.client_id("willer")
    willer = await _willer(ctx, "willer", topic, b"twice", client_id=cid)
    await willer.send(Connect(V311, cid, True, 60), "second CONNECT")
    await willer.wait_close(why="a second CONNECT is a protocol violation: the server must close"
                            " the connection [MQTT-3.1.0-2]")
    await _owed(watcher, [b"twice"], "a close for a protocol violation is not a DISCONNECT: the"
                " will must be published [MQTT-3.1.2-8]")
