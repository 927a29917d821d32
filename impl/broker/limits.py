"""The broker's own rules for topics and strings, beyond what the codec accepts as valid.

The codec enforces the specification's shape rules (no empty topic, no
wildcard in a name, no U+0000, well-formed UTF-8). What is left here are the
choices the specification leaves to a server, each driven by a configuration
key, as pure functions of the value and the ``Config``, so that the socket
code only asks and acts:

- limits from BAD-INPUTS.md: the number of levels (deep topics cost time in
  every match; CVE-2019-11779) and the length in bytes (``max_topic_levels``,
  ``max_topic_length``); and no control characters U+0001-U+001F or
  U+007F-U+009F in topic names and filters, which the specification says
  SHOULD NOT appear (1.5.3) and which have been used to inject terminal
  escapes through subscribers' logs. A topic name beyond them closes the
  connection (3.1.1 cannot refuse a PUBLISH otherwise), a filter is refused
  with SUBACK 0x80;
- 1.5.3's MAY in full (``reject_control_characters``): any UTF-8 string of a
  packet holding a control character or a Unicode non-character closes;
- which filters a SUBACK refuses (``refuse_wildcard_subscriptions``
  [MQTT-3.8.3-2], ``refuse_filter_characters``) and the QoS it grants
  (``max_qos`` [MQTT-3.8.4-6]).
"""

from __future__ import annotations

import re

from mqttref.impl.broker.config import Config
from mqttref.impl.codec.packets import Connect, QoS, Subscribe, Unsubscribe
from mqttref.impl.codec.topicnames import MAX_TOPIC_BYTES
from mqttref.impl.logtext import clip

_CONTROL = re.compile("[\x01-\x1f\x7f-\x9f]")
"""The control characters of 1.5.3 (U+0000 is the codec's: a malformed packet)."""

_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17)
)
"""Unicode's 66 non-characters: U+FDD0-U+FDEF and the last two code points of each plane."""

_DISCOURAGED = re.compile(f"[\x01-\x1f\x7f-\x9f{_NONCHARACTERS}]")
"""Every code point 1.5.3 says SHOULD NOT appear in a UTF-8 encoded string."""


def discouraged_code_point(value: str) -> str | None:
    """The first code point of ``value`` that 1.5.3 says SHOULD NOT be included (a
    control character U+0001-U+001F or U+007F-U+009F, or a non-character such as
    U+FFFF), as ``U+XXXX``; None if there is none. Receiving one, a server MAY close
    the Network Connection (1.5.3)."""
    match = _DISCOURAGED.search(value)
    return None if match is None else f"U+{ord(match.group()):04X}"


def topic_problem(topic: str, config: Config) -> str | None:
    """Why a topic name or filter is beyond the broker's limits, or None if it is not.

    With ``reject_control_characters`` the non-characters of 1.5.3 count too.
    """
    limit = config.max_topic_length
    if len(topic) > limit or (limit < MAX_TOPIC_BYTES and len(topic.encode()) > limit):
        return f"more than {limit} bytes"
    if topic.count("/") >= config.max_topic_levels:
        return f"more than {config.max_topic_levels} topic levels"
    if config.reject_control_characters:
        code_point = discouraged_code_point(topic)
        if code_point is not None:
            return f"{code_point} in the topic (1.5.3)"
    elif _CONTROL.search(topic) is not None:
        return "a control character in the topic (1.5.3)"
    return None


def filter_problem(topic_filter: str, config: Config) -> str | None:
    """Why a SUBSCRIBE filter is refused with SUBACK 0x80, or None if it is granted.

    The return code of each filter may say the subscription failed [MQTT-3.8.4-5]
    (0x80, 3.9.3); a server that does not support wildcards MUST refuse every filter
    holding one [MQTT-3.8.3-2]. Refusing one filter leaves the others of the same
    SUBSCRIBE alone.
    """
    problem = topic_problem(topic_filter, config)
    if problem is not None:
        return problem
    if config.refuse_wildcard_subscriptions and ("+" in topic_filter or "#" in topic_filter):
        return "a wildcard (refuse_wildcard_subscriptions) [MQTT-3.8.3-2]"
    for character in config.refuse_filter_characters:
        if character in topic_filter:
            return f"the character {character!r} (refuse_filter_characters)"
    return None


def granted_qos(requested: QoS, config: Config) -> QoS:
    """The QoS a SUBACK grants: the requested one, at most ``max_qos``. The Server might
    grant a lower maximum QoS than the subscriber requested [MQTT-3.8.4-6]."""
    return requested if requested <= config.max_qos else QoS(config.max_qos)


def strings_problem(packet: Connect | Subscribe | Unsubscribe) -> str | None:
    """Which UTF-8 string of a CONNECT (client id, will topic, user name), SUBSCRIBE or
    UNSUBSCRIBE (topic filters) holds a code point 1.5.3 discourages, and which; None if
    none does. A server MAY close the Network Connection on such a packet (1.5.3);
    ``reject_control_characters`` makes the broker do so. PUBLISH topic names are
    judged by ``topic_problem``, which the broker remembers per connection."""
    strings: list[tuple[str, str | None]]
    if isinstance(packet, Connect):
        will_topic = packet.will.topic if packet.will is not None else None
        strings = [("client id", packet.client_id), ("will topic", will_topic),
                   ("user name", packet.username)]
    elif isinstance(packet, Subscribe):
        strings = [("topic filter", sub.topic_filter) for sub in packet.subscriptions]
    else:
        strings = [("topic filter", topic_filter) for topic_filter in packet.topic_filters]
    for what, value in strings:
        if value:
            code_point = discouraged_code_point(value)
            if code_point is not None:
                return f"{what} {clip(value)} holds {code_point} (1.5.3)"
    return None
