"""The MQTT 5.0 Will Message chart, read as 3.1.2.5, 3.1.3.2.2, 3.1.4 and 3.14.4 say it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.v5.will import NEVER_EXPIRES, WILL_5, Will5, WillState5
from mqttref.oracle.statements import statements
from mqttref.statecharts.build import problems

KEPT = 3600
"""A Session Expiry Interval longer than any delay used here."""


# -- the chart as data -------------------------------------------------------------------


def test_the_chart_passes_the_graph_checks() -> None:
    assert problems(WILL_5) == []


def test_every_row_cites_statements_of_mqtt_5_that_speak_of_the_will() -> None:
    known = statements("5.0")
    assert WILL_5.protocol == "5.0"
    for ref in WILL_5.refs:
        assert "Will Message" in known[ref].text, ref


def test_only_a_due_will_may_be_published() -> None:
    sources = {row.source for row in WILL_5.transitions if row.event == "will_published"}
    assert sources == {WillState5.DUE}


# -- DISCONNECT ----------------------------------------------------------------------------


def test_disconnect_0x00_discards_the_will() -> None:
    """[MQTT-3.14.4-3] [MQTT-3.1.2-10]"""
    will = Will5(delay=0)
    will.client_disconnect(0x00, session_expiry=KEPT)
    assert will.state == WillState5.DISCARDED
    assert will.obligations() == []
    with pytest.raises(Violation) as caught:
        will.published()
    assert caught.value.refs == ("MQTT-3.14.4-3", "MQTT-3.1.2-10")


def test_disconnect_0x04_publishes_the_will() -> None:
    """3.14.2.1 0x04: the Client requires the Server to publish its Will Message [MQTT-3.1.2-8]."""
    will = Will5(delay=0)
    will.client_disconnect(0x04, session_expiry=KEPT)
    assert will.may_publish()
    assert [o.refs for o in will.obligations()] == [("MQTT-3.1.2-8",)]
    will.published()
    assert will.state == WillState5.PUBLISHED


@pytest.mark.parametrize("reason_code", [0x80, 0x81, 0x82, 0x93, 0x95])
def test_a_client_disconnect_with_an_error_code_publishes_the_will(reason_code: int) -> None:
    """3.14: closed without DISCONNECT 0x00, the Will Message is published."""
    will = Will5(delay=0)
    will.client_disconnect(reason_code, session_expiry=KEPT)
    assert will.may_publish()


# -- the delay ------------------------------------------------------------------------------


def test_network_loss_publishes_the_will_after_the_delay_never_before() -> None:
    """[MQTT-3.1.2-8]: published once the Will Delay Interval has elapsed."""
    will = Will5(delay=10)
    will.connection_closed(session_expiry=KEPT)
    will.time_passes(9.5)
    assert not will.may_publish()
    with pytest.raises(Violation) as caught:
        will.published()
    assert caught.value.refs == ("MQTT-3.1.2-8",)
    assert caught.value.allowed == ("nothing before 10.0",)


def test_the_will_may_be_published_at_the_due_time_exactly() -> None:
    will = Will5(delay=10)
    will.connection_closed(session_expiry=KEPT)
    will.time_passes(10)
    will.published()
    assert will.state == WillState5.PUBLISHED


def test_a_due_will_is_owed_by_the_margin_and_overdue_after_it() -> None:
    """The text gives no precision; the harness's margin is the deadline."""
    will = Will5(delay=10, margin=3)
    will.connection_closed(session_expiry=KEPT)
    will.time_passes(13)
    will.check()
    assert will.deadline == 13
    will.time_passes(0.5)
    assert will.overdue()
    with pytest.raises(Violation) as caught:
        will.check()
    assert caught.value.refs == ("MQTT-3.1.2-8",)
    will.published()  # late, but a publication is still what is owed
    will.check()


def test_the_session_ending_first_makes_the_will_due() -> None:
    """3.1.3.2.2: the delay passes or the Session ends, whichever happens first."""
    will = Will5(delay=100)
    will.connection_closed(session_expiry=5)
    will.time_passes(4)
    assert not will.may_publish()
    will.time_passes(1)
    assert will.may_publish()


def test_a_session_interval_of_0_makes_a_delayed_will_due_at_the_close() -> None:
    """3.1.2.11.2: the Session ends when the Network Connection is closed."""
    will = Will5(delay=100)
    will.connection_closed(session_expiry=0)
    assert will.may_publish()


