"""MQTT 5.0 Shared Subscriptions, read as the specification (4.8.2, 3.8.3.1, 3.8.4).

A message matching ``$share/{ShareName}/{filter}`` goes to one member of the
group, any member the server chooses; the model holds the set of members it may
choose and refuses a second one, except where 4.8.2 lets a QoS 1 message be
handed to another member after its member lost its connection or session.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.v5.shared import (
    ONLY_ONE_MEMBER,
    SHARED_5,
    Member,
    RoutingState,
    SharedFilter,
    SharedGroups5,
    SubscribeReaction,
    judge_subscribe,
    parse_shared,
    share_problem,
)
from mqttref.model.v5.subscription_options import Copy, Message5
from mqttref.oracle.statements import statements
from mqttref.statecharts.build import problems

GROUP = "$share/g/t/#"


def group_of(*members: Member, topic_filter: str = GROUP) -> SharedGroups5:
    groups = SharedGroups5()
    for member in members:
        groups.subscribe(member, topic_filter)
    return groups


def second_copy_violation(groups: SharedGroups5, client: str, seq: int, copy: Copy) -> Violation:
    with pytest.raises(Violation) as caught:
        groups.delivered(client, seq, copy)
    return caught.value


# ------------------------------------------------------------------- the chart


def test_the_chart_cites_mqtt_5_statements_that_exist() -> None:
    assert SHARED_5.protocol == "5.0"
    assert [r for r in SHARED_5.refs if r not in statements("5.0")] == []


def test_the_chart_passes_the_graph_checks() -> None:
    assert problems(SHARED_5) == []


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(SHARED_5.state_names, SHARED_5.event_names))
)
def test_every_pair_fires_at_most_one_row_for_any_message_qos(state: str, event: str) -> None:
    for qos, reconnected in itertools.product((0, 1, 2), (True, False)):
        truth = {"qos0": qos == 0, "qos1_or_2": qos > 0, "qos1": qos == 1, "qos2": qos == 2,
                 "reconnected": reconnected}
        applicable = [r for r in SHARED_5.rows(state, event)
                      if r.guard is None or truth[r.guard]]
        assert len(applicable) <= 1
        if not applicable:
            with pytest.raises(NoTransition):
                SHARED_5.fire(state, event, truth.__getitem__)


def test_a_delivered_or_discarded_message_goes_to_no_member_any_more() -> None:
    for state in (RoutingState.DELIVERED, RoutingState.DISCARDED):
        assert SHARED_5.rows(state, "send") == ()


# ------------------------------------------------------------------ the filter


@pytest.mark.parametrize(
    ("topic_filter", "words"),
    [("$share//t", "empty ShareName"), ("$share/a+b/t", "wildcard"),
     ("$share/a#/t", "wildcard"), ("$share/a", "no Topic Filter"),
     ("$share/a/", "no Topic Filter"), ("$share/a/t/#/x", "no Topic Filter"),
     ("share/a/t", "does not start")],
)
def test_a_malformed_shared_filter_is_named_with_its_statement(
    topic_filter: str, words: str
) -> None:
    problem = share_problem(topic_filter)
    assert problem is not None
    assert words in problem
    assert "MQTT-4.8.2-" in problem


@pytest.mark.parametrize(
    ("topic_filter", "share"),
    [("$share/g/t/#", SharedFilter("g", "t/#")), ("$share/consumer1//finance",
                                                   SharedFilter("consumer1", "/finance")),
     ("$share/g/+", SharedFilter("g", "+"))],
)
def test_a_shared_filter_is_share_name_and_topic_filter(
    topic_filter: str, share: SharedFilter
) -> None:
    assert parse_shared(topic_filter) == share
    assert str(share) == topic_filter


def test_no_local_on_a_shared_subscription_is_a_protocol_error_that_closes() -> None:
    judge_subscribe("c", GROUP, no_local=True, reaction=SubscribeReaction(closed=True))
    with pytest.raises(Violation) as caught:
        judge_subscribe("c", GROUP, no_local=True, reaction=SubscribeReaction(suback_code=0x01))
    assert caught.value.refs == ("MQTT-3.8.3-4", "MQTT-4.13.1-1")
    with pytest.raises(UsageError, match=r"MQTT-3\.8\.3-4"):
        SharedGroups5().subscribe(Member("c", 1), GROUP, no_local=True)


def test_a_malformed_share_name_may_be_refused_or_closed_on_but_not_granted() -> None:
    judge_subscribe("c", "$share//t", no_local=False, reaction=SubscribeReaction(0x8F))
    judge_subscribe("c", "$share//t", no_local=False, reaction=SubscribeReaction(closed=True))
    with pytest.raises(Violation) as caught:
        judge_subscribe("c", "$share//t", no_local=False, reaction=SubscribeReaction(0x00))
    assert caught.value.refs == ("MQTT-4.8.2-1", "MQTT-4.8.2-2")
    with pytest.raises(UsageError):
        SharedGroups5().subscribe(Member("c", 1), "$share//t")


def test_joining_a_group_sends_no_retained_message() -> None:
    assert SharedGroups5.retained_on_subscribe() == frozenset()


# ------------------------------------------------------------ one member only


def test_any_member_may_be_chosen() -> None:
    for chosen in ("a", "b", "c"):
        groups = group_of(Member("a", 1), Member("b", 1), Member("c", 1))
        seq = groups.publish(Message5("p", "t/x", 1))
        assert groups.recipients(seq) == {SharedFilter("g", "t/#"): {"a", "b", "c"}}
        assert groups.delivered(chosen, seq, Copy(1, False)) == SharedFilter("g", "t/#")


def test_a_second_member_may_not_be_sent_the_message() -> None:
    groups = group_of(Member("a", 1), Member("b", 1))
    seq = groups.publish(Message5("p", "t/x", 0))
    groups.delivered("a", seq, Copy(0, False))
    caught = second_copy_violation(groups, "b", seq, Copy(0, False))
    assert ONLY_ONE_MEMBER in str(caught)
    assert caught.refs == ()
    assert groups.recipients(seq) == {SharedFilter("g", "t/#"): frozenset()}


@pytest.mark.parametrize("qos", [1, 2])
def test_a_message_in_flight_to_one_member_goes_to_no_other(qos: int) -> None:
    groups = group_of(Member("a", 2), Member("b", 2))
    seq = groups.publish(Message5("p", "t/x", qos))
    groups.delivered("a", seq, Copy(qos, False))
    caught = second_copy_violation(groups, "b", seq, Copy(qos, False))
    assert "a was sent it (in_flight)" in str(caught)
    # Nor a second new copy to its own member: a message goes to one member, once (4.8).
    caught = second_copy_violation(groups, "a", seq, Copy(qos, False))
    assert "a second new copy to a, which was sent it (in_flight)" in str(caught)


def test_each_group_gets_its_own_copy_and_non_members_none() -> None:
    groups = group_of(Member("a", 1))
    groups.subscribe(Member("b", 1), "$share/h/t/+")
    seq = groups.publish(Message5("p", "t/x", 1))
    assert groups.delivered("a", seq, Copy(1, False)) == SharedFilter("g", "t/#")
    assert groups.delivered("b", seq, Copy(1, False)) == SharedFilter("h", "t/+")
    with pytest.raises(Violation, match="not a member"):
        groups.delivered("z", seq, Copy(1, False))


def test_a_client_in_two_groups_is_counted_where_it_leaves_the_other_members_free() -> None:
    """c1 is in g (with c2) and in h (alone): its one copy counts for h, so c2 may
    still be sent g's copy."""
    groups = group_of(Member("c1", 1), Member("c2", 1))
    groups.subscribe(Member("c1", 1), "$share/h/t/x")
    seq = groups.publish(Message5("p", "t/x", 1))
    assert groups.delivered("c1", seq, Copy(1, False)) == SharedFilter("h", "t/x")
    assert groups.delivered("c2", seq, Copy(1, False)) == SharedFilter("g", "t/#")


