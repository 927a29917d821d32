"""The MQTT 5.0 session chart, read as 3.1.2.4, 3.1.2.11.2, 3.1.4 and 4.1 say it."""

from __future__ import annotations

import itertools

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.v5.session import (
    EXCLUSIVE_GUARDS,
    NEVER_EXPIRES,
    SESSION_5,
    Session5,
    SessionState5,
)
from mqttref.oracle.statements import statements
from mqttref.statecharts.build import problems


def connected(*, expiry: int = 0, clean_start: bool = True, margin: float = 0.0) -> Session5:
    """A session attached to a connection whose CONNECT carried ``expiry``."""
    session = Session5(margin=margin)
    session.connect(clean_start=clean_start, session_expiry=expiry)
    session.connack(0x00, session_present=False)
    return session


# -- the chart as data -------------------------------------------------------------------


def test_the_chart_passes_the_graph_checks() -> None:
    assert problems(SESSION_5) == []


def test_every_row_cites_statements_of_mqtt_5() -> None:
    known = statements("5.0")
    assert SESSION_5.protocol == "5.0"
    assert [ref for ref in SESSION_5.refs if ref not in known] == []


def test_the_cited_statements_say_what_the_rows_do() -> None:
    text = {ref: statements("5.0")[ref].text for ref in SESSION_5.refs}
    assert "0x8E" in text["MQTT-3.1.4-3"]
    assert "Clean Start is set to 1" in text["MQTT-3.1.2-4"]
    assert "Session Expiry Interval has passed" in text["MQTT-4.1.0-2"]
    assert "Session Expiry Interval is greater than 0" in text["MQTT-3.1.2-23"]


def test_rows_of_one_state_and_event_are_told_apart_by_complementary_guards() -> None:
    for (state, event), rows in itertools.groupby(
        sorted(SESSION_5.transitions, key=lambda t: (t.source, t.event)),
        key=lambda t: (t.source, t.event),
    ):
        guards = frozenset(r.guard for r in rows if r.guard)
        if len(guards) > 1:
            assert guards in EXCLUSIVE_GUARDS, (state, event, guards)


# -- Clean Start and Session Present ------------------------------------------------------


def test_clean_start_1_never_gets_session_present() -> None:
    """[MQTT-3.1.2-4] [MQTT-3.2.2-2]"""
    session = connected(expiry=60)
    session.disconnect()
    assert session.connect(clean_start=True) == frozenset({False})
    with pytest.raises(Violation) as caught:
        session.connack(0x00, session_present=True)
    assert caught.value.refs == ("MQTT-3.2.2-2",)


def test_clean_start_0_resumes_a_stored_session_with_session_present_1() -> None:
    """[MQTT-3.1.2-5] [MQTT-3.2.2-3]"""
    session = connected(expiry=60)
    session.disconnect()
    assert session.connect(clean_start=False) == frozenset({True})
    row = session.connack(0x00, session_present=True)
    assert row.action == "resume_session"
    assert session.state == SessionState5.CONNECTED


def test_session_present_0_for_a_stored_session_is_a_violation() -> None:
    """[MQTT-3.2.2-3]: the server has Session State, so it must say so."""
    session = connected(expiry=60)
    session.closed()
    session.connect(clean_start=False)
    with pytest.raises(Violation) as caught:
        session.connack(0x00, session_present=False)
    assert "MQTT-3.2.2-3" in caught.value.refs
    assert caught.value.allowed == ("Session Present 1",)


def test_clean_start_0_without_a_session_creates_one_with_session_present_0() -> None:
    """[MQTT-3.1.2-6] [MQTT-3.2.2-3]"""
    session = Session5()
    assert session.connect(clean_start=False, session_expiry=30) == frozenset({False})
    with pytest.raises(Violation):
        session.connack(0x00, session_present=True)
    session.connect(clean_start=False, session_expiry=30)
    assert session.connack(0x00, session_present=False).action == "new_session"


def test_a_refusing_connack_carries_session_present_0_and_leaves_the_session_alone() -> None:
    """[MQTT-3.2.2-6]"""
    session = connected(expiry=60)
    session.disconnect()
    session.connect(clean_start=True)
    with pytest.raises(Violation) as caught:
        session.connack(0x87, session_present=True)
    assert caught.value.refs == ("MQTT-3.2.2-6",)
    session.connect(clean_start=True)
    session.connack(0x87, session_present=False)
    assert session.state == SessionState5.DISCONNECTED  # Clean Start 1 was never processed


