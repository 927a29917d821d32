"""The server's initial send quota toward a client (4.9): above zero, at most the client's
Receive Maximum [MQTT-4.9.0-1]. With a Receive Maximum of 1 both bounds meet: the first
queued QoS 1 message must come without waiting for anything, the second not before the
first is acknowledged.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    PingReq,
    PingResp,
    Properties,
    PubAck,
    Publish,
    QoS,
    Subscription,
)
from mqttref.oracle.checks5.common import check5, connect5, publish5, subscribe5
from mqttref.oracle.flows import require
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE


@check5("MQTT-4.9.0-1",
        summary="to a client with Receive Maximum 1 the server sends one QoS 1 message at once"
        " and the next only after its PUBACK")
async def initial_send_quota_v5(ctx: Context) -> None:
    topic = ctx.topic("quota")
    sub, _ = await connect5(ctx, "sub", props=Properties(receive_maximum=1))
    await subscribe5(sub, Subscription(topic, Q1))
    pub, _ = await connect5(ctx, "pub")
    for payload in (b"first", b"second"):
        await publish5(pub, topic, payload, Q1)
    first = await sub.expect(Publish, "a QoS 1 message to a client with Receive Maximum 1,"
                             " owed before any PUBACK: the initial send quota is above zero"
                             " [MQTT-4.9.0-1]")
    await sub.send(PingReq())
    await sub.expect(PingResp, "PINGRESP for PINGREQ [MQTT-3.12.4-1]")
    early = [p for p in await sub.quiet() if isinstance(p, Publish) and p.qos > 0]
    require(not early, f"sub: {[p.payload for p in early]} came while the first QoS 1 message"
            " was unacknowledged: with Receive Maximum 1 the initial send quota may not exceed"
            " 1 [MQTT-4.9.0-1]")
    await sub.send(PubAck(first.packet_id or 0))
    second = await sub.expect(Publish, "the next QoS 1 message once the PUBACK freed the quota"
                              " [MQTT-4.9.0-2]")
    await sub.send(PubAck(second.packet_id or 0))
    require({first.payload, second.payload} == {b"first", b"second"}, f"sub: the two messages"
            f" must both arrive, got {first.payload!r} and {second.payload!r} [MQTT-4.9.0-2]")