def test_the_copy_respects_the_members_granted_qos_and_carries_only_its_identifier() -> None:
    groups = group_of(Member("a", 1, identifier=4), Member("b", 2, identifier=5))
    seq = groups.publish(Message5("p", "t/x", 2))
    with pytest.raises(Violation) as caught:
        groups.delivered("a", seq, Copy(2, False, (4,)))
    assert caught.value.refs == ("MQTT-3.8.4-8", "MQTT-4.8.2-3")
    with pytest.raises(Violation) as caught:
        groups.delivered("b", seq, Copy(2, False, (4, 5)))
    assert caught.value.refs == ("MQTT-3.3.4-3",)
    groups.delivered("b", seq, Copy(2, False, (5,)))


def test_retain_as_published_holds_for_a_member_too() -> None:
    groups = group_of(Member("a", 1, retain_as_published=True))
    seq = groups.publish(Message5("p", "t/x", 1, retain=True))
    groups.delivered("a", seq, Copy(1, True))


def test_a_message_the_group_does_not_match_is_not_its_business() -> None:
    groups = group_of(Member("a", 1))
    seq = groups.publish(Message5("p", "u", 1))
    assert groups.routings(seq) == ()
    with pytest.raises(UsageError):
        groups.delivered("a", seq, Copy(1, False))


