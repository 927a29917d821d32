"""MQTT 5.0 CONNECT and CONNACK (3.1, 3.2): acceptance, the assigned ClientID, and the
close on a CONNECT the text calls malformed or a Protocol Error."""

from __future__ import annotations

import struct

from mqttref.impl.codec.packets import Connect, Properties
from mqttref.oracle import raw
from mqttref.oracle.checks5.common import (
    CONNACK_CODES,
    V5,
    check5,
    closes_after_error,
    connect5,
)
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import first_packet_is_connack, require
from mqttref.oracle.scenario import Context


@check5("MQTT-3.1.4-5", "MQTT-3.2.2-2", "MQTT-3.2.2-8", "MQTT-4.12.0-6", "MQTT-3.1.2-28",
        summary="a valid 5.0 CONNECT with Clean Start 1 gets CONNACK 0x00, Session Present 0,"
        " no Authentication Method when the client sent none, and no Response Information"
        " when it asked for none")
async def connack_v5_accepts_valid_connect(ctx: Context) -> None:
    _, connack = await connect5(ctx, "c", session_present=False,
                                props=Properties(request_response_information=0))
    info = connack.properties.response_information
    require(info is None, f"c: Request Response Information 0: the CONNACK must not return"
            f" Response Information, got {info!r} [MQTT-3.1.2-28]")
    require(connack.return_code in CONNACK_CODES,
            f"c: CONNACK 0x{connack.return_code:02X} is a Connect Reason Code [MQTT-3.2.2-8]")
    method = connack.properties.authentication_method
    require(method is None, f"c: the CONNECT had no Authentication Method, so the CONNACK must"
            f" carry none, got {method!r} [MQTT-4.12.0-6]")


@check5("MQTT-3.1.3-6", "MQTT-3.1.3-7", "MQTT-3.2.2-16",
        summary="a zero-length ClientID, when accepted, gets a unique Assigned Client"
        " Identifier in CONNACK")
async def connack_v5_assigns_client_identifier(ctx: Context) -> None:
    assigned: list[str] = []
    for name in ("e1", "e2"):
        probe = await ctx.open(name)
        await probe.send(Connect(V5, "", True, 60))
        connack = await first_packet_is_connack(probe, "[MQTT-3.1.4-5]")
        if connack.return_code == 0x85:
            await probe.wait_close(why="a CONNACK refusing the ClientID is followed by the"
                                   " close [MQTT-3.1.3-8]")
            raise NotApplicable("refuses a zero-length ClientID with CONNACK 0x85 (allowed"
                                " [MQTT-3.1.3-6] [MQTT-3.1.3-8])")
        require(connack.return_code == 0, f"{name}: a valid CONNECT must be acknowledged with"
                f" 0x00, got 0x{connack.return_code:02X} [MQTT-3.1.4-5]")
        cid = connack.properties.assigned_client_identifier
        require(bool(cid), f"{name}: the server accepted a zero-length ClientID, so its CONNACK"
                f" must carry an Assigned Client Identifier, got {cid!r} [MQTT-3.2.2-16]"
                " [MQTT-3.1.3-7]")
        assert cid is not None
        assigned.append(cid)
    require(assigned[0] != assigned[1], f"the two clients were assigned {assigned}: each"
            " must get a unique ClientID, not used by any other session [MQTT-3.1.3-6]"
            " [MQTT-3.2.2-16]")


def _u32(prop: int, value: int) -> bytes:
    return bytes((prop,)) + struct.pack("!I", value)


def _u16(prop: int, value: int) -> bytes:
    return bytes((prop,)) + struct.pack("!H", value)


_BAD_CONNECTS: dict[str, tuple[bytes, int, str]] = {
    "Session Expiry Interval twice": (
        raw.properties(_u32(0x11, 10), _u32(0x11, 20)), 0x02,
        "including the Session Expiry Interval more than once is a Protocol Error"
        " (3.1.2.11.2)"),
    "Receive Maximum 0": (
        raw.properties(_u16(0x21, 0)), 0x02,
        "a Receive Maximum of 0 is a Protocol Error (3.1.2.11.3)"),
    "Topic Alias in CONNECT": (
        raw.properties(_u16(0x23, 1)), 0x02,
        "an identifier not valid for the packet type makes it a Malformed Packet (2.2.2.2)"),
    "reserved connect flag 1": (
        raw.properties(), 0x03,
        "a reserved flag of 1 is a Malformed Packet [MQTT-3.1.2-3]"),
}


@check5("MQTT-3.1.4-1", "MQTT-3.1.2-3", "MQTT-4.13.1-1",
        summary="a CONNECT with a duplicated or out-of-range property, a property CONNECT does"
        " not take, or the reserved flag set gets a refusing CONNACK or none, and the close")
async def connect_v5_protocol_errors_close(ctx: Context) -> None:
    for label, (props, flags, why) in _BAD_CONNECTS.items():
        async with ctx.scenario(label):
            probe = await ctx.open("bad")
            await probe.send(raw.connect5(ctx.client_id("bad"), props, flags=flags),
                             note=f"CONNECT with {label}")
            await closes_after_error(probe, f"{why}: the server must close [MQTT-3.1.4-1]"
                                     " [MQTT-4.13.1-1]", connack=True)
