"""One exception tree for everything that goes wrong on the wire.

Every protocol error carries the MQTT 5 reason code that a 5.0 peer would be
told (and that a 3.1.1 broker maps onto "close the connection"), and the
normative statement it enforces, so that a log line, a test and the
conformance report all name the same rule.
"""

from __future__ import annotations

from enum import IntEnum


class ReasonCode(IntEnum):
    """MQTT 5.0 reason codes (section 2.4). 3.1.1 return codes are separate."""

    SUCCESS = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    REAUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


class MQTTError(Exception):
    """Root of every error mqttref raises about MQTT itself."""


class ProtocolError(MQTTError):
    """The peer broke a rule of the protocol: the connection must be closed.

    ``reason_code`` is what an MQTT 5 DISCONNECT would carry; ``ref`` is the
    normative statement id (``MQTT-x.y.z-n``) or, where the specification
    gives the rule without an id, the section it stands in. ``field`` names the
    5.0 property the error is about (``response_topic``), when it is about one:
    ``ref`` cites the rule every string or value breaks (an ill-formed string,
    1.5.4), while a property can have a rule of its own too (the Response Topic
    MUST be a UTF-8 Encoded String [MQTT-3.3.2-13]), which a reader of the error
    can then cite as well.
    """

    default_reason = ReasonCode.PROTOCOL_ERROR

    def __init__(
        self,
        message: str,
        *,
        ref: str,
        reason_code: ReasonCode | None = None,
        field: str | None = None,
    ) -> None:
        self.reason_code: ReasonCode = (
            reason_code if reason_code is not None else self.default_reason
        )
        self.ref = ref
        self.detail = message
        self.field = field
        self.packets: list[object] = []
        """Whole packets the decoder read before the bad one, in the same ``feed``."""
        super().__init__(f"{message} [{ref}] (reason 0x{self.reason_code:02X})")


class MalformedPacket(ProtocolError):
    """Bytes that cannot be a packet of this protocol level (reason 0x81)."""

    default_reason = ReasonCode.MALFORMED_PACKET


class PacketTooLarge(ProtocolError):
    """A packet longer than the receiver's maximum packet size (reason 0x95)."""

    default_reason = ReasonCode.PACKET_TOO_LARGE


class TopicNameInvalid(MalformedPacket):
    """A PUBLISH topic name that is empty or holds a wildcard (reason 0x90)."""

    default_reason = ReasonCode.TOPIC_NAME_INVALID


class TopicFilterInvalid(MalformedPacket):
    """A topic filter with a misplaced wildcard (reason 0x8F)."""

    default_reason = ReasonCode.TOPIC_FILTER_INVALID


class LimitExceeded(ProtocolError):
    """Nothing the specification forbids, but beyond what this broker is configured to
    accept (a topic too long or too deep, a character 1.5.3 discourages): the broker
    closes the connection because 3.1.1 has no other way to refuse the packet."""

    default_reason = ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR


class UnsupportedProtocol(ProtocolError):
    """A CONNECT naming a protocol level we do not speak (3.1.1 return code 0x01)."""

    default_reason = ReasonCode.UNSUPPORTED_PROTOCOL_VERSION


class EncodeError(MQTTError, ValueError):
    """A packet value that cannot be put on the wire at the chosen protocol level."""


class ClientError(MQTTError):
    """Raised by the client library: refused connections, closes, timeouts."""


class ConfigError(MQTTError):
    """A bad configuration value; the message names the key and the problem."""
