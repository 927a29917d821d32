"""What the client raises: one subclass of ``ClientError`` per way things go wrong.

A caller can tell apart "the broker said no" (``ConnectionRefused``, with the
CONNACK return code), "the network or the broker went away"
(``ConnectionClosed``), "nothing came back in time" (``MQTTTimeout``), "the
broker broke the protocol" (``ProtocolViolation``) and "you passed something
that cannot be sent" (``InvalidArgument``, raised before any byte is written).
"""

from __future__ import annotations

from mqttref.impl.codec.errors import ClientError, ProtocolError
from mqttref.impl.codec.packets import ConnectReturnCode

RETURN_CODE_REASONS: dict[int, str] = {
    ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION: "unacceptable protocol version",
    ConnectReturnCode.IDENTIFIER_REJECTED: "identifier rejected",
    ConnectReturnCode.SERVER_UNAVAILABLE: "server unavailable",
    ConnectReturnCode.BAD_USER_NAME_OR_PASSWORD: "bad user name or password",
    ConnectReturnCode.NOT_AUTHORIZED: "not authorized",
}
"""The meaning of each refusing CONNACK return code (3.2.2.3, table 3.1)."""


class ConnectionRefused(ClientError):
    """The broker answered CONNECT with a non-zero return code [MQTT-3.2.2-5]."""

    def __init__(self, return_code: int) -> None:
        self.return_code = return_code
        self.reason = RETURN_CODE_REASONS.get(return_code, "unknown return code")
        super().__init__(
            f"connection refused by the broker: {self.reason} (return code {return_code})"
        )


class BrokerUnreachable(ClientError):
    """No network connection could be opened (unknown host, port closed, no route)."""


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


class SubscriptionRefused(ClientError):
    """The broker answered a SUBSCRIBE with the failure code 0x80 [MQTT-3.9.3-2]."""

    def __init__(self, topic_filter: str) -> None:
        self.topic_filter = topic_filter
        super().__init__(f"the broker refused the subscription to {topic_filter!r}")


class NotConnected(ClientError):
    """An operation needs a connection and the caller asked not to wait for one."""


class QueueFull(ClientError):
    """The bounded queue of messages waiting for a connection is full."""


class InvalidArgument(ClientError, ValueError):
    """An argument that cannot go on the wire; raised before anything is sent."""


class PayloadTooLarge(InvalidArgument):
    """The PUBLISH would exceed the maximum packet size."""
