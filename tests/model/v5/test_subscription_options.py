"""MQTT 5.0 subscription options, read as the specification (3.8.3.1, 3.3.1.3, 3.3.4).

Each test names a behaviour of SUBSCRIPTION_5 / ``Subscriptions5``: Retain
Handling on subscribe, No Local, Retain As Published, Subscription Identifiers
on overlapping subscriptions, and a SUBSCRIBE replacing a subscription. Where
the server may choose (one copy or one per subscription), the tests show every
choice accepted and anything else refused, naming the statement it breaks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.v5.subscription_options import (
    SUBSCRIPTION_5,
    Copy,
    Message5,
    SubscriptionEvent,
    SubscriptionOptions,
    Subscriptions5,
    SubscriptionState,
    describe,
)
from mqttref.oracle.statements import statements
from mqttref.statecharts.build import problems

Opt = SubscriptionOptions


def subscribed(filters: dict[str, SubscriptionOptions]) -> Subscriptions5:
    """The session of client ``me`` with these subscriptions (no retained messages)."""
    session = Subscriptions5("me")
    for topic_filter, options in filters.items():
        session.subscribe(topic_filter, options, {})
    return session


def violation(session: Subscriptions5, message: Message5, *copies: Copy) -> Violation:
    with pytest.raises(Violation) as caught:
        session.check(message, copies)
    return caught.value


# ------------------------------------------------------------------- the chart


def test_the_chart_cites_mqtt_5_statements_that_exist() -> None:
    known = statements("5.0")
    assert SUBSCRIPTION_5.protocol == "5.0"
    assert [r for r in SUBSCRIPTION_5.refs if r not in known] == []


def test_the_chart_passes_the_graph_checks() -> None:
    assert problems(SUBSCRIPTION_5) == []


@pytest.mark.parametrize(
    ("state", "event"),
    list(itertools.product(SUBSCRIPTION_5.state_names, SUBSCRIPTION_5.event_names)),
)
def test_every_state_and_event_has_a_row_whatever_the_no_local_option(
    state: str, event: str
) -> None:
    """Nothing a session's client or other clients do is a protocol error for one filter."""
    for no_local in (True, False):

        def holds(guard: str, no_local: bool = no_local) -> bool:
            return no_local == (guard == "no_local")

        assert SUBSCRIPTION_5.fire(state, event, holds).target in SUBSCRIPTION_5.state_names


def test_the_own_message_rows_are_told_apart_by_no_local_only() -> None:
    rows = SUBSCRIPTION_5.rows(SubscriptionState.SUBSCRIBED, SubscriptionEvent.OWN_MESSAGE)
    assert {r.guard for r in rows} == {"no_local", "local"}
    assert {r.guard: r.action for r in rows} == {"no_local": None, "local": "forward"}


def test_the_chart_refuses_a_guarded_row_when_no_guard_holds() -> None:
    with pytest.raises(NoTransition):
        SUBSCRIPTION_5.fire(SubscriptionState.SUBSCRIBED, SubscriptionEvent.OWN_MESSAGE,
                            lambda guard: False)


# ---------------------------------------------------------------- Retain Handling

RETAINED = {"t/a": 1, "t/b": 2, "u": 1}


def test_retain_handling_0_sends_the_matching_retained_messages() -> None:
    offer = Subscriptions5("me").subscribe("t/+", Opt(2), RETAINED)
    assert set(offer.owed) == {"t/a", "t/b"}
    assert offer.owe_refs == ("MQTT-3.3.1-9",)


def test_retain_handling_0_sends_them_again_when_the_subscription_is_replaced() -> None:
    session = subscribed({"t/+": Opt(2)})
    offer = session.subscribe("t/+", Opt(2), RETAINED)
    assert set(offer.owed) == {"t/a", "t/b"}
    assert "MQTT-3.8.4-4" in offer.owe_refs


def test_retain_handling_1_sends_them_only_if_the_subscription_did_not_exist() -> None:
    session = Subscriptions5("me")
    first = session.subscribe("t/+", Opt(2, retain_handling=1), RETAINED)
    again = session.subscribe("t/+", Opt(2, retain_handling=1), RETAINED)
    assert set(first.owed) == {"t/a", "t/b"}
    assert again.owed == {}
    assert "MQTT-3.3.1-10" in again.forbid_refs


def test_retain_handling_2_never_sends_them() -> None:
    offer = Subscriptions5("me").subscribe("t/+", Opt(2, retain_handling=2), RETAINED)
    assert offer.owed == {}
    assert offer.optional == {}
    assert offer.forbid_refs == ("MQTT-3.3.1-11",)


