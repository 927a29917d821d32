"""The model's topic matcher and the broker's agree on every generated topic and filter.

``mqttref.model.topics`` (a regular expression per filter, section 4.7 read
directly) and ``mqttref.impl.broker.matching`` (tries of levels walked with a stack)
share no code, so a disagreement means one of them misreads the specification.
The broker is compared three ways: its one-filter ``topic_matches``, its
subscription index ``FilterTree`` (name -> subscribers) and its topic index
``TopicTree`` (filter -> known names).
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mqttref.impl.broker.matching import FilterTree, TopicTree, topic_matches
from mqttref.impl.codec.packets import QoS
from mqttref.model.topics import matches, topic_filter_problem, topic_name_problem
from tests.strategies import topic_filters, topic_names

# Few distinct levels, so that generated filters and names often match; "$"
# levels for [MQTT-4.7.2-1], a newline and regular-expression metacharacters
# for a matcher that would treat characters specially, and case for [MQTT-4.7.3-4].
_LEVEL = st.sampled_from(["a", "b", "", "$SYS", "$x", "A", "\n", ".*", "x y", "ü"])
_NAME_LEVELS = st.lists(_LEVEL, min_size=1, max_size=5)


@st.composite
def _name_and_filter(draw: st.DrawFn) -> tuple[str, str]:
    """A topic name and a filter made from it (or from other levels), wildcards included."""
    name_levels = draw(_NAME_LEVELS)
    base = draw(st.one_of(st.just(list(name_levels)), _NAME_LEVELS))
    filter_levels = [draw(st.sampled_from([level, level, "+"])) for level in base]
    cut = draw(st.integers(0, len(filter_levels)))
    if draw(st.booleans()):
        filter_levels = [*filter_levels[:cut], "#"]
    return "/".join(name_levels), "/".join(filter_levels)


def _both(topic_filter: str, name: str) -> bool:
    assert topic_filter_problem(topic_filter) is None, topic_filter
    assert topic_name_problem(name) is None, name
    model = matches(topic_filter, name)
    assert topic_matches(topic_filter, name) is model, (topic_filter, name, model)
    return model


@settings(max_examples=1000)  # cheap: a thousand pairs take about a second
@given(_name_and_filter())
@example(("sport/", "sport/#"))  # "#" takes an empty child level
@example(("sport", "sport/#"))  # and the parent level
@example(("/", "/#"))
@example(("$SYS", "#"))
@example(("$SYS/a", "+/a"))
@example(("a/\n", "a/+"))
def test_model_and_impl_agree_on_near_topics(pair: tuple[str, str]) -> None:
    name, topic_filter = pair
    if topic_name_problem(name) or topic_filter_problem(topic_filter):
        return
    _both(topic_filter, name)


@given(topic_filters(), topic_names())
def test_model_and_impl_agree_on_any_topics(topic_filter: str, name: str) -> None:
    _both(topic_filter, name)


@given(st.lists(_name_and_filter(), min_size=1, max_size=8))
def test_model_agrees_with_the_broker_indexes(pairs: list[tuple[str, str]]) -> None:
    """Whom the subscription index finds for a name, and which names the topic
    index finds for a filter, are exactly what the model's matcher says."""
    names = sorted({name for name, _ in pairs if topic_name_problem(name) is None})
    filters = sorted({f for _, f in pairs if topic_filter_problem(f) is None})
    subscriptions = FilterTree()
    for index, topic_filter in enumerate(filters):
        subscriptions.add(topic_filter, f"c{index}", QoS.AT_MOST_ONCE)
    known: TopicTree[str] = TopicTree()
    for name in names:
        known.set(name, name)
    for name in names:
        expected = {f"c{i}" for i, f in enumerate(filters) if matches(f, name)}
        assert set(subscriptions.match(name)) == expected, name
    for topic_filter in filters:
        expected_names = sorted(n for n in names if matches(topic_filter, n))
        assert sorted(known.match(topic_filter)) == expected_names, topic_filter
