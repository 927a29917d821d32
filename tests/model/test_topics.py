"""The model's own topic matching, against the examples of section 4.7.

Each example is checked against the model (``mqttref.model.topics``) and the
broker (``mqttref.impl.broker.matching``), which share no code; the property tests in
``test_topics_agree_with_impl.py`` compare the two on generated topics.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.broker.matching import topic_matches
from mqttref.model.topics import matches, topic_filter_problem, topic_name_problem

Matcher = Callable[[str, str], bool]
MATCHERS = pytest.mark.parametrize("match", [matches, topic_matches], ids=["model", "impl"])


# (filter, name, matches?) as section 4.7 of MQTT 3.1.1 gives them.
SPEC_EXAMPLES = [
    # 4.7.1.2 Multi-level wildcard
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis/player1", True),
    # 4.7.1.3 Single level wildcard
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    # 4.7.2 Topics beginning with $ [MQTT-4.7.2-1]
    ("#", "$SYS/monitor/Clients", False),
    ("#", "$SYS/uptime", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    # 4.7.3 Topic semantic and usage [MQTT-4.7.3-4]
    ("ACCOUNTS", "Accounts", False),
    ("Accounts payable", "Accounts payable", True),
    ("/finance", "finance", False),
    ("finance", "/finance", False),
    ("a/b", "a/b/", False),
    # What follows from 4.7.1: "#" also takes an empty child level, "+" an empty level.
    ("sport/#", "sport/", True),
    ("sport/#", "sports", False),
    ("/#", "/", True),
    ("+/#", "/", True),
    ("a//+", "a//", True),
]


@MATCHERS
@pytest.mark.parametrize(("topic_filter", "name", "expected"), SPEC_EXAMPLES)
def test_spec_examples_of_topic_matching(
    match: Matcher, topic_filter: str, name: str, expected: bool
) -> None:
    """[MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1] [MQTT-4.7.3-4]"""
    assert topic_filter_problem(topic_filter) is None
    assert topic_name_problem(name) is None
    assert match(topic_filter, name) is expected


@pytest.mark.parametrize(
    "good", ["#", "sport/tennis/#", "+", "+/tennis/#", "sport/+/player1", "/#", "+/+", "a//+"]
)
def test_spec_valid_filters_are_accepted(good: str) -> None:
    """4.7.1.2 and 4.7.1.3 name these filters valid."""
    assert topic_filter_problem(good) is None


@pytest.mark.parametrize(
    ("bad", "statement"),
    [
        ("sport/tennis#", "MQTT-4.7.1-2"),  # 4.7.1.2: not valid
        ("sport/tennis/#/ranking", "MQTT-4.7.1-2"),  # 4.7.1.2: not valid
        ("a/#/b", "MQTT-4.7.1-2"),
        ("##", "MQTT-4.7.1-2"),
        ("#/", "MQTT-4.7.1-2"),
        ("sport+", "MQTT-4.7.1-3"),  # 4.7.1.3: not valid
        ("a/b+", "MQTT-4.7.1-3"),
        ("+a", "MQTT-4.7.1-3"),
        ("++", "MQTT-4.7.1-3"),
        ("", "MQTT-4.7.3-1"),
        ("x\x00", "MQTT-4.7.3-2"),
        ("a" * 65536, "MQTT-4.7.3-3"),
    ],
)
def test_invalid_filters_are_named(bad: str, statement: str) -> None:
    problem = topic_filter_problem(bad)
    assert problem is not None
    assert statement in problem


@pytest.mark.parametrize("bad", ["", "a/+", "#", "a\x00", "sport/tennis#", "é" * 32768])
def test_invalid_topic_names_are_named(bad: str) -> None:
    assert topic_name_problem(bad) is not None


def test_a_level_may_hold_a_newline() -> None:
    """Any character but U+0000 may be in a level; the matcher must not treat one specially."""
    assert matches("a/+/c", "a/\n/c")
    assert matches("a/#", "a/\n/\n")
    assert matches("#", "\n")
    assert not matches("a/+", "a/\n/c")


def test_a_filter_of_many_levels_needs_no_recursion() -> None:
    """A filter or name of tens of thousands of levels is matched without exhausting a stack."""
    name = "/".join(["a"] * 30000)
    assert matches("/".join(["+"] * 30000), name)
    assert matches("a/#", name)
    assert not matches("/".join(["+"] * 29999), name)


def _reads_4_7(filter_levels: list[str], name_levels: list[str]) -> bool:
    """A third reading, recursive over level lists: ``#`` takes the rest (the parent
    level included), ``+`` takes exactly one level, anything else must be equal."""
    if not filter_levels:
        return not name_levels
    head, rest = filter_levels[0], filter_levels[1:]
    if head == "#":
        return True
    if not name_levels:
        return False
    return head in ("+", name_levels[0]) and _reads_4_7(rest, name_levels[1:])


levels = st.lists(st.sampled_from(["a", "b", "", "$x"]), min_size=1, max_size=4)


@given(levels, levels, st.integers(0, 3), st.booleans())
def test_matching_agrees_with_a_recursive_reading(
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
    expected = _reads_4_7(topic_filter.split("/"), name.split("/"))
    if name.startswith("$") and topic_filter[0] in "+#":
        expected = False
    assert matches(topic_filter, name) is expected
