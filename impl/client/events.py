"""What the client core reports: received messages and the outcome of each operation.

The core returns these values instead of calling back into the shell, so a
test can read, in order, exactly what a sequence of packets caused.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from mqttref.impl.codec.errors import ClientError
from mqttref.impl.codec.packets import QoS


@attrs.frozen
class Message:
    """An application message received from the broker.

    ``packet_id`` is the broker's identifier for QoS 1/2 deliveries (mosquitto's
    "mid"), ``None`` at QoS 0; ``dup`` is the DUP flag of the PUBLISH that carried it.
    """

    topic: str
    payload: bytes
    qos: QoS = QoS.AT_MOST_ONCE
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None


@attrs.frozen
class Connected:
    """CONNACK accepted the connection; ``session_present`` as the broker said."""

    session_present: bool


@attrs.frozen
class ConnectRefused:
    """CONNACK carried a refusing return code; the connection is closing."""

    return_code: int


@attrs.frozen
class MessageReceived:
    """A PUBLISH to hand to the application; QoS 1/2 wait for ``acknowledge``."""

    message: Message


@attrs.frozen
class PublishCompleted:
    """The flow of the publish ``handle`` is finished (sent, PUBACK or PUBCOMP)."""

    handle: int


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


@attrs.frozen
class UnsubscribeCompleted:
    packet_id: int


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
