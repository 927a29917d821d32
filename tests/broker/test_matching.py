"""Topic matching: the indexed tries agree with a plain level-by-level match.

``naive_matches`` below is written independently of ``mqttref.impl.broker.matching``
from section 4.7 of the specification, so the tries and ``topic_matches`` are
both judged by it.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.broker.matching import FilterTree, TopicTree, topic_matches
from mqttref.impl.codec.packets import QoS


def naive_matches(topic_filter: str, topic_name: str) -> bool:
    if topic_name.startswith("$") and topic_filter[0] in "+#":
        return False
    f, t = topic_filter.split("/"), topic_name.split("/")
    if f[-1] == "#":
        prefix = f[:-1]
        return len(t) >= len(prefix) and all(a in ("+", b) for a, b in zip(prefix, t, strict=False))
    return len(f) == len(t) and all(a in ("+", b) for a, b in zip(f, t, strict=False))


LEVELS = st.sampled_from(["a", "b", "", "$SYS", "$x", "c"])
names = st.lists(LEVELS, min_size=1, max_size=4).map("/".join).filter(bool)
filters = st.lists(st.sampled_from(["a", "b", "", "$SYS", "+"]), min_size=0, max_size=4).flatmap(
    lambda levels: st.sampled_from(["/".join(levels), "/".join([*levels, "#"])])
).filter(bool)


@given(filters, names)
def test_topic_matches_agrees_with_the_naive_reading(topic_filter: str, name: str) -> None:
    assert topic_matches(topic_filter, name) == naive_matches(topic_filter, name)


@given(st.lists(st.tuples(filters, st.sampled_from(["x", "y", "z"]), st.sampled_from(QoS))),
       names)
def test_filter_tree_finds_each_subscriber_once_at_its_highest_qos(
    subscriptions: list[tuple[str, str, QoS]], name: str
) -> None:
    tree = FilterTree()
    latest: dict[tuple[str, str], QoS] = {}
    for topic_filter, client, qos in subscriptions:
        tree.add(topic_filter, client, qos)
        latest[(topic_filter, client)] = qos
    expected: dict[str, QoS] = {}
    for (topic_filter, client), qos in latest.items():
        if naive_matches(topic_filter, name):
            expected[client] = max(qos, expected.get(client, QoS.AT_MOST_ONCE))
    assert tree.match(name) == expected
    assert len(tree) == len(latest)


@given(st.lists(st.tuples(filters, st.sampled_from(["x", "y"]))), names)
def test_filter_tree_remove_leaves_nothing_behind(
    subscriptions: list[tuple[str, str]], name: str
) -> None:
    tree = FilterTree()
    for topic_filter, client in subscriptions:
        tree.add(topic_filter, client, QoS.AT_LEAST_ONCE)
    for topic_filter, client in subscriptions:
        tree.remove(topic_filter, client)
    assert tree.match(name) == {}
    assert len(tree) == 0
    assert not tree._root.children


@given(st.sets(names), filters)
def test_topic_tree_finds_every_known_name_the_filter_matches(
    known: set[str], topic_filter: str
) -> None:
    tree: TopicTree[str] = TopicTree()
    for name in known:
        tree.set(name, name)
    assert sorted(tree.match(topic_filter)) == sorted(
        name for name in known if naive_matches(topic_filter, name)
    )
    for name in known:
        tree.remove(name)
    assert list(tree.match(topic_filter)) == []
    assert not tree._root.children


def test_wildcards_do_not_match_dollar_topics() -> None:
    """[MQTT-4.7.2-1]"""
    tree = FilterTree()
    tree.add("#", "all", QoS.AT_MOST_ONCE)
    tree.add("+/info", "plus", QoS.AT_MOST_ONCE)
    tree.add("$SYS/#", "sys", QoS.AT_MOST_ONCE)
    assert tree.match("$SYS/info") == {"sys": QoS.AT_MOST_ONCE}
    assert set(tree.match("a/info")) == {"all", "plus"}


def test_hash_matches_the_parent_level() -> None:
    """'sport/#' matches 'sport' [MQTT-4.7.1-2]."""
    tree = FilterTree()
    tree.add("sport/#", "c", QoS.AT_LEAST_ONCE)
    assert tree.match("sport") == {"c": QoS.AT_LEAST_ONCE}
    topics: TopicTree[str] = TopicTree()
    topics.set("sport", "sport")
    assert list(topics.match("sport/#")) == ["sport"]


def test_a_filter_of_65000_levels_costs_no_recursion() -> None:
    """CVE-2019-11779: deep filters must not overflow the stack."""
    deep = "/".join(["a"] * 65_000)
    tree = FilterTree()
    tree.add(deep, "c", QoS.AT_MOST_ONCE)
    assert tree.match(deep) == {"c": QoS.AT_MOST_ONCE}
    topics: TopicTree[str] = TopicTree()
    topics.set(deep, "deep")
    assert list(topics.match("/".join(["+"] * 65_000))) == ["deep"]
    assert tree.remove(deep, "c")

