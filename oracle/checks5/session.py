"""MQTT 5.0 sessions (3.1.2.4, 3.1.2.11.2, 4.1): Clean Start and the Session Expiry
Interval across a disconnect.

A session is seen through its subscription: a resumed session still routes a message
published after the reconnect, a discarded one does not. A resumed session also holds the
QoS 1 message published to that subscription while the client was away: the state the
server resumes from [MQTT-3.1.2-5] includes the messages pending transmission (4.1), once
the server took ownership of them [MQTT-4.5.0-1]; from outside, a message lost in between
breaks one or the other, so its absence is blamed on both. An absence is judged only up
to a control message on another subscription that must arrive (a marker), and the
expiry is waited out with the spec's own number plus the one stated margin.
"""

from __future__ import annotations

import asyncio
import time

from mqttref.impl.codec.packets import Properties, QoS, Subscription
from mqttref.oracle.checks5.common import (
    check5,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import Inconclusive, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Probe
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE


async def _leave_with_session(ctx: Context, cid: str, topic: str,
                              expiry: int) -> tuple[int, int]:
    """Connect with ``expiry``, subscribe to ``topic``, DISCONNECT 0x00; the interval in
    force and the QoS granted.

    The server may replace the client's interval in its CONNACK (3.2.2.3.2); a
    replacement of 0 leaves no session to find, the server's right.
    """
    probe, connack = await connect5(ctx, "s", cid, props=Properties(session_expiry_interval=expiry))
    granted = connack.properties.session_expiry_interval
    interval = expiry if granted is None else granted
    if interval == 0:
        raise NotApplicable(f"sets the Session Expiry Interval to 0 in CONNACK for a request of"
                            f" {expiry} s (the server's right, 3.2.2.3.2)")
    granted = (await subscribe5(probe, Subscription(topic, Q1), exact=False)).return_codes[0]
    await probe.disconnect()
    return interval, granted


async def _routed(ctx: Context, probe: Probe, topic: str, why_routed: str | None,
                  why_absent: str | None) -> None:
    """Publish to ``topic``, then to a control topic ``probe`` subscribes to now; judge
    whether the ``topic`` message arrived before the control one."""
    control = ctx.topic("ctl", probe.name, str(probe.new_packet_id()))
    await subscribe5(probe, Subscription(control, Q1), exact=False)
    pub, _ = await connect5(ctx, "p")
    await publish5(pub, topic, b"routed?", Q1)
    if why_routed is not None:
        await collect_until(probe, b"routed?", why_routed)
        return
    await publish5(pub, control, b"control", Q1)
    before = await collect_until(probe, b"control", "(the control message on a fresh"
                                 " subscription) [MQTT-3.3.4-1]")
    assert why_absent is not None
    require(all(m.topic != topic for m in before),
            f"{probe.name}: no message on {topic!r} may arrive before the control message:"
            f" the old session's subscription must not survive {why_absent}")


@check5("MQTT-3.1.2-5", "MQTT-3.1.2-23", "MQTT-3.2.2-3", "MQTT-4.1.0-2", "MQTT-3.1.2-4",
        summary="a session with a Session Expiry Interval is resumed within it (Session"
        " Present 1, the message queued meanwhile comes, its subscription routes), is gone"
        " after it or at once with 0, and Clean Start 1 discards it")
async def session_v5_expiry_and_clean_start(ctx: Context) -> None:
    async with ctx.scenario("resumed within the interval"):
        cid, topic = ctx.client_id("r"), ctx.topic("resume")
        interval, granted = await _leave_with_session(ctx, cid, topic, 2)
        left = time.monotonic()
        # A QoS 0 message need not be kept for an absent client (4.1: OPTIONALLY), and a
        # server declaring Maximum QoS 0 takes no QoS 1 PUBLISH [MQTT-3.2.2-11].
        queued = granted >= 1 and ctx.profile5.maximum_qos >= 1
        if queued:
            away, _ = await connect5(ctx, "p")
            await publish5(away, topic, b"queued", Q1)
        back, connack = await connect5(ctx, "back", cid, clean=False, props=Properties(
            session_expiry_interval=interval))
        if time.monotonic() - left >= interval:
            raise Inconclusive("the reconnection took longer than the Session Expiry Interval")
        require(connack.session_present, "back: the session was stored for its Session Expiry"
                f" Interval ({interval} s), so Clean Start 0 must resume it with Session"
                " Present 1 [MQTT-3.1.2-23] [MQTT-3.2.2-3]")
        if queued:
            await collect_until(back, b"queued", "(the QoS 1 message published to the"
                                " session's subscription while the client was away: the"
                                " resumed session's state holds it) [MQTT-3.1.2-5]"
                                " [MQTT-4.5.0-1]")
        await _routed(ctx, back, topic, "through the resumed session's subscription"
                      " [MQTT-3.1.2-5]", None)
    async with ctx.scenario("gone after the interval"):
        cid, topic = ctx.client_id("g"), ctx.topic("gone")
        interval, _ = await _leave_with_session(ctx, cid, topic, 1)
        # The interval counts whole seconds (3.1.2.11.2): a server whose clock ticks in
        # seconds may see up to one more before it passes, then the one stated margin.
        await asyncio.sleep(ctx.timing.spec_deadline(interval + 1))
        late, connack = await connect5(ctx, "late", cid, clean=False)
        require(not connack.session_present, f"late: the Session Expiry Interval ({interval} s)"
                " passed after the close, so the session must be gone: Session Present 0"
                " [MQTT-4.1.0-2] [MQTT-3.2.2-3]")
        await _routed(ctx, late, topic, None, "its Session Expiry Interval [MQTT-4.1.0-2]")
    async with ctx.scenario("interval 0 ends with the connection"):
        cid, topic = ctx.client_id("z"), ctx.topic("zero")
        first, _ = await connect5(ctx, "z", cid)
        await subscribe5(first, Subscription(topic, Q1), exact=False)
        await first.disconnect()
        again, connack = await connect5(ctx, "again", cid, clean=False)
        require(not connack.session_present, "again: with no Session Expiry Interval (0) the"
                " session ends when the connection closes: Session Present 0 [MQTT-4.1.0-2]"
                " [MQTT-3.2.2-3]")
        await _routed(ctx, again, topic, None, "a Session Expiry Interval of 0"
                      " [MQTT-4.1.0-2]")
    async with ctx.scenario("Clean Start 1 discards the session"):
        cid, topic = ctx.client_id("c"), ctx.topic("clean")
        await _leave_with_session(ctx, cid, topic, 60)
        fresh, _ = await connect5(ctx, "fresh", cid, clean=True, session_present=False)
        await _routed(ctx, fresh, topic, None, "Clean Start 1 [MQTT-3.1.2-4]")
