"""MQTT 5.0 Shared Subscriptions (4.8.2): what a group's member is sent, and what the
server does with a shared filter it must not take.

A group's message goes to one member, whichever the server picks: the check waits on
every member for its first copy and judges that one. An absence (a refused message not
sent on to another member) is judged up to a marker on a plain subscription that every
member holds, published after the refusal, which must arrive. A broker that declares
Shared Subscription Available 0 (3.2.2.3.13) leaves nothing to judge here: its refusal
of ``$share/...`` is judged by ``declared_off_features_refused_v5``.
"""

from __future__ import annotations

import asyncio
import time

from mqttref.impl.codec.packets import (
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscription,
)
from mqttref.oracle.checks5.common import (
    SUBACK_CODES,
    check5,
    closes_after_error,
    collect_until,
    connect5,
    needs_qos2,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import Deviation, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Closed, Probe, Received, describe
from mqttref.oracle.scenario import Context

Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE

SHARED_OFF = "declares Shared Subscription Available 0 in CONNACK (3.2.2.3.13)"


def _group(ctx: Context, topic: str) -> str:
    """A group of this run: ``$share/{ShareName}/{topic}``, the ShareName free of / + #."""
    return f"$share/g{ctx.token}/{topic}"


async def _first_copy(members: list[Probe], payload: bytes, why: str) -> tuple[Probe, Publish]:
    """The member that is sent ``payload`` first, and its PUBLISH (left unacknowledged).

    Other packets stay pending on their probe. The message is owed to one member of
    the group, so its absence from all of them after the obligation bound is a
    deviation from ``why``.
    """
    bound = members[0].timing.obligation_bound
    deadline = time.monotonic() + bound
    while True:
        for probe in members:
            for index, packet in enumerate(probe.pending):
                if isinstance(packet, Publish) and packet.payload == payload:
                    del probe.pending[index]
                    require(True, f"{probe.name}: {payload!r} arrived {why}")
                    return probe, packet
        if time.monotonic() > deadline:
            raise Deviation(f"no member of the group was sent {payload!r} within {bound:.1f}s"
                            f" {why}")
        for probe in members:
            event = await probe.next_event(0.02)
            if isinstance(event, Received):
                probe.pending.append(event.packet)
            elif isinstance(event, Closed):
                raise Deviation(f"{probe.name}: the connection closed before the group's"
                                f" message {payload!r} arrived {why}")
            elif event is not None:
                raise Deviation(f"{probe.name}: malformed bytes from the server: {event.error}")


def _raw_subscribe(packet_id: int, topic_filter: str, options: int) -> bytes:
    """A 5.0 SUBSCRIBE of one filter, written by hand: our encoder refuses to write the
    client errors (a malformed ``$share`` filter, No Local on one) this module sends."""
    name = topic_filter.encode()
    body = (packet_id.to_bytes(2, "big") + b"\x00" + len(name).to_bytes(2, "big") + name
            + bytes([options]))
    length = len(body)
    encoded = bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            break
    return b"\x82" + bytes(encoded) + body


@check5("MQTT-4.8.2-3", "MQTT-4.8.2-6",
        summary="a shared subscription's member is sent the group's message at no more than"
        " the QoS granted to it; a message a member refuses (PUBACK 0x80) is sent to no one"
        " else")
async def shared_subscription_v5(ctx: Context) -> None:
    if not ctx.profile5.shared_available:
        raise NotApplicable(SHARED_OFF)
    async with ctx.scenario("granted QoS 0 in a group"):
        topic = ctx.topic("shared", "qos")
        members = []
        for name in ("m1", "m2"):
            member, _ = await connect5(ctx, name)
            await subscribe5(member, Subscription(_group(ctx, topic), Q0))
            members.append(member)
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"q1", Q1)
        probe, copy = await _first_copy(members, b"q1", "(a QoS 1 message the group's filter"
                                        " matches) [MQTT-3.3.4-1]")
        require(copy.qos == Q0, f"{probe.name}: the member's shared subscription was granted"
                f" QoS 0, the QoS 1 message must come at QoS 0, got QoS {int(copy.qos)}"
                " [MQTT-4.8.2-3]")
        require(not copy.dup, f"{probe.name}: a QoS 0 PUBLISH must have DUP 0 [MQTT-3.3.1-2]"
                " [MQTT-4.3.1-1]")
    async with ctx.scenario("a member refuses the message"):
        topic = ctx.topic("shared", "refused")
        control = ctx.topic("shared", "control")
        members = []
        for name in ("m1", "m2"):
            member, _ = await connect5(ctx, name)
            await subscribe5(member, Subscription(_group(ctx, topic), Q1))
            await subscribe5(member, Subscription(control, Q1), exact=False)
            members.append(member)
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"refused", Q1)
        probe, copy = await _first_copy(members, b"refused", "(a QoS 1 message the group's"
                                        " filter matches) [MQTT-3.3.4-1]")
        assert copy.packet_id is not None  # QoS 1, granted QoS 1: the codec requires one
        await probe.send(PubAck(copy.packet_id, 0x80), note="the member refuses it")
        await publish5(pub, control, b"control", Q1)
        for member in members:
            before = await collect_until(member, b"control", "(a message on a plain"
                                         " subscription, published after the refusal)"
                                         " [MQTT-3.3.4-1]")
            require(all(m.payload != b"refused" for m in before),
                    f"{member.name}: a message a member refused with PUBACK 0x80 must be"
                    " discarded and sent to no other subscriber [MQTT-4.8.2-6]")


