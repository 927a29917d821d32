"""The MQTT 5.0 Will Message (3.1.2.5, 3.1.3.2): delayed by the Will Delay Interval,
cancelled by a reconnection within it, discarded by DISCONNECT 0x00.

The text gives no precision for "after the Will Delay Interval has elapsed": a will
before the delay is a FAIL (our clock starts when we drop the connection, before the
server sees the close, so an early arrival is early for the server too); its absence is
judged after the delay, one second for a server counting whole seconds, and the
obligation bound.
"""

from __future__ import annotations

import asyncio
import time

from mqttref.impl.codec.packets import Disconnect, Properties, Publish, QoS, Subscription, Will
from mqttref.oracle.checks5.common import (
    acknowledge,
    check5,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import Deviation, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Event, Garbled, Probe, Received
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE
KEEP = Properties(session_expiry_interval=10)


def _qos(ctx: Context) -> QoS:
    """QoS 1, or the server's declared Maximum QoS 0: a Will QoS above it must be refused
    [MQTT-3.2.2-12] and a PUBLISH above it is the client's Protocol Error [MQTT-3.2.2-11],
    so neither would judge what these checks are about."""
    return QoS(min(Q1, ctx.profile5.maximum_qos))


def _will(ctx: Context, topic: str, payload: bytes, delay: int) -> Will:
    return Will(topic, payload, _qos(ctx), False, Properties(will_delay_interval=delay))


def _refused(probe: Probe, event: Event | None) -> None:
    """Bytes the probe's decoder refused (the will itself, perhaps) are the server's
    deviation as their sender, blamed on the rule the decoder cites; the probe has dropped
    the connection, so the will's absence after them is not the server's."""
    if isinstance(event, Garbled):
        raise Deviation(f"{probe.name}: malformed bytes from the server: {event.error}")


async def _will_arrival(probe: Probe, payload: bytes, bound: float) -> float | None:
    """When the will with ``payload`` arrived (monotonic clock), or None within ``bound``."""
    deadline = time.monotonic() + bound
    while (left := deadline - time.monotonic()) > 0:
        event = await probe.next_event(left)
        _refused(probe, event)
        if not isinstance(event, Received):
            return None
        if isinstance(event.packet, Publish):
            await acknowledge(probe, event.packet)
            if event.packet.payload == payload:
                return time.monotonic()
        else:
            probe.pending.append(event.packet)
    return None


@check5("MQTT-3.1.2-8", "MQTT-3.1.3-9", "MQTT-3.14.4-3",
        summary="a will is published once its Will Delay Interval has passed after the"
        " connection was lost, not if the client reconnects within it, never after"
        " DISCONNECT 0x00")
async def will_delay_v5(ctx: Context) -> None:
    async with ctx.scenario("published after the delay"):
        topic, delay = ctx.topic("will", "late"), 1
        watcher, _ = await connect5(ctx, "watch")
        await subscribe5(watcher, Subscription(topic, Q1), exact=False)
        dying, _ = await connect5(ctx, "dying", props=KEEP,
                                  will=_will(ctx, topic, b"late", delay))
        dying.abort()
        lost = time.monotonic()
        # Whole seconds, then the wait for an obligation with no deadline of its own.
        bound = ctx.timing.spec_deadline(delay + 1) + ctx.timing.obligation_bound
        arrived = await _will_arrival(watcher, b"late", bound)
        require(arrived is not None, f"watch: the will must be published once the Will Delay"
                f" Interval ({delay} s) has passed after the connection was lost; not within"
                f" {bound:.1f}s [MQTT-3.1.2-8]")
        assert arrived is not None
        require(arrived - lost >= delay, f"watch: the will arrived {arrived - lost:.2f}s after"
                f" the connection was dropped: it must not be published before the Will Delay"
                f" Interval ({delay} s) has passed [MQTT-3.1.2-8]")
    async with ctx.scenario("cancelled by a reconnection within the delay"):
        topic, delay = ctx.topic("will", "cancelled"), 2
        watcher, _ = await connect5(ctx, "watch")
        await subscribe5(watcher, Subscription(topic, Q1), exact=False)
        cid = ctx.client_id("back")
        dying, _ = await connect5(ctx, "dying", cid, props=KEEP,
                                  will=_will(ctx, topic, b"cancelled", delay))
        dying.abort()
        lost = time.monotonic()
        await connect5(ctx, "back", cid, clean=False, props=KEEP)
        returned = time.monotonic() - lost
        await asyncio.sleep(ctx.timing.spec_deadline(delay + 1))
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"after", _qos(ctx))
        before = await collect_until(watcher, b"after", "(a later message on the will topic)"
                                     " [MQTT-3.3.4-1]")
        require(all(m.payload != b"cancelled" for m in before),
                f"watch: the client reconnected {returned:.2f}s after the loss, within the Will"
                f" Delay Interval ({delay} s): the will must not be sent [MQTT-3.1.3-9]")
    async with ctx.scenario("discarded by DISCONNECT 0x00"):
        topic = ctx.topic("will", "normal")
        watcher, _ = await connect5(ctx, "watch")
        await subscribe5(watcher, Subscription(topic, Q1), exact=False)
        leaving, _ = await connect5(ctx, "leave", will=_will(ctx, topic, b"discarded", 0))
        await leaving.disconnect(Disconnect(0))
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"after", _qos(ctx))
        before = await collect_until(watcher, b"after", "(a later message on the will topic)"
                                     " [MQTT-3.3.4-1]")
        require(all(m.payload != b"discarded" for m in before),
                "watch: after DISCONNECT 0x00 the will must be discarded, not published"
                " [MQTT-3.14.4-3]")


