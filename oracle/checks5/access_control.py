"""Access control as a 5.0 client sees it: a filter the user may not subscribe to is
refused with a Subscribe Reason Code of 0x80 or above (0x87 Not authorized), a PUBLISH the
user may not make is refused in its PUBACK or PUBREC (0x87) or by DISCONNECT and the close,
and other clients are not affected.

As at 3.1.1 (checks/acl.py), no normative statement requires a server to refuse anything:
authorization is left to the server (5.4.2), so this is a robustness check that cites no
statement for the refusal itself. Its findings are "ACL findings" against the broker's
access control or the ``--denied-filter`` the run was given. The shape of what the server
sends is judged against the statements that fix it. A PUBLISH to a topic under the denied
filter that the ACL lets the user write is accepted, which is no finding: the filter says
what the user may not read. Without ``--denied-filter`` the check is NOT APPLICABLE.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Disconnect,
    PubAck,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from mqttref.oracle.checks.acl import ACL_FINDING, connect_as, each_denied_filter, topic_in
from mqttref.oracle.checks5.common import (
    PUBACK_CODES,
    SERVER_DISCONNECT_CODES,
    SUBACK_CODES,
    V5,
    collect_until,
    publish5,
)
from mqttref.oracle.connection import Credentials, current
from mqttref.oracle.evidence import LEDGER, Deviation, Inconclusive
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Closed, Received
from mqttref.oracle.scenario import Context, check

Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE


@check(robustness=True, protocol="5.0",
       summary="at 5.0, SUBSCRIBE to a --denied-filter is refused (0x87 or another code of 0x80"
               " or above) beside a granted filter, a PUBLISH there the ACL forbids is refused"
               " (PUBACK/PUBREC 0x87 or DISCONNECT), nothing on its topics is delivered, and"
               " other clients go on")
async def denied_filter_refused_v5(ctx: Context) -> None:
    await each_denied_filter(ctx, _judge_denied)


async def _judge_denied(ctx: Context, denied: str) -> None:
    allowed = ctx.topic("acl5", "allowed")
    users = current().users
    first, last = (users[0], users[-1]) if users else (None, None)
    ledger = LEDGER.get(ctx.ledger)
    sub = await connect_as(ctx, "sub", first, V5)
    packet_id = sub.new_packet_id()
    await sub.send(Subscribe(packet_id, (Subscription(allowed, Q1), Subscription(denied, Q1))))
    suback = await sub.expect(SubAck, "SUBACK for SUBSCRIBE [MQTT-3.8.4-1]")
    codes = suback.return_codes
    require(suback.packet_id == packet_id and len(codes) == 2, f"sub: the SUBACK must carry the"
            f" SUBSCRIBE's identifier {packet_id} and a Reason Code per filter, got"
            f" {suback.packet_id} {codes} [MQTT-3.8.4-2] [MQTT-3.8.4-6]")
    require(all(code in SUBACK_CODES for code in codes), f"sub: SUBACK codes {codes} must be"
            " Subscribe Reason Codes [MQTT-3.9.3-2]")
    if codes[0] >= 0x80:
        raise Inconclusive(f"sub: the broker refused the check's own filter {allowed!r} too"
                           f" (0x{codes[0]:02X}); let the user read mqttref-check/# so that a"
                           " refusal means the ACL")
    if codes[1] < 0x80:
        ledger.deviated(Deviation(
            f"{ACL_FINDING}: sub: the SUBACK grants QoS {codes[1]} for {denied!r}, a filter"
            " --denied-filter says the user may not subscribe to (a refusal is a Subscribe"
            " Reason Code of 0x80 or above, 0x87 Not authorized, 3.9.3)"))
    else:
        ctx.trace.note(f"sub: {denied!r} refused with 0x{codes[1]:02X} beside the granted"
                       f" {allowed!r}")
    topic = topic_in(denied, ctx.token)
    await _publish_where_denied(ctx, topic, first)
    pub = await connect_as(ctx, "pub", last, V5)
    other = await connect_as(ctx, "other", last, V5)
    other_id = other.new_packet_id()
    await other.send(Subscribe(other_id, (Subscription(allowed, Q1),)))
    await other.expect(SubAck, "SUBACK for SUBSCRIBE [MQTT-3.8.4-1]")
    await pub.send(Publish(topic, f"denied {ctx.token}".encode(), Q0))
    await publish5(pub, allowed, f"allowed {ctx.token}".encode(), Q1)
    seen = await collect_until(sub, f"allowed {ctx.token}".encode(), "(the user's granted"
                               " subscription goes on beside the refused one) [MQTT-3.3.4-1]")
    await collect_until(other, f"allowed {ctx.token}".encode(), "(another client is not"
                        " affected by the refusals) [MQTT-3.3.4-1]")
    if any(m.topic == topic for m in seen):
        ledger.deviated(Deviation(
            f"{ACL_FINDING}: sub: a message on {topic!r}, which only the filter {denied!r}"
            " matches, was delivered to a user --denied-filter says may not subscribe to it"))


async def _publish_where_denied(ctx: Context, topic: str, user: Credentials | None) -> None:
    """QoS 1 and QoS 2 PUBLISH by the denied user to a topic under the denied filter, each
    on its own connection: a refusal in the acknowledgement or a DISCONNECT and the close
    are the server's ways to refuse; an acceptance means the ACL lets the user write there."""
    for qos in (Q1, Q2) if ctx.profile5.maximum_qos == 2 else (Q1,):
        writer = await connect_as(ctx, f"w{int(qos)}", user, V5)
        await writer.send(Publish(topic, b"w", qos, False, False, 1),
                          note="a PUBLISH under the denied filter")
        event = await writer.next_event(writer.timing.reply_bound)
        if not isinstance(event, Received):
            if isinstance(event, Closed):
                ctx.trace.note(f"w{int(qos)}: closed on a PUBLISH to {topic!r} (a refusal)")
                continue
            raise Inconclusive(f"w{int(qos)}: no answer to a QoS {int(qos)} PUBLISH to {topic!r}")
        packet = event.packet
        if isinstance(packet, Disconnect):
            require(packet.reason_code in SERVER_DISCONNECT_CODES, f"w{int(qos)}: DISCONNECT"
                    f" 0x{packet.reason_code:02X} must be a DISCONNECT Reason Code"
                    " [MQTT-3.14.2-1]")
            await writer.wait_close(why="the server sent DISCONNECT [MQTT-3.14.4-2]")
            continue
        if not isinstance(packet, PubAck | PubRec):
            raise Inconclusive(f"w{int(qos)}: {packet.packet_type.name} answered a PUBLISH")
        require(packet.reason_code in PUBACK_CODES, f"w{int(qos)}: 0x{packet.reason_code:02X}"
                f" must be one of the {packet.packet_type.name} Reason Codes"
                f" {'[MQTT-3.4.2-1]' if qos == Q1 else '[MQTT-3.5.2-1]'}")
        if packet.reason_code >= 0x80:
            ctx.trace.note(f"w{int(qos)}: PUBLISH to {topic!r} refused with"
                           f" 0x{packet.reason_code:02X}")
        else:
            ctx.trace.note(f"w{int(qos)}: PUBLISH to {topic!r} accepted: the ACL lets the user"
                           " write there (no finding: the denied filter is about reading)")
            if isinstance(packet, PubRec):
                await writer.send(PubRel(1))
