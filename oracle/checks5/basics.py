"""MQTT 5.0 housekeeping: PINGRESP, SUBACK and UNSUBACK shapes and order, UNSUBSCRIBE taking
effect, a second CONNECT, a session taken over, and the keep alive deadline."""

from __future__ import annotations

import time

from mqttref.impl.codec.packets import (
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from mqttref.oracle.checks5.common import (
    UNSUBACK_CODES,
    V5,
    check5,
    closes_after_error,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import Deviation, NotApplicable
from mqttref.oracle.flows import first_packet_is_connack, require
from mqttref.oracle.scenario import Context

Q0, Q1 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE

@check5("MQTT-3.12.4-1", summary="PINGREQ is answered with PINGRESP")
async def pingresp_v5(ctx: Context) -> None:
    probe, _ = await connect5(ctx, "ping")
    await probe.send(PingReq())
    await probe.expect(PingResp, "PINGRESP for PINGREQ [MQTT-3.12.4-1]")


@check5("MQTT-3.9.3-1", "MQTT-3.8.4-5", "MQTT-3.10.4-2", "MQTT-3.10.4-4", "MQTT-3.10.4-5",
        "MQTT-3.11.3-1", "MQTT-3.11.3-2",
        summary="a two-filter SUBSCRIBE gets its codes in order; UNSUBSCRIBE of a subscribed"
        " and an unknown filter gets an UNSUBACK with the same id and codes in order, and the"
        " removed subscription routes nothing more")
async def subscribe_and_unsubscribe_v5(ctx: Context) -> None:
    gone, kept = ctx.topic("unsub", "gone"), ctx.topic("unsub", "kept")
    probe, _ = await connect5(ctx, "sub")
    packet_id = probe.new_packet_id()
    # QoS 1 first: its code (1, or 0x80 and above) cannot be read as a Property Length of
    # 0, so a SUBACK without one is malformed [MQTT-2.2.2-1], not a code short.
    await probe.send(Subscribe(packet_id, (Subscription(gone, Q1), Subscription(kept, Q0))))
    suback = await probe.expect(SubAck, "SUBACK for SUBSCRIBE [MQTT-3.8.4-1]")
    codes = suback.return_codes
    require(len(codes) == 2, f"sub: SUBACK {codes} must hold a Reason Code for each of the 2"
            " filters [MQTT-3.8.4-6]")
    first, second = codes
    # Judged before any single code: swapped codes (0, 1) are each a valid code.
    require((first in (0, 1) or first >= 0x80) and (second == 0 or second >= 0x80),
            f"sub: SUBACK codes {codes} must follow the filters' order (QoS 1, then QoS 0"
            " requested) [MQTT-3.9.3-1] [MQTT-3.8.4-5]")
    if first >= 0x80 or second >= 0x80:
        raise NotApplicable(f"refuses a plain filter with {codes} (3.9.3)")
    packet_id = probe.new_packet_id()
    never = ctx.topic("unsub", "never")
    await probe.send(Unsubscribe(packet_id, (gone, never)))
    unsuback = await probe.expect(UnsubAck, "UNSUBACK for UNSUBSCRIBE [MQTT-3.10.4-4]")
    require(unsuback.packet_id == packet_id, f"sub: UNSUBACK id {unsuback.packet_id} must equal"
            f" UNSUBSCRIBE id {packet_id} [MQTT-3.10.4-5] [MQTT-2.2.1-6]")
    codes = unsuback.reason_codes
    require(len(codes) == 2 and all(code in UNSUBACK_CODES for code in codes),
            f"sub: UNSUBACK codes {codes} must be one Unsubscribe Reason Code per filter"
            " [MQTT-3.11.3-2]")
    # Swapped codes are an order fault. 0x11 for both says the server found no
    # subscription to remove: whether it stopped adding messages is judged below.
    require(codes[0] != 0x11 or codes[1] == 0x11, f"sub: UNSUBACK codes {codes}: the first"
            " filter was subscribed, so 0x11 (No subscription existed) belongs to the second:"
            " the codes must follow the filters' order [MQTT-3.11.3-1]")
    if codes[0] >= 0x80:
        raise NotApplicable(f"refuses to unsubscribe with 0x{codes[0]:02X} (3.11.3)",
                            "MQTT-3.10.4-2")
    pub, _ = await connect5(ctx, "pub")
    await publish5(pub, gone, b"unsubscribed", Q1)
    await publish5(pub, kept, b"kept", Q1)
    before = await collect_until(probe, b"kept", "(the subscription UNSUBSCRIBE left alone,"
                                 " made by the SUBSCRIBE's second filter as if by a SUBSCRIBE of"
                                 " its own) [MQTT-3.8.4-5]")
    require(all(m.payload != b"unsubscribed" for m in before),
            "sub: after UNSUBACK the server must stop adding messages matching the removed"
            " filter: none may arrive (judged up to a later message on the kept filter)"
            " [MQTT-3.10.4-2]")


@check5("MQTT-3.1.0-2", summary="a second CONNECT on a connection is a Protocol Error that closes")
async def second_connect_v5(ctx: Context) -> None:
    probe, _ = await connect5(ctx, "twice")
    await probe.send(Connect(V5, ctx.client_id("again"), True, 60), note="a second CONNECT")
    await closes_after_error(probe, "a second CONNECT must be processed as a Protocol Error"
                             " and the connection closed [MQTT-3.1.0-2]")


@check5("MQTT-3.1.4-3",
        summary="a CONNECT with the ClientID of a connected client closes the existing"
        " connection, after DISCONNECT 0x8E if any")
async def session_taken_over_v5(ctx: Context) -> None:
    cid = ctx.client_id("take")
    old, _ = await connect5(ctx, "old", cid)
    await connect5(ctx, "new", cid)
    seen = await old.wait_close(why="the existing connection of a ClientID that connects"
                                " again must be closed [MQTT-3.1.4-3]")
    for packet in seen:
        if isinstance(packet, Disconnect):
            require(packet.reason_code == 0x8E, f"old: the DISCONNECT to the client taken over"
                    f" must carry 0x8E (Session taken over), got 0x{packet.reason_code:02X}"
                    " [MQTT-3.1.4-3]")
        else:
            raise Deviation(f"old: {packet.packet_type.name} arrived where the connection"
                            " taken over must be closed [MQTT-3.1.4-3]")


@check5("MQTT-3.1.2-22", "MQTT-3.2.2-22", "MQTT-3.1.2-8",
        summary="a silent client is disconnected within one and a half times the Keep Alive"
        " in force (the client's when the CONNACK has no Server Keep Alive), and its will"
        " is published")
async def keep_alive_v5(ctx: Context) -> None:
    will_topic = ctx.topic("keepalive", "will")
    watcher, _ = await connect5(ctx, "watcher")
    await subscribe5(watcher, Subscription(will_topic, QoS.AT_MOST_ONCE), exact=False)
    probe = await ctx.open("idle")
    await probe.send(Connect(V5, ctx.client_id("idle"), True, 1,
                             will=Will(will_topic, b"idle client gone")))
    connack = await first_packet_is_connack(probe, "[MQTT-3.1.4-5]")
    require(connack.return_code == 0, f"idle: a valid CONNECT must be acknowledged with CONNACK"
            f" 0x00, got 0x{connack.return_code:02X} [MQTT-3.1.4-5]")
    server = connack.properties.server_keep_alive
    if server == 0:
        raise NotApplicable("sets Server Keep Alive 0: no keep alive timeout (3.2.2.3.14)")
    keep_alive = 1 if server is None else server
    if keep_alive > 10:
        raise NotApplicable(f"sets Server Keep Alive {keep_alive} s (the server's right,"
                            " 3.2.2.3.14); the check waits at most 15 s")
    bound = ctx.timing.spec_deadline(1.5 * keep_alive)
    # A late close is blamed on the deadline alone: a server that uses the client's value
    # but enforces it late and one that uses another value look the same from here.
    silent_since = time.monotonic()  # the CONNECT went before: silence is at least this long
    seen = await probe.wait_close(bound, why=f"no packet from the client within one and a half"
                                  f" times the Keep Alive of {keep_alive} s [MQTT-3.1.2-22]")
    silence = time.monotonic() - silent_since
    if server is None:
        # A close before the Keep Alive has passed is a shorter Keep Alive than the client's.
        require(silence >= keep_alive - ctx.timing.margin * ctx.timing.multiplier,
                f"idle: closed after {silence:.1f} s of silence, before the client's Keep Alive"
                f" of {keep_alive} s had passed: without a Server Keep Alive the server must use"
                " the client's [MQTT-3.2.2-22]")
        require(True, f"idle: closed within one and a half times the client's Keep Alive"
                f" ({keep_alive} s), the one in force without a Server Keep Alive [MQTT-3.2.2-22]")
    for packet in seen:
        if isinstance(packet, Disconnect):
            require(packet.reason_code >= 0x80, f"idle: DISCONNECT 0x{packet.reason_code:02X}"
                    " before a keep alive close must give its reason [MQTT-3.14.2-1]")
    await collect_until(watcher, b"idle client gone", "(the will of a client the server closed"
                        " for its keep alive: no DISCONNECT 0x00 discarded it) [MQTT-3.1.2-8]")
    require(True, "watcher: the will of the client closed for its keep alive was published"
            " [MQTT-3.1.2-8]")
