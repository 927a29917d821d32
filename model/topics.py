"""Topic names and topic filters, read off section 4.7 of MQTT 3.1.1.

Deliberately independent of ``mqttref.impl``: if the broker and the model
shared one matcher, a bug in it would be invisible. The broker walks tries of
levels; this module does neither. It checks filters character by character,
the way 4.7.1 phrases its rules, and matches by translating the filter into a
regular expression over the whole topic name: slow, and obviously right.

The rules, as the specification states them:

- ``/`` separates topic levels; a level may be empty (4.7.1.1).
- ``#`` matches the parent level and any number of child levels; it MUST be on
  its own or follow a ``/``, and MUST be the last character [MQTT-4.7.1-2].
- ``+`` matches exactly one level (which may be empty) and MUST occupy an
  entire level [MQTT-4.7.1-3].
- Wildcards MUST NOT appear in a topic name [MQTT-4.7.1-1] [MQTT-3.3.2-2].
- A filter starting with ``#`` or ``+`` MUST NOT match a name starting with
  ``$`` [MQTT-4.7.2-1].
- Both are at least one character [MQTT-4.7.3-1], without U+0000
  [MQTT-4.7.3-2], at most 65535 UTF-8 bytes [MQTT-4.7.3-3], and are compared
  without any normalisation [MQTT-4.7.3-4].
"""

from __future__ import annotations

import functools
import re

MAX_UTF8_BYTES = 65535

SEPARATOR = "/"
MULTI_LEVEL_WILDCARD = "#"
SINGLE_LEVEL_WILDCARD = "+"


def _common_problem(text: str) -> str | None:
    if len(text) == 0:
        return "is empty [MQTT-4.7.3-1]"
    if "\x00" in text:
        return "contains U+0000 [MQTT-4.7.3-2]"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_UTF8_BYTES:
        return "is longer than 65535 bytes [MQTT-4.7.3-3]"
    return None


def topic_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a PUBLISH topic name, or None when it can."""
    problem = _common_problem(name)
    if problem is not None:
        return problem
    if MULTI_LEVEL_WILDCARD in name or SINGLE_LEVEL_WILDCARD in name:
        return "contains a wildcard [MQTT-3.3.2-2] [MQTT-4.7.1-1]"
    return None


def _starts_a_level(text: str, position: int) -> bool:
    return position == 0 or text[position - 1] == SEPARATOR


def _ends_a_level(text: str, position: int) -> bool:
    return position == len(text) - 1 or text[position + 1] == SEPARATOR


def topic_filter_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` cannot be a subscription's filter, or None.

    Character by character, in the words of 4.7.1: every ``#`` is on its own or
    follows a separator, and is the last character; every ``+`` is a level of
    its own (a separator or an end of the filter on both sides).
    """
    problem = _common_problem(topic_filter)
    if problem is not None:
        return problem
    for position, character in enumerate(topic_filter):
        if character == MULTI_LEVEL_WILDCARD and not (
            _starts_a_level(topic_filter, position) and position == len(topic_filter) - 1
        ):
            return "has '#' that is not a whole last level [MQTT-4.7.1-2]"
        if character == SINGLE_LEVEL_WILDCARD and not (
            _starts_a_level(topic_filter, position) and _ends_a_level(topic_filter, position)
        ):
            return "has '+' that is not a whole level [MQTT-4.7.1-3]"
    return None


_ONE_LEVEL = "[^/]*"  # any characters but the separator, none included: one level


@functools.lru_cache(maxsize=4096)
def filter_pattern(topic_filter: str) -> re.Pattern[str]:
    """The regular expression a (valid) topic filter stands for, over whole topic names.

    ``+`` becomes one level (``[^/]*``). A final ``/#`` becomes "nothing more,
    or a separator followed by anything", which is the parent level and every
    level below it; a filter that is ``#`` alone becomes "anything". Every other
    character stands for itself, case and all [MQTT-4.7.3-4].
    """
    if topic_filter == MULTI_LEVEL_WILDCARD:
        return re.compile(".*", re.DOTALL)
    tail = ""
    if topic_filter.endswith(SEPARATOR + MULTI_LEVEL_WILDCARD):
        topic_filter = topic_filter[: -len(SEPARATOR + MULTI_LEVEL_WILDCARD)]
        tail = "(?:/.*)?"
    levels = [
        _ONE_LEVEL if level == SINGLE_LEVEL_WILDCARD else re.escape(level)
        for level in topic_filter.split(SEPARATOR)
    ]
    return re.compile(re.escape(SEPARATOR).join(levels) + tail, re.DOTALL)


def matches(topic_filter: str, topic_name: str) -> bool:
    """Whether a topic name matches a (valid) topic filter (4.7).

    A filter that starts with a wildcard never matches a name that starts with
    ``$`` [MQTT-4.7.2-1]; otherwise the name matches when the filter's regular
    expression matches the whole name.
    """
    starts_with_wildcard = topic_filter[:1] in (MULTI_LEVEL_WILDCARD, SINGLE_LEVEL_WILDCARD)
    if starts_with_wildcard and topic_name[:1] == "$":
        return False
    return filter_pattern(topic_filter).fullmatch(topic_name) is not None
