"""The states of MQTT's flows, shared by the broker and the client.

A network connection and an outgoing QoS 1/2 message walk the same states on
either side of the wire, so both sides use one definition of each: the broker's
protocol core (``impl/broker/protocol.py``) and session, and the client's core
(``impl/client/protocol.py``). The model (``model/``) keeps its own, written
from the specification, so that it can disagree with these.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from mqttref.impl.codec.packets import PacketType, QoS


class ConnectionState(Enum):
    """Where one network connection stands, seen from either end."""

    CLOSED = "closed"
    """No network connection (the client's before ``connection_made``, anyone's after)."""
    CONNECTING = "connecting"
    """Open, CONNECT and CONNACK not yet exchanged: the server awaits CONNECT
    [MQTT-3.1.0-1], the client awaits CONNACK [MQTT-3.2.0-1]."""
    CONNECTED = "connected"
    """CONNACK accepted the connection."""
    CLOSING = "closing"
    """The client sent DISCONNECT or was asked to close: nothing more is sent [MQTT-3.14.4-2]."""

    # Members are singletons: hash by identity in C, not Enum's Python-level hash of
    # the name (dispatch tables are looked up with the state for every packet).
    __hash__ = object.__hash__


class OutboundState(Enum):
    """Where one outgoing QoS 1/2 message stands in its acknowledgement flow (4.3.2, 4.3.3)."""

    AWAITING_PUBACK = "awaiting PUBACK"
    AWAITING_PUBREC = "awaiting PUBREC"
    AWAITING_PUBCOMP = "awaiting PUBCOMP"

    __hash__ = object.__hash__


FIRST_OUTBOUND_STATE: Final[dict[QoS, OutboundState]] = {
    QoS.AT_LEAST_ONCE: OutboundState.AWAITING_PUBACK,
    QoS.EXACTLY_ONCE: OutboundState.AWAITING_PUBREC,
}
"""The state a message enters with its first PUBLISH."""

OUTBOUND_TABLE: Final[dict[tuple[OutboundState, PacketType], OutboundState | None]] = {
    (OutboundState.AWAITING_PUBACK, PacketType.PUBACK): None,
    (OutboundState.AWAITING_PUBREC, PacketType.PUBREC): OutboundState.AWAITING_PUBCOMP,
    # A PUBREC again (the peer resumed the session before our PUBREL): PUBREL again.
    (OutboundState.AWAITING_PUBCOMP, PacketType.PUBREC): OutboundState.AWAITING_PUBCOMP,
    (OutboundState.AWAITING_PUBCOMP, PacketType.PUBCOMP): None,
}
"""The sender's side of QoS 1 (4.3.2) and QoS 2 (4.3.3): (state, acknowledgement) ->
next state, ``None`` when the flow is complete. A missing pair is an acknowledgement
the flow does not expect: the client treats it as a protocol error, the broker
ignores it (a late duplicate after a resumed session)."""
