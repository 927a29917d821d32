"""Topic Aliases (3.3.2.3.4, 3.3.4) as the model keeps them: one map per direction."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.v5.reactions import Reaction
from mqttref.model.v5.topic_alias import TOPIC_ALIAS_5, AliasState, TopicAliases
from mqttref.oracle.statements import statements
from mqttref.statecharts.build import problems


def test_the_chart_passes_the_graph_checks_and_cites_only_5_0_statements() -> None:
    assert problems(TOPIC_ALIAS_5) == []
    assert TOPIC_ALIAS_5.protocol == "5.0"
    assert [ref for ref in TOPIC_ALIAS_5.refs if ref not in statements("5.0")] == []


def refs_of(aliases: TopicAliases, topic: str, alias: int | None) -> tuple[str, ...]:
    with pytest.raises(Violation) as raised:
        aliases.publish(topic, alias)
    return raised.value.refs


# Server to Client: the Server is judged on what it sends.


def test_a_topic_name_with_an_alias_sets_the_mapping_and_the_alias_alone_reads_it() -> None:
    aliases = TopicAliases.server_to_client(2)
    assert aliases.publish("sensors/1", 1).topic == "sensors/1"
    assert aliases.publish("", 1).topic == "sensors/1"
    assert aliases.state == AliasState.MAPPING


def test_a_new_topic_name_under_a_mapped_alias_replaces_the_mapping() -> None:
    aliases = TopicAliases.server_to_client(1)
    aliases.publish("a", 1)
    assert aliases.publish("b", 1).topic == "b"
    assert aliases.publish("", 1).topic == "b"


def test_a_publish_without_an_alias_leaves_the_map_alone() -> None:
    aliases = TopicAliases.server_to_client(1)
    aliases.publish("a", 1)
    assert aliases.publish("b").topic == "b"
    assert aliases.publish("", 1).topic == "a"


def test_topic_alias_maximum_absent_means_the_client_takes_no_alias() -> None:
    """[MQTT-3.1.2-27]: absent or zero, the Server MUST NOT send any Topic Alias."""
    assert refs_of(TopicAliases.server_to_client(None), "a", 1) == ("MQTT-3.1.2-27",)
    assert refs_of(TopicAliases.server_to_client(0), "a", 1) == ("MQTT-3.1.2-27",)


def test_the_server_may_not_send_topic_alias_0() -> None:
    assert refs_of(TopicAliases.server_to_client(5), "a", 0) == ("MQTT-3.3.2-8",)


def test_the_server_may_not_send_an_alias_above_the_clients_maximum() -> None:
    assert set(refs_of(TopicAliases.server_to_client(3), "a", 4)) == {
        "MQTT-3.3.2-11",
        "MQTT-3.1.2-26",
    }


def test_an_alias_alone_that_maps_nothing_names_no_topic_a_subscription_could_match() -> None:
    aliases = TopicAliases.server_to_client(3)
    aliases.publish("a", 1)
    assert refs_of(aliases, "", 2) == ("MQTT-3.3.2-3",)


def test_a_server_publish_with_neither_topic_name_nor_alias_names_no_topic() -> None:
    assert set(refs_of(TopicAliases.server_to_client(3), "", None)) == {
        "MQTT-4.7.3-1",
        "MQTT-3.3.2-3",
    }


def test_no_mapping_outlives_the_network_connection() -> None:
    """[MQTT-3.3.2-7]"""
    aliases = TopicAliases.server_to_client(3, client="c")
    aliases.publish("a", 1)
    aliases.connection_closed()
    assert aliases.state == AliasState.EMPTY
    with pytest.raises(Violation, match="earlier connection"):
        aliases.publish("", 1)


# Client to Server: the Client is at fault, the Server is judged on its reaction.


@pytest.mark.parametrize("alias", [1, 2, 7])
def test_the_server_must_accept_every_alias_from_1_to_its_maximum(alias: int) -> None:
    """[MQTT-3.3.2-12]"""
    aliases = TopicAliases.client_to_server(7)
    resolved = aliases.publish("t", alias)
    assert resolved.topic == "t"
    assert resolved.reactions is not None
    assert resolved.reactions.allowed == {Reaction.HANDLE}
    with pytest.raises(Violation) as raised:
        resolved.reactions.judge(Reaction.DISCONNECT_AND_CLOSE, client="c")
    assert raised.value.refs == ("MQTT-3.3.2-12",)


@pytest.mark.parametrize(("maximum", "alias"), [(3, 0), (3, 4), (0, 1), (None, 1)])
def test_a_client_alias_of_0_or_above_the_maximum_is_closed_on_with_0x94(
    maximum: int | None, alias: int
) -> None:
    """3.3.4: Protocol Error, DISCONNECT 0x94 (Topic Alias invalid) [MQTT-4.13.1-1]."""
    aliases = TopicAliases.client_to_server(maximum)
    resolved = aliases.publish("t", alias)
    assert resolved.topic is None
    assert resolved.reactions is not None
    assert resolved.reactions.reason_code == 0x94
    assert resolved.reactions.allowed == {Reaction.DISCONNECT_AND_CLOSE, Reaction.CLOSE}
    assert resolved.reactions.refs == ("MQTT-4.13.1-1",)
    assert aliases.state == AliasState.PROTOCOL_ERROR


def test_a_client_alias_alone_without_a_mapping_is_closed_on_with_0x82() -> None:
    aliases = TopicAliases.client_to_server(3)
    resolved = aliases.publish("", 2)
    assert resolved.topic is None
    assert resolved.reactions is not None
    assert resolved.reactions.reason_code == 0x82
    resolved.reactions.judge(Reaction.CLOSE, client="c")
    with pytest.raises(Violation):
        resolved.reactions.judge(Reaction.HANDLE, client="c")


def test_a_client_publish_with_neither_topic_name_nor_alias_is_a_protocol_error() -> None:
    """3.3.2.1: a zero-length Topic Name without a Topic Alias."""
    resolved = TopicAliases.client_to_server(3).publish("")
    assert resolved.reactions is not None
    assert resolved.reactions.reason_code == 0x82


def test_after_a_protocol_error_the_map_takes_nothing_but_the_close() -> None:
    aliases = TopicAliases.client_to_server(1)
    aliases.publish("t", 2)
    with pytest.raises(NoTransition):
        aliases.publish("t", 1)
    aliases.connection_closed()
    assert aliases.publish("t", 1).topic == "t"


def test_a_server_that_reads_an_earlier_connections_mapping_is_found_out() -> None:
    """[MQTT-3.3.2-7]: the alias is unmapped on the new connection (0x82), and the
    name it had is kept to recognise a delivery under it."""
    aliases = TopicAliases.client_to_server(3)
    aliases.publish("old/topic", 1)
    aliases.connection_closed()
    assert aliases.carried_forward(1) == "old/topic"
    assert aliases.publish("", 1).topic is None
    aliases.connection_closed()
    aliases.publish("new/topic", 1)
    assert aliases.carried_forward(1) is None


def test_the_two_directions_keep_independent_maps() -> None:
    to_client = TopicAliases.server_to_client(2)
    to_server = TopicAliases.client_to_server(2)
    to_client.publish("down", 1)
    to_server.publish("up", 1)
    assert to_client.publish("", 1).topic == "down"
    assert to_server.publish("", 1).topic == "up"


def test_an_alias_that_is_no_two_byte_integer_is_refused_as_input() -> None:
    with pytest.raises(UsageError):
        TopicAliases.client_to_server(3).publish("t", 70_000)
    with pytest.raises(UsageError):
        TopicAliases.client_to_server(70_000)


# Properties: the map against a plain dict that follows 3.3.4's three cases.

PUBLISHES = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["", "a", "b/c"]), st.none() | st.integers(0, 5)),
        st.just(("<close>", None)),
    ),
    max_size=30,
)


def readable(known: dict[int, str], maximum: int, topic: str, alias: int | None) -> str | None:
    """3.3.4's rules written out plainly: the name a receiver reads, or None."""
    if alias is None:
        return topic or None
    if not 1 <= alias <= maximum:
        return None
    if topic:
        known[alias] = topic
        return topic
    return known.get(alias)


