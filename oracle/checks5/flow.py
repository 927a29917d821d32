"""MQTT 5.0 flow limits: Topic Aliases from the client (3.3.2.3.4), Receive Maximum both
ways (3.3.4, 4.9) and the client's Maximum Packet Size (3.1.2.11.4).

Where the server's own CONNACK limit decides the situation (its Topic Alias Maximum,
its Receive Maximum), the check reads it from the profile: a feature declared off
makes the statement that needs it NOT APPLICABLE, while the check that the server
refuses its misuse still runs.
"""

from __future__ import annotations

import re
import struct

from mqttref.impl.codec.packets import (
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    Publish,
    QoS,
    Subscription,
)
from mqttref.oracle import raw
from mqttref.oracle.checks5.common import (
    SERVER_DISCONNECT_CODES,
    check5,
    closes_after_error,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import Deviation, Inconclusive, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Closed, Probe, Received
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE


def _alias(value: int) -> bytes:
    return raw.properties(bytes((0x23,)) + struct.pack("!H", value))


@check5("MQTT-3.3.2-12", "MQTT-4.13.1-1", "MQTT-3.1.2-27",
        summary="a Topic Alias within the server's maximum sets a mapping that an alias alone"
        " reuses; alias 0 or one above the maximum is a Protocol Error that closes")
async def topic_alias_v5_from_the_client(ctx: Context) -> None:
    maximum = ctx.profile5.topic_alias_maximum
    async with ctx.scenario("an alias sets and reuses a mapping"):
        if maximum == 0:
            raise NotApplicable("declares no Topic Alias Maximum (0): the client may send no"
                                " alias (3.2.2.3.8)", "MQTT-3.3.2-12", "MQTT-3.1.2-27")
        topic = ctx.topic("alias")
        sub, _ = await connect5(ctx, "sub")
        await subscribe5(sub, Subscription(topic, Q1), exact=False)
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"named", Q1, props=Properties(topic_alias=maximum))
        try:
            await publish5(pub, "", b"aliased", Q1, props=Properties(topic_alias=maximum))
        except Deviation as exc:  # the alias the server granted was not taken
            raise Deviation(f"pub: a PUBLISH with Topic Alias {maximum} alone, set by the"
                            " PUBLISH before it, must be accepted [MQTT-3.3.2-12]; instead:"
                            f" {uncited(str(exc))}") from exc
        before = await collect_until(sub, b"aliased", f"(published with Topic Alias {maximum}"
                                     " alone, the mapping the first PUBLISH set)"
                                     " [MQTT-3.3.2-12]")
        require(any(m.payload == b"named" for m in before),
                f"sub: the message published with Topic Alias {maximum} and its topic name must"
                " be delivered [MQTT-3.3.2-12]")
        _no_alias_sent(sub.name, before)
    for label, value in (("alias 0", 0), ("alias above the maximum", maximum + 1)):
        async with ctx.scenario(label):
            pub, _ = await connect5(ctx, "bad")
            await pub.send(raw.publish5(ctx.topic("alias", "bad"), b"x", qos=1, packet_id=1,
                                        props=_alias(value)),
                           note=f"PUBLISH with Topic Alias {value} (maximum {maximum})")
            await closes_after_error(pub, f"Topic Alias {value} with a Topic Alias Maximum of"
                                     f" {maximum} is a Protocol Error (3.3.2.3.4, 0x94)"
                                     " [MQTT-4.13.1-1]")


def uncited(message: str) -> str:
    """``message`` without its statement ids: what it says happened, blamed elsewhere."""
    return re.sub(r"\s*\[MQTT-[0-9.-]+\]", "", message)


def _no_alias_sent(name: str, delivered: list[Publish]) -> None:
    for message in delivered:
        require(message.properties.topic_alias is None,
                f"{name}: the client set no Topic Alias Maximum, so the server must send no"
                f" Topic Alias, got {message.properties.topic_alias} [MQTT-3.1.2-27]")