def test_retained_messages_come_with_retain_1_at_the_lower_qos_and_with_the_identifier() -> None:
    offer = Subscriptions5("me").subscribe(
        "t/+", Opt(1, retain_as_published=False, identifier=9), RETAINED
    )
    assert offer.owed == {"t/a": Copy(1, True, (9,)), "t/b": Copy(1, True, (9,))}


def test_a_retained_qos_0_message_is_optional_since_the_server_may_discard_it() -> None:
    offer = Subscriptions5("me").subscribe("t/+", Opt(2), {"t/a": 0})
    assert offer.owed == {}
    assert offer.optional == {"t/a": Copy(0, True)}


def test_a_server_without_retained_messages_sends_none() -> None:
    session = Subscriptions5("me", retain_available=False)
    assert session.subscribe("t/+", Opt(2), RETAINED).owed == {}


def test_a_missing_retained_message_is_a_violation_of_the_retain_handling_rule() -> None:
    session = Subscriptions5("me")
    offer = session.subscribe("t/+", Opt(2, retain_handling=1), RETAINED)
    with pytest.raises(Violation) as caught:
        session.check_retained(offer, {"t/a": Copy(1, True)})
    assert caught.value.refs == ("MQTT-3.3.1-10",)


def test_a_retained_message_sent_under_retain_handling_2_is_a_violation() -> None:
    session = Subscriptions5("me")
    offer = session.subscribe("t/+", Opt(2, retain_handling=2), RETAINED)
    with pytest.raises(Violation) as caught:
        session.check_retained(offer, {"t/a": Copy(1, True)})
    assert caught.value.refs == ("MQTT-3.3.1-11",)


def test_a_retained_message_sent_with_retain_0_or_above_the_grant_is_a_violation() -> None:
    session = Subscriptions5("me")
    offer = session.subscribe("t/b", Opt(1), RETAINED)
    with pytest.raises(Violation) as caught:
        session.check_retained(offer, {"t/b": Copy(2, False)})
    assert caught.value.refs == ("MQTT-3.3.1-9", "MQTT-3.8.4-8")


def test_the_retained_messages_owed_and_the_optional_ones_are_accepted() -> None:
    session = Subscriptions5("me")
    offer = session.subscribe("#", Opt(2), {"a": 1, "b": 0})
    session.check_retained(offer, {"a": Copy(1, True)})
    session.check_retained(offer, {"a": Copy(1, True), "b": Copy(0, True)})


# -------------------------------------------------------------------- No Local


def test_no_local_withholds_the_clients_own_messages() -> None:
    session = subscribed({"t/a": Opt(1, no_local=True)})
    own = Message5("me", "t/a", 1)
    assert session.deliveries(own) == {()}
    assert violation(session, own, Copy(1, False)).refs == ("MQTT-3.8.3-3",)


def test_no_local_still_forwards_other_clients_messages() -> None:
    session = subscribed({"t/a": Opt(1, no_local=True)})
    assert session.deliveries(Message5("you", "t/a", 1)) == {(Copy(1, False),)}


def test_an_own_message_comes_through_a_matching_subscription_without_no_local() -> None:
    session = subscribed({"t/+": Opt(2, no_local=True, identifier=1), "t/a": Opt(0, identifier=2)})
    assert session.deliveries(Message5("me", "t/a", 2)) == {(Copy(0, False, (2,)),)}


# ----------------------------------------------------------- Retain As Published


def test_retain_as_published_0_forwards_with_retain_0() -> None:
    session = subscribed({"t/a": Opt(1)})
    message = Message5("you", "t/a", 1, retain=True)
    assert session.deliveries(message) == {(Copy(1, False),)}
    assert violation(session, message, Copy(1, True)).refs == ("MQTT-3.3.1-12", "MQTT-3.3.1-13")


def test_retain_as_published_1_keeps_the_published_retain_flag() -> None:
    session = subscribed({"t/a": Opt(1, retain_as_published=True)})
    assert session.deliveries(Message5("you", "t/a", 1, retain=True)) == {(Copy(1, True),)}
    assert session.deliveries(Message5("you", "t/a", 1, retain=False)) == {(Copy(1, False),)}


def test_overlapping_subscriptions_that_disagree_on_retain_as_published_allow_either_flag() -> None:
    session = subscribed({"t/a": Opt(1, retain_as_published=True), "t/+": Opt(1)})
    single = {o for o in session.deliveries(Message5("you", "t/a", 1, True)) if len(o) == 1}
    assert single == {(Copy(1, True),), (Copy(1, False),)}


