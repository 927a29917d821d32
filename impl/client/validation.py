"""Argument checks made before anything is sent.

A caller's mistake (a wildcard in a topic name, QoS 3, a payload larger
than a packet may be) is reported as ``InvalidArgument`` at the call, never
discovered by the broker closing the connection later, which would cost
every other message in flight.
"""

from __future__ import annotations

from mqttref.impl.client.errors import InvalidArgument, PayloadTooLarge
from mqttref.impl.codec.errors import EncodeError, TopicFilterInvalid, TopicNameInvalid
from mqttref.impl.codec.packets import Properties, ProtocolLevel, QoS
from mqttref.impl.codec.properties import WILL, Kind, encode_properties
from mqttref.impl.codec.topicnames import (
    validate_shared_filter,
    validate_topic_filter,
    validate_topic_name,
)

MAX_REMAINING_LENGTH = 268_435_455
"""The largest Remaining Length four bytes can encode (2.2.3)."""

MAX_PACKET_ID = 65_535
MAX_KEEP_ALIVE = 65_535
MAX_STRING_BYTES = 65_535
MQTT_3_1_CLIENT_ID_BYTES = 23
"""MQTT 3.1 servers may refuse longer client identifiers (3.1 spec, 3.1)."""
MAX_SUBSCRIPTION_IDENTIFIER = 268_435_455
"""A Variable Byte Integer's largest value (3.8.2.1.2)."""

PROTOCOL_SPELLINGS: dict[str, ProtocolLevel] = {
    "5": ProtocolLevel.MQTT_5,
    "5.0": ProtocolLevel.MQTT_5,
    "mqttv5": ProtocolLevel.MQTT_5,
    "3.1.1": ProtocolLevel.MQTT_3_1_1,
    "311": ProtocolLevel.MQTT_3_1_1,
    "mqttv311": ProtocolLevel.MQTT_3_1_1,
    "3.1": ProtocolLevel.MQTT_3_1,
    "31": ProtocolLevel.MQTT_3_1,
    "mqttv31": ProtocolLevel.MQTT_3_1,
}
"""How a caller may name a protocol version; an int is the CONNECT level byte (3, 4, 5)."""


def check_protocol(protocol: ProtocolLevel | int | str) -> ProtocolLevel:
    """The protocol level a caller named, as ``Client(protocol=...)`` and ``-V`` take it."""
    if isinstance(protocol, str):
        level = PROTOCOL_SPELLINGS.get(protocol.strip().lower())
        if level is not None:
            return level
    elif isinstance(protocol, int) and not isinstance(protocol, bool) and protocol in (3, 4, 5):
        return ProtocolLevel(protocol)
    raise InvalidArgument(
        f"unknown protocol {protocol!r}: use 5 (or '5.0', 'mqttv5'), "
        "'3.1.1' (or 4, 'mqttv311') or '3.1' (or 3, 'mqttv31')"
    )


def check_properties(properties: Properties, kind: Kind, level: ProtocolLevel) -> None:
    """Properties the codec can write on ``kind`` (2.2.2): right packet, values in range.

    Below 5.0 no packet has properties, so any is a mistake of the caller.
    """
    if properties.is_empty():
        return
    name = kind if isinstance(kind, str) else kind.name
    if level is not ProtocolLevel.MQTT_5:
        raise InvalidArgument(f"{name} properties need MQTT 5.0 (Client(protocol=5))")
    try:
        encode_properties(properties, kind)
    except EncodeError as exc:
        raise InvalidArgument(f"invalid {name} properties: {exc}") from exc


def check_publish_properties(properties: Properties, level: ProtocolLevel, kind: Kind) -> None:
    """A PUBLISH's (or a will's) own properties, as an application may set them."""
    check_properties(properties, kind, level)
    if properties.subscription_identifiers:
        # The server adds these; a client's PUBLISH must not carry one [MQTT-3.3.4-6].
        raise InvalidArgument("a PUBLISH from a client carries no subscription identifier")
    if kind is not WILL and properties.topic_alias is not None:
        raise InvalidArgument("topic aliases are chosen by the client: leave topic_alias unset")
    if properties.response_topic is not None:
        try:
            validate_topic_name(properties.response_topic)  # [MQTT-3.3.2-14]
        except TopicNameInvalid as exc:
            raise InvalidArgument(
                f"invalid response topic {properties.response_topic!r}: {exc.detail}"
            ) from exc


def check_utf8_payload(payload: bytes, properties: Properties) -> None:
    """Payload Format Indicator 1 promises UTF-8 (3.3.2.3.2); keep the promise."""
    if properties.payload_format_indicator == 1:
        try:
            bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(
                "payload_format_indicator=1 says UTF-8 but the payload is not"
            ) from exc


