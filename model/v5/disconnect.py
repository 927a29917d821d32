"""The server's DISCONNECT under MQTT 5.0: when it may be sent, what it must be
followed by, and which reason codes fit which situation (3.14, 4.13, Table 3-10).

Theory of operation: ``SERVER_DISCONNECT_5`` is the chart of the server's side
of one connection as far as DISCONNECT goes. No DISCONNECT before a CONNACK
below 0x80 [MQTT-3.14.0-1]; after a DISCONNECT nothing more is sent and the
connection is closed [MQTT-3.14.4-1] [MQTT-3.14.4-2]; a refusing CONNACK is
followed by the close as well [MQTT-3.2.2-7].

``DISCONNECT_RULES`` is the table of situations in which the server ends a
connection, each with the reason code(s) the text names for it and the codes
the model also accepts there. The reading, from Table 3-10's descriptions and
4.13:

- a code must be one of the DISCONNECT Reason Codes a Server may send
  [MQTT-3.14.2-1]: 0x04 (Disconnect with Will Message) is the Client's only;
  0x8C (Bad authentication method), which Table 2-6 gives DISCONNECT and Table
  3-10 does not list, is not held against the server;
- 0x80 (Unspecified error: the sender "does not wish to reveal the reason, or
  none of the other Reason Codes apply") fits every failure, except where a
  statement itself names the code: 0x81 for a DISCONNECT whose reserved bits
  are set [MQTT-3.14.1-1], 0x8E for a takeover [MQTT-3.1.4-3];
- for a Protocol Error with a more specific code (0x93, 0x94, 0x95, 0x9A,
  0x9B, 0x9E, 0xA1, 0xA2), 4.13.1 prefers the specific one, but 0x82 (Protocol
  Error: "an unexpected or out of order packet") still describes it truly, so
  it is accepted;
- 0x83 (Implementation specific error: "the packet received is valid but
  cannot be processed") fits only a valid packet the server will not process,
  never a Malformed Packet or a Protocol Error;
- after a Protocol Error or Malformed Packet a DISCONNECT SHOULD be sent
  (4.13.1); for other errors it MAY (4.13.2); the close itself is owed
  [MQTT-4.13.1-1] [MQTT-4.13.2-1].
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import attrs

from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.obligations import Obligation

DISCONNECT_REASON_CODES: Mapping[int, tuple[str, str]] = {
    0x00: ("Normal disconnection", "both"),
    0x04: ("Disconnect with Will Message", "client"),
    0x80: ("Unspecified error", "both"),
    0x81: ("Malformed Packet", "both"),
    0x82: ("Protocol Error", "both"),
    0x83: ("Implementation specific error", "both"),
    0x87: ("Not authorized", "server"),
    0x89: ("Server busy", "server"),
    0x8B: ("Server shutting down", "server"),
    0x8C: ("Bad authentication method", "server"),
    0x8D: ("Keep Alive timeout", "server"),
    0x8E: ("Session taken over", "server"),
    0x8F: ("Topic Filter invalid", "server"),
    0x90: ("Topic Name invalid", "both"),
    0x93: ("Receive Maximum exceeded", "both"),
    0x94: ("Topic Alias invalid", "both"),
    0x95: ("Packet too large", "both"),
    0x96: ("Message rate too high", "both"),
    0x97: ("Quota exceeded", "both"),
    0x98: ("Administrative action", "both"),
    0x99: ("Payload format invalid", "both"),
    0x9A: ("Retain not supported", "server"),
    0x9B: ("QoS not supported", "server"),
    0x9C: ("Use another server", "server"),
    0x9D: ("Server moved", "server"),
    0x9E: ("Shared Subscriptions not supported", "server"),
    0x9F: ("Connection rate exceeded", "server"),
    0xA0: ("Maximum connect time", "server"),
    0xA1: ("Subscription Identifiers not supported", "server"),
    0xA2: ("Wildcard Subscriptions not supported", "server"),
}
"""Table 3-10: each DISCONNECT Reason Code, its name and who may send it; and 0x8C,
which Table 3-10 leaves out but Table 2-6 gives DISCONNECT: the model does not
blame a server for a code one of the specification's tables gives the packet."""