# ------------------------------------------- overlapping subscriptions, identifiers

OVERLAP = {"t/+": Opt(1, identifier=1), "t/a": Opt(2, identifier=2)}


def test_one_copy_comes_at_the_highest_qos_with_every_identifier_or_one_copy_each() -> None:
    session = subscribed(OVERLAP)
    assert session.deliveries(Message5("you", "t/a", 2)) == {
        (Copy(2, False, (1, 2)),),
        (Copy(1, False, (1,)), Copy(2, False, (2,))),
    }


def test_the_server_may_choose_either_outcome() -> None:
    session = subscribed(OVERLAP)
    message = Message5("you", "t/a", 2)
    session.check(message, [Copy(2, False, (2, 1))])
    session.check(message, [Copy(2, False, (2,)), Copy(1, False, (1,))])


def test_a_single_copy_below_the_highest_granted_qos_breaks_the_overlap_rule() -> None:
    session = subscribed(OVERLAP)
    refs = violation(session, Message5("you", "t/a", 2), Copy(1, False, (1, 2))).refs
    assert "MQTT-3.3.4-2" in refs


def test_a_single_copy_without_every_identifier_breaks_the_identifier_rules() -> None:
    session = subscribed(OVERLAP)
    refs = violation(session, Message5("you", "t/a", 2), Copy(2, False, (2,))).refs
    assert refs == ("MQTT-3.3.4-3", "MQTT-3.3.4-4")


def test_copies_for_each_subscription_carry_each_ones_identifier() -> None:
    session = subscribed(OVERLAP)
    refs = violation(session, Message5("you", "t/a", 2),
                     Copy(1, False, (1, 2)), Copy(2, False, (1, 2))).refs
    assert refs == ("MQTT-3.3.4-3", "MQTT-3.3.4-5")


def test_more_copies_than_matching_subscriptions_is_a_violation() -> None:
    session = subscribed(OVERLAP)
    copies = [Copy(1, False, (1,)), Copy(2, False, (2,)), Copy(2, False, (2,))]
    assert violation(session, Message5("you", "t/a", 2), *copies).refs == (
        "MQTT-3.3.4-2", "MQTT-3.3.4-5")


def test_an_identifier_two_subscriptions_share_appears_twice_on_the_single_copy() -> None:
    session = subscribed({"t/+": Opt(1, identifier=5), "t/a": Opt(1, identifier=5)})
    assert (Copy(1, False, (5, 5)),) in session.deliveries(Message5("you", "t/a", 1))


def test_a_copy_never_exceeds_the_published_qos() -> None:
    session = subscribed({"t/a": Opt(2)})
    assert session.deliveries(Message5("you", "t/a", 0)) == {(Copy(0, False),)}


def test_a_missing_copy_is_owed() -> None:
    session = subscribed({"t/a": Opt(1)})
    assert violation(session, Message5("you", "t/a", 1)).refs == ("MQTT-4.5.0-1", "MQTT-3.3.4-2")


def test_a_qos_1_message_granted_qos_0_may_come_twice_but_a_qos_2_one_may_not() -> None:
    session = subscribed({"t/a": Opt(0)})
    session.check(Message5("you", "t/a", 1), [Copy(0, False), Copy(0, False)])
    violation(session, Message5("you", "t/a", 2), Copy(0, False), Copy(0, False))


# ------------------------------------------------- replacing and removing subscriptions


def test_a_subscribe_with_the_same_filter_replaces_options_and_identifier() -> None:
    session = subscribed({"t/a": Opt(1, identifier=1)})
    session.subscribe("t/a", Opt(2, identifier=7), {})
    assert session.filters == ("t/a",)
    assert session.deliveries(Message5("you", "t/a", 2)) == {(Copy(2, False, (7,)),)}


def test_a_replacing_subscribe_without_identifier_removes_the_identifier() -> None:
    session = subscribed({"t/a": Opt(1, identifier=1)})
    session.subscribe("t/a", Opt(1), {})
    assert session.deliveries(Message5("you", "t/a", 1)) == {(Copy(1, False),)}


def test_after_unsubscribe_no_copy_may_come() -> None:
    session = subscribed({"t/a": Opt(1)})
    assert session.unsubscribe("t/a") is True
    assert session.unsubscribe("t/a") is False
    refs = violation(session, Message5("you", "t/a", 1), Copy(1, False)).refs
    assert refs == ("MQTT-3.3.2-3", "MQTT-3.10.4-2")