async def _members(ctx: Context, topic: str, control: str, props: Properties
                   ) -> list[tuple[Probe, str]]:
    """Two members of a QoS 2 group on ``topic``, each also subscribed to ``control``."""
    members = []
    for name in ("m1", "m2"):
        cid = ctx.client_id(name)
        member, _ = await connect5(ctx, name, cid, props=props)
        await subscribe5(member, Subscription(_group(ctx, topic), Q2))
        await subscribe5(member, Subscription(control, Q1), exact=False)
        members.append((member, cid))
    return members


@check5("MQTT-4.8.2-4", "MQTT-4.8.2-5",
        summary="a group's QoS 2 message in flight to a member whose connection breaks is"
        " completed to that member when it reconnects, and sent to no other member when its"
        " session ends instead")
async def shared_subscription_qos2_v5(ctx: Context) -> None:
    if not ctx.profile5.shared_available:
        raise NotApplicable(SHARED_OFF)
    needs_qos2(ctx, "message to a group")
    async with ctx.scenario("the member reconnects"):
        topic, control = ctx.topic("shared", "q2back"), ctx.topic("shared", "q2ctl")
        kept = Properties(session_expiry_interval=30)
        members = await _members(ctx, topic, control, kept)
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"q2", Q2)
        probe, copy = await _first_copy([m for m, _ in members], b"q2", "(a QoS 2 message the"
                                        " group's filter matches) [MQTT-3.3.4-1]")
        cid = next(c for m, c in members if m is probe)
        probe.abort()
        back, _ = await connect5(ctx, "back", cid, clean=False, props=kept,
                                 session_present=True)
        again = await back.expect(Publish, "the group's QoS 2 message, completed to the member"
                                  " that reconnects [MQTT-4.8.2-4]")
        require(again.payload == b"q2" and again.packet_id == copy.packet_id,
                f"back: the QoS 2 message in flight ({copy.packet_id}) must be completed to the"
                f" member when it reconnects, got {again.payload!r} id {again.packet_id}"
                " [MQTT-4.8.2-4]")
        assert again.packet_id is not None
        await back.send(PubRec(again.packet_id))
        await back.expect(PubRel, "PUBREL for PUBREC [MQTT-4.3.3-4]")
        await back.send(PubComp(again.packet_id))
    async with ctx.scenario("the member's session ends"):
        topic, control = ctx.topic("shared", "q2gone"), ctx.topic("shared", "q2end")
        members = await _members(ctx, topic, control, Properties())
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"orphan", Q2)
        probe, _copy = await _first_copy([m for m, _ in members], b"orphan", "(a QoS 2 message"
                                         " the group's filter matches) [MQTT-3.3.4-1]")
        probe.abort()  # Session Expiry Interval 0: the session ends with the connection
        other = next(m for m, _ in members if m is not probe)
        await asyncio.sleep(ctx.timing.window)  # time for the server to see the close
        await publish5(pub, control, b"control", Q1)
        before = await collect_until(other, b"control", "(a message on a plain subscription,"
                                     " published after the member left) [MQTT-3.3.4-1]")
        require(all(m.payload != b"orphan" for m in before), f"{other.name}: a group's QoS 2"
                " message sent to a member whose session then ended must not be sent to"
                " another member [MQTT-4.8.2-5]")


