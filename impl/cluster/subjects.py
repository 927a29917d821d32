"""MQTT topic names and filters as NATS subjects, and back.

Theory of operation. A NATS subject is a string of tokens joined by ``.``; a token
may not be empty and may not hold ``.`` or whitespace, and the tokens ``*`` and
``>`` are NATS's wildcards (one token; the rest). JetStream key-value keys are
stricter still: only ``[-/_=.A-Za-z0-9]``. MQTT topic levels may hold anything
but ``/``, ``+``, ``#`` and U+0000, and may be empty (4.7.1.1). So each topic level
becomes one token, escaped reversibly for the strictest of the two:

* ``A-Z a-z 0-9 - _`` stay as they are;
* every other character becomes ``=XX`` for each byte of its UTF-8 encoding
  (upper-case hexadecimal), ``=`` itself included;
* an empty level becomes the token ``=`` alone (an escape always has two hex digits
  after it, so the lone ``=`` cannot be anything else).

The subject starts with a prefix token that says which kind of topic follows:
``m`` for an ordinary topic name, ``d`` for one whose first level starts with
``$``. A filter that starts with a wildcard is mapped under ``m`` only, so in NATS
it cannot receive a ``$`` topic, which is the rule of [MQTT-4.7.2-1]; a filter
whose first level is literal goes under the prefix its first character calls for.

Filters: ``+`` becomes ``*``; ``#`` becomes ``>``. MQTT's ``#`` also matches the
parent level ("a/#" matches "a" [MQTT-4.7.1-2]) and NATS's ``>`` needs at least
one more token, so ``a/#`` needs two NATS subjects, ``m.a`` and ``m.a.>``; ``#``
alone needs only ``m.>`` (every topic has at least one level).
"""

from __future__ import annotations

import re
import string
from functools import lru_cache

ORDINARY = "m"
"""The prefix token of a topic name not starting with ``$``."""
DOLLAR = "d"
"""The prefix token of a topic name starting with ``$`` (``$SYS/...``) [MQTT-4.7.2-1]."""
EMPTY_LEVEL = "="
"""The token of an empty topic level."""
ESCAPE = "="
_SAFE = frozenset(string.ascii_letters + string.digits + "-_")
_HEX = frozenset("0123456789ABCDEF")
_PLAIN = re.compile(r"[A-Za-z0-9_-]+")
"""A level (or token) of safe characters only: the same on both sides."""
CACHED = 4096
"""Topic names and subjects remembered per direction: a node sees the same few again
and again, and this mapping is on every forwarded message's path."""


class SubjectError(ValueError):
    """A string that no topic level or topic name maps to (a corrupt or foreign subject)."""


def level_token(level: str) -> str:
    """One topic level as one subject token (see the module's escaping rules)."""
    if not level:
        return EMPTY_LEVEL
    if _PLAIN.fullmatch(level):
        return level
    parts: list[str] = []
    for char in level:
        if char in _SAFE:
            parts.append(char)
        else:
            parts.extend(f"={byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(parts)


def token_level(token: str) -> str:
    """The topic level of one token; SubjectError if no level maps to it."""
    if token == EMPTY_LEVEL:
        return ""
    if _PLAIN.fullmatch(token):
        return token
    if not token:
        raise SubjectError("an empty token")
    raw = bytearray()
    index = 0
    while index < len(token):
        char = token[index]
        if char == ESCAPE:
            digits = token[index + 1:index + 3]
            if len(digits) != 2 or not set(digits) <= _HEX:
                raise SubjectError(f"a bad escape in {token!r}")
            raw.append(int(digits, 16))
            index += 3
        elif char in _SAFE:
            raw.append(ord(char))
            index += 1
        else:
            raise SubjectError(f"{char!r} unescaped in {token!r}")
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise SubjectError(f"not UTF-8 in {token!r}") from exc


def prefix_of(topic_name: str) -> str:
    """The prefix token of a topic name: ``d`` for one starting with ``$``."""
    return DOLLAR if topic_name.startswith("$") else ORDINARY


@lru_cache(maxsize=CACHED)
def topic_subject(topic_name: str) -> str:
    """The subject of a topic name (no wildcards): prefix token, then one per level."""
    tokens = [prefix_of(topic_name)]
    tokens.extend(level_token(level) for level in topic_name.split("/"))
    return ".".join(tokens)


@lru_cache(maxsize=CACHED)
def subject_topic(subject: str) -> str:
    """The topic name of a subject made by ``topic_subject``; SubjectError otherwise."""
    prefix, dot, rest = subject.partition(".")
    if not dot or prefix not in (ORDINARY, DOLLAR):
        raise SubjectError(f"no topic prefix in {subject!r}")
    topic = "/".join(token_level(token) for token in rest.split("."))
    if prefix_of(topic) != prefix:
        raise SubjectError(f"the prefix {prefix!r} does not fit {topic!r}")
    return topic


def filter_subjects(topic_filter: str) -> tuple[str, ...]:
    """The NATS subjects whose messages together are those ``topic_filter`` matches.

    One subject, or two for a filter ending in ``/#`` (the parent level and
    everything below it). A filter whose first level is a wildcard lives under the
    ordinary prefix only, so it never matches a ``$`` topic [MQTT-4.7.2-1]."""
    levels = topic_filter.split("/")
    first = levels[0]
    prefix = ORDINARY if first in ("+", "#") else prefix_of(topic_filter)
    tokens = [prefix]
    for level in levels:
        if level == "#":
            if len(tokens) == 1:
                return (f"{prefix}.>",)
            parent = ".".join(tokens)
            return (parent, f"{parent}.>")
        tokens.append("*" if level == "+" else level_token(level))
    return (".".join(tokens),)


def subject_covers(wide: str, narrow: str) -> bool:
    """Whether every subject matching ``narrow`` matches ``wide`` (NATS subjects of
    filters: ``*`` one token, ``>`` one or more at the end): a stream consumer on
    ``wide`` hands every message one on ``narrow`` would."""
    outer, inner = wide.split("."), narrow.split(".")
    for index, token in enumerate(outer):
        if token == ">":
            return index < len(inner)
        if index >= len(inner):
            return False
        mine = inner[index]
        if mine == ">" or token not in ("*", mine):
            return False
    return len(outer) == len(inner)
