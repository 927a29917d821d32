"""What a topic name and a topic filter may look like (4.7).

Matching subscriptions against topics is the registry's business; this module
only decides whether a string may stand in a PUBLISH or a SUBSCRIBE at all.
"""

from __future__ import annotations

from mqttref.impl.errors import TopicFilterInvalid, TopicNameInvalid

MAX_TOPIC_BYTES = 65535


def validate_topic_name(topic: str) -> None:
    """A topic name is non-empty [MQTT-4.7.3-1] and holds no wildcard [MQTT-3.3.2-2]."""
    if not topic:
        raise TopicNameInvalid("topic name is empty", ref="MQTT-4.7.3-1")
    if "+" in topic or "#" in topic:
        raise TopicNameInvalid(f"topic name {topic!r} contains a wildcard", ref="MQTT-3.3.2-2")
    if "\x00" in topic:
        raise TopicNameInvalid("topic name contains U+0000", ref="MQTT-4.7.3-2")


def validate_topic_filter(topic_filter: str) -> None:
    """``#`` only as the whole last level [MQTT-4.7.1-2]; ``+`` only as a whole
    level [MQTT-4.7.1-3]; never empty [MQTT-4.7.3-1]."""
    if not topic_filter:
        raise TopicFilterInvalid("topic filter is empty", ref="MQTT-4.7.3-1")
    if "\x00" in topic_filter:
        raise TopicFilterInvalid("topic filter contains U+0000", ref="MQTT-4.7.3-2")
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            raise TopicFilterInvalid(
                f"'#' must be the whole last level, not in {topic_filter!r}", ref="MQTT-4.7.1-2"
            )
        if "+" in level and level != "+":
            raise TopicFilterInvalid(
                f"'+' must be a whole level, not in {topic_filter!r}", ref="MQTT-4.7.1-3"
            )
