"""The MQTT 5.0 steps the 5.0 checks are built from, each citing the 5.0 statement it obeys.

Every id here is a 5.0 id (statements-5.0.json): the ledger of a 5.0 check resolves
what a message cites against the 5.0 list, where MQTT-3.1.2-4 is Clean Start and not
3.1.1's will flag. The reason-code tables are Table 2-6 narrowed per packet (3.2.2.2,
3.4.2.1, 3.5.2.1, 3.9.3, 3.14.2.1), written here from the text and judged only on
membership: which code a server picks among the allowed ones is its choice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Will,
)
from mqttref.oracle.evidence import Deviation, NotApplicable
from mqttref.oracle.flows import first_packet_is_connack, require
from mqttref.oracle.probe import Closed, Probe, Received, describe
from mqttref.oracle.scenario import CheckFn, Context, check

V5 = ProtocolLevel.MQTT_5
F = TypeVar("F", bound=CheckFn)

CONNACK_CODES = frozenset({0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                           0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F})
"""Connect Reason Codes (3.2.2.2)."""

REFUSALS_OF_A_VALID_CONNECT = frozenset({0x80, 0x83, 0x87, 0x88, 0x89, 0x8A, 0x97, 0x9C, 0x9D,
                                         0x9F})
"""Refusals a server may give any CONNECT (policy, load, authorization: 3.2.2.2)."""

PUBACK_CODES = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})
"""PUBACK (3.4.2.1) and PUBREC (3.5.2.1) Reason Codes: the same table."""

SUBACK_CODES = frozenset({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2})
"""Subscribe Reason Codes (3.9.3)."""

UNSUBACK_CODES = frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91})
"""Unsubscribe Reason Codes (3.11.3)."""

PUBREL_CODES = PUBCOMP_CODES = frozenset({0x00, 0x92})
"""PUBREL (3.6.2.1) and PUBCOMP (3.7.2.1) Reason Codes."""

SERVER_DISCONNECT_CODES = frozenset({0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D,
                                     0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                     0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2})
"""DISCONNECT Reason Codes a server may send (3.14.2.1; 0x8C is Table 2-6's)."""


def check5(*ids: str, summary: str) -> Callable[[F], F]:
    """Register a check of MQTT 5.0 statements (run only by ``--protocol 5``)."""
    return check(*ids, summary=summary, protocol="5.0")


def needs_qos2(ctx: Context, what: str, *ids: str) -> None:
    """NOT APPLICABLE unless the CONNACK declares Maximum QoS 2: a client keeping to a lower
    one sends no QoS 2 PUBLISH [MQTT-3.2.2-11], so ``what`` (the QoS 2 traffic a check needs)
    cannot be had (3.2.2.3.4). ``ids``: the statements left unjudged, when not all."""
    if ctx.profile5.maximum_qos < 2:
        raise NotApplicable(f"declares Maximum QoS {ctx.profile5.maximum_qos}: no QoS 2 {what}"
                            " (3.2.2.3.4)", *ids)


async def connect5(
    ctx: Context,
    name: str,
    client_id: str | None = None,
    *,
    clean: bool = True,
    props: Properties = NO_PROPERTIES,
    will: Will | None = None,
    session_present: bool | None = None,
) -> tuple[Probe, ConnAck]:
    """A connected 5.0 client: CONNECT answered by CONNACK 0x00 [MQTT-3.1.4-5].

    A refusal any server may give a valid CONNECT (not authorized, busy, quota...)
    is its choice: the check is NOT APPLICABLE with the code named.
    """
    cid = client_id if client_id is not None else ctx.client_id(name)
    if props.session_expiry_interval:
        ctx.persistent.add(cid)
    probe = await ctx.open(name)
    await probe.send(Connect(V5, cid, clean, 60, will, properties=props))
    connack = await first_packet_is_connack(probe, "[MQTT-3.1.4-5]")
    code = connack.return_code
    if code in REFUSALS_OF_A_VALID_CONNECT:
        raise NotApplicable(f"refuses a valid CONNECT with Reason Code 0x{code:02X} (a refusal"
                            " the Connect Reason Codes allow, 3.2.2.2)")
    require(code == 0, f"{name}: a valid CONNECT must be acknowledged with CONNACK 0x00,"
            f" got 0x{code:02X} [MQTT-3.1.4-5]")
    if connack.properties.maximum_qos is not None:
        probe.server_maximum_qos = connack.properties.maximum_qos
    if session_present is not None:
        rule = "[MQTT-3.2.2-2]" if clean else "[MQTT-3.2.2-3]"
        require(connack.session_present == session_present,
                f"{name}: CONNACK Session Present must be {int(session_present)}, got"
                f" {int(connack.session_present)} {rule}")
    return probe, connack


async def subscribe5(probe: Probe, *subs: Subscription, props: Properties = NO_PROPERTIES,
                     exact: bool = True) -> SubAck:
    """SUBSCRIBE and check the SUBACK's shape (3.9); return it.

    A refusal (the server's right, 3.9.3) makes the check NOT APPLICABLE with the choice
    named; so does a lower grant with ``exact``, while without it the check goes on at
    what was granted.
    """
    packet_id = probe.new_packet_id()
    await probe.send(Subscribe(packet_id, subs, props))
    suback = await probe.expect(SubAck, "SUBACK for SUBSCRIBE [MQTT-3.8.4-1]")
    require(suback.packet_id == packet_id,
            f"{probe.name}: SUBACK id {suback.packet_id} must equal SUBSCRIBE id {packet_id}"
            " [MQTT-3.8.4-2] [MQTT-2.2.1-6]")
    codes = suback.return_codes
    require(len(codes) == len(subs), f"{probe.name}: SUBACK {codes} must hold a Reason Code"
            f" for each of the {len(subs)} filters [MQTT-3.8.4-6]")
    require(all(code in SUBACK_CODES for code in codes),
            f"{probe.name}: SUBACK codes {codes} must be Subscribe Reason Codes [MQTT-3.9.3-2]")
    for code, sub in zip(codes, subs, strict=True):
        require(code >= 0x80 or code <= sub.qos,
                f"{probe.name}: SUBACK grants QoS {code} for a QoS {int(sub.qos)} request on"
                f" {sub.topic_filter!r}: it must show the QoS granted, at most the one asked"
                " for [MQTT-3.8.4-7]")
        if code >= 0x80:  # nothing to go on with, exact or not
            raise NotApplicable(f"refuses the filter {sub.topic_filter!r} with 0x{code:02X}"
                                " (a Subscribe Reason Code, 3.9.3)")
        if exact and code != sub.qos:
            raise NotApplicable(f"grants QoS {code} for a QoS {int(sub.qos)} request on"
                                f" {sub.topic_filter!r} (allowed [MQTT-3.8.4-7])")
    return suback


async def publish5(probe: Probe, topic: str, payload: bytes, qos: QoS = QoS.AT_MOST_ONCE, *,
                   retain: bool = False, props: Properties = NO_PROPERTIES) -> int | None:
    """Publish through the whole QoS flow as the sender; the PUBACK/PUBREC Reason Code.

    A refusal in the acknowledgement (0x80 and above) is the server's right (3.4.2.1):
    the check is NOT APPLICABLE with the code named. So is a QoS above the Maximum QoS
    the server declared: the oracle's client keeps [MQTT-3.2.2-11] like any client, and a
    server that supports only lower QoS levels makes that part of a check impossible.
    """
    if qos > probe.server_maximum_qos:
        raise NotApplicable(f"declares Maximum QoS {probe.server_maximum_qos}: a client may"
                            f" send no QoS {int(qos)} PUBLISH [MQTT-3.2.2-11]")
    if qos == QoS.AT_MOST_ONCE:
        await probe.send(Publish(topic, payload, qos, retain, False, None, props))
        return None
    packet_id = probe.new_packet_id()
    await probe.send(Publish(topic, payload, qos, retain, False, packet_id, props))
    ack: PubAck | PubRec
    if qos == QoS.AT_LEAST_ONCE:
        ack = await probe.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]")
        rule = "[MQTT-3.4.2-1]"
    else:
        ack = await probe.expect(PubRec, "PUBREC for a QoS 2 PUBLISH [MQTT-4.3.3-8]")
        rule = "[MQTT-3.5.2-1]"
    require(ack.packet_id == packet_id, f"{probe.name}: the acknowledgement must carry the"
            f" PUBLISH's packet id {packet_id}, got {ack.packet_id} [MQTT-2.2.1-5]")
    require(ack.reason_code in PUBACK_CODES, f"{probe.name}: 0x{ack.reason_code:02X} must be"
            f" one of the {type(ack).__name__.upper()} Reason Codes {rule}")
    if ack.reason_code >= 0x80:
        raise NotApplicable(f"refuses a PUBLISH to {topic!r} with"
                            f" {type(ack).__name__.upper()} 0x{ack.reason_code:02X}"
                            " (a refusal its Reason Codes allow, 3.4.2.1)")
    if qos == QoS.EXACTLY_ONCE:
        await probe.send(PubRel(packet_id))
        comp = await probe.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-11]")
        require(comp.packet_id == packet_id, f"{probe.name}: PUBCOMP must carry the PUBREL's"
                f" packet id {packet_id} [MQTT-4.3.3-11]")
    return ack.reason_code


