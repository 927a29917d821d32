"""The application message as the broker carries it between sessions.

A ``Message`` is what a publisher sent: topic, payload, QoS and retain flag,
and at MQTT 5.0 its properties, passed on unchanged to 5.0 subscribers (3.3.2.3)
and dropped for 3.x ones, with its expiry as an instant on the broker's clock.
The broker never changes it; each subscriber gets it at its own granted QoS,
with its own packet id, wrapped in an ``OutboundMessage``. A QoS 0 frame
without RETAIN is the same bytes for every MQTT 3.x subscriber, so the
message caches it: one encode for a fan-out to any number of subscribers
(``impl/codec/frames.py`` builds it).
"""

from __future__ import annotations

from typing import NamedTuple

import attrs

from mqttref.impl.codec.packets import NO_PROPERTIES, Properties, QoS


@attrs.define(slots=True, eq=False)
class Message:
    """One application message; identity matters (a retained message is one object)."""

    topic: str
    payload: bytes
    qos: QoS = QoS.AT_MOST_ONCE
    retain: bool = False
    qos0_frame: bytes | None = attrs.field(default=None, repr=False)
    """The encoded QoS 0, RETAIN=0 PUBLISH of this message, filled on first use."""
    properties: Properties = attrs.field(default=NO_PROPERTIES, repr=False)
    """The MQTT 5.0 properties a subscriber gets, as the publisher sent them (without
    its topic alias, which belongs to one connection [MQTT-3.3.2-7])."""
    expires_at: float | None = None
    """When its Message Expiry Interval ends, on the broker's monotonic clock; None: never."""
    origin: str | None = attrs.field(default=None, repr=False)
    """The client id of its publisher, for No Local [MQTT-3.8.3-3]; None for a will or a
    message from a 3.x client, whose subscriptions have no such option."""

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
    properties: Properties = NO_PROPERTIES
    """The message's MQTT 5.0 properties (sent to 5.0 clients only)."""
    expires_at: float | None = None
    """When the message expires (``Message.expires_at``): an expired one is not sent."""
    share: str | None = None
    """The shared subscription (``$share/{ShareName}/{filter}``) it came through, if any:
    should this session end before the message is acknowledged, it goes to another
    member of that group (4.8.2). The SQLite store keeps it too (schema 4), so that a
    restart does not forget the group."""
    published: Message | None = None
    """A shared copy's message as published: handed to another member, it goes at that
    member's QoS and Retain As Published, not at this member's [MQTT-4.8.2-3]. Not
    stored: after a restart a hand-over goes at this copy's QoS and RETAIN."""
