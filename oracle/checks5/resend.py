"""MQTT 5.0 re-delivery (4.4): what the server re-sends when a client comes back with
Clean Start 0 to a session it kept, what it never re-sends, and the DUP flag it sets.

The subscriber leaves a QoS 1 PUBLISH unacknowledged and a QoS 2 flow at PUBREL without
its PUBCOMP, drops the connection and reconnects with Clean Start 0. Both are owed again
with their original Packet Identifiers [MQTT-4.4.0-1]; nothing is re-sent on the live
connection before that. An absence is judged up to a later message on the same
subscription, which must arrive.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Subscription,
)
from mqttref.oracle.checks5.common import (
    check5,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.scenario import Context

Q1, Q2 = QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
KEPT = Properties(session_expiry_interval=30)


@check5("MQTT-4.4.0-1", "MQTT-3.3.1-1", "MQTT-4.4.0-2", "MQTT-3.3.1-3",
        summary="on reconnect with Clean Start 0 the unacknowledged QoS 1 PUBLISH comes again"
        " with DUP 1 and the unanswered PUBREL again, both with their Packet Identifiers;"
        " nothing is re-sent otherwise, nor a message refused with PUBACK 0x80; DUP is the"
        " server's own")
async def resend_on_reconnect_v5(ctx: Context) -> None:
    async with ctx.scenario("unacknowledged PUBLISH and PUBREL"):
        topic = ctx.topic("resend")
        cid = ctx.client_id("sub")
        sub, connack = await connect5(ctx, "sub", cid, props=KEPT)
        if connack.properties.session_expiry_interval == 0:
            raise NotApplicable("sets the Session Expiry Interval to 0 in CONNACK for a request"
                                " of 30 s (the server's right, 3.2.2.3.2)")
        suback = await subscribe5(sub, Subscription(topic, Q2), exact=False)
        granted = suback.return_codes[0]
        if granted < 1:
            raise NotApplicable(f"grants QoS {granted} for a QoS 2 subscription (allowed"
                                " [MQTT-3.8.4-7]): nothing to re-send")
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"one", Q1)
        one = await sub.expect(Publish, "the QoS 1 message the subscription matches"
                               " [MQTT-3.3.4-1]")
        rel = None
        if granted == 2:
            await publish5(pub, topic, b"two", Q2)
            two = await sub.expect(Publish, "the QoS 2 message the subscription matches"
                                   " [MQTT-3.3.4-1]")
            assert two.packet_id is not None
            await sub.send(PubRec(two.packet_id))
            rel = await sub.expect(PubRel, "PUBREL for PUBREC [MQTT-4.3.3-4]")
        await publish5(pub, topic, b"mid", Q1)
        before = await collect_until(sub, b"mid", "(a later message on the subscription)"
                                     " [MQTT-3.3.4-1]")
        require(all(m.payload not in (b"one", b"two") for m in before),
                "sub: on the live connection the server must not re-send a PUBLISH: it re-sends"
                " only on a reconnection with Clean Start 0 [MQTT-4.4.0-1]")
        sub.abort()
        back, _ = await connect5(ctx, "back", cid, clean=False, props=KEPT,
                                 session_present=True)
        again = await back.expect(Publish, "the unacknowledged QoS 1 PUBLISH re-sent on a"
                                  " reconnection with Clean Start 0 [MQTT-4.4.0-1]")
        require(again.payload == b"one" and again.packet_id == one.packet_id,
                f"back: the re-sent PUBLISH must be the unacknowledged one with its Packet"
                f" Identifier {one.packet_id}, got {again.payload!r} id {again.packet_id}"
                " [MQTT-4.4.0-1]")
        require(again.dup, f"back: a re-delivered PUBLISH must have DUP 1, got DUP {int(again.dup)}"
                " [MQTT-3.3.1-1]")
        assert again.packet_id is not None
        await back.send(PubAck(again.packet_id))
        if rel is not None:
            rel2 = await back.expect(PubRel, "the PUBREL not answered by PUBCOMP, re-sent on"
                                     " a reconnection with Clean Start 0 [MQTT-4.4.0-1]")
            require(rel2.packet_id == rel.packet_id, f"back: the re-sent PUBREL must carry its"
                    f" Packet Identifier {rel.packet_id}, got {rel2.packet_id} [MQTT-4.4.0-1]")
            await back.send(PubComp(rel2.packet_id))
        await publish5(pub, topic, b"end", Q1)
        before = await collect_until(back, b"end", "(a later message on the subscription)"
                                     " [MQTT-3.3.4-1]")
        require(all(m.payload != b"two" for m in before), "back: a QoS 2 PUBLISH whose PUBREL"
                " was sent must not be re-sent [MQTT-4.3.3-6]")
        if granted < 2:
            raise NotApplicable(f"grants QoS {granted} for a QoS 2 subscription (allowed"
                                " [MQTT-3.8.4-7]): no PUBREL to re-send")
    async with ctx.scenario("refused with PUBACK 0x80"):
        topic = ctx.topic("resend", "refused")
        cid = ctx.client_id("sub")
        sub, connack = await connect5(ctx, "sub", cid, props=KEPT)
        if connack.properties.session_expiry_interval == 0:
            raise NotApplicable("sets the Session Expiry Interval to 0 in CONNACK for a request"
                                " of 30 s (the server's right, 3.2.2.3.2)")
        await subscribe5(sub, Subscription(topic, Q1))
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"refused", Q1)
        got = await sub.expect(Publish, "the QoS 1 message the subscription matches"
                               " [MQTT-3.3.4-1]")
        assert got.packet_id is not None
        await sub.send(PubAck(got.packet_id, 0x80), note="the client refuses it")
        await sub.is_open()  # the PUBACK was read before the connection drops
        sub.abort()
        back, _ = await connect5(ctx, "back", cid, clean=False, props=KEPT,
                                 session_present=True)
        await publish5(pub, topic, b"after", Q1)
        before = await collect_until(back, b"after", "(a later message on the subscription)"
                                     " [MQTT-3.3.4-1]")
        require(all(m.payload != b"refused" for m in before), "back: a PUBLISH answered with"
                " PUBACK 0x80 is acknowledged and must not be re-sent [MQTT-4.4.0-2]")
    async with ctx.scenario("DUP from the publisher"):
        topic = ctx.topic("resend", "dup")
        sub, _ = await connect5(ctx, "sub")
        await subscribe5(sub, Subscription(topic, Q1))
        pub, _ = await connect5(ctx, "pub")
        packet_id = pub.new_packet_id()
        await pub.send(Publish(topic, b"first", Q1, False, True, packet_id),
                       note="DUP 1 on a first delivery")
        await pub.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]")
        got = await sub.expect(Publish, "the QoS 1 message the subscription matches"
                               " [MQTT-3.3.4-1]")
        assert got.packet_id is not None
        await sub.send(PubAck(got.packet_id))
        require(not got.dup, "sub: the server's first sending of a message must have DUP 0,"
                " whatever the publisher's DUP [MQTT-3.3.1-3]")