async def acknowledge(probe: Probe, message: Publish) -> None:
    """Play the receiving client's part of the message's QoS flow."""
    if message.packet_id is None:
        return
    if message.qos == QoS.AT_LEAST_ONCE:
        await probe.send(PubAck(message.packet_id))
    elif message.qos == QoS.EXACTLY_ONCE:
        await probe.send(PubRec(message.packet_id))
        await probe.expect(PubRel, "PUBREL for PUBREC [MQTT-4.3.3-4]")
        await probe.send(PubComp(message.packet_id))


async def collect_until(probe: Probe, marker: bytes, why: str, *,
                        ack: bool = True) -> list[Publish]:
    """The PUBLISH packets that arrive before the one carrying ``marker`` (acknowledged
    as they come unless ``ack`` is off).

    The marker is a message the server owes, so its arrival ends the wait: an absence
    of something before it is an observation, not a guess after a quiet time. Its
    absence after the obligation bound is a deviation from ``why``.
    """
    bound = probe.timing.obligation_bound
    deadline = time.monotonic() + bound
    before: list[Publish] = []
    pending, probe.pending = probe.pending, []
    while True:
        packet: Packet
        # A QoS 2 acknowledgement waits for PUBREL: what came meanwhile is next in line.
        pending.extend(p for p in probe.pending if isinstance(p, Publish))
        probe.pending = [p for p in probe.pending if not isinstance(p, Publish)]
        if pending:
            packet = pending.pop(0)
        else:
            event = await probe.next_event(max(deadline - time.monotonic(), 0.0))
            if event is None:
                probe.inconclusive_if_given_up(f"message {marker!r}")
                raise Deviation(f"{probe.name}: the message {marker!r} did not arrive within"
                                f" {bound:.1f}s {why}")
            if isinstance(event, Closed):
                raise Deviation(f"{probe.name}: the connection closed before the message"
                                f" {marker!r} arrived {why}")
            if not isinstance(event, Received):
                raise Deviation(f"{probe.name}: malformed bytes from the server:"
                                f" {event.error}")
            packet = event.packet
        if not isinstance(packet, Publish):
            probe.pending.append(packet)
            continue
        if ack:
            await acknowledge(probe, packet)
        if packet.payload == marker:
            require(True, f"{probe.name}: {describe(packet)} arrived {why}")
            return before
        before.append(packet)