SERVER_DISCONNECT_CODES = frozenset(
    code for code, (_, sender) in DISCONNECT_REASON_CODES.items() if sender != "client"
)
"""The DISCONNECT Reason Codes a Server may use [MQTT-3.14.2-1]."""

UNSPECIFIED_ERROR = 0x80
PROTOCOL_ERROR = 0x82
IMPLEMENTATION_SPECIFIC_ERROR = 0x83


class Situation(StrEnum):
    """Why the server ends a connection after CONNACK."""

    MALFORMED_PACKET = "malformed_packet"
    DISCONNECT_RESERVED_BITS = "disconnect_reserved_bits"
    PROTOCOL_ERROR = "protocol_error"
    SECOND_CONNECT = "second_connect"
    DISCONNECT_SESSION_EXPIRY = "disconnect_session_expiry"
    AUTH_WITHOUT_METHOD = "auth_without_method"
    REAUTHENTICATION_FAILED = "reauthentication_failed"
    TOPIC_ALIAS_INVALID = "topic_alias_invalid"
    TOPIC_ALIAS_UNMAPPED = "topic_alias_unmapped"
    RECEIVE_MAXIMUM_EXCEEDED = "receive_maximum_exceeded"
    PACKET_TOO_LARGE = "packet_too_large"
    QOS_NOT_SUPPORTED = "qos_not_supported"
    RETAIN_NOT_SUPPORTED = "retain_not_supported"
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = "shared_subscriptions_not_supported"
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = "subscription_identifiers_not_supported"
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = "wildcard_subscriptions_not_supported"
    PAYLOAD_FORMAT_INVALID = "payload_format_invalid"
    KEEP_ALIVE_TIMEOUT = "keep_alive_timeout"
    SESSION_TAKEN_OVER = "session_taken_over"
    NOT_AUTHORIZED = "not_authorized"
    SERVER_BUSY = "server_busy"
    SERVER_SHUTTING_DOWN = "server_shutting_down"
    TOPIC_FILTER_INVALID = "topic_filter_invalid"
    TOPIC_NAME_INVALID = "topic_name_invalid"
    MESSAGE_RATE_TOO_HIGH = "message_rate_too_high"
    QUOTA_EXCEEDED = "quota_exceeded"
    ADMINISTRATIVE_ACTION = "administrative_action"
    USE_ANOTHER_SERVER = "use_another_server"
    SERVER_MOVED = "server_moved"
    CONNECTION_RATE_EXCEEDED = "connection_rate_exceeded"
    MAXIMUM_CONNECT_TIME = "maximum_connect_time"
    IMPLEMENTATION_SPECIFIC = "implementation_specific"
    NORMAL = "normal"


class Send(StrEnum):
    """Whether a DISCONNECT comes before the close, as the text words it."""

    SENDS = "sends"
    """The text says the server sends one with this code."""
    SHOULD = "should"
    """A Malformed Packet or Protocol Error: it SHOULD send one (4.13.1)."""
    MAY = "may"
    """Any other reason: it MAY send one, or just close (4.13.2)."""


@attrs.frozen
class DisconnectRule:
    """One situation: the code(s) the text names, the others that fit, and why.

    ``refs`` are the statements that make the server close (and judge its
    DISCONNECT); ``cause`` the statements the client broke, if any, for the
    reader; ``section`` where the text names the code.
    """

    situation: Situation
    named: frozenset[int]
    also: frozenset[int]
    send: Send
    refs: tuple[str, ...]
    section: str
    cause: tuple[str, ...] = ()

    @property
    def allowed(self) -> frozenset[int]:
        return self.named | self.also


