"""Reserved bits a 5.0 server must validate: the fixed-header flags of PUBREL, SUBSCRIBE
and UNSUBSCRIBE (0010), the reserved bits of a SUBSCRIBE's Subscription Options, and the
fixed-header flags of DISCONNECT (0000).

Each packet is otherwise well formed and would be answered (PUBCOMP, SUBACK, UNSUBACK), so
an answer instead of the close shows the bits were not validated. A DISCONNECT closes the
connection either way; what tells a validating server apart is the Will Message: a
malformed DISCONNECT is no DISCONNECT with Reason Code 0x00, so the will is published.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Properties,
    QoS,
    Subscription,
    Will,
)
from mqttref.oracle import raw
from mqttref.oracle.checks5._closing import ending
from mqttref.oracle.checks5.common import (
    check5,
    closes_after_error,
    collect_until,
    connect5,
    subscribe5,
)
from mqttref.oracle.flows import require
from mqttref.oracle.scenario import Context

_EMPTY = b"\x00"
"""An empty 5.0 property block."""


@check5("MQTT-3.6.1-1", "MQTT-3.8.1-1", "MQTT-3.10.1-1", "MQTT-3.8.3-5",
        summary="PUBREL, SUBSCRIBE and UNSUBSCRIBE with fixed-header flags 0000, and a"
        " SUBSCRIBE whose Subscription Options set reserved bits 6 and 7, are malformed: the"
        " server closes instead of answering")
async def reserved_bits_v5(ctx: Context) -> None:
    topic = ctx.topic("flags")
    async with ctx.scenario("PUBREL flags 0000"):
        # A PUBREL of an unknown Packet Identifier is answered with PUBCOMP (0x92 or 0x00),
        # at any Maximum QoS: what a server that ignores the flags sends instead of closing.
        probe, _ = await connect5(ctx, "pubrel")
        await probe.send(raw.frame(0x60, raw.u16(4321)), note="PUBREL 4321 with flags 0000")
        await closes_after_error(probe, "PUBREL flags other than 0010 are malformed"
                                 " [MQTT-3.6.1-1]")
    async with ctx.scenario("SUBSCRIBE flags 0000"):
        probe, _ = await connect5(ctx, "sub")
        body = raw.u16(3) + _EMPTY + raw.string(topic) + bytes((1,))
        await probe.send(raw.frame(0x80, body), note="SUBSCRIBE with flags 0000")
        await closes_after_error(probe, "SUBSCRIBE flags other than 0010 are malformed"
                                 " [MQTT-3.8.1-1]")
    async with ctx.scenario("UNSUBSCRIBE flags 0000"):
        probe, _ = await connect5(ctx, "unsub")
        await probe.send(raw.frame(0xA0, raw.u16(4) + _EMPTY + raw.string(topic)),
                         note="UNSUBSCRIBE with flags 0000")
        await closes_after_error(probe, "UNSUBSCRIBE flags other than 0010 are malformed"
                                 " [MQTT-3.10.1-1]")
    async with ctx.scenario("Subscription Options reserved bits"):
        probe, _ = await connect5(ctx, "options")
        body = raw.u16(5) + _EMPTY + raw.string(topic) + bytes((0xC1,))
        await probe.send(raw.frame(0x82, body),
                         note="SUBSCRIBE QoS 1 with Subscription Options bits 7 and 6 set")
        await closes_after_error(probe, "a SUBSCRIBE with reserved bits of its Subscription"
                                 " Options set is malformed [MQTT-3.8.3-5]")


@check5("MQTT-3.14.1-1",
        summary="a DISCONNECT with fixed-header flags 0010 is malformed: not a normal"
        " disconnection, so the Will Message is published, and a DISCONNECT from the server"
        " carries 0x81")
async def disconnect_reserved_bits_v5(ctx: Context) -> None:
    topic = ctx.topic("dflags")
    watch, _ = await connect5(ctx, "watch")
    await subscribe5(watch, Subscription(topic, QoS.AT_MOST_ONCE), exact=False)
    will = Will(topic, b"will", QoS.AT_MOST_ONCE, False, Properties())
    probe, _ = await connect5(ctx, "leaver", will=will)
    await probe.send(raw.frame(0xE2, b"\x00"),
                     note="DISCONNECT 0x00 with flags 0010 (reserved, must be 0000)")
    disconnect = await ending(probe, "a DISCONNECT with reserved flags set is malformed"
                              " (2.1.3, 0x81) [MQTT-3.14.1-1]")
    if disconnect is not None:
        require(disconnect.reason_code == 0x81, f"leaver: the server's DISCONNECT for a"
                " DISCONNECT with reserved bits set must carry 0x81 (Malformed Packet), got"
                f" 0x{disconnect.reason_code:02X} [MQTT-3.14.1-1]")
    await collect_until(watch, b"will", "(the DISCONNECT with reserved bits set is malformed,"
                        " no normal disconnection: the Will Message is published, 3.1.2.5)"
                        " [MQTT-3.14.1-1]")
