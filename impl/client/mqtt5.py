"""What MQTT 5.0 adds to one client connection: the server's limits and the topic aliases.

The server announces its limits in CONNACK (3.2.2.3); the client must keep to
them for the whole connection. Topic aliases (3.3.2.3.4) live exactly as long
as one network connection [MQTT-3.3.2-7], in each direction separately, so
both tables are made new by ``connection_made``.
"""

from __future__ import annotations

import attrs

from mqttref.impl.codec.packets import Properties, QoS

MAX_RECEIVE = 65_535


@attrs.frozen
class ServerLimits:
    """A CONNACK's promises and limits; below 5.0, or before CONNACK, no limits at all."""

    receive_maximum: int = MAX_RECEIVE
    maximum_qos: QoS = QoS.EXACTLY_ONCE
    retain_available: bool = True
    maximum_packet_size: int | None = None
    topic_alias_maximum: int = 0
    wildcard_subscription_available: bool = True
    subscription_identifier_available: bool = True
    shared_subscription_available: bool = True

    @classmethod
    def from_connack(cls, properties: Properties) -> ServerLimits:
        """Absent properties take the defaults the specification gives them (3.2.2.3)."""
        p = properties
        return cls(
            receive_maximum=p.receive_maximum or MAX_RECEIVE,
            maximum_qos=QoS(1 if p.maximum_qos == 1 else 0 if p.maximum_qos == 0 else 2),
            retain_available=p.retain_available != 0,
            maximum_packet_size=p.maximum_packet_size,
            topic_alias_maximum=p.topic_alias_maximum or 0,
            wildcard_subscription_available=p.wildcard_subscription_available != 0,
            subscription_identifier_available=p.subscription_identifier_available != 0,
            shared_subscription_available=p.shared_subscription_available != 0,
        )


@attrs.define
class OutboundAliases:
    """The aliases this client gave topics on this connection, within the server's maximum.

    The first PUBLISH to a topic carries the topic and a new alias; later ones carry
    the alias and an empty topic name. Once ``maximum`` aliases are given, other
    topics go out in full: replacing an alias would save nothing on a topic that
    is not repeated, and costs a lookup on every PUBLISH.
    """

    maximum: int = 0
    by_topic: dict[str, int] = attrs.field(factory=dict)

    def apply(self, topic: str) -> tuple[str, int | None]:
        """The (topic name, topic alias) to send for ``topic``."""
        alias = self.by_topic.get(topic)
        if alias is not None:
            return "", alias
        if len(self.by_topic) >= self.maximum:
            return topic, None
        alias = len(self.by_topic) + 1  # 1..maximum [MQTT-3.3.2-8]
        self.by_topic[topic] = alias
        return topic, alias