def test_a_session_that_ends_takes_its_subscriptions_with_it() -> None:
    session = subscribed({"t/a": Opt(1), "u": Opt(2)})
    session.end_session()
    assert session.filters == ()
    assert session.state("t/a") == SubscriptionState.UNSUBSCRIBED


# --------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("make", "words"),
    [(lambda: Opt(1, retain_handling=3), "Retain Handling 3"),
     (lambda: Opt(1, identifier=0), "Identifier 0"),
     (lambda: Opt(1, identifier=268_435_456), "268,435,455"),
     (lambda: Opt(3), "QoS 3")],
    ids=["retain-handling-3", "identifier-0", "identifier-too-large", "qos-3"],
)
def test_options_the_specification_calls_a_protocol_error_cannot_be_held(
    make: Callable[[], SubscriptionOptions], words: str
) -> None:
    with pytest.raises(UsageError, match=words):
        make()


def test_shared_filters_and_bad_filters_are_not_this_charts() -> None:
    with pytest.raises(UsageError, match="Shared Subscription"):
        Subscriptions5("me").subscribe("$share/g/t", Opt(1), {})
    with pytest.raises(UsageError, match="not a Topic Filter"):
        Subscriptions5("me").subscribe("t/#/x", Opt(1), {})


# -------------------------------------------------------------------- properties

FILTERS = ("t/a", "t/+", "t/#", "#", "+/a", "u")
TOPICS = ("t/a", "t/b", "u", "x/a")

options = st.builds(
    Opt,
    granted_qos=st.integers(0, 2),
    no_local=st.booleans(),
    retain_as_published=st.booleans(),
    identifier=st.none() | st.integers(1, 4),
)
sessions = st.dictionaries(st.sampled_from(FILTERS), options, max_size=4)
messages = st.builds(
    Message5, publisher=st.sampled_from(("me", "you")), topic=st.sampled_from(TOPICS),
    qos=st.integers(0, 2), retain=st.booleans(),
)


def build(subscriptions: dict[str, SubscriptionOptions]) -> Subscriptions5:
    session = Subscriptions5("me")
    for topic_filter, opts in subscriptions.items():
        session.subscribe(topic_filter, opts, {})
    return session


@given(sessions, messages)
def test_every_allowed_outcome_passes_the_check(
    subscriptions: dict[str, SubscriptionOptions], message: Message5
) -> None:
    session = build(subscriptions)
    for outcome in session.deliveries(message):
        session.check(message, reversed(outcome))


@given(sessions, messages)
def test_a_single_copy_has_the_highest_qos_and_every_identifier_of_the_forwarders(
    subscriptions: dict[str, SubscriptionOptions], message: Message5
) -> None:
    session = build(subscriptions)
    forwarding = session.forwarding(message)
    for outcome in session.deliveries(message):
        assert all(copy.qos <= message.qos for copy in outcome)
        if len(outcome) == 1 and forwarding:
            assert outcome[0].qos == min(message.qos, max(o.granted_qos for o in forwarding))
            assert sorted(outcome[0].identifiers) == sorted(
                o.identifier for o in forwarding if o.identifier is not None)
        ids = sorted(i for copy in outcome for i in copy.identifiers)
        assert ids == sorted(o.identifier for o in forwarding if o.identifier is not None)


@given(sessions, messages)
def test_a_copy_above_what_is_allowed_is_refused(
    subscriptions: dict[str, SubscriptionOptions], message: Message5
) -> None:
    session = build(subscriptions)
    for outcome in session.deliveries(message):
        if outcome and outcome[0].qos < 2:
            raised = (Copy(outcome[0].qos + 1, outcome[0].retain, outcome[0].identifiers),
                      *outcome[1:])
            if raised not in session.deliveries(message):
                with pytest.raises(Violation):
                    session.check(message, raised)


@given(sessions, st.sampled_from(TOPICS), st.integers(0, 2))
def test_an_own_message_goes_nowhere_when_every_matching_subscription_has_no_local(
    subscriptions: dict[str, SubscriptionOptions], topic: str, qos: int
) -> None:
    session = build({f: attrs.evolve(o, no_local=True) for f, o in subscriptions.items()})
    assert session.deliveries(Message5("me", topic, qos)) == {()}


def test_outcomes_read_as_words() -> None:
    assert describe(()) == "no copy"
    assert describe((Copy(1, True, (3, 2)),)) == "1 copy: QoS 1 retain=1 ids=[2, 3]"
