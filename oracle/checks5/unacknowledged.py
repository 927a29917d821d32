"""What the server as sender keeps "unacknowledged" (4.3.2, 4.3.3), seen when the client
comes back with Clean Start 0 to the session it kept, and what it took ownership of
meanwhile (4.5).

The subscriber gets two QoS 1 and two QoS 2 messages and answers one of each: a PUBACK,
and a PUBREC whose PUBREL it leaves without PUBCOMP. While it is away a fifth message is
published. On its return the server owes the QoS 1 PUBLISH without PUBACK, the QoS 2
PUBLISH without PUBREC, the PUBREL without PUBCOMP, and the message published meanwhile;
it must not re-send the acknowledged QoS 1 message nor the QoS 2 PUBLISH whose PUBREL it
sent. Absence is judged up to a later message, which must come.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    PingReq,
    PingResp,
    Properties,
    PubAck,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Subscription,
)
from mqttref.oracle.checks5.common import check5, collect_until, connect5, publish5, subscribe5
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.scenario import Context

Q1, Q2 = QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
KEPT = Properties(session_expiry_interval=30)
QOS2_IDS = ("MQTT-4.3.3-3", "MQTT-4.3.3-5", "MQTT-4.3.3-6")


@check5("MQTT-4.3.2-3", "MQTT-4.3.3-3", "MQTT-4.3.3-5", "MQTT-4.3.3-6", "MQTT-4.5.0-1",
        summary="after a reconnect with Clean Start 0 the server re-sends the PUBLISH without"
        " PUBACK or PUBREC and the PUBREL without PUBCOMP, not the acknowledged PUBLISH nor"
        " the one whose PUBREL it sent, and delivers what came while the client was away")
async def unacknowledged_until_acknowledged_v5(ctx: Context) -> None:
    topic = ctx.topic("unacked")
    cid = ctx.client_id("sub")
    sub, connack = await connect5(ctx, "sub", cid, props=KEPT)
    if connack.properties.session_expiry_interval == 0:
        raise NotApplicable("sets the Session Expiry Interval to 0 in CONNACK for a request of"
                            " 30 s (the server's right, 3.2.2.3.2)")
    suback = await subscribe5(sub, Subscription(topic, Q2), exact=False)
    two = suback.return_codes[0] == 2 and ctx.profile5.maximum_qos == 2
    if suback.return_codes[0] < 1:
        raise NotApplicable(f"grants QoS {suback.return_codes[0]} for a QoS 2 subscription"
                            " (allowed [MQTT-3.8.4-7]): nothing to keep unacknowledged")
    pub, _ = await connect5(ctx, "pub")
    sent = [(b"q1-acked", Q1), (b"q1-open", Q1)]
    if two:
        sent += [(b"q2-released", Q2), (b"q2-open", Q2)]
    for payload, qos in sent:
        await publish5(pub, topic, payload, qos)
    got: dict[bytes, Publish] = {}
    while len(got) < len(sent):
        message = await sub.expect(Publish, "a message the subscription matches"
                                   " [MQTT-3.3.4-1]")
        got[message.payload] = message
    acked = got[b"q1-acked"].packet_id or 0
    await sub.send(PubAck(acked))
    released = 0
    if two:
        released = got[b"q2-released"].packet_id or 0
        await sub.send(PubRec(released))
        await sub.expect(PubRel, "PUBREL for PUBREC [MQTT-4.3.3-4]")
    await sub.send(PingReq(), note="the server has read the acknowledgements before the drop")
    await sub.expect(PingResp, "PINGRESP for PINGREQ [MQTT-3.12.4-1]")
    sub.abort()
    await publish5(pub, topic, b"meanwhile", Q1)
    back, _ = await connect5(ctx, "back", cid, clean=False, props=KEPT, session_present=True)
    await publish5(pub, topic, b"end", Q1)
    before = await collect_until(back, b"end", "(a message published after the return)"
                                 " [MQTT-3.3.4-1]", ack=False)
    payloads = [m.payload for m in before]
    rels = [p.packet_id for p in back.pending if isinstance(p, PubRel)]
    judgments = [
        (b"q1-open" in payloads, f"back: the QoS 1 PUBLISH never acknowledged by PUBACK must be"
         f" sent again, got {payloads} [MQTT-4.3.2-3]"),
        (b"q1-acked" not in payloads, "back: the QoS 1 PUBLISH the client acknowledged by"
         " PUBACK is no longer unacknowledged: it must not come again [MQTT-4.3.2-3]"),
        (b"meanwhile" in payloads, f"back: the message published while the client was away is"
         f" part of its session state, got {payloads} [MQTT-4.5.0-1]"),
    ]
    if two:
        judgments += [
            (b"q2-open" in payloads, f"back: the QoS 2 PUBLISH never acknowledged by PUBREC"
             f" must be sent again, got {payloads} [MQTT-4.3.3-3]"),
            (b"q2-released" not in payloads, "back: the QoS 2 PUBLISH whose PUBREL the server"
             " sent must not be sent again [MQTT-4.3.3-6]"),
            (released in rels, f"back: the PUBREL {released} never acknowledged by PUBCOMP"
             f" must be sent again, got PUBREL {rels} [MQTT-4.3.3-5]"),
        ]
    for n, (holds, text) in enumerate(judgments):
        async with ctx.scenario(f"after the return, judgment {n + 1}"):  # each on its own
            require(holds, text)
    if not two:
        raise NotApplicable(f"grants QoS {suback.return_codes[0]} for a QoS 2 subscription or"
                            f" declares Maximum QoS {ctx.profile5.maximum_qos} (allowed): no QoS 2"
                            " flow to keep unacknowledged", *QOS2_IDS)
