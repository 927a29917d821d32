"""The broker's own rules for topics, beyond what the codec accepts as valid.

The codec enforces the specification's shape rules (no empty topic, no
wildcard in a name, no U+0000). The broker adds two limits of its own from
BAD-INPUTS.md: a cap on the number of levels (deep topics cost time in every
match; CVE-2019-11779), and no control characters U+0001-U+001F or
U+007F-U+009F, which the specification says SHOULD NOT appear (1.5.3) and
which have been used to inject terminal escapes through subscribers' logs.
"""

from __future__ import annotations

import re

from mqttref.impl.config import Config

_CONTROL = re.compile("[\x01-\x1f\x7f-\x9f]")


def topic_problem(topic: str, config: Config) -> str | None:
    """Why a topic name or filter is beyond the broker's limits, or None if it is not."""
    if topic.count("/") >= config.max_topic_levels:
        return f"more than {config.max_topic_levels} topic levels"
    if _CONTROL.search(topic) is not None:
        return "a control character in the topic (1.5.3)"
    return None
