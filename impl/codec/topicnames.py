"""What a topic name and a topic filter may look like (4.7).

Matching subscriptions against topics is the registry's business; this module
only decides whether a string may stand in a PUBLISH or a SUBSCRIBE at all.
"""

from __future__ import annotations

from mqttref.impl.codec.errors import TopicFilterInvalid, TopicNameInvalid
from mqttref.impl.logtext import clip

MAX_TOPIC_BYTES = 65535


def validate_topic_name(topic: str) -> None:
    """A topic name is non-empty [MQTT-4.7.3-1] and holds no wildcard [MQTT-3.3.2-2]."""
    if not topic:
        raise TopicNameInvalid("topic name is empty", ref="MQTT-4.7.3-1")
    if "+" in topic or "#" in topic:
        raise TopicNameInvalid(f"topic name {clip(topic)} contains a wildcard", ref="MQTT-3.3.2-2")
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
                f"'#' must be the whole last level, not in {clip(topic_filter)}", ref="MQTT-4.7.1-2"
            )
        if "+" in level and level != "+":
            raise TopicFilterInvalid(
                f"'+' must be a whole level, not in {clip(topic_filter)}", ref="MQTT-4.7.1-3"
            )


SHARED_PREFIX = "$share/"


def validate_shared_filter(topic_filter: str) -> None:
    """An MQTT 5.0 Shared Subscription ``$share/{ShareName}/{filter}`` (4.8.2): a ShareName
    of at least one character [MQTT-4.8.2-1] without ``/``, ``+``, ``#``, then ``/`` and a
    valid topic filter [MQTT-4.8.2-2]. Other filters pass unchanged."""
    if not topic_filter.startswith(SHARED_PREFIX):
        return
    rest = topic_filter[len(SHARED_PREFIX) :]
    slash = rest.find("/")
    share_name = rest if slash < 0 else rest[:slash]
    if not share_name:
        raise TopicFilterInvalid("shared subscription without a ShareName", ref="MQTT-4.8.2-1")
    if "+" in share_name or "#" in share_name:
        raise TopicFilterInvalid(f"ShareName {clip(share_name)} holds a wildcard",
                                 ref="MQTT-4.8.2-2")
    if slash < 0 or slash == len(rest) - 1:
        raise TopicFilterInvalid(
            f"shared subscription {clip(topic_filter)} has no topic filter", ref="MQTT-4.8.2-2"
        )
    validate_topic_filter(rest[slash + 1 :])
