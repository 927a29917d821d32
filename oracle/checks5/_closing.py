"""How a server ends a connection at 5.0, judged packet by packet (private to the checks).

A server that sends DISCONNECT must use a DISCONNECT Reason Code [MQTT-3.14.2-1], leave
out the Session Expiry Interval [MQTT-3.14.2-2], keep it within the client's Maximum
Packet Size by dropping its Reason String and User Properties [MQTT-3.14.2-3]
[MQTT-3.14.2-4], send nothing after it [MQTT-3.14.4-1] and close [MQTT-3.14.4-2]; with a
code of 0x80 or above the close is owed whether or not the DISCONNECT was sent
[MQTT-4.13.2-1]. Before a CONNACK below 0x80 there is no DISCONNECT at all
[MQTT-3.14.0-1].
"""

from __future__ import annotations

import time

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import ConnAck, Disconnect, Packet, ProtocolLevel
from mqttref.oracle.checks5.common import CONNACK_CODES, SERVER_DISCONNECT_CODES
from mqttref.oracle.evidence import Deviation
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Closed, Probe, Received, describe

V5 = ProtocolLevel.MQTT_5


def size(packet: Packet) -> int:
    """The bytes ``packet`` takes on the wire at 5.0 (fixed header included).

    Re-encoded from what was decoded: for a packet with properties that is the size the
    server sent; one without may have been sent two bytes longer (an explicit Reason
    Code 0x00 and an empty property block), which no property statement is about.
    """
    return len(encode(packet, V5))


async def ending(probe: Probe, why: str, *, limit: int | None = None,
                 before_connack: bool = False) -> Disconnect | None:
    """Wait for the server to close the connection ``why`` says it must close; judge what
    came first and return the server's DISCONNECT (None for a bare close).

    Every packet is judged for the statements of the module docstring; ``limit`` is the
    client's Maximum Packet Size. ``before_connack``: no CONNACK below 0x80 was sent, so a
    DISCONNECT is itself a deviation and a CONNACK of 0x80 or above may come.
    """
    bound = probe.timing.reply_bound
    seen, probe.pending = probe.pending, []
    disconnect = next((p for p in seen if isinstance(p, Disconnect)), None)
    if disconnect is not None:
        bound = probe.timing.close_lag_bound
    deadline = time.monotonic() + bound
    while True:
        # Each arrival restarts the bound, except after a DISCONNECT: then the close is owed
        # at once, so the lag after it counts however much else arrives.
        event = await probe.next_event(max(deadline - time.monotonic(), 0.0))
        if event is None:
            after = (f" after DISCONNECT 0x{disconnect.reason_code:02X} [MQTT-3.14.4-2]"
                     f"{' [MQTT-4.13.2-1]' if disconnect.reason_code >= 0x80 else ''}"
                     if disconnect is not None else "")
            raise Deviation(f"{probe.name}: the connection is still open {bound:.1f}s{after}:"
                            f" the server must close it ({why})")
        if isinstance(event, Closed):
            break
        if not isinstance(event, Received):
            raise Deviation(f"{probe.name}: malformed bytes from the server: {event.error}")
        seen.append(event.packet)
        if isinstance(event.packet, Disconnect) and disconnect is None:
            # Sending it the server has acted: the close is owed at once (Timing.close_lag).
            disconnect = event.packet
            bound = probe.timing.close_lag_bound
            deadline = time.monotonic() + bound
        elif disconnect is None:
            deadline = time.monotonic() + bound
    disconnect = None
    for packet in seen:
        if disconnect is not None:
            raise Deviation(f"{probe.name}: {describe(packet)} arrived after the server's"
                            f" DISCONNECT 0x{disconnect.reason_code:02X}: nothing may follow"
                            " it on that connection [MQTT-3.14.4-1]")
        if isinstance(packet, Disconnect):
            if before_connack:
                raise Deviation(f"{probe.name}: DISCONNECT 0x{packet.reason_code:02X} before"
                                " any CONNACK below 0x80: a server may send DISCONNECT only"
                                " after accepting the CONNECT [MQTT-3.14.0-1]")
            disconnect = packet
        elif before_connack and isinstance(packet, ConnAck):
            require(packet.return_code in CONNACK_CODES and packet.return_code >= 0x80,
                    f"{probe.name}: a CONNACK refusing the CONNECT must carry a Connect Reason"
                    f" Code of 0x80 or above, got 0x{packet.return_code:02X} ({why})")
            require(True, f"{probe.name}: closed after CONNACK 0x{packet.return_code:02X}: a"
                    " Reason Code of 0x80 or above closes the connection [MQTT-4.13.2-1]")
        else:
            raise Deviation(f"{probe.name}: {describe(packet)} arrived where the server must"
                            f" close the connection ({why})")
    if before_connack:
        require(True, f"{probe.name}: no DISCONNECT on a connection without a CONNACK below"
                " 0x80 [MQTT-3.14.0-1]")
    if disconnect is not None:
        require(True, f"{probe.name}: nothing after DISCONNECT 0x{disconnect.reason_code:02X},"
                " then the close [MQTT-3.14.4-1] [MQTT-3.14.4-2]")
        if disconnect.reason_code >= 0x80:
            require(True, f"{probe.name}: closed after DISCONNECT"
                    f" 0x{disconnect.reason_code:02X} [MQTT-4.13.2-1]")
    require(True, f"{probe.name}: closed ({why})")
    if disconnect is not None:  # its content last: the close is judged whatever it holds
        _judge_disconnect(probe, disconnect, limit)
    return disconnect


def _judge_disconnect(probe: Probe, packet: Disconnect, limit: int | None) -> None:
    code = packet.reason_code
    require(code in SERVER_DISCONNECT_CODES, f"{probe.name}: DISCONNECT 0x{code:02X} must be"
            " a DISCONNECT Reason Code [MQTT-3.14.2-1]")
    require(packet.properties.session_expiry_interval is None,
            f"{probe.name}: the server's DISCONNECT must not carry a Session Expiry Interval,"
            f" got {packet.properties.session_expiry_interval} [MQTT-3.14.2-2]")
    if limit is not None:
        require(size(packet) <= limit, f"{probe.name}: the DISCONNECT ({size(packet)} bytes)"
                f" must fit the client's Maximum Packet Size {limit}, its Reason String and User"
                " Properties left out where they do not [MQTT-3.14.2-3] [MQTT-3.14.2-4]")
