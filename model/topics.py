"""Topic names and topic filters, written naively from section 4.7.

Deliberately independent of ``mqttref.impl``: if the broker and the model
shared one ``matches()``, a bug in it would be invisible. This version splits
on ``/`` and walks the levels; it is slow and obviously right.
"""

from __future__ import annotations

MAX_UTF8_BYTES = 65535


def _common_problem(text: str) -> str | None:
    if text == "":
        return "is empty [MQTT-4.7.3-1]"
    if "\x00" in text:
        return "contains U+0000 [MQTT-4.7.3-2]"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_UTF8_BYTES:
        return "is longer than 65535 bytes [MQTT-4.7.3-3]"
    return None


def topic_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a PUBLISH topic name, or None when it can."""
    problem = _common_problem(name)
    if problem:
        return problem
    if "+" in name or "#" in name:
        return "contains a wildcard [MQTT-3.3.2-2] [MQTT-4.7.1-1]"
    return None


def topic_filter_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` cannot be a subscription's filter, or None."""
    problem = _common_problem(topic_filter)
    if problem:
        return problem
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "has '#' that is not a whole last level [MQTT-4.7.1-2]"
        if "+" in level and level != "+":
            return "has '+' that is not a whole level [MQTT-4.7.1-3]"
    return None


def matches(topic_filter: str, topic_name: str) -> bool:
    """Whether a topic name matches a (valid) topic filter (4.7).

    Level by level: ``+`` matches exactly one level (possibly empty), ``#``
    matches the parent level and any number of levels below it. A filter that
    starts with a wildcard never matches a name that starts with ``$``
    [MQTT-4.7.2-1]. No normalisation of either string [MQTT-4.7.3-4].
    """
    if topic_name.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    name_levels = topic_name.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(name_levels):
            return False
        if level != "+" and level != name_levels[index]:
            return False
    return len(filter_levels) == len(name_levels)