def test_a_connack_code_between_0x01_and_0x7f_is_no_connect_reason_code() -> None:
    """[MQTT-3.2.2-8]"""
    session = Session5()
    session.connect(clean_start=True)
    with pytest.raises(Violation) as caught:
        session.connack(0x18, session_present=False)
    assert caught.value.refs == ("MQTT-3.2.2-8",)


# -- the expiry timer -----------------------------------------------------------------------


def test_an_interval_of_0_ends_the_session_with_the_connection() -> None:
    """3.1.2.11.2: absent or 0, the Session ends when the Network Connection is closed."""
    session = connected(expiry=0)
    session.closed()
    assert session.exists() == frozenset({False})
    assert session.connect(clean_start=False) == frozenset({False})


def test_the_session_must_exist_until_the_interval_has_passed() -> None:
    """[MQTT-3.1.2-23] [MQTT-4.1.0-2]"""
    session = connected(expiry=10, margin=2)
    session.closed()
    session.time_passes(9.9)
    assert session.exists() == frozenset({True})
    session.time_passes(0.1)
    assert session.exists() == frozenset({True, False})  # passed: the margin begins
    session.time_passes(2)
    assert session.exists() == frozenset({True, False})
    session.time_passes(0.1)
    assert session.exists() == frozenset({False})


def test_within_the_margin_either_session_present_is_accepted() -> None:
    for present, action in ((True, "resume_session"), (False, "new_session")):
        session = connected(expiry=10, margin=5)
        session.closed()
        session.time_passes(12)
        assert session.connect(clean_start=False) == frozenset({True, False})
        assert session.connack(0x00, session_present=present).action == action


def test_session_present_after_the_margin_is_a_violation() -> None:
    """[MQTT-4.1.0-2]: the server must have discarded the state."""
    session = connected(expiry=10, margin=1)
    session.closed()
    session.time_passes(11.5)
    session.connect(clean_start=False)
    with pytest.raises(Violation) as caught:
        session.connack(0x00, session_present=True)
    assert "MQTT-4.1.0-2" in caught.value.refs


def test_an_interval_of_0xffffffff_never_expires() -> None:
    """3.1.2.11.2: the Session does not expire."""
    session = connected(expiry=NEVER_EXPIRES)
    session.closed()
    assert session.expires_at is None
    session.time_passes(10.0**12)
    assert session.exists() == frozenset({True})


def test_the_server_may_replace_the_interval_in_connack() -> None:
    """3.2.2.3.2: CONNACK's Session Expiry Interval is the one the server uses."""
    session = Session5()
    session.connect(clean_start=True, session_expiry=3600)
    session.connack(0x00, session_present=False, session_expiry=0)
    session.closed()
    assert session.exists() == frozenset({False})


def test_disconnect_may_change_the_interval() -> None:
    """3.14.2.2.2: the DISCONNECT's interval replaces the CONNECT's."""
    session = connected(expiry=60)
    assert session.disconnect(session_expiry=5) is True
    session.time_passes(5)
    assert session.exists() == frozenset({True, False})
    session = connected(expiry=60)
    assert session.disconnect(session_expiry=0) is True
    assert session.exists() == frozenset({False})


def test_disconnect_raising_an_interval_of_0_is_a_protocol_error_and_ends_the_session() -> None:
    """3.14.2.2.2: not a valid DISCONNECT; the server closes (0x82) [MQTT-4.13.1-1]."""
    session = connected(expiry=0)
    assert session.disconnect(session_expiry=300) is False
    assert session.exists() == frozenset({False})


def test_an_attached_session_is_never_discarded() -> None:
    """[MQTT-4.1.0-1]: no timer runs while the connection is open."""
    session = connected(expiry=1)
    session.time_passes(1000)
    assert session.exists() == frozenset({True})


# -- takeover ------------------------------------------------------------------------------


def test_takeover_closes_the_old_connection_and_resumes_a_kept_session() -> None:
    """[MQTT-3.1.4-3] then Clean Start processing [MQTT-3.1.4-4]."""
    session = connected(expiry=60)
    assert session.connect(clean_start=False) == frozenset({True})
    session.connack(0x00, session_present=True)
    assert [o.refs for o in session.obligations()] == [("MQTT-3.1.4-3",)]
    session.taken_over_connection_closed(0x8E)
    assert session.obligations() == []


