"""The server's DISCONNECT (3.14) as a 5.0 client provokes it: a session taken over by a
second connection with the same Client Identifier, a Protocol Error, and errors before
any CONNACK, where no DISCONNECT may come at all.

Whether a server sends DISCONNECT before it closes is its choice (4.13.1, 3.1.4-3): a bare
close leaves the statements about the DISCONNECT's content without a packet to judge,
NOT APPLICABLE with that choice named; the close itself is always judged. The client
connects with a Maximum Packet Size as small as its own CONNACK, so that a Reason String
the server would add must be left out [MQTT-3.14.2-3] [MQTT-3.14.2-4].
"""

from __future__ import annotations

import struct

from mqttref.impl.codec.packets import PingReq, Properties
from mqttref.oracle import raw
from mqttref.oracle.checks5._closing import ending, size
from mqttref.oracle.checks5.common import check5, connect5
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.probe import Probe
from mqttref.oracle.scenario import Context

CONTENT = ("MQTT-3.14.2-1", "MQTT-3.14.2-2", "MQTT-3.14.2-3", "MQTT-3.14.2-4", "MQTT-3.14.4-1",
           "MQTT-3.14.4-2", "MQTT-4.13.2-1")
"""What only a DISCONNECT the server chose to send lets a client judge."""


async def _tight_limit(ctx: Context) -> int:
    """The smallest Maximum Packet Size the server's CONNACK fits in (at least 16): a
    client asking for it still gets its CONNACK, and hardly any Reason String fits."""
    probe, connack = await connect5(ctx, "ref")
    await probe.close()
    return max(size(connack), 16)


async def _bare_close(probe: Probe, why: str, limit: int) -> None:
    disconnect = await ending(probe, why, limit=limit)
    if disconnect is None:
        raise NotApplicable("closes without a DISCONNECT (a server MAY send one first, 4.13.1):"
                            " no DISCONNECT to judge", *CONTENT)


@check5(*CONTENT,
        summary="the server's DISCONNECT on a session takeover and on a Protocol Error carries"
        " a DISCONNECT Reason Code, no Session Expiry Interval, fits the client's Maximum"
        " Packet Size, and is the last packet before the close")
async def server_disconnect_v5(ctx: Context) -> None:
    limit = await _tight_limit(ctx)
    tight = Properties(maximum_packet_size=limit)
    async with ctx.scenario("session taken over"):
        cid = ctx.client_id("take")
        first, _ = await connect5(ctx, "first", cid, props=tight)
        await connect5(ctx, "second", cid)
        await _bare_close(first, "a new connection with the same Client Identifier takes the"
                          " session over; the server must close the existing one (3.1.4,"
                          " 0x8E) [MQTT-3.1.4-3]", limit)
    async with ctx.scenario("Protocol Error"):
        bad, _ = await connect5(ctx, "bad", props=tight)
        await bad.send(raw.publish5(ctx.topic("disc"), b"x", qos=1, packet_id=1,
                                    props=raw.properties(b"\x23" + struct.pack("!H", 0))),
                       note="PUBLISH with Topic Alias 0, a Protocol Error (3.3.2.3.4)")
        await _bare_close(bad, "Topic Alias 0 is a Protocol Error (3.3.2.3.4, 0x94)"
                          " [MQTT-4.13.1-1]", limit)


@check5("MQTT-3.14.0-1", "MQTT-4.13.2-1",
        summary="an error before any CONNACK (a first packet that is not CONNECT, a CONNECT"
        " with Receive Maximum 0) closes the connection with no DISCONNECT, at most a CONNACK"
        " of 0x80 or above")
async def no_disconnect_before_connack_v5(ctx: Context) -> None:
    async with ctx.scenario("PINGREQ first"):
        probe = await ctx.open("first")
        await probe.send(PingReq(), note="a first packet other than CONNECT")
        await ending(probe, "a first packet other than CONNECT is a Protocol Error (3.1)"
                     " [MQTT-4.13.1-1]",
                     before_connack=True)
    async with ctx.scenario("Receive Maximum 0"):
        probe = await ctx.open("rmax0")
        # Written by hand: the encoder refuses a Receive Maximum of 0.
        props = raw.properties(b"\x21" + struct.pack("!H", 0))
        await probe.send(raw.connect5(ctx.client_id("rm0"), props),
                         note="CONNECT with Receive Maximum 0, a Protocol Error (3.1.2.11.3)")
        await ending(probe, "Receive Maximum 0 is a Protocol Error (3.1.2.11.3): the server"
                     " must refuse the CONNECT and close [MQTT-4.13.1-1]", before_connack=True)

