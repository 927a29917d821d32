"""The model's own topic matching, against the examples of section 4.7."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.model.topics import matches, topic_filter_problem, topic_name_problem


@pytest.mark.parametrize(
    ("topic_filter", "name", "expected"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("#", "anything/at/all", True),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("#", "$SYS/uptime", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/monitor/Clients", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("ACCOUNTS", "Accounts", False),
        ("a/b", "a/b/", False),
    ],
)
def test_spec_examples_of_topic_matching(topic_filter: str, name: str, expected: bool) -> None:
    """[MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1] [MQTT-4.7.3-4]"""
    assert topic_filter_problem(topic_filter) is None
    assert matches(topic_filter, name) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "+a", "x\x00"])
def test_invalid_filters_are_named(bad: str) -> None:
    assert topic_filter_problem(bad) is not None


@pytest.mark.parametrize("bad", ["", "a/+", "#", "a\x00"])
def test_invalid_topic_names_are_named(bad: str) -> None:
    assert topic_name_problem(bad) is not None


levels = st.lists(st.sampled_from(["a", "b", "", "$x"]), min_size=1, max_size=4)


def _regex(topic_filter: str) -> re.Pattern[str]:
    """A second, independent reading of 4.7.1 as a regular expression."""
    parts = topic_filter.split("/")
    pattern = ""
    for index, level in enumerate(parts):
        sep = "/" if index else ""
        if level == "#":
            pattern = pattern + "(/.*)?" if index else ".*"
            break
        pattern += sep + ("[^/]*" if level == "+" else re.escape(level))
    return re.compile(pattern)


@given(levels, levels, st.integers(0, 3), st.booleans())
def test_matching_agrees_with_a_regular_expression_reading(
    name_levels: list[str], filter_levels: list[str], wild_at: int, hash_end: bool
) -> None:
    topic_filter_levels = list(filter_levels)
    if wild_at < len(topic_filter_levels):
        topic_filter_levels[wild_at] = "+"
    if hash_end:
        topic_filter_levels.append("#")
    topic_filter = "/".join(topic_filter_levels)
    name = "/".join(n.replace("$", "") if i else n for i, n in enumerate(name_levels))
    if not name or topic_name_problem(name) or topic_filter_problem(topic_filter):
        return
    expected = _regex(topic_filter).fullmatch(name) is not None
    if name.startswith("$") and topic_filter[0] in "+#":
        expected = False
    assert matches(topic_filter, name) is expected