def _rule(
    situation: Situation,
    codes: tuple[int, ...],
    send: Send,
    refs: tuple[str, ...],
    section: str,
    *cause: str,
) -> DisconnectRule:
    """``codes``: the one the text names first, then the others that fit."""
    named, *also = codes
    return DisconnectRule(
        situation, frozenset({named}), frozenset(also), send, refs, section, cause
    )


_U, _P, _I = UNSPECIFIED_ERROR, PROTOCOL_ERROR, IMPLEMENTATION_SPECIFIC_ERROR
_PE = ("MQTT-4.13.1-1",)
_OTHER = ("MQTT-4.13.2-1",)
SI, SH, MY = Send.SENDS, Send.SHOULD, Send.MAY
X = Situation

DISCONNECT_RULES: tuple[DisconnectRule, ...] = (
    # Malformed Packets and Protocol Errors (4.13.1): close owed, DISCONNECT SHOULD come first.
    _rule(X.MALFORMED_PACKET, (0x81, _U), SH, _PE, "4.13.1"),
    _rule(X.DISCONNECT_RESERVED_BITS, (0x81,), SI, ("MQTT-3.14.1-1",), "3.14.1"),
    _rule(X.PROTOCOL_ERROR, (0x82, _U), SH, _PE, "4.13.1"),
    _rule(X.SECOND_CONNECT, (0x82, _U), SH, ("MQTT-3.1.0-2", *_PE), "3.1"),
    _rule(X.DISCONNECT_SESSION_EXPIRY, (0x82, _U), SH, _PE, "3.14.2.2.2"),
    _rule(X.AUTH_WITHOUT_METHOD, (0x82, _U), SH, _PE, "3.15", "MQTT-4.12.0-7"),
    _rule(X.TOPIC_ALIAS_INVALID, (0x94, _P, _U), SH, _PE, "3.3.4", "MQTT-3.3.2-8", "MQTT-3.3.2-9"),
    _rule(X.TOPIC_ALIAS_UNMAPPED, (0x82, _U), SH, _PE, "3.3.4"),
    _rule(X.RECEIVE_MAXIMUM_EXCEEDED, (0x93, _P, _U), SH, _PE, "3.3.4", "MQTT-3.3.4-7"),
    _rule(X.PACKET_TOO_LARGE, (0x95, _P, _U), SH, _PE, "3.2.2.3.6", "MQTT-3.2.2-15"),
    _rule(X.QOS_NOT_SUPPORTED, (0x9B, _P, _U), SH, _PE, "3.3.1.2", "MQTT-3.2.2-11"),
    _rule(X.RETAIN_NOT_SUPPORTED, (0x9A, _P, _U), SH, _PE, "3.3.1.3", "MQTT-3.2.2-14"),
    _rule(X.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, (0x9E, _P, _U), SH, _PE, "3.2.2.3.13"),
    _rule(X.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED, (0xA1, _P, _U), SH, _PE, "3.2.2.3.12"),
    _rule(X.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, (0xA2, _P, _U), SH, _PE, "3.2.2.3.11"),
    # Other errors (4.13.2): the close is owed, the DISCONNECT optional.
    _rule(X.PAYLOAD_FORMAT_INVALID, (0x99, _U), MY, _OTHER, "3.3.2.3.2"),
    _rule(X.KEEP_ALIVE_TIMEOUT, (0x8D, _U), MY, ("MQTT-3.1.2-22",), "3.1.2.10"),
    _rule(X.SESSION_TAKEN_OVER, (0x8E,), SI, ("MQTT-3.1.4-3",), "3.1.4"),
    _rule(X.REAUTHENTICATION_FAILED, (0x87, _U, 0x8C), SH, ("MQTT-4.12.1-2",), "4.12.1"),
    _rule(X.NOT_AUTHORIZED, (0x87, _U), MY, _OTHER, "3.14.2.1"),
    _rule(X.SERVER_BUSY, (0x89, _U), MY, _OTHER, "3.14.2.1"),
    _rule(X.SERVER_SHUTTING_DOWN, (0x8B, _U), MY, _OTHER, "3.14.2.1"),
    _rule(X.TOPIC_FILTER_INVALID, (0x8F, _U, _I), MY, _OTHER, "3.14.2.1"),
    _rule(X.TOPIC_NAME_INVALID, (0x90, _U, _I), MY, _OTHER, "3.14.2.1"),
    _rule(X.MESSAGE_RATE_TOO_HIGH, (0x96, _U), MY, _OTHER, "3.14.2.1"),
    _rule(X.QUOTA_EXCEEDED, (0x97, _U, _I), MY, _OTHER, "3.14.2.1"),
    _rule(X.ADMINISTRATIVE_ACTION, (0x98, _U), MY, _OTHER, "3.14.2.1"),
    _rule(X.USE_ANOTHER_SERVER, (0x9C, _U), MY, _OTHER, "4.11"),
    _rule(X.SERVER_MOVED, (0x9D, _U), MY, _OTHER, "4.11"),
    _rule(X.CONNECTION_RATE_EXCEEDED, (0x9F, _U), MY, _OTHER, "3.14.2.1"),
    _rule(X.MAXIMUM_CONNECT_TIME, (0xA0, _U), MY, _OTHER, "3.14.2.1"),
    _rule(X.IMPLEMENTATION_SPECIFIC, (0x83, _U), MY, _OTHER, "3.14.2.1"),
    _rule(X.NORMAL, (0x00,), MY, ("MQTT-3.14.4-2",), "3.14.2.1"),
)
"""Situation -> reason codes -> statements, one record per situation."""

