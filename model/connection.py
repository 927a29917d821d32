"""The network connection chart, from the server's point of view (3.1, 3.14, 4.8).

Theory of operation: a connection opens in ``awaiting_connect``; the only
packet a server may accept first is CONNECT [MQTT-3.1.0-1]. After CONNECT the
server owes a CONNACK (``awaiting_connack``); the model learns from the
observed CONNACK whether the server accepted. ``close_due`` means the server
must close the connection (after a protocol violation, a refused CONNACK, a
keep-alive expiry or a takeover); the close itself is an observation
(``server_closed``). ``server_closed`` from ``connected`` is allowed only
where the specification leaves the server a choice (guard
``close_allowed``): a client that went quiet for more than its keep-alive,
a QoS 0 PUBLISH with DUP=1, an invalid topic filter, a pending takeover.

The rows cite 3.1.1's statements. On a level-5 connection the model cites each row's
5.0 reading instead (``v5.numbering.row_refs``): 5.0 numbers its statements
independently, and 3.1.1's [MQTT-4.8.0-1] is none of them (5.0's close on a
Malformed Packet or Protocol Error is [MQTT-4.13.1-1]).
"""

from __future__ import annotations

from enum import StrEnum

from mqttref.model.chart import Chart, Transition, events_of, states_of


class ConnectionState(StrEnum):
    AWAITING_CONNECT = "awaiting_connect"
    AWAITING_CONNACK = "awaiting_connack"
    CONNECTED = "connected"
    CLOSE_DUE = "close_due"
    CLOSED = "closed"


class ConnectionEvent(StrEnum):
    CONNECT = "connect"
    CONTROL_PACKET = "control_packet"
    CONNACK_ACCEPTED = "connack_accepted"
    CONNACK_REFUSED = "connack_refused"
    VIOLATION = "violation"
    KEEP_ALIVE_EXPIRED = "keep_alive_expired"
    TAKEN_OVER = "taken_over"
    DISCONNECT = "disconnect"
    NETWORK_LOST = "network_lost"
    SERVER_CLOSED = "server_closed"


C, CE = ConnectionState, ConnectionEvent