def test_takeover_of_a_session_with_interval_0_ends_it() -> None:
    """3.1.4's comment: with an interval of 0 the original Session ends on the takeover."""
    session = connected(expiry=0)
    assert session.connect(clean_start=False) == frozenset({False})
    with pytest.raises(Violation):
        session.connack(0x00, session_present=True)


def test_the_taken_over_connection_may_close_before_the_new_connack() -> None:
    session = connected(expiry=60)
    session.connect(clean_start=False)
    session.taken_over_connection_closed(None)
    assert session.state == SessionState5.DISCONNECTED
    session.connack(0x00, session_present=True)
    assert session.obligations() == []


def test_takeover_with_another_disconnect_code_is_a_violation() -> None:
    """[MQTT-3.1.4-3]: the DISCONNECT to the existing client carries 0x8E."""
    session = connected(expiry=60)
    session.connect(clean_start=True)
    session.connack(0x00, session_present=False)
    with pytest.raises(Violation) as caught:
        session.taken_over_connection_closed(0x8B)
    assert "MQTT-3.1.4-3" in caught.value.refs


def test_a_refused_connect_for_the_same_client_id_takes_nothing_over() -> None:
    session = connected(expiry=60)
    session.connect(clean_start=True)
    session.connack(0x86, session_present=False)
    assert session.state == SessionState5.CONNECTED
    assert session.obligations() == []


def test_the_harness_cannot_connack_without_connect_or_disconnect_without_connection() -> None:
    session = Session5()
    with pytest.raises(UsageError):
        session.connack(0x00, session_present=False)
    with pytest.raises(NoTransition):
        session.disconnect()
    with pytest.raises(UsageError):
        session.time_passes(-1)


# -- properties ----------------------------------------------------------------------------

steps = st.lists(
    st.one_of(
        st.tuples(st.just("connect"), st.booleans(), st.sampled_from([0, 5, 30, NEVER_EXPIRES])),
        st.tuples(st.just("refuse"), st.just(False), st.just(0)),
        st.tuples(st.just("disconnect"), st.booleans(), st.sampled_from([0, 1, 10, 100])),
        st.tuples(st.just("close"), st.just(False), st.just(0)),
        st.tuples(st.just("wait"), st.just(False), st.integers(0, 40)),
    ),
    max_size=25,
)


@given(steps, st.data(), st.floats(0, 5))
def test_any_session_present_drawn_from_the_allowed_set_is_accepted(
    script: list[tuple[str, bool, int]], data: st.DataObject, margin: float
) -> None:
    """The allowed set is exactly what the chart accepts, whatever happened before."""
    session = Session5(margin=margin)
    for step, flag, value in script:
        attached = session.state == SessionState5.CONNECTED
        if step == "connect":
            allowed = session.connect(clean_start=flag, session_expiry=value)
            for wrong in {True, False} - allowed:
                with pytest.raises(Violation):
                    attrs.evolve(session).connack(0x00, session_present=wrong)
            session.connack(0x00, session_present=data.draw(st.sampled_from(sorted(allowed))))
            if session.takeover_due:
                session.taken_over_connection_closed(0x8E)
        elif step == "refuse":
            session.connect(clean_start=True)
            session.connack(0x80, session_present=False)
        elif step == "disconnect" and attached:
            session.disconnect(session_expiry=value if flag else None)
        elif step == "close" and attached:
            session.closed()
        elif step == "wait":
            session.time_passes(value)
        assert session.exists() <= frozenset({True, False})
        assert session.exists() != frozenset()


@given(st.integers(1, 10_000), st.floats(0, 100), st.floats(0, 20_000))
def test_a_closed_session_exists_before_its_interval_and_is_gone_after_the_margin(
    expiry: int, margin: float, wait: float
) -> None:
    """[MQTT-3.1.2-23] [MQTT-4.1.0-2]"""
    session = connected(expiry=expiry, margin=margin)
    session.closed()
    session.time_passes(wait)
    if wait < expiry:
        assert session.exists() == frozenset({True})
    elif wait > expiry + margin:
        assert session.exists() == frozenset({False})
    else:
        assert session.exists() == frozenset({True, False})
