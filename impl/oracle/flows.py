"""The normal packet exchanges, each checked against the statements it obeys.

Checks build their scenarios from these steps: the handshake, a subscription,
a publication through its QoS flow as the sender, and the receiving side that
acknowledges what arrives. Each step verifies what the specification requires
of the server on the way (packet ids echoed, acknowledgements of the right
type), so every check also exercises the basic flows.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

from mqttref.impl.oracle.probe import Closed, Deviation, Probe, Received
from mqttref.impl.packets import (
    ConnAck,
    Packet,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)

VERIFIED: ContextVar[set[str]] = ContextVar("verified")
"""Statement ids named by the requirements that held so far in the running check."""

_CITED = re.compile(r"\[(MQTT-[0-9.-]+)\]")


def cited(message: str) -> set[str]:
    """The statement ids a message cites as ``[MQTT-x.y.z-n]``."""
    return set(_CITED.findall(message))


def require(condition: bool, message: str) -> None:
    """Raise a ``Deviation`` with ``message`` unless ``condition`` holds.

    When it holds, the statements the message cites count as verified by the
    running check even if a later requirement fails.
    """
    if not condition:
        raise Deviation(message)
    verified = VERIFIED.get(None)
    if verified is not None:
        verified.update(cited(message))


async def first_packet_is_connack(probe: Probe) -> ConnAck:
    """The server's first packet must be a CONNACK [MQTT-3.2.0-1]."""
    event = await probe.next_event(probe.timing.reply_bound)
    if event is None:
        raise Deviation(f"{probe.name}: no CONNACK within {probe.timing.reply_bound:.1f}s")
    if isinstance(event, Closed):
        raise Deviation(f"{probe.name}: connection closed instead of CONNACK")
    if not isinstance(event, Received):
        raise Deviation(f"{probe.name}: malformed bytes instead of CONNACK: {event.error}")
    if not isinstance(event.packet, ConnAck):
        raise Deviation(
            f"{probe.name}: the first packet from the server must be CONNACK [MQTT-3.2.0-1], "
            f"got {event.packet.packet_type.name}"
        )
    return event.packet


async def subscribe(probe: Probe, *filters: tuple[str, QoS]) -> SubAck:
    """SUBSCRIBE and require a SUBACK that grants exactly what was asked for."""
    packet_id = probe.new_packet_id()
    subs = tuple(Subscription(f, q) for f, q in filters)
    await probe.send(Subscribe(packet_id, subs))
    suback = await probe.expect(SubAck)
    require(
        suback.packet_id == packet_id,
        f"{probe.name}: SUBACK id {suback.packet_id} must equal SUBSCRIBE id {packet_id}"
        " [MQTT-3.8.4-2]",
    )
    granted = tuple(int(q) for _, q in filters)
    require(
        suback.return_codes == granted,
        f"{probe.name}: SUBACK {suback.return_codes} for requested {granted}: the checks need"
        " the QoS they ask for (the target refused or downgraded it)",
    )
    return suback


async def publish(
    probe: Probe,
    topic: str,
    payload: bytes,
    qos: QoS = QoS.AT_MOST_ONCE,
    *,
    retain: bool = False,
) -> int | None:
    """Publish through the whole QoS flow as the sender; returns the packet id.

    QoS 1 needs a PUBACK, QoS 2 a PUBREC then a PUBCOMP, each with the
    PUBLISH's packet id [MQTT-2.3.1-6] [MQTT-3.3.4-1] [MQTT-4.3.2-2] [MQTT-4.3.3-2].
    """
    packet_id = probe.new_packet_id() if qos else None
    await probe.send(Publish(topic, payload, qos, retain, False, packet_id))
    if qos == QoS.AT_LEAST_ONCE:
        ack = await probe.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]")
        require(ack.packet_id == packet_id,
                f"{probe.name}: PUBACK id {ack.packet_id} != PUBLISH id {packet_id} [MQTT-2.3.1-6]")
    elif qos == QoS.EXACTLY_ONCE:
        rec = await probe.expect(PubRec, "PUBREC for a QoS 2 PUBLISH [MQTT-3.3.4-1]")
        require(rec.packet_id == packet_id,
                f"{probe.name}: PUBREC id {rec.packet_id} != PUBLISH id {packet_id} [MQTT-2.3.1-6]")
        assert packet_id is not None
        await probe.send(PubRel(packet_id))
        comp = await probe.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-2]")
        require(comp.packet_id == packet_id,
                f"{probe.name}: PUBCOMP id {comp.packet_id} != PUBREL id {packet_id}"
                " [MQTT-4.3.3-2]")
    return packet_id


async def acknowledge(probe: Probe, message: Publish) -> None:
    """Acknowledge one received PUBLISH as a well-behaved client does."""
    if message.qos == QoS.AT_LEAST_ONCE and message.packet_id is not None:
        await probe.send(PubAck(message.packet_id))
    elif message.qos == QoS.EXACTLY_ONCE and message.packet_id is not None:
        await probe.send(PubRec(message.packet_id))
        rel = await probe.expect(PubRel, "PUBREL after our PUBREC [MQTT-4.3.3-1]")
        require(rel.packet_id == message.packet_id,
                f"{probe.name}: PUBREL id {rel.packet_id} != PUBLISH id {message.packet_id}"
                " [MQTT-4.3.3-1]")
        await probe.send(PubComp(message.packet_id))


def check_outgoing(probe: Probe, packets: list[Packet]) -> list[Publish]:
    """The PUBLISHes among ``packets``, each checked for the sender's rules.

    QoS 0 without DUP [MQTT-3.3.1-2] [MQTT-4.3.1-1]; QoS > 0 with a packet id
    (the codec refuses id 0 [MQTT-2.3.1-1]).
    """
    out: list[Publish] = []
    for packet in packets:
        if isinstance(packet, Publish):
            require(not (packet.qos == 0 and packet.dup),
                    f"{probe.name}: QoS 0 PUBLISH with DUP=1 [MQTT-3.3.1-2]")
            out.append(packet)
    return out


async def deliveries(probe: Probe, *, ack: bool = True, at_least: int = 0) -> list[Publish]:
    """Every PUBLISH that arrives until quiescence, acknowledged as it arrives.

    With ``at_least``, first waits (up to the reply bound each) for that many
    PUBLISHes: for deliveries the server makes on its own time, such as wills.
    Acknowledging at once matters: a server may hold back messages beyond its
    in-flight window until earlier ones are acknowledged.
    """
    messages: list[Publish] = []

    async def take(packets: list[Packet]) -> None:
        for message in check_outgoing(probe, packets):
            messages.append(message)
            if ack:
                await acknowledge(probe, message)

    while len(messages) < at_least:
        waiting, probe.pending = probe.pending, []
        await take(waiting)
        if len(messages) < at_least:
            await take([await probe.expect(Publish)])
    while True:
        batch = await probe.quiet()
        if not batch:
            return messages
        await take(batch)


def summary(messages: list[Publish]) -> list[tuple[str, bytes, int, bool]]:
    """(topic, payload, qos, retain) of each message, for comparisons in traces."""
    return [(m.topic, m.payload, int(m.qos), m.retain) for m in messages]
