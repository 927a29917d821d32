"""Argument checks made before anything is sent.

A caller's mistake (a wildcard in a topic name, QoS 3, a payload larger
than a packet may be) is reported as ``InvalidArgument`` at the call, never
discovered by the broker closing the connection later, which would cost
every other message in flight.
"""

from __future__ import annotations

from mqttref.impl.client.errors import InvalidArgument, PayloadTooLarge
from mqttref.impl.codec.errors import TopicFilterInvalid, TopicNameInvalid
from mqttref.impl.codec.packets import ProtocolLevel, QoS
from mqttref.impl.codec.topicnames import validate_topic_filter, validate_topic_name

MAX_REMAINING_LENGTH = 268_435_455
"""The largest Remaining Length four bytes can encode (2.2.3)."""

MAX_PACKET_ID = 65_535
MAX_KEEP_ALIVE = 65_535
MAX_STRING_BYTES = 65_535
MQTT_3_1_CLIENT_ID_BYTES = 23
"""MQTT 3.1 servers may refuse longer client identifiers (3.1 spec, 3.1)."""


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
    if protocol_level not in (ProtocolLevel.MQTT_3_1, ProtocolLevel.MQTT_3_1_1):
        raise InvalidArgument(f"the client speaks MQTT 3.1 and 3.1.1, not {protocol_level!r}")
    _check_string("client id", client_id)
    if not client_id and not clean_session:
        # A broker must refuse this with return code 0x02 [MQTT-3.1.3-8].
        raise InvalidArgument("a persistent session (clean_session=False) needs a client id")
    if protocol_level == ProtocolLevel.MQTT_3_1 and not 1 <= len(client_id) <= 23:
        raise InvalidArgument("MQTT 3.1 client ids are 1 to 23 characters")
    if not 0 <= keep_alive <= MAX_KEEP_ALIVE:
        raise InvalidArgument(f"keep alive must be 0..65535 seconds, not {keep_alive}")
    if username is not None:
        _check_string("user name", username)
    if password is not None:
        if username is None:
            # [MQTT-3.1.2-22]: a password without a user name is not allowed.
            raise InvalidArgument("a password needs a user name [MQTT-3.1.2-22]")
        if len(password) > MAX_STRING_BYTES:
            raise InvalidArgument("password is longer than 65,535 bytes")