CONNECTION = Chart(
    name="connection",
    title="Connection",
    description="One network connection as the server sees it: CONNECT first, then "
    "CONNACK, then packets until DISCONNECT, a network loss or a close the "
    "server owes after a violation, a keep-alive expiry or a takeover.",
    states=states_of(
        ConnectionState,
        {
            C.AWAITING_CONNECT: "network connection open, no CONNECT yet",
            C.AWAITING_CONNACK: "CONNECT received: the server owes a CONNACK",
            C.CONNECTED: "CONNACK 0 sent: packets flow both ways",
            C.CLOSE_DUE: "the server must close the network connection",
            C.CLOSED: "the network connection is closed",
        },
        finals=[C.CLOSED],
    ),
    events=events_of(
        ConnectionEvent,
        {
            CE.CONNECT: "the client sends CONNECT",
            CE.CONTROL_PACKET: "the client sends any packet other than CONNECT or DISCONNECT",
            CE.CONNACK_ACCEPTED: "the server sends CONNACK with return code 0",
            CE.CONNACK_REFUSED: "the server sends CONNACK with a non-zero return code",
            CE.VIOLATION: "the client sends a malformed or protocol-violating packet",
            CE.KEEP_ALIVE_EXPIRED: "1.5 x keep-alive passes without a packet from the client",
            CE.TAKEN_OVER: "another connection is accepted for the same client id",
            CE.DISCONNECT: "the client sends DISCONNECT",
            CE.NETWORK_LOST: "the client closes the network connection",
            CE.SERVER_CLOSED: "the server closes the network connection",
        },
    ),
    initial=C.AWAITING_CONNECT,
    guards=("close_allowed", "was_accepted", "never_accepted"),
    actions=("start_session", "publish_will", "discard_will"),
    transitions=(
        Transition(C.AWAITING_CONNECT, CE.CONNECT, C.AWAITING_CONNACK, ("MQTT-3.1.0-1",)),
        Transition(C.AWAITING_CONNECT, CE.CONTROL_PACKET, C.CLOSE_DUE, ("MQTT-3.1.0-1",)),
        Transition(C.AWAITING_CONNECT, CE.DISCONNECT, C.CLOSE_DUE, ("MQTT-3.1.0-1",)),
        Transition(C.AWAITING_CONNECT, CE.VIOLATION, C.CLOSE_DUE, ("MQTT-4.8.0-1",)),
        Transition(C.AWAITING_CONNECT, CE.NETWORK_LOST, C.CLOSED, ("MQTT-4.8.0-1",)),
        Transition(
            C.AWAITING_CONNECT, CE.SERVER_CLOSED, C.CLOSED, ("MQTT-3.1.4-1",), "close_allowed"
        ),
        Transition(
            C.AWAITING_CONNACK,
            CE.CONNACK_ACCEPTED,
            C.CONNECTED,
            ("MQTT-3.1.4-4", "MQTT-3.2.0-1"),
            action="start_session",
        ),
        Transition(
            C.AWAITING_CONNACK, CE.CONNACK_REFUSED, C.CLOSE_DUE, ("MQTT-3.2.2-5", "MQTT-3.1.4-5")
        ),
        Transition(C.AWAITING_CONNACK, CE.CONNECT, C.CLOSE_DUE, ("MQTT-3.1.0-2",)),
        Transition(C.AWAITING_CONNACK, CE.CONTROL_PACKET, C.AWAITING_CONNACK, ("MQTT-3.1.4-5",)),
        Transition(C.AWAITING_CONNACK, CE.VIOLATION, C.CLOSE_DUE, ("MQTT-4.8.0-1",)),
        Transition(C.AWAITING_CONNACK, CE.NETWORK_LOST, C.CLOSED, ("MQTT-4.8.0-1",)),
        Transition(
            C.AWAITING_CONNACK,
            CE.SERVER_CLOSED,
            C.CLOSED,
            ("MQTT-3.1.4-1", "MQTT-3.2.2-6"),
            "close_allowed",
        ),
        Transition(C.CONNECTED, CE.CONTROL_PACKET, C.CONNECTED, ("MQTT-3.1.2-24",)),
        Transition(C.CONNECTED, CE.CONNECT, C.CLOSE_DUE, ("MQTT-3.1.0-2",)),
        Transition(C.CONNECTED, CE.VIOLATION, C.CLOSE_DUE, ("MQTT-4.8.0-1",)),
        Transition(C.CONNECTED, CE.KEEP_ALIVE_EXPIRED, C.CLOSE_DUE, ("MQTT-3.1.2-24",)),
        Transition(C.CONNECTED, CE.TAKEN_OVER, C.CLOSE_DUE, ("MQTT-3.1.4-2",)),
        Transition(
            C.CONNECTED,
            CE.DISCONNECT,
            C.CLOSED,
            ("MQTT-3.14.4-3", "MQTT-3.1.2-10"),
            action="discard_will",
        ),
        Transition(
            C.CONNECTED, CE.NETWORK_LOST, C.CLOSED, ("MQTT-3.1.2-8",), action="publish_will"
        ),
        Transition(
            C.CONNECTED,
            CE.SERVER_CLOSED,
            C.CLOSED,
            ("MQTT-3.1.2-24", "MQTT-3.1.2-8"),
            "close_allowed",
            "publish_will",
        ),
        Transition(C.CLOSE_DUE, CE.CONTROL_PACKET, C.CLOSE_DUE, ("MQTT-4.8.0-1",)),
        Transition(C.CLOSE_DUE, CE.CONNECT, C.CLOSE_DUE, ("MQTT-4.8.0-1",)),
        Transition(C.CLOSE_DUE, CE.DISCONNECT, C.CLOSE_DUE, ("MQTT-4.8.0-1",)),
        Transition(C.CLOSE_DUE, CE.VIOLATION, C.CLOSE_DUE, ("MQTT-4.8.0-1",)),
        Transition(C.CLOSE_DUE, CE.KEEP_ALIVE_EXPIRED, C.CLOSE_DUE, ("MQTT-3.1.2-24",)),
        Transition(C.CLOSE_DUE, CE.TAKEN_OVER, C.CLOSE_DUE, ("MQTT-3.1.4-2",)),
        Transition(
            C.CLOSE_DUE,
            CE.SERVER_CLOSED,
            C.CLOSED,
            ("MQTT-4.8.0-1", "MQTT-3.1.2-8"),
            "was_accepted",
            "publish_will",
        ),
        Transition(
            C.CLOSE_DUE,
            CE.SERVER_CLOSED,
            C.CLOSED,
            ("MQTT-4.8.0-1", "MQTT-3.2.2-5"),
            "never_accepted",
        ),
        Transition(
            C.CLOSE_DUE,
            CE.NETWORK_LOST,
            C.CLOSED,
            ("MQTT-4.8.0-1", "MQTT-3.1.2-8"),
            "was_accepted",
            "publish_will",
        ),
        Transition(C.CLOSE_DUE, CE.NETWORK_LOST, C.CLOSED, ("MQTT-4.8.0-1",), "never_accepted"),
        Transition(C.CLOSED, CE.SERVER_CLOSED, C.CLOSED, ("MQTT-4.8.0-1",)),
        Transition(C.CLOSED, CE.NETWORK_LOST, C.CLOSED, ("MQTT-4.8.0-1",)),
    ),
)
