"""MQTT 5.0 Request Problem Information 0 (3.1.2.11.7): the server may then give a Reason
String or User Properties only on PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29].

The check draws from the server every other packet a client can cause on a working
connection, including the ones a server most likely explains (an UNSUBACK for a filter
never subscribed, a PUBACK for a message no one receives, a PUBCOMP for an unknown Packet
Identifier), and judges each one that arrives.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Packet,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from mqttref.oracle.checks5.common import check5, connect5
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Probe, describe
from mqttref.oracle.scenario import Context

Q1, Q2 = QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE


def _plain(probe: Probe, packet: Packet, cause: str) -> None:
    """``packet`` (neither PUBLISH, CONNACK nor DISCONNECT) has no Reason String and no
    User Property."""
    props: Properties = getattr(packet, "properties")  # noqa: B009 (every ack carries some)
    require(props.reason_string is None and not props.user_properties,
            f"{probe.name}: {describe(packet)} (for {cause}) must carry no Reason String and"
            f" no User Property: the client sent Request Problem Information 0"
            " [MQTT-3.1.2-29]")


@check5("MQTT-3.1.2-29",
        summary="with Request Problem Information 0, SUBACK, UNSUBACK, PUBACK, PUBREC, PUBREL"
        " and PUBCOMP carry no Reason String or User Property")
async def request_problem_information_0_v5(ctx: Context) -> None:
    quiet = Properties(request_problem_information=0)
    probe, _ = await connect5(ctx, "quiet", props=quiet)
    topic = ctx.topic("rpi")
    packet_id = probe.new_packet_id()
    top = QoS(min(2, ctx.profile5.maximum_qos))
    await probe.send(Subscribe(packet_id, (Subscription(topic, top),)))
    _plain(probe, await probe.expect(SubAck, "SUBACK for SUBSCRIBE [MQTT-3.8.4-1]"),
           "a SUBSCRIBE")
    await probe.send(Unsubscribe(probe.new_packet_id(), (ctx.topic("rpi", "never"),)))
    _plain(probe, await probe.expect(UnsubAck, "UNSUBACK for UNSUBSCRIBE [MQTT-3.10.4-4]"),
           "an UNSUBSCRIBE of a filter never subscribed")
    if top < Q1:
        # No QoS 1 PUBLISH above the declared Maximum QoS 0 [MQTT-3.2.2-11] (nor, below
        # Maximum QoS 2, a PUBREL: it has no QoS 2 flow to belong to).
        return
    await probe.send(Publish(ctx.topic("rpi", "nobody"), b"n", Q1, False, False,
                             probe.new_packet_id()))
    _plain(probe, await probe.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]"),
           "a QoS 1 PUBLISH no one subscribes to")
    if top < Q2:
        return
    await probe.send(PubRel(4321), note="a PUBREL for a Packet Identifier never used")
    _plain(probe, await probe.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-11]"),
           "a PUBREL of an unknown Packet Identifier")
    mine = probe.new_packet_id()
    await probe.send(Publish(topic, b"own", Q2, False, False, mine))
    _plain(probe, await probe.expect(PubRec, "PUBREC for a QoS 2 PUBLISH [MQTT-4.3.3-8]"),
           "a QoS 2 PUBLISH")
    await probe.send(PubRel(mine))
    _plain(probe, await probe.expect(PubComp, "PUBCOMP for PUBREL [MQTT-4.3.3-11]"),
           "a PUBREL")
    # Its own message comes back on its subscription (no No Local): the server's PUBREL.
    back = await probe.expect(Publish, "the message its subscription matches [MQTT-3.3.4-1]")
    if back.qos == Q2 and back.packet_id is not None:
        await probe.send(PubRec(back.packet_id))
        _plain(probe, await probe.expect(PubRel, "PUBREL for PUBREC [MQTT-4.3.3-4]"),
               "the client's PUBREC")
        await probe.send(PubComp(back.packet_id))
    elif back.qos == Q1 and back.packet_id is not None:
        await probe.send(PubAck(back.packet_id))
