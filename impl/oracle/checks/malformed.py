"""Malformed packets and protocol violations: the server must close (1.5.3, 2.2.2, 4.8).

Each check sends one bad packet on an accepted connection and requires the
server to close it without answering, then requires that a fresh client is
still served: bad input must harm nobody else (``BAD-INPUTS.md``).
"""

from __future__ import annotations

import asyncio

from mqttref.impl.oracle import raw
from mqttref.impl.oracle.checks.common import closes_after, still_serving
from mqttref.impl.oracle.flows import deliveries, require, summary
from mqttref.impl.oracle.probe import Deviation
from mqttref.impl.oracle.scenario import Context, check
from mqttref.impl.packets import Publish, PubRec, QoS


async def _violation(ctx: Context, data: bytes, note: str) -> None:
    probe = await ctx.client("bad")
    await closes_after(probe, data, note)
    await still_serving(ctx)


@check("MQTT-3.3.1-4", summary="PUBLISH with both QoS bits set: closed [ORACLE D3]")
async def publish_qos_3(ctx: Context) -> None:
    await _violation(ctx, raw.publish(ctx.topic("q3"), b"x", flags=0x06, packet_id=1),
                     "PUBLISH with QoS bits 11")


@check("MQTT-3.8.3-4", summary="SUBSCRIBE requesting QoS 3: closed [ORACLE D4]")
async def subscribe_qos_3(ctx: Context) -> None:
    await _violation(ctx, raw.subscribe(1, (ctx.topic("q3"), 3)), "SUBSCRIBE requesting QoS 3")


@check("MQTT-3.8.3-4", summary="SUBSCRIBE with reserved bits set in the options byte: closed")
async def subscribe_reserved_option_bits(ctx: Context) -> None:
    await _violation(ctx, raw.subscribe(1, (ctx.topic("rb"), 0x05)),
                     "SUBSCRIBE with options byte 0x05")


@check("MQTT-3.3.2-2", "MQTT-4.7.1-1",
       summary="PUBLISH to a topic name with + or #: closed, never delivered [ORACLE D5]")
async def publish_wildcard_topic_name(ctx: Context) -> None:
    watcher = await ctx.subscriber("watch", (ctx.topic("#"), QoS.AT_MOST_ONCE))
    for wildcard in ("+", "#"):
        await _violation(ctx, raw.publish(ctx.topic("w", wildcard), b"wild"),
                         f"PUBLISH to P/w/{wildcard}")
    got = await deliveries(watcher)
    require(not got, f"a PUBLISH to a wildcard topic name was delivered: {summary(got)}")


@check("MQTT-4.7.3-1", "MQTT-3.3.2-1", summary="PUBLISH with a zero-length topic name: closed")
async def publish_empty_topic(ctx: Context) -> None:
    await _violation(ctx, raw.publish(b"", b"no topic"), "PUBLISH with an empty topic name")


@check("MQTT-4.7.3-1", summary="SUBSCRIBE with a zero-length topic filter: closed")
async def subscribe_empty_filter(ctx: Context) -> None:
    await _violation(ctx, raw.subscribe(1, (b"", 0)), "SUBSCRIBE with an empty filter")


@check("MQTT-1.5.3-2", "MQTT-4.7.3-2", summary="PUBLISH with U+0000 in the topic name: closed")
async def publish_null_in_topic(ctx: Context) -> None:
    await _violation(ctx, raw.publish(ctx.topic("nul\x00x"), b"x"), "PUBLISH topic with U+0000")


@check("MQTT-1.5.3-2", "MQTT-4.7.3-2", summary="SUBSCRIBE with U+0000 in the filter: closed")
async def subscribe_null_in_filter(ctx: Context) -> None:
    await _violation(ctx, raw.subscribe(1, (ctx.topic("nul\x00x"), 0)),
                     "SUBSCRIBE filter with U+0000")


@check("MQTT-1.5.3-1", "MQTT-3.3.2-1", summary="PUBLISH topic with ill-formed UTF-8: closed")
async def publish_ill_formed_topic(ctx: Context) -> None:
    await _violation(ctx, raw.publish(b"mqttref-check/\xc3\x28", b"x"),
                     "PUBLISH topic bytes ... C3 28")


@check("MQTT-1.5.3-1", summary="PUBLISH topic holding an encoded surrogate (U+D800): closed")
async def publish_surrogate_topic(ctx: Context) -> None:
    await _violation(ctx, raw.publish(b"mqttref-check/\xed\xa0\x80", b"x"),
                     "PUBLISH topic bytes ... ED A0 80")


@check("MQTT-1.5.3-1", summary="SUBSCRIBE filter with ill-formed UTF-8: closed")
async def subscribe_ill_formed_filter(ctx: Context) -> None:
    await _violation(ctx, raw.subscribe(1, (b"mqttref-check/\xff", 0)),
                     "SUBSCRIBE filter bytes ... FF")


@check("MQTT-1.5.3-1",
       summary="UNSUBSCRIBE filter with ill-formed UTF-8: closed")
async def unsubscribe_ill_formed_filter(ctx: Context) -> None:
    await _violation(ctx, raw.unsubscribe(1, b"mqttref-check/\xff"),
                     "UNSUBSCRIBE filter bytes ... FF")