def test_a_session_that_never_expires_leaves_the_delay_alone() -> None:
    will = Will5(delay=30)
    will.connection_closed(session_expiry=NEVER_EXPIRES)
    will.time_passes(29)
    assert not will.may_publish()
    will.time_passes(1)
    assert will.may_publish()


def test_the_session_ended_by_clean_start_1_makes_the_will_due() -> None:
    will = Will5(delay=100)
    will.connection_closed(session_expiry=KEPT)
    will.session_ended()
    assert will.may_publish()


# -- a new connection ---------------------------------------------------------------------


def test_a_new_connection_before_the_delay_cancels_the_will() -> None:
    """[MQTT-3.1.3-9]: the Server MUST NOT send the Will Message."""
    will = Will5(delay=10)
    will.connection_closed(session_expiry=KEPT)
    will.time_passes(5)
    will.reconnected()
    will.time_passes(100)
    assert will.obligations() == []
    with pytest.raises(Violation) as caught:
        will.published()
    assert "MQTT-3.1.3-9" in caught.value.refs


def test_a_new_connection_after_the_delay_does_not_cancel_the_will() -> None:
    """[MQTT-3.1.2-8]: the delay elapsed first, so the will is still owed."""
    will = Will5(delay=10)
    will.connection_closed(session_expiry=KEPT)
    will.time_passes(10)
    will.reconnected()
    assert will.may_publish()


def test_takeover_with_delay_0_sends_the_will_at_the_close() -> None:
    """3.1.4's comment: with a Will Delay of 0 the will is sent as the old connection closes."""
    will = Will5(delay=0)
    will.connection_closed(session_expiry=KEPT)
    will.reconnected()
    assert will.may_publish()


def test_takeover_resuming_the_session_with_a_delay_cancels_the_will() -> None:
    """3.1.3.2.2's comment: sent unless the new connection has Clean Start 0 and a delay."""
    will = Will5(delay=5)
    will.connection_closed(session_expiry=KEPT)
    will.reconnected()
    assert will.state == WillState5.CANCELLED


def test_a_will_is_never_published_while_its_connection_is_open_or_twice() -> None:
    """[MQTT-3.1.2-8] [MQTT-3.1.2-10]"""
    will = Will5()
    with pytest.raises(Violation) as caught:
        will.published()
    assert caught.value.allowed == ("nothing while the connection is open",)
    will.connection_closed(session_expiry=KEPT)
    will.published()
    with pytest.raises(Violation) as caught:
        will.published()
    assert caught.value.refs == ("MQTT-3.1.2-10",)


def test_events_that_cannot_happen_are_refused() -> None:
    will = Will5()
    with pytest.raises(NoTransition):
        will.reconnected()  # the connection is still open
    with pytest.raises(NoTransition):
        will.session_ended()  # [MQTT-4.1.0-1]: not while the connection is open
    with pytest.raises(UsageError):
        Will5(delay=-1)
    with pytest.raises(UsageError):
        will.connection_closed(session_expiry=-5)


# -- properties ----------------------------------------------------------------------------


@given(
    delay=st.integers(0, 1000),
    session_expiry=st.one_of(st.integers(0, 1000), st.just(NEVER_EXPIRES)),
    margin=st.floats(0, 50),
    steps=st.lists(st.floats(0, 200), max_size=10),
)
def test_publication_is_allowed_exactly_from_the_earlier_of_delay_and_expiry(
    delay: int, session_expiry: int, margin: float, steps: list[float]
) -> None:
    """[MQTT-3.1.2-8]: never before, always from the due time on."""
    due = delay if session_expiry == NEVER_EXPIRES else min(delay, session_expiry)
    will = Will5(delay=delay, margin=margin)
    will.connection_closed(session_expiry=session_expiry)
    elapsed = 0.0
    for step in steps:
        will.time_passes(step)
        elapsed += step
        assert will.may_publish() == (elapsed >= due)
        assert will.overdue() == (elapsed > due + margin)


@given(
    delay=st.integers(1, 1000),
    back_after=st.floats(0, 2000),
    reason=st.sampled_from([None, 0x04, 0x80]),
)
def test_a_reconnection_cancels_exactly_when_it_comes_before_the_delay(
    delay: int, back_after: float, reason: int | None
) -> None:
    """[MQTT-3.1.3-9] against [MQTT-3.1.2-8]."""
    will = Will5(delay=delay)
    if reason is None:
        will.connection_closed(session_expiry=NEVER_EXPIRES)
    else:
        will.client_disconnect(reason, session_expiry=NEVER_EXPIRES)
    will.time_passes(back_after)
    will.reconnected()
    assert will.may_publish() == (back_after >= delay)