async def _will_copy(probe: Probe, payload: bytes, why: str) -> Publish:
    """The watcher's copy of the will ``payload``, owed once the connection dropped."""
    bound = probe.timing.obligation_bound
    deadline = time.monotonic() + bound
    while (left := deadline - time.monotonic()) > 0:
        event = await probe.next_event(left)
        _refused(probe, event)
        if not isinstance(event, Received):
            break
        if isinstance(event.packet, Publish):
            await acknowledge(probe, event.packet)
            if event.packet.payload == payload:
                require(True, f"{probe.name}: the will {payload!r} arrived {why}")
                return event.packet
        else:
            probe.pending.append(event.packet)
    raise Deviation(f"{probe.name}: the will {payload!r} did not arrive within {bound:.1f}s"
                    f" {why}")


ORDERED = (("z", "1"), ("a", "2"), ("z", "0"))
"""Will User Properties in an order no sorting or grouping keeps."""


@check5("MQTT-3.1.2-14", "MQTT-3.1.2-15", "MQTT-3.1.3-10",
        summary="a will with Will Retain 1 is published retained, with Will Retain 0 not;"
        " its User Properties keep their order")
async def will_retain_v5(ctx: Context) -> None:
    for retain, rule in ((True, "[MQTT-3.1.2-15]"), (False, "[MQTT-3.1.2-14]")):
        async with ctx.scenario(f"Will Retain {int(retain)}"):
            if retain and not ctx.profile5.retain_available:
                raise NotApplicable("declares Retain Available 0 in CONNACK (3.2.2.3.5)",
                                    "MQTT-3.1.2-15")
            topic = ctx.topic("will", f"retain{int(retain)}")
            payload = f"will{int(retain)}".encode()
            ctx.retained.add(topic)
            watcher, _ = await connect5(ctx, "watch")
            await subscribe5(watcher, Subscription(topic, Q1, retain_as_published=True),
                             exact=False)
            will = Will(topic, payload, _qos(ctx), retain,
                        Properties(user_properties=ORDERED))
            leaver, _ = await connect5(ctx, "leaver", will=will)
            leaver.abort()
            copy = await _will_copy(watcher, payload, "(the connection closed without"
                                    " DISCONNECT, no Will Delay Interval) [MQTT-3.1.2-8]")
            require(copy.retain is retain, f"watch: on a Retain As Published subscription the"
                    f" will must come with RETAIN {int(retain)} (Will Retain {int(retain)}), got"
                    f" {int(copy.retain)} {rule}")
            require(copy.properties.user_properties == ORDERED, f"watch: the will's User"
                    f" Properties must keep their order {list(ORDERED)}, got"
                    f" {list(copy.properties.user_properties)} [MQTT-3.1.3-10]")
            reader, _ = await connect5(ctx, "reader")
            await subscribe5(reader, Subscription(topic, Q1), exact=False)
            pub, _ = await connect5(ctx, "pub")
            await publish5(pub, topic, b"marker", _qos(ctx))
            held = [m.payload for m in await collect_until(
                reader, b"marker", "(a live message on the subscribed topic) [MQTT-3.3.4-1]")]
            require((payload in held) is retain, f"reader: a new subscription must"
                    f" {'' if retain else 'not '}be sent the will as the topic's retained"
                    f" message, got {held} {rule}")