@check("MQTT-4.8.0-1", summary="SUBSCRIBE without any filter: closed")
async def subscribe_without_payload(ctx: Context) -> None:
    await _violation(ctx, raw.subscribe(1), "SUBSCRIBE with no topic filter")


@check("MQTT-4.8.0-1", summary="UNSUBSCRIBE without any filter: closed")
async def unsubscribe_without_payload(ctx: Context) -> None:
    await _violation(ctx, raw.unsubscribe(1), "UNSUBSCRIBE with no topic filter")


@check("MQTT-3.8.1-1", "MQTT-2.2.2-2", summary="SUBSCRIBE with fixed-header flags 0000: closed")
async def subscribe_bad_flags(ctx: Context) -> None:
    await _violation(ctx, raw.subscribe(1, (ctx.topic("f"), 0), flags=0x00),
                     "SUBSCRIBE with flags 0000")


@check("MQTT-3.10.1-1", "MQTT-2.2.2-2",
       summary="UNSUBSCRIBE with fixed-header flags 0000: closed")
async def unsubscribe_bad_flags(ctx: Context) -> None:
    await _violation(ctx, raw.unsubscribe(1, ctx.topic("f"), flags=0x00),
                     "UNSUBSCRIBE with flags 0000")


@check("MQTT-3.6.1-1", "MQTT-2.2.2-2", summary="PUBREL with fixed-header flags 0000: closed")
async def pubrel_bad_flags(ctx: Context) -> None:
    probe = await ctx.client("bad")
    await probe.send(Publish(ctx.topic("rel"), b"x", QoS.EXACTLY_ONCE, False, False, 3))
    await probe.expect(PubRec)
    await closes_after(probe, bytes((0x60, 2, 0, 3)), "PUBREL with flags 0000")
    await still_serving(ctx)


@check("MQTT-2.2.2-1", "MQTT-2.2.2-2", summary="PINGREQ with a reserved flag set: closed")
async def pingreq_bad_flags(ctx: Context) -> None:
    await _violation(ctx, bytes((0xC1, 0)), "PINGREQ with flags 0001")


@check("MQTT-4.8.0-1",
       summary="a client sending CONNACK, SUBACK, UNSUBACK or PINGRESP: closed")
async def server_only_packets_close(ctx: Context) -> None:
    packets = {
        "CONNACK": bytes((0x20, 2, 0, 0)),
        "SUBACK": bytes((0x90, 3, 0, 1, 0)),
        "UNSUBACK": bytes((0xB0, 2, 0, 1)),
        "PINGRESP": bytes((0xD0, 0)),
    }
    probes = {kind: await ctx.client(kind.lower()[:6]) for kind in packets}
    for kind, data in packets.items():
        await probes[kind].send(data, f"{kind} from the client (a server-to-client packet)")
    outcomes = await asyncio.gather(*(p.wait_close() for p in probes.values()),
                                    return_exceptions=True)
    stayed_open = [kind for kind, outcome in zip(packets, outcomes, strict=True)
                   if isinstance(outcome, Deviation)]
    require(not stayed_open,
            f"the connection stayed open after the client sent {', '.join(stayed_open)}")
    await still_serving(ctx)


@check("MQTT-4.8.0-1", summary="packet types 0 and 15 (reserved in 3.1.1): closed")
async def reserved_packet_types(ctx: Context) -> None:
    for kind in (0x00, 0xF0):
        await _violation(ctx, bytes((kind, 0)), f"packet type {kind >> 4}")


@check("MQTT-2.3.1-1", summary="QoS 1 PUBLISH, SUBSCRIBE and UNSUBSCRIBE with packet id 0: closed")
async def packet_id_zero(ctx: Context) -> None:
    await _violation(ctx, raw.publish(ctx.topic("id0"), b"x", flags=0x02, packet_id=0),
                     "PUBLISH QoS 1 with packet id 0")
    await _violation(ctx, raw.subscribe(0, (ctx.topic("id0"), 0)), "SUBSCRIBE with packet id 0")
    await _violation(ctx, raw.unsubscribe(0, ctx.topic("id0")), "UNSUBSCRIBE with packet id 0")


@check("MQTT-2.3.1-1", "MQTT-4.8.0-1",
       summary="QoS 1 PUBLISH cut short before its packet id: closed")
async def publish_without_packet_id(ctx: Context) -> None:
    topic = raw.string(ctx.topic("noid"))
    await _violation(ctx, raw.frame(0x32, topic), "PUBLISH QoS 1 ending after the topic")


@check("MQTT-4.8.0-1", summary="a Remaining Length of five bytes: closed")
async def remaining_length_five_bytes(ctx: Context) -> None:
    await _violation(ctx, bytes((0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01)),
                     "PUBLISH with Remaining Length FF FF FF FF 01")


@check("MQTT-4.8.0-1", "MQTT-3.1.4-1",
       summary="CONNECT cut short (Remaining Length past the end of the fields): closed")
async def truncated_connect(ctx: Context) -> None:
    probe = await ctx.open("bad")
    await probe.send(raw.frame(0x10, raw.string(b"MQTT") + bytes((4,))), "CONNECT ending early")
    seen = await probe.wait_close()
    require(not seen, f"a truncated CONNECT was answered: {seen}")
    await still_serving(ctx)