def test_a_qos_1_message_sent_at_qos_0_may_come_twice_to_its_member() -> None:
    groups = group_of(Member("a", 0), Member("b", 0))
    seq = groups.publish(Message5("p", "t/x", 1))
    groups.delivered("a", seq, Copy(0, False))
    groups.delivered("a", seq, Copy(0, False))
    second_copy_violation(groups, "b", seq, Copy(0, False))


# ------------------------------------------------------ when members go away


def test_qos_1_whose_member_lost_its_connection_may_go_to_another_member() -> None:
    groups = group_of(Member("a", 1), Member("b", 1))
    seq = groups.publish(Message5("p", "t/x", 1))
    groups.delivered("a", seq, Copy(1, False))
    groups.connection_lost("a")
    assert groups.recipients(seq) == {SharedFilter("g", "t/#"): {"a", "b"}}
    groups.delivered("b", seq, Copy(1, False))
    groups.connect("a")
    second_copy_violation(groups, "a", seq, Copy(1, False))  # no new copy for it
    groups.resent("a", seq)  # the re-send of its own copy stays allowed [MQTT-4.4.0-1]


def test_a_copy_sent_at_qos_0_waits_for_no_acknowledgement_and_is_never_handed_over() -> None:
    groups = group_of(Member("a", 0), Member("b", 1))
    seq = groups.publish(Message5("p", "t/x", 1))
    groups.delivered("a", seq, Copy(0, False))
    assert groups.routings(seq)[0].state == RoutingState.DELIVERED
    groups.connection_lost("a")
    second_copy_violation(groups, "b", seq, Copy(1, False))


def test_qos_1_whose_members_session_ended_may_go_to_another_member() -> None:
    groups = group_of(Member("a", 1), Member("b", 1))
    seq = groups.publish(Message5("p", "t/x", 1))
    groups.delivered("a", seq, Copy(1, False))
    groups.session_ended("a")
    assert groups.members(SharedFilter("g", "t/#")) == {"b"}
    groups.delivered("b", seq, Copy(1, False))


def test_qos_2_whose_member_lost_its_connection_stays_with_it_and_is_owed_on_reconnect() -> None:
    groups = group_of(Member("a", 2), Member("b", 2))
    seq = groups.publish(Message5("p", "t/x", 2))
    groups.delivered("a", seq, Copy(2, False))
    groups.connection_lost("a")
    second_copy_violation(groups, "b", seq, Copy(2, False))
    groups.connect("a")
    assert [refs for _, refs in groups.owed()] == [("MQTT-4.8.2-4", "MQTT-4.4.0-1")]
    second_copy_violation(groups, "a", seq, Copy(2, False))  # a new copy: not the re-send
    groups.resent("a", seq)
    assert groups.check_quiescent() == []
    groups.acknowledged("a", seq, 0x00)
    assert groups.check_quiescent() == []


