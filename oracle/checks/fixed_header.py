"""The server as a sender of fixed headers: the reserved flag bits of Table 2.2 (2.2.2).

The checks of ``malformed`` judge how the server reacts to bad flags from a
client [MQTT-2.2.2-2]; this one judges the flags the server itself sets
[MQTT-2.2.2-1]. The probe decodes everything the server sends with the strict
codec, which refuses a packet whose reserved flags differ from Table 2.2 (and
the probe blames that on MQTT-2.2.2-1). A scenario that makes the server send
every packet type it can send is therefore an observation of the rule for each
of them.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    PingReq,
    PingResp,
    Publish,
    QoS,
    UnsubAck,
    Unsubscribe,
)
from mqttref.oracle.flows import acknowledge, publish, require, subscribe
from mqttref.oracle.scenario import Context, check


@check("MQTT-2.2.2-1",
       summary="CONNACK, SUBACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK and"
               " PINGRESP from the server: reserved flags as Table 2.2 lists them")
async def server_sets_reserved_flags(ctx: Context) -> None:
    topic = ctx.topic("flags")
    qos = QoS(min(2, ctx.profile.max_qos))
    sub = await ctx.client("sub")
    await subscribe(sub, (topic, qos), exact=False)
    pub = await ctx.client("pub")
    sent = QoS.EXACTLY_ONCE if ctx.profile.qos2_publish else QoS.AT_LEAST_ONCE
    await publish(pub, topic, b"flags", sent)
    message = await sub.expect(Publish, "the PUBLISH a subscription owes [MQTT-4.5.0-1]")
    await acknowledge(sub, message)
    await sub.send(Unsubscribe(sub.new_packet_id(), (topic,)))
    await sub.expect(UnsubAck, "UNSUBACK for UNSUBSCRIBE [MQTT-3.10.4-4]")
    await sub.send(PingReq())
    await sub.expect(PingResp, "PINGRESP for PINGREQ [MQTT-3.12.4-1]")
    kinds = "CONNACK, SUBACK, PUBLISH, PUBACK or PUBREC/PUBCOMP, UNSUBACK, PINGRESP"
    if message.qos == QoS.EXACTLY_ONCE:
        kinds += ", PUBREL"
    require(sub.closed is None and pub.closed is None,
            f"every packet the server sent ({kinds}) carried the fixed-header flags of"
            " Table 2.2 (the strict decoder refuses any other) [MQTT-2.2.2-1]")
