"""The application message as the broker carries it between sessions.

A ``Message`` is what a publisher sent: topic, payload, QoS and retain flag.
The broker never changes it; each subscriber gets it at its own granted QoS,
with its own packet id, wrapped in an ``OutboundMessage``. A QoS 0 frame
without RETAIN is the same bytes for every MQTT 3.x subscriber, so the
message caches it: one encode for a fan-out to any number of subscribers
(``impl/codec/frames.py`` builds it).
"""

from __future__ import annotations

from typing import NamedTuple

import attrs

from mqttref.impl.codec.packets import QoS


@attrs.define(slots=True, eq=False)
class Message:
    """One application message; identity matters (a retained message is one object)."""

    topic: str
    payload: bytes
    qos: QoS = QoS.AT_MOST_ONCE
    retain: bool = False
    qos0_frame: bytes | None = attrs.field(default=None, repr=False)
    """The encoded QoS 0, RETAIN=0 PUBLISH of this message, filled on first use."""

    def same_as(self, other: Message) -> bool:
        """Equal content (for tests and the store), ignoring the frame cache."""
        return (self.topic, self.payload, self.qos, self.retain) == (
            other.topic,
            other.payload,
            other.qos,
            other.retain,
        )


class OutboundMessage(NamedTuple):
    """A message on its way to one subscriber: ``(topic, msg_id, qos, payload)`` plus retain.

    ``packet_id`` is 0 while the message waits in the queue; it is assigned when
    the message enters the in-flight window.
    """

    topic: str
    packet_id: int
    qos: QoS
    payload: bytes
    retain: bool = False