def check_subscription_options(
    topic_filter: str,
    level: ProtocolLevel,
    *,
    no_local: bool,
    retain_handling: int,
    retain_as_published: bool,
) -> None:
    """5.0 subscription options (3.8.3.1) and shared subscriptions (4.8.2)."""
    options_set = no_local or retain_as_published or retain_handling != 0
    if level is not ProtocolLevel.MQTT_5:
        if options_set:
            raise InvalidArgument("subscription options need MQTT 5.0 (Client(protocol=5))")
        return
    if retain_handling not in (0, 1, 2):
        raise InvalidArgument(f"retain handling must be 0, 1 or 2, not {retain_handling!r}")
    try:
        validate_shared_filter(topic_filter)
    except TopicFilterInvalid as exc:
        raise InvalidArgument(
            f"invalid shared subscription {topic_filter!r}: {exc.detail}"
        ) from exc
    if no_local and topic_filter.startswith("$share/"):
        raise InvalidArgument("no local on a shared subscription is not allowed [MQTT-3.8.3-4]")


def check_subscription_identifier(identifier: int | None) -> None:
    if identifier is not None and not 1 <= identifier <= MAX_SUBSCRIPTION_IDENTIFIER:
        # 0 is a protocol error (3.8.2.1.2).
        raise InvalidArgument(
            f"a subscription identifier is 1..{MAX_SUBSCRIPTION_IDENTIFIER}, not {identifier!r}"
        )


def check_qos(qos: int) -> QoS:
    """QoS is 0, 1 or 2; 3 is reserved [MQTT-3.3.1-4]."""
    if isinstance(qos, bool) or qos not in (0, 1, 2):
        raise InvalidArgument(f"QoS must be 0, 1 or 2, not {qos!r}")
    return QoS(qos)


def _check_string(what: str, value: str) -> None:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_STRING_BYTES:
        raise InvalidArgument(f"{what} is longer than 65,535 bytes [MQTT-1.5.3]")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"{what} is not valid UTF-8 [MQTT-1.5.3-1]") from exc


def check_topic_name(topic: str) -> None:
    """A PUBLISH topic: non-empty, no wildcard, no U+0000 [MQTT-4.7.3-1] [MQTT-3.3.2-2]."""
    _check_string("topic name", topic)
    try:
        validate_topic_name(topic)
    except TopicNameInvalid as exc:
        raise InvalidArgument(f"invalid topic name {topic!r}: {exc.detail}") from exc


def check_topic_filter(topic_filter: str) -> None:
    """A SUBSCRIBE/UNSUBSCRIBE filter: wildcards only as whole levels [MQTT-4.7.1-2/3]."""
    _check_string("topic filter", topic_filter)
    try:
        validate_topic_filter(topic_filter)
    except TopicFilterInvalid as exc:
        raise InvalidArgument(f"invalid topic filter {topic_filter!r}: {exc.detail}") from exc


def publish_packet_size(topic: str, payload_length: int, qos: QoS) -> int:
    """The Remaining Length of a 3.1.1 PUBLISH: topic string, packet id, payload (3.3)."""
    return 2 + len(topic.encode("utf-8")) + (2 if qos > 0 else 0) + payload_length


def check_payload(topic: str, payload: bytes, qos: QoS, max_packet_size: int) -> None:
    """The whole PUBLISH must fit the Remaining Length field and the size limit."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise InvalidArgument(f"payload must be bytes, not {type(payload).__name__}")
    remaining = publish_packet_size(topic, len(payload), qos)
    limit = min(max_packet_size, MAX_REMAINING_LENGTH)
    if remaining > limit:
        raise PayloadTooLarge(f"a PUBLISH of {remaining} bytes exceeds the limit of {limit} bytes")


def check_connect_options(
    *,
    client_id: str,
    clean_session: bool,
    keep_alive: int,
    protocol_level: ProtocolLevel,
    username: str | None,
    password: bytes | None,
) -> None:
    """CONNECT fields a broker would refuse or that cannot be encoded."""
    if protocol_level not in tuple(ProtocolLevel):
        raise InvalidArgument(f"the client speaks MQTT 3.1, 3.1.1 and 5.0, not {protocol_level!r}")
    _check_string("client id", client_id)
    if not client_id and not clean_session and protocol_level is not ProtocolLevel.MQTT_5:
        # A broker must refuse this with return code 0x02 [MQTT-3.1.3-8].
        raise InvalidArgument("a persistent session (clean_session=False) needs a client id")
    if protocol_level == ProtocolLevel.MQTT_3_1 and not 1 <= len(client_id) <= 23:
        raise InvalidArgument("MQTT 3.1 client ids are 1 to 23 characters")
    if not 0 <= keep_alive <= MAX_KEEP_ALIVE:
        raise InvalidArgument(f"keep alive must be 0..65535 seconds, not {keep_alive}")
    if username is not None:
        _check_string("user name", username)
    if password is not None:
        if username is None and protocol_level is not ProtocolLevel.MQTT_5:
            # [MQTT-3.1.2-22]: a password without a user name is not allowed.
            raise InvalidArgument("a password needs a user name [MQTT-3.1.2-22]")
        if len(password) > MAX_STRING_BYTES:
            raise InvalidArgument("password is longer than 65,535 bytes")
