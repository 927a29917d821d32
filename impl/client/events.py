"""What the client core reports: received messages and the outcome of each operation.

The core returns these values instead of calling back into the shell, so a
test can read, in order, exactly what a sequence of packets caused.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from mqttref.impl.codec.errors import ClientError
from mqttref.impl.codec.packets import NO_PROPERTIES, Properties, QoS


@attrs.frozen
class Message:
    """An application message received from the broker.

    ``packet_id`` is the broker's identifier for QoS 1/2 deliveries (mosquitto's
    "mid"), ``None`` at QoS 0; ``dup`` is the DUP flag of the PUBLISH that carried it.
    ``properties`` are the 5.0 PUBLISH properties (empty below 5.0), with the
    subscription identifiers of the matching subscriptions; ``topic`` is already
    resolved from a topic alias, and ``properties.topic_alias`` says which one came.
    """

    topic: str
    payload: bytes
    qos: QoS = QoS.AT_MOST_ONCE
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = NO_PROPERTIES


@attrs.frozen
class Connected:
    """CONNACK accepted the connection; ``session_present`` as the broker said.

    At 5.0, ``reason_code`` (0x00) and the CONNACK ``properties``: the server's
    limits, an assigned client identifier, a server keep alive.
    """

    session_present: bool
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@attrs.frozen
class ConnectRefused:
    """CONNACK carried a refusing return code; the connection is closing."""

    return_code: int
    properties: Properties = NO_PROPERTIES
    mqtt5: bool = False


@attrs.frozen
class MessageReceived:
    """A PUBLISH to hand to the application; QoS 1/2 wait for ``acknowledge``."""

    message: Message


@attrs.frozen
class PublishCompleted:
    """The flow of the publish ``handle`` is finished (sent, PUBACK or PUBCOMP).

    ``reason_code`` is the 5.0 code of the acknowledgement: 0x00, or 0x10 when the
    broker had no matching subscriber (a success, reported) [MQTT-3.4.2.1].
    """

    handle: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@attrs.frozen
class PublishFailed:
    """The publish ``handle`` cannot complete; ``error`` says why."""

    handle: int
    error: ClientError


@attrs.frozen
class SubscribeCompleted:
    """SUBACK for the SUBSCRIBE ``packet_id``, one return code per filter."""

    packet_id: int
    return_codes: tuple[int, ...]
    properties: Properties = NO_PROPERTIES


@attrs.frozen
class UnsubscribeCompleted:
    """UNSUBACK for the UNSUBSCRIBE ``packet_id``; 5.0 gives one reason code per filter."""

    packet_id: int
    reason_codes: tuple[int, ...] = ()
    properties: Properties = NO_PROPERTIES


@attrs.frozen
class Resubscribed:
    """The broker had no session, so the core subscribed again to these filters."""

    topic_filters: tuple[str, ...]
    return_codes: tuple[int, ...]


@attrs.frozen
class CloseConnection:
    """The core wants the network connection closed, for the reason ``error``."""

    error: ClientError


Event: TypeAlias = (
    Connected
    | ConnectRefused
    | MessageReceived
    | PublishCompleted
    | PublishFailed
    | SubscribeCompleted
    | UnsubscribeCompleted
    | Resubscribed
    | CloseConnection
)


@attrs.frozen
class Disconnected:
    """The shell lost its connection; ``error`` says why (reported to ``on_event``)."""

    error: ClientError


@attrs.frozen
class Reconnecting:
    """The shell will try connection attempt ``attempt`` after ``delay`` seconds."""

    attempt: int
    delay: float


ConnectionEvent: TypeAlias = Connected | Disconnected | Reconnecting | Resubscribed
"""What ``Client(on_event=...)`` is told about the connection's life."""