@check5("MQTT-3.3.4-9", "MQTT-3.3.4-10", "MQTT-4.9.0-2", "MQTT-4.9.0-3", "MQTT-4.6.0-6",
        summary="with the client's Receive Maximum 2 the server has at most two QoS 1"
        " PUBLISH unacknowledged, still answers PINGREQ, and sends the rest after PUBACKs,"
        " all in the order published")
async def receive_maximum_v5_of_the_client(ctx: Context) -> None:
    topic = ctx.topic("rmax")
    sub, _ = await connect5(ctx, "sub", props=Properties(receive_maximum=2))
    await subscribe5(sub, Subscription(topic, Q1))
    pub, _ = await connect5(ctx, "pub")
    payloads = [f"m{n}".encode() for n in range(1, 5)]
    for payload in payloads:
        await publish5(pub, topic, payload, Q1)
    held: list[Publish] = []
    while len(held) < 2:
        held.append(await sub.expect(Publish, "the queued QoS 1 messages are owed within the"
                                     " Receive Maximum [MQTT-3.3.4-9]"))
    await sub.send(PingReq())
    await sub.expect(PingResp, "PINGRESP with the send quota at zero [MQTT-3.3.4-10]"
                     " [MQTT-4.9.0-3]")
    extra = [p for p in await sub.quiet() if isinstance(p, Publish) and p.qos > 0]
    require(not extra, f"sub: with Receive Maximum 2 and two QoS 1 PUBLISH unacknowledged the"
            f" server must send no more, got {[m.payload for m in extra]} [MQTT-3.3.4-9]"
            " [MQTT-4.9.0-2]")
    order = [m.payload for m in held]
    rest = list(payloads)
    for message in held:
        rest.remove(message.payload)
        await sub.send(PubAck(message.packet_id or 0))
    for _ in range(2):
        message = await sub.expect(Publish, "the rest once PUBACKs freed the quota"
                                   " [MQTT-3.3.4-9]")
        rest.remove(message.payload)
        order.append(message.payload)
        await sub.send(PubAck(message.packet_id or 0))
    require(not rest, f"sub: all four messages must be delivered, missing {rest}"
            " [MQTT-3.3.4-9]")
    require(order == payloads, f"sub: one publisher's QoS 1 messages on one topic must be"
            f" forwarded in the order they were published, {payloads}, got {order}"
            " [MQTT-4.6.0-6]")


@check5("MQTT-4.13.1-1",
        summary="more QoS 2 PUBLISH unanswered by PUBCOMP than the server's Receive Maximum"
        " is a Protocol Error (0x93) that closes")
async def receive_maximum_v5_of_the_server(ctx: Context) -> None:
    limit = ctx.profile5.receive_maximum
    if ctx.profile5.maximum_qos < 2:
        raise NotApplicable(f"declares Maximum QoS {ctx.profile5.maximum_qos}: QoS 2 flows,"
                            " which hold the quota until PUBCOMP, cannot be sent (3.2.2.3.4)")
    if limit > 2000:
        raise Inconclusive(f"declares Receive Maximum {limit}: the check sends at most 2001")
    pub, _ = await connect5(ctx, "pub")
    topic = ctx.topic("over")
    for packet_id in range(1, limit + 2):
        await pub.send(Publish(topic, b"q", QoS.EXACTLY_ONCE, False, False, packet_id),
                       note=f"QoS 2 PUBLISH {packet_id} of {limit + 1}, no PUBREL")
    await _closes_with_pubrecs(pub, f"PUBLISH {limit + 1} exceeds the Receive Maximum"
                               f" {limit} the server declared: a Protocol Error (3.3.4, 0x93)"
                               " [MQTT-4.13.1-1]")