@given(maximum=st.integers(0, 4), publishes=PUBLISHES)
def test_the_client_reads_what_the_server_sends_or_the_server_is_at_fault(
    maximum: int, publishes: list[tuple[str, int | None]]
) -> None:
    aliases = TopicAliases.server_to_client(maximum)
    known: dict[int, str] = {}
    for topic, alias in publishes:
        if topic == "<close>":
            aliases.connection_closed()
            known = {}
            continue
        before = dict(known)
        expected = readable(known, maximum, topic, alias)
        if expected is None:
            with pytest.raises(Violation):
                aliases.publish(topic, alias)
            known = before
        else:
            assert aliases.publish(topic, alias).topic == expected
        assert aliases.mappings == known


@given(maximum=st.integers(0, 4), publishes=PUBLISHES)
def test_the_server_reads_what_a_client_sends_or_owes_the_close(
    maximum: int, publishes: list[tuple[str, int | None]]
) -> None:
    aliases = TopicAliases.client_to_server(maximum)
    known: dict[int, str] = {}
    for topic, alias in publishes:
        if topic == "<close>" or aliases.state == AliasState.PROTOCOL_ERROR:
            aliases.connection_closed()
            known = {}
            continue
        expected = readable(known, maximum, topic, alias)
        resolved = aliases.publish(topic, alias)
        assert resolved.topic == expected
        if expected is None:
            assert resolved.reactions is not None
            assert Reaction.HANDLE not in resolved.reactions.allowed
            in_range = alias is not None and 1 <= alias <= maximum
            assert resolved.reactions.reason_code == (0x82 if in_range or alias is None else 0x94)
        elif alias is not None:
            assert resolved.reactions is not None
            assert resolved.reactions.allowed == {Reaction.HANDLE}