def test_qos_2_whose_members_session_ended_goes_to_no_other_member() -> None:
    groups = group_of(Member("a", 2), Member("b", 2))
    seq = groups.publish(Message5("p", "t/x", 2))
    groups.delivered("a", seq, Copy(2, False))
    groups.session_ended("a")
    caught = second_copy_violation(groups, "b", seq, Copy(2, False))
    assert caught.refs == ("MQTT-4.8.2-5", "MQTT-4.1.0-2")


@pytest.mark.parametrize("qos", [1, 2])
def test_a_message_a_member_rejected_goes_to_no_other_member(qos: int) -> None:
    groups = group_of(Member("a", qos), Member("b", qos))
    seq = groups.publish(Message5("p", "t/x", qos))
    groups.delivered("a", seq, Copy(qos, False))
    groups.acknowledged("a", seq, 0x87)
    caught = second_copy_violation(groups, "b", seq, Copy(qos, False))
    assert caught.refs == ("MQTT-4.8.2-6", "MQTT-4.4.0-2")


def test_an_acknowledged_message_goes_to_no_other_member() -> None:
    groups = group_of(Member("a", 1), Member("b", 1))
    seq = groups.publish(Message5("p", "t/x", 1))
    groups.delivered("a", seq, Copy(1, False))
    groups.acknowledged("a", seq, 0x00)
    groups.connection_lost("a")
    second_copy_violation(groups, "b", seq, Copy(1, False))


def test_only_the_member_holding_a_message_acknowledges_it() -> None:
    groups = group_of(Member("a", 1), Member("b", 1))
    seq = groups.publish(Message5("p", "t/x", 1))
    with pytest.raises(UsageError):
        groups.acknowledged("b", seq, 0)


def test_a_member_that_unsubscribed_may_still_be_sent_what_it_was_chosen_for() -> None:
    groups = group_of(Member("a", 1), Member("b", 1))
    seq = groups.publish(Message5("p", "t/x", 1))
    assert groups.unsubscribe("a", GROUP) is True
    assert groups.unsubscribe("a", GROUP) is False
    groups.delivered("a", seq, Copy(1, False))


# ------------------------------------------------------------------ obligations


def test_a_message_no_connected_member_got_is_owed_after_quiescence() -> None:
    groups = group_of(Member("a", 1), Member("b", 1))
    seq = groups.publish(Message5("p", "t/x", 1))
    [found] = groups.check_quiescent()
    assert found.refs == ("MQTT-4.5.0-1",)
    assert found.allowed == ("a", "b")
    groups.delivered("b", seq, Copy(1, False))
    assert groups.check_quiescent() == []


def test_a_message_is_not_owed_to_the_others_when_a_member_it_may_await_disconnected() -> None:
    groups = group_of(Member("a", 1), Member("b", 1))
    groups.connection_lost("a")
    groups.publish(Message5("p", "t/x", 1))
    assert groups.owed() == []
    groups2 = group_of(Member("a", 1), Member("b", 1))
    groups2.publish(Message5("p", "t/x", 1))
    groups2.connection_lost("a")
    assert groups2.owed() == []


def test_a_group_without_members_is_owed_nothing() -> None:
    groups = group_of(Member("a", 1))
    groups.unsubscribe("a", GROUP)
    seq = groups.publish(Message5("p", "t/x", 1))
    assert groups.routings(seq) == ()
    assert groups.check_quiescent() == []


# ------------------------------------------------------------------- properties

member_names = st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4, unique=True)


@given(member_names, st.integers(0, 2), st.integers(0, 2), st.data())
def test_any_one_member_per_group_satisfies_the_group_and_a_second_is_refused(
    names: list[str], granted: int, qos: int, data: st.DataObject
) -> None:
    groups = group_of(*(Member(n, granted) for n in names))
    seq = groups.publish(Message5("p", "t/x", qos))
    chosen = data.draw(st.sampled_from(names))
    copy = Copy(min(qos, granted), False)
    groups.delivered(chosen, seq, copy)
    if qos > 0 and min(qos, granted) > 0:
        groups.acknowledged(chosen, seq, 0)
    assert groups.check_quiescent() == []
    others = [n for n in names if n != chosen]
    if others:
        with pytest.raises(Violation):
            groups.delivered(data.draw(st.sampled_from(others)), seq, copy)