async def _closes_with_pubrecs(probe: Probe, why: str) -> None:
    """The close on the excess PUBLISH [MQTT-4.13.1-1]; PUBRECs for the PUBLISH within the
    limit may come first, and a DISCONNECT with a DISCONNECT Reason Code."""
    bound = probe.timing.reply_bound
    seen: list[Packet] = [*probe.pending]
    probe.pending = []
    while True:
        event = await probe.next_event(bound)
        if event is None:
            raise Deviation(f"{probe.name}: the server must close the connection ({why}); it is"
                            f" still open after {bound:.1f}s")
        if isinstance(event, Closed):
            break
        if not isinstance(event, Received):
            raise Deviation(f"{probe.name}: malformed bytes from the server: {event.error}")
        seen.append(event.packet)
    for packet in seen:
        if isinstance(packet, Disconnect):
            require(packet.reason_code in SERVER_DISCONNECT_CODES,
                    f"{probe.name}: DISCONNECT 0x{packet.reason_code:02X} must be a DISCONNECT"
                    " Reason Code [MQTT-3.14.2-1]")
    require(True, f"{probe.name}: closed: {why}")


@check5("MQTT-3.1.2-24", "MQTT-3.1.2-25",
        summary="a message larger than the client's Maximum Packet Size is not sent to it, and"
        " the next message that fits is")
async def maximum_packet_size_v5_of_the_client(ctx: Context) -> None:
    topic = ctx.topic("size")
    limit = 256
    sub, _ = await connect5(ctx, "sub", props=Properties(maximum_packet_size=limit))
    await subscribe5(sub, Subscription(topic, Q1), exact=False)
    pub, _ = await connect5(ctx, "pub")
    big = b"B" * (limit * 2)
    await publish5(pub, topic, big, Q1)
    await publish5(pub, topic, b"fits", Q1)
    before = await collect_until(sub, b"fits", f"(it fits the Maximum Packet Size {limit}: the"
                                 " server discards the larger one and goes on as if it had"
                                 " sent it) [MQTT-3.1.2-25]")
    require(all(len(m.payload) < limit for m in before),
            f"sub: a PUBLISH of more than the client's Maximum Packet Size {limit} must not be"
            " sent to it [MQTT-3.1.2-24]")


@check5("MQTT-3.3.2-8", "MQTT-3.3.2-11", "MQTT-3.1.2-26", "MQTT-3.3.2-3",
        summary="Topic Aliases the server sends stay within the client's Topic Alias Maximum,"
        " are never 0, and an alias alone only ever stands for a topic it was mapped to")
async def topic_alias_v5_from_the_server(ctx: Context) -> None:
    maximum = 2
    sub, _ = await connect5(ctx, "sub", props=Properties(topic_alias_maximum=maximum))
    topics = [ctx.topic("ta", f"t{n}") for n in range(4)]
    await subscribe5(sub, *(Subscription(topic, Q1) for topic in topics), exact=False)
    pub, _ = await connect5(ctx, "pub")
    for round_ in range(2):
        for topic in topics:
            await publish5(pub, topic, f"{topic[-2:]}/{round_}".encode(), Q1)
    await publish5(pub, topics[0], b"end", Q1)
    before = await collect_until(sub, b"end", "(a message the subscription matches)"
                                 " [MQTT-3.3.4-1]")
    mapping: dict[int, str] = {}
    used = 0
    for message in before:
        alias = message.properties.topic_alias
        if alias is not None:
            used += 1
            require(alias != 0, f"sub: Topic Alias {alias} must not be 0 [MQTT-3.3.2-8]")
            require(alias <= maximum, f"sub: Topic Alias {alias} must be at most the client's"
                    f" Topic Alias Maximum {maximum} [MQTT-3.3.2-11] [MQTT-3.1.2-26]")
            if message.topic:
                mapping[alias] = message.topic
        topic = message.topic or mapping.get(alias or 0, "")
        require(topic.endswith(message.payload.decode().split("/")[0]),
                f"sub: {message.payload!r} arrived on {topic or 'no topic'!r} (alias {alias}):"
                " it must carry the topic it was published to, which the subscription's"
                " filter matches [MQTT-3.3.2-3]")
    if not used:
        raise NotApplicable("sends no Topic Alias to a client that allows them (the server's"
                            " choice, 3.3.2.3.4)", "MQTT-3.3.2-8", "MQTT-3.3.2-11",
                            "MQTT-3.1.2-26")
