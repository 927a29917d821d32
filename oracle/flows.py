"""The normal packet exchanges, each checked against the statements it obeys.

Checks build their scenarios from these steps: the handshake, a subscription,
a publication through its QoS flow as the sender, and the receiving side that
acknowledges what arrives. Each step verifies what the specification requires
of the server on the way (packet ids echoed, acknowledgements of the right
type), so every check also exercises the basic flows.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
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
from mqttref.oracle.evidence import NotApplicable, observe
from mqttref.oracle.probe import Closed, Deviation, Probe, Received


def require(condition: bool, message: str) -> None:
    """Raise a ``Deviation`` with ``message`` unless ``condition`` holds.

    ``message`` cites the statements the condition checks. When it holds, that
    is an observation of the broker meeting them (evidence for PASS); when it
    does not, the deviation is blamed on them and nothing else. Write the
    condition so that it can only hold on an observation: "nothing arrived" is
    evidence only after something that should arrive did.
    """
    if not condition:
        raise Deviation(message)
    observe(message)


async def first_packet_is_connack(probe: Probe, why: str = "[MQTT-3.1.4-4]") -> ConnAck:
    """The server's first packet must be a CONNACK [MQTT-3.2.0-1].

    ``why`` cites what requires a CONNACK at all: acceptance of a valid CONNECT
    [MQTT-3.1.4-4] by default, or the refusal a check provokes. A close or
    silence instead is a deviation from that statement; another packet first is
    one from MQTT-3.2.0-1.
    """
    event = await probe.next_event(probe.timing.reply_bound)
    if event is None:
        raise Deviation(f"{probe.name}: no CONNACK within {probe.timing.reply_bound:.1f}s {why}")
    if isinstance(event, Closed):
        raise Deviation(f"{probe.name}: connection closed instead of CONNACK {why}")
    if not isinstance(event, Received):
        raise Deviation(f"{probe.name}: malformed bytes instead of CONNACK: {event.error}")
    require(isinstance(event.packet, ConnAck),
            f"{probe.name}: the first packet from the server must be CONNACK [MQTT-3.2.0-1],"
            f" got {event.packet.packet_type.name}")
    assert isinstance(event.packet, ConnAck)
    return event.packet


def granted_text(requested: int, code: int, topic_filter: str) -> str:
    """How a reader checks a legal refusal or downgrade against the spec."""
    if code == 0x80:
        return f"refuses the filter {topic_filter!r} with 0x80 (allowed [MQTT-3.8.4-5])"
    return (f"grants QoS {code} for a QoS {requested} request on {topic_filter!r}"
            " (allowed [MQTT-3.8.4-6])")


async def subscribe(probe: Probe, *filters: tuple[str, QoS], exact: bool = True) -> SubAck:
    """SUBSCRIBE and check the SUBACK's shape; return it.

    The SUBACK must carry the SUBSCRIBE's id [MQTT-3.8.4-2] and one return code
    per filter [MQTT-3.8.4-5], each 0, 1, 2 or 0x80 [MQTT-3.9.3-2]. A lower
    grant or a refusal is the server's right: with ``exact`` (a check that
    needs what it asks for) it makes the check NOT APPLICABLE, naming the
    choice; without, the caller goes on at what was granted.
    """
    packet_id = probe.new_packet_id()
    subs = tuple(Subscription(f, q) for f, q in filters)
    await probe.send(Subscribe(packet_id, subs))
    suback = await probe.expect(SubAck, "SUBACK for SUBSCRIBE [MQTT-3.8.4-1]")
    require(
        suback.packet_id == packet_id,
        f"{probe.name}: SUBACK id {suback.packet_id} must equal SUBSCRIBE id {packet_id}"
        " [MQTT-3.8.4-2]",
    )
    codes = suback.return_codes
    require(len(codes) == len(filters),
            f"{probe.name}: SUBACK {codes} must hold one return code per filter"
            f" ({len(filters)}) [MQTT-3.8.4-5]")
    require(all(code in (0, 1, 2, 0x80) for code in codes),
            f"{probe.name}: SUBACK return codes {codes} must be 0, 1, 2 or 0x80 [MQTT-3.9.3-2]")
    for code, (topic_filter, qos) in zip(codes, filters, strict=True):
        require(code == 0x80 or code <= qos,
                f"{probe.name}: SUBACK grants QoS {code} for a QoS {int(qos)} request on"
                f" {topic_filter!r}: the requested QoS is the maximum the server can send at"
                " (3.8.3.1), and the server may grant a lower one, never a higher"
                " [MQTT-3.8.4-6]")
        if exact and code != qos:
            raise NotApplicable(granted_text(int(qos), code, topic_filter))
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
    A server that closes the connection instead refuses to authorize the
    PUBLISH, which it may [MQTT-3.3.5-2]: the check is NOT APPLICABLE.
    """
    packet_id = probe.new_packet_id() if qos else None
    await probe.send(Publish(topic, payload, qos, retain, False, packet_id))
    try:
        await _publish_flow(probe, qos, packet_id)
    except Deviation:
        if probe.closed is not None and not probe.pending:
            raise NotApplicable(
                f"closes the connection on a QoS {int(qos)} PUBLISH to {topic!r} instead of"
                " acknowledging it: it does not authorize that PUBLISH (allowed"
                " [MQTT-3.3.5-2])") from None
        raise
    return packet_id


async def _publish_flow(probe: Probe, qos: QoS, packet_id: int | None) -> None:
    if qos == QoS.AT_LEAST_ONCE:
        ack = await probe.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]"
                                 " [MQTT-4.3.2-2]")
        require(ack.packet_id == packet_id,
                f"{probe.name}: PUBACK id {ack.packet_id} != PUBLISH id {packet_id} [MQTT-2.3.1-6]")
    elif qos == QoS.EXACTLY_ONCE:
        rec = await probe.expect(PubRec, "PUBREC for a QoS 2 PUBLISH [MQTT-3.3.4-1]"
                                 " [MQTT-4.3.3-2]")
        require(rec.packet_id == packet_id,
                f"{probe.name}: PUBREC id {rec.packet_id} != PUBLISH id {packet_id} [MQTT-2.3.1-6]")
        assert packet_id is not None
        await probe.send(PubRel(packet_id))
        comp = await probe.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-2]")
        require(comp.packet_id == packet_id,
                f"{probe.name}: PUBCOMP id {comp.packet_id} != PUBREL id {packet_id}"
                " [MQTT-4.3.3-2]")


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


async def deliveries(probe: Probe, *, ack: bool = True, at_least: int = 0,
                     why: str = "") -> list[Publish]:
    """Every PUBLISH that arrives until quiescence, acknowledged as it arrives.

    With ``at_least``, first waits (up to the reply bound each) for that many
    PUBLISHes: for deliveries the server makes on its own time, such as wills.
    Acknowledging at once matters: a server may hold back messages beyond its
    in-flight window until earlier ones are acknowledged. ``why`` cites the
    statement that makes those deliveries owed: a missing one is a deviation
    from it.
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
            await take([await probe.expect(Publish, why)])
    while True:
        batch = await probe.quiet()
        if not batch:
            return messages
        await take(batch)


def summary(messages: list[Publish]) -> list[tuple[str, bytes, int, bool]]:
    """(topic, payload, qos, retain) of each message, for comparisons in traces."""
    return [(m.topic, m.payload, int(m.qos), m.retain) for m in messages]