_BY_SITUATION = {rule.situation: rule for rule in DISCONNECT_RULES}


def rule_for(situation: Situation | str) -> DisconnectRule:
    """The table's record for ``situation``."""
    try:
        return _BY_SITUATION[Situation(situation)]
    except ValueError:
        raise UsageError(f"no DISCONNECT situation {situation!r}") from None


def allowed_codes(situation: Situation | str) -> frozenset[int]:
    """The reason codes a server's DISCONNECT may carry in ``situation``."""
    return rule_for(situation).allowed


def check_code(code: int, situation: Situation | str | None = None, client: str = "client") -> None:
    """Raise ``Violation`` unless the server may send DISCONNECT ``code`` (in ``situation``)."""
    if code not in SERVER_DISCONNECT_CODES:
        what = "is the Client's" if code in DISCONNECT_REASON_CODES else "is no DISCONNECT code"
        raise Violation(
            client,
            f"the server's DISCONNECT carries 0x{code:02X}, which {what}",
            refs=("MQTT-3.14.2-1",),
            allowed=(_codes(SERVER_DISCONNECT_CODES),),
            arrived=f"DISCONNECT 0x{code:02X}",
        )
    if situation is None:
        return
    rule = rule_for(situation)
    if code not in rule.allowed:
        raise Violation(
            client,
            f"DISCONNECT 0x{code:02X} ({DISCONNECT_REASON_CODES[code][0]}) does not describe "
            f"{rule.situation} (section {rule.section})",
            refs=(*rule.refs, "MQTT-3.14.2-1"),
            allowed=(_codes(rule.allowed),),
            arrived=f"DISCONNECT 0x{code:02X}",
        )


def _codes(codes: frozenset[int]) -> str:
    return ", ".join(f"0x{code:02X}" for code in sorted(codes))


class DisconnectState5(StrEnum):
    AWAITING_CONNACK = "awaiting_connack"
    CONNECTED = "connected"
    REFUSED = "refused"
    DISCONNECT_SENT = "disconnect_sent"
    CLOSED = "closed"


class DisconnectEvent5(StrEnum):
    CONNACK_ACCEPTED = "connack_accepted"
    CONNACK_REFUSED = "connack_refused"
    SERVER_AUTH = "server_auth"
    SERVER_PACKET = "server_packet"
    SERVER_DISCONNECT = "server_disconnect"
    CLOSED = "closed"