async def closes_after_error(probe: Probe, why: str, *, connack: bool = False) -> int | None:
    """The server must close the connection on this error [MQTT-4.13.1-1]; what came first.

    A DISCONNECT (or at CONNECT, a CONNACK) before the close is allowed and must carry a
    code of its packet's table (3.14.2.1 [MQTT-3.14.2-1], 3.2.2.2 [MQTT-3.2.2-8]) at
    0x80 or above; which one among them is the server's choice. With ``connack`` (an
    error before any CONNACK) a DISCONNECT is not allowed [MQTT-3.14.0-1]; a server's
    DISCONNECT never carries a Session Expiry Interval [MQTT-3.14.2-2]. Returns that
    code, or None for a bare close.
    """
    seen = await probe.wait_close(probe.timing.reply_bound, why=why)
    code: int | None = None
    for packet in seen:
        if isinstance(packet, Disconnect):
            require(not connack, f"{probe.name}: DISCONNECT 0x{packet.reason_code:02X} on a"
                    " connection that had no CONNACK below 0x80: a server may send DISCONNECT"
                    " only after accepting the CONNECT [MQTT-3.14.0-1]")
            require(packet.properties.session_expiry_interval is None,
                    f"{probe.name}: the server's DISCONNECT must not carry a Session Expiry"
                    f" Interval, got {packet.properties.session_expiry_interval}"
                    " [MQTT-3.14.2-2]")
            require(packet.reason_code in SERVER_DISCONNECT_CODES,
                    f"{probe.name}: DISCONNECT 0x{packet.reason_code:02X} must be a DISCONNECT"
                    " Reason Code [MQTT-3.14.2-1]")
            require(packet.reason_code >= 0x80, f"{probe.name}: the DISCONNECT before the close"
                    f" on an error must give its Reason Code (0x80 or above), got"
                    f" 0x{packet.reason_code:02X}: {why}")
            code = packet.reason_code
        elif connack and isinstance(packet, ConnAck):
            if packet.return_code < 0x80:
                raise Deviation(f"{probe.name}: CONNACK 0x{packet.return_code:02X} accepts a"
                                f" CONNECT the server must refuse and close on {why}")
            require(packet.return_code in CONNACK_CODES and packet.return_code >= 0x80,
                    f"{probe.name}: a CONNACK refusing the CONNECT must carry a Connect Reason"
                    f" Code of 0x80 or above, got 0x{packet.return_code:02X} [MQTT-3.2.2-8]")
            require(not packet.session_present, f"{probe.name}: a CONNACK with a non-zero"
                    " Reason Code must set Session Present to 0 [MQTT-3.2.2-6]")
            require(True, f"{probe.name}: closed after CONNACK 0x{packet.return_code:02X}: a"
                    " CONNACK of 0x80 or above must be followed by the close [MQTT-3.2.2-7]")
            code = packet.return_code
        else:
            raise Deviation(f"{probe.name}: {describe(packet)} arrived where the server must"
                            f" close the connection {why}")
    return code
