"""The MQTT control packets as immutable values.

One frozen attrs class per packet type, shared by every protocol level: a
3.1.1 packet is the same value with empty ``properties`` and success reason
codes. The codec (``codec.py``) turns these into bytes and back and is the
only place that knows about the wire; everything else (broker, client, model
adapters, tests) speaks in these values.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeAlias

import attrs


class PacketType(IntEnum):
    """Control packet type numbers, the high nibble of the first byte (2.2.1)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class ProtocolLevel(IntEnum):
    """The protocol level byte of CONNECT: 3 is MQTT 3.1 (``MQIsdp``)."""

    MQTT_3_1 = 3
    MQTT_3_1_1 = 4
    MQTT_5 = 5

    @property
    def protocol_name(self) -> str:
        return "MQIsdp" if self is ProtocolLevel.MQTT_3_1 else "MQTT"


class QoS(IntEnum):
    AT_MOST_ONCE = 0
    AT_LEAST_ONCE = 1
    EXACTLY_ONCE = 2


class ConnectReturnCode(IntEnum):
    """CONNACK return codes of MQTT 3.1 and 3.1.1 (3.2.2.3)."""

    ACCEPTED = 0x00
    UNACCEPTABLE_PROTOCOL_VERSION = 0x01
    IDENTIFIER_REJECTED = 0x02
    SERVER_UNAVAILABLE = 0x03
    BAD_USER_NAME_OR_PASSWORD = 0x04
    NOT_AUTHORIZED = 0x05


SUBACK_FAILURE = 0x80
"""The 3.1.1 SUBACK return code for a refused subscription [MQTT-3.9.3-2]."""

UserProperty: TypeAlias = tuple[str, str]


@attrs.frozen
class Properties:
    """MQTT 5.0 properties (2.2.2.2); every field absent by default.

    Which property may stand on which packet is checked by the codec, which
    raises a protocol error for a property not allowed there.
    """

    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    subscription_identifiers: tuple[int, ...] = ()
    session_expiry_interval: int | None = None
    assigned_client_identifier: str | None = None
    server_keep_alive: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    request_problem_information: int | None = None
    will_delay_interval: int | None = None
    request_response_information: int | None = None
    response_information: str | None = None
    server_reference: str | None = None
    reason_string: str | None = None
    receive_maximum: int | None = None
    topic_alias_maximum: int | None = None
    topic_alias: int | None = None
    maximum_qos: int | None = None
    retain_available: int | None = None
    user_properties: tuple[UserProperty, ...] = ()
    maximum_packet_size: int | None = None
    wildcard_subscription_available: int | None = None
    subscription_identifier_available: int | None = None
    shared_subscription_available: int | None = None

    def is_empty(self) -> bool:
        # Identity first: the codec hands out the one NO_PROPERTIES for every
        # empty block, and the field-by-field comparison is costly on hot paths.
        return self is NO_PROPERTIES or self == NO_PROPERTIES


NO_PROPERTIES = Properties()


@attrs.frozen
class Will:
    """The will message carried by CONNECT (3.1.2.5 - 3.1.2.7)."""

    topic: str
    payload: bytes
    qos: QoS = QoS.AT_MOST_ONCE
    retain: bool = False
    properties: Properties = NO_PROPERTIES


@attrs.frozen
class Connect:
    protocol_level: ProtocolLevel
    client_id: str
    clean_session: bool = True
    """``CleanSession`` in 3.1.1; ``Clean Start`` in 5.0."""
    keep_alive: int = 60
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.CONNECT


@attrs.frozen
class ConnAck:
    session_present: bool
    return_code: int
    """A ``ConnectReturnCode`` below 5.0, a ``ReasonCode`` at 5.0."""
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.CONNACK


@attrs.frozen
class Publish:
    topic: str
    payload: bytes
    qos: QoS = QoS.AT_MOST_ONCE
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    """Present exactly when ``qos`` > 0 [MQTT-2.3.1-5]."""
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.PUBLISH


@attrs.frozen
class PubAck:
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.PUBACK


@attrs.frozen
class PubRec:
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.PUBREC


@attrs.frozen
class PubRel:
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.PUBREL


@attrs.frozen
class PubComp:
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.PUBCOMP


@attrs.frozen
class Subscription:
    """One topic filter of a SUBSCRIBE with its requested QoS and 5.0 options."""

    topic_filter: str
    qos: QoS
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@attrs.frozen
class Subscribe:
    packet_id: int
    subscriptions: tuple[Subscription, ...]
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.SUBSCRIBE


@attrs.frozen
class SubAck:
    packet_id: int
    return_codes: tuple[int, ...]
    """Granted QoS or 0x80 below 5.0; reason codes at 5.0."""
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.SUBACK


@attrs.frozen
class Unsubscribe:
    packet_id: int
    topic_filters: tuple[str, ...]
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.UNSUBSCRIBE


@attrs.frozen
class UnsubAck:
    packet_id: int
    reason_codes: tuple[int, ...] = ()
    """Empty below 5.0, which has no UNSUBACK payload."""
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.UNSUBACK


@attrs.frozen
class PingReq:
    packet_type = PacketType.PINGREQ


@attrs.frozen
class PingResp:
    packet_type = PacketType.PINGRESP


@attrs.frozen
class Disconnect:
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.DISCONNECT


@attrs.frozen
class Auth:
    """MQTT 5.0 only (3.15)."""

    reason_code: int = 0
    properties: Properties = NO_PROPERTIES

    packet_type = PacketType.AUTH


Packet: TypeAlias = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
    | Auth
)

CLIENT_TO_SERVER: frozenset[PacketType] = frozenset(
    {
        PacketType.CONNECT,
        PacketType.PUBLISH,
        PacketType.PUBACK,
        PacketType.PUBREC,
        PacketType.PUBREL,
        PacketType.PUBCOMP,
        PacketType.SUBSCRIBE,
        PacketType.UNSUBSCRIBE,
        PacketType.PINGREQ,
        PacketType.DISCONNECT,
        PacketType.AUTH,
    }
)
"""Packet types a server may receive (2.2.1); the others close the connection."""

SERVER_TO_CLIENT: frozenset[PacketType] = frozenset(
    {
        PacketType.CONNACK,
        PacketType.PUBLISH,
        PacketType.PUBACK,
        PacketType.PUBREC,
        PacketType.PUBREL,
        PacketType.PUBCOMP,
        PacketType.SUBACK,
        PacketType.UNSUBACK,
        PacketType.PINGRESP,
        PacketType.DISCONNECT,
        PacketType.AUTH,
    }
)