D, DE = DisconnectState5, DisconnectEvent5

SERVER_DISCONNECT_5 = Chart(
    name="server_disconnect_5",
    title="Server DISCONNECT (MQTT 5.0)",
    description="The server's DISCONNECT on one connection under MQTT 5.0: never before a "
    "CONNACK below 0x80, nothing after it, and the close that follows it or a refusing "
    "CONNACK.",
    states=states_of(
        DisconnectState5,
        {
            D.AWAITING_CONNACK: "CONNECT sent; only AUTH or CONNACK may come",
            D.CONNECTED: "CONNACK below 0x80 sent: DISCONNECT is possible",
            D.REFUSED: "CONNACK 0x80 or above sent: the close is owed",
            D.DISCONNECT_SENT: "DISCONNECT sent: nothing more, the close is owed",
            D.CLOSED: "the network connection is closed",
        },
        finals=[D.CLOSED],
    ),
    events=events_of(
        DisconnectEvent5,
        {
            DE.CONNACK_ACCEPTED: "the server sends CONNACK with a code below 0x80",
            DE.CONNACK_REFUSED: "the server sends CONNACK with 0x80 or above",
            DE.SERVER_AUTH: "the server sends AUTH",
            DE.SERVER_PACKET: "the server sends any packet but CONNACK, AUTH or DISCONNECT",
            DE.SERVER_DISCONNECT: "the server sends DISCONNECT",
            DE.CLOSED: "the network connection closes (either side)",
        },
    ),
    initial=D.AWAITING_CONNACK,
    transitions=(
        Transition(D.AWAITING_CONNACK, DE.CONNACK_ACCEPTED, D.CONNECTED, ("MQTT-3.2.0-1",)),
        Transition(D.AWAITING_CONNACK, DE.CONNACK_REFUSED, D.REFUSED, ("MQTT-3.2.2-7",)),
        Transition(D.AWAITING_CONNACK, DE.SERVER_AUTH, D.AWAITING_CONNACK, ("MQTT-3.2.0-1",)),
        Transition(D.AWAITING_CONNACK, DE.CLOSED, D.CLOSED, ("MQTT-3.1.4-2",)),
        Transition(D.CONNECTED, DE.SERVER_AUTH, D.CONNECTED, ("MQTT-3.2.0-1",)),
        Transition(D.CONNECTED, DE.SERVER_PACKET, D.CONNECTED, ("MQTT-3.2.0-1",)),
        Transition(
            D.CONNECTED,
            DE.SERVER_DISCONNECT,
            D.DISCONNECT_SENT,
            ("MQTT-3.14.0-1", "MQTT-3.14.4-2"),
        ),
        Transition(D.CONNECTED, DE.CLOSED, D.CLOSED, ("MQTT-4.13.2-1",)),
        Transition(D.REFUSED, DE.CLOSED, D.CLOSED, ("MQTT-3.2.2-7", "MQTT-4.13.2-1")),
        Transition(D.DISCONNECT_SENT, DE.CLOSED, D.CLOSED, ("MQTT-3.14.4-2",)),
    ),
    protocol="5.0",
)

_NO_ROW_REFS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    D.AWAITING_CONNACK: {
        DE.SERVER_DISCONNECT: ("MQTT-3.14.0-1",),
        DE.SERVER_PACKET: ("MQTT-3.2.0-1",),
    },
    D.CONNECTED: {
        DE.CONNACK_ACCEPTED: ("MQTT-3.2.0-2",),
        DE.CONNACK_REFUSED: ("MQTT-3.2.0-2",),
    },
    D.REFUSED: {
        DE.SERVER_DISCONNECT: ("MQTT-3.14.0-1",),
        DE.CONNACK_ACCEPTED: ("MQTT-3.2.0-2",),
        DE.CONNACK_REFUSED: ("MQTT-3.2.0-2",),
        DE.SERVER_AUTH: ("MQTT-3.2.2-7", "MQTT-4.13.2-1"),
        # Any answer (a PUBACK, a SUBACK, a PINGRESP) shows the server processed data the
        # client sent after the CONNECT it rejected [MQTT-3.1.4-6].
        DE.SERVER_PACKET: ("MQTT-3.2.2-7", "MQTT-4.13.2-1", "MQTT-3.1.4-6"),
    },
}
"""What a server packet with no row breaks; after DISCONNECT, it is [MQTT-3.14.4-1]."""