BAD_FILTERS = (
    ("$share/g+{token}/{topic}", "a ShareName with '+' not a whole level", False),
    ("$share//{topic}", "an empty ShareName", True),
    ("$share/g{token}", "a ShareName not followed by '/' and a Topic Filter", True),
)
"""Filters that break 4.8.2 ([MQTT-4.8.2-1], [MQTT-4.8.2-2], client rules). The first is
no Topic Filter in any reading, its '+' not a whole level ([MQTT-4.7.1-2]): refused or
closed. The others would be well-formed ordinary filters; the specification names no
server action for them, so a grant is NOT APPLICABLE, never FAIL."""


async def _refused_or_closed(probe: Probe, what: str, *, grant_allowed: bool) -> None:
    """A SUBACK refusing the filter (0x80 or above) [MQTT-3.8.4-7], or the close on a
    Protocol Error [MQTT-4.13.1-1]: the server's choice."""
    event = await probe.next_event(probe.timing.reply_bound)
    if isinstance(event, Received) and isinstance(event.packet, SubAck):
        codes = event.packet.return_codes
        if grant_allowed and len(codes) == 1 and codes[0] < 0x80:
            raise NotApplicable(f"grants {what} with 0x{codes[0]:02X} (4.8.2 binds the"
                                " client; the specification names no server action for it)")
        require(len(codes) == 1 and codes[0] in SUBACK_CODES and codes[0] >= 0x80,
                f"use: the SUBACK for {what} must show that the subscription failed (a"
                f" Subscribe Reason Code of 0x80 or above), got {codes} [MQTT-3.8.4-7]")
        return
    if isinstance(event, Closed):
        require(True, f"use: closed on {what} [MQTT-4.13.1-1]")
        return
    if event is None:
        raise Deviation(f"use: neither a SUBACK nor the close within"
                        f" {probe.timing.reply_bound:.1f}s after {what} [MQTT-3.8.4-1]")
    if isinstance(event, Received):
        probe.pending.append(event.packet)
    await closes_after_error(probe, f"{what} is a Protocol Error [MQTT-4.13.1-1]")


@check5("MQTT-4.13.1-1", "MQTT-3.8.4-7",
        summary="No Local on a shared subscription closes the connection; a malformed"
        " $share filter is refused in the SUBACK or closes it")
async def shared_subscription_errors_v5(ctx: Context) -> None:
    if not ctx.profile5.shared_available:
        raise NotApplicable(SHARED_OFF)
    topic = ctx.topic("shared", "bad")
    async with ctx.scenario("No Local on a shared subscription"):
        probe, _ = await connect5(ctx, "use")
        await probe.send(_raw_subscribe(probe.new_packet_id(), _group(ctx, topic), 0x04 | 1),
                         note=f"SUBSCRIBE {_group(ctx, topic)!r} with No Local")
        why = "No Local on a Shared Subscription is a Protocol Error (3.8.3.1, 0x82)"
        event = await probe.next_event(probe.timing.reply_bound)
        if isinstance(event, Received):
            if isinstance(event.packet, SubAck) and await probe.is_open():
                # It took the SUBSCRIBE and answered a PINGREQ after it: no close is coming.
                raise Deviation(f"use: answered {describe(event.packet)} and then a PINGREQ"
                                f" with PINGRESP, keeping the connection open: {why}"
                                " [MQTT-4.13.1-1]")
            probe.pending.insert(0, event.packet)
        elif isinstance(event, Closed):
            probe.pending.clear()
        await closes_after_error(probe, f"{why} [MQTT-4.13.1-1]")
    for pattern, what, grant_allowed in BAD_FILTERS:
        topic_filter = pattern.format(topic=topic, token=ctx.token)
        async with ctx.scenario(what):
            probe, _ = await connect5(ctx, "use")
            await probe.send(_raw_subscribe(probe.new_packet_id(), topic_filter, 1),
                             note=f"SUBSCRIBE {topic_filter!r}: {what}")
            await _refused_or_closed(probe, f"the filter {topic_filter!r} with {what}",
                                     grant_allowed=grant_allowed)
