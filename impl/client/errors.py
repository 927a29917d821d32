"""What the client raises: one subclass of ``ClientError`` per way things go wrong.

A caller can tell apart "the broker said no" (``ConnectionRefused``, with the
CONNACK return code), "the network or the broker went away"
(``ConnectionClosed``), "nothing came back in time" (``MQTTTimeout``), "the
broker broke the protocol" (``ProtocolViolation``) and "you passed something
that cannot be sent" (``InvalidArgument``, raised before any byte is written).
"""

from __future__ import annotations

from mqttref.impl.codec.errors import ClientError, ProtocolError, ReasonCode
from mqttref.impl.codec.packets import ConnectReturnCode

RETURN_CODE_REASONS: dict[int, str] = {
    ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION: "unacceptable protocol version",
    ConnectReturnCode.IDENTIFIER_REJECTED: "identifier rejected",
    ConnectReturnCode.SERVER_UNAVAILABLE: "server unavailable",
    ConnectReturnCode.BAD_USER_NAME_OR_PASSWORD: "bad user name or password",
    ConnectReturnCode.NOT_AUTHORIZED: "not authorized",
}
"""The meaning of each refusing CONNACK return code (3.2.2.3, table 3.1)."""


def reason_name(code: int) -> str:
    """The MQTT 5.0 name of a reason code (2.4), in words: 0x87 -> "not authorized"."""
    try:
        return ReasonCode(code).name.lower().replace("_", " ")
    except ValueError:
        return "unknown reason code"


def _explained(code: int, reason_string: str | None) -> str:
    text = f"{reason_name(code)} (reason code 0x{code:02X})"
    return f"{text}: {reason_string}" if reason_string else text


class ConnectionRefused(ClientError):
    """The broker answered CONNECT with a refusal: a non-zero 3.1.1 return code
    [MQTT-3.2.2-5] or a 5.0 reason code of 0x80 or more [MQTT-3.2.2-7].

    ``return_code`` (and its alias ``reason_code``) is the code as received;
    ``reason_string`` is the 5.0 Reason String, if the broker sent one.
    """

    def __init__(
        self, return_code: int, *, reason_string: str | None = None, mqtt5: bool = False
    ) -> None:
        self.return_code = return_code
        self.reason_code = return_code
        self.reason_string = reason_string
        if mqtt5:
            self.reason = reason_name(return_code)
            detail = _explained(return_code, reason_string)
        else:
            self.reason = RETURN_CODE_REASONS.get(return_code, "unknown return code")
            detail = f"{self.reason} (return code {return_code})"
        super().__init__(f"connection refused by the broker: {detail}")


class BrokerUnreachable(ClientError):
    """No network connection could be opened (unknown host, port closed, no route)."""


class TLSHandshakeFailed(BrokerUnreachable):
    """The TLS handshake failed: the server's certificate is not trusted, names another
    host, or the server refused ours; nothing of MQTT was sent."""


class WebSocketRefused(BrokerUnreachable):
    """The server did not open a WebSocket speaking MQTT (an HTTP error, or no ``mqtt``
    subprotocol [MQTT-6.0.0-4])."""


class ConnectionClosed(ClientError):
    """The network connection ended while the caller was waiting on it.

    ``by_peer`` tells "the broker or the network broke it" from "this client
    closed it" (after ``disconnect()`` or leaving ``async with``).
    """

    def __init__(self, message: str, *, by_peer: bool = True) -> None:
        self.by_peer = by_peer
        super().__init__(message)


class SessionDiscarded(ConnectionClosed):
    """A QoS 1/2 message was in flight when a clean session ended.

    With clean session the broker forgets the flow [MQTT-3.1.2-6], so
    whether the message arrived is unknown; the caller decides whether to
    publish it again.
    """


class MQTTTimeout(ClientError, TimeoutError):
    """A CONNACK, a PINGRESP or an operation did not complete in time."""


class ProtocolViolation(ClientError):
    """The broker sent something MQTT forbids; the client closed the connection."""

    def __init__(self, error: ProtocolError) -> None:
        self.error = error
        super().__init__(f"the broker broke the protocol: {error}")


class ServerDisconnected(ConnectionClosed):
    """The broker closed the connection with a 5.0 DISCONNECT (3.14): ``reason_code``,
    ``reason_string`` and ``server_reference`` say why and where to go instead."""

    def __init__(
        self,
        reason_code: int,
        reason_string: str | None = None,
        server_reference: str | None = None,
    ) -> None:
        self.reason_code = reason_code
        self.reason_string = reason_string
        self.server_reference = server_reference
        message = f"the broker disconnected: {_explained(reason_code, reason_string)}"
        if server_reference:
            message += f"; server reference {server_reference!r}"
        super().__init__(message)


class SubscriptionRefused(ClientError):
    """The broker refused a subscription: 0x80 in a 3.1.1 SUBACK [MQTT-3.9.3-2], a
    reason code of 0x80 or more in a 5.0 SUBACK (3.9.3), carried with the Reason String."""

    def __init__(
        self, topic_filter: str, reason_code: int = 0x80, reason_string: str | None = None
    ) -> None:
        self.topic_filter = topic_filter
        self.reason_code = reason_code
        self.reason_string = reason_string
        message = f"the broker refused the subscription to {topic_filter!r}"
        if reason_code != 0x80 or reason_string:
            message += f": {_explained(reason_code, reason_string)}"
        super().__init__(message)


class UnsubscribeRefused(ClientError):
    """A 5.0 UNSUBACK refused a filter (a reason code of 0x80 or more, 3.11.3);
    ``reason_codes`` holds every filter's code, in order."""

    def __init__(
        self,
        topic_filter: str,
        reason_code: int,
        reason_string: str | None,
        reason_codes: tuple[int, ...],
    ) -> None:
        self.topic_filter = topic_filter
        self.reason_code = reason_code
        self.reason_string = reason_string
        self.reason_codes = reason_codes
        super().__init__(
            f"the broker refused to unsubscribe {topic_filter!r}: "
            f"{_explained(reason_code, reason_string)}"
        )


class PublishRefused(ClientError):
    """A 5.0 PUBACK, PUBREC or PUBCOMP with a reason code of 0x80 or more (3.4.2.1,
    3.5.2.1, 3.7.2.1): the broker did not accept the message."""

    def __init__(self, topic: str, reason_code: int, reason_string: str | None) -> None:
        self.topic = topic
        self.reason_code = reason_code
        self.reason_string = reason_string
        super().__init__(
            f"the broker refused the message to {topic!r}: {_explained(reason_code, reason_string)}"
        )


class AuthenticationFailed(ClientError):
    """An enhanced authentication exchange (4.12) failed on the client's side."""


class NotConnected(ClientError):
    """An operation needs a connection and the caller asked not to wait for one."""


class QueueFull(ClientError):
    """The bounded queue of messages waiting for a connection is full."""


class InvalidArgument(ClientError, ValueError):
    """An argument that cannot go on the wire; raised before anything is sent."""


class PayloadTooLarge(InvalidArgument):
    """The PUBLISH would exceed the maximum packet size: the client's own, or the one the
    server announced in CONNACK, which the client must not exceed [MQTT-3.1.2-24]."""


class NotSupportedByServer(InvalidArgument):
    """The server's CONNACK said it does not take this: a QoS above its Maximum QoS
    [MQTT-3.2.2-11] or a retained message without Retain Available [MQTT-3.2.2-14].
    ``reason_code`` is what the server would answer (0x9B or 0x9A)."""

    def __init__(self, message: str, reason_code: int) -> None:
        self.reason_code = reason_code
        super().__init__(message)