def check_server_disconnect_properties(
    client: str, *, session_expiry_interval: int | None
) -> None:
    """Raise ``Violation`` when the server's DISCONNECT carries a Session Expiry Interval,
    which only the Client may send [MQTT-3.14.2-2]."""
    if session_expiry_interval is not None:
        raise Violation(
            client,
            "the server's DISCONNECT carries a Session Expiry Interval",
            refs=("MQTT-3.14.2-2",),
            allowed=("DISCONNECT without Session Expiry Interval",),
            arrived=f"DISCONNECT with Session Expiry Interval {session_expiry_interval}",
        )


@attrs.define
class ServerDisconnect5:
    """One connection's DISCONNECT discipline under ``SERVER_DISCONNECT_5``."""

    client: str = "client"
    state: str = D.AWAITING_CONNACK
    reason_code: int | None = None
    """The reason code of the DISCONNECT the server sent, once it has."""

    def obligations(self) -> list[Obligation]:
        if self.state == D.REFUSED:
            return [Obligation(self.client, "close after the refusing CONNACK", ("MQTT-3.2.2-7",))]
        if self.state == D.DISCONNECT_SENT:
            return [Obligation(self.client, "close after DISCONNECT", ("MQTT-3.14.4-2",))]
        return []

    def connack(self, reason_code: int) -> Transition:
        event = DE.CONNACK_ACCEPTED if reason_code < 0x80 else DE.CONNACK_REFUSED
        return self._server(event, f"CONNACK 0x{reason_code:02X}")

    def server_auth(self) -> Transition:
        return self._server(DE.SERVER_AUTH, "AUTH")

    def server_packet(self, name: str = "a packet") -> Transition:
        return self._server(DE.SERVER_PACKET, name)

    def disconnect(
        self,
        reason_code: int,
        situation: Situation | str | None = None,
        *,
        session_expiry_interval: int | None = None,
    ) -> Transition:
        """Observe the server's DISCONNECT; ``situation`` (if the harness knows why the
        server closes) narrows the codes it may carry to ``allowed_codes(situation)``;
        ``session_expiry_interval`` is the property's value if the DISCONNECT had one."""
        row = self._server(DE.SERVER_DISCONNECT, f"DISCONNECT 0x{reason_code:02X}")
        check_code(reason_code, situation, self.client)
        check_server_disconnect_properties(
            self.client, session_expiry_interval=session_expiry_interval
        )
        self.reason_code = reason_code
        return row

    def closed(self) -> Transition:
        row = SERVER_DISCONNECT_5.fire(self.state, DE.CLOSED)
        self.state = row.target
        return row

    def _server(self, event: str, arrived: str) -> Transition:
        try:
            row = SERVER_DISCONNECT_5.fire(self.state, event)
        except NoTransition:
            if self.state == D.CLOSED:
                raise UsageError(f"{self.client}: {arrived} on a closed connection") from None
            refs = _NO_ROW_REFS.get(self.state, {}).get(event, ("MQTT-3.14.4-1",))
            raise Violation(
                self.client,
                f"the server sent {arrived} in state {self.state}",
                refs=refs,
                allowed=self._allowed(),
                arrived=arrived,
            ) from None
        self.state = row.target
        return row

    def _allowed(self) -> tuple[str, ...]:
        return tuple(
            sorted(
                event
                for event in SERVER_DISCONNECT_5.event_names
                if SERVER_DISCONNECT_5.allows(self.state, event)
            )
        )
