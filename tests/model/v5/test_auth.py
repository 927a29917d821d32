"""The MQTT 5.0 enhanced authentication chart, read as 3.15 and 4.12 say it."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.codec.packets import PacketType
from mqttref.impl.codec.reasons import VALID_REASONS
from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.v5.auth import (
    AUTH_5,
    CLIENT_EVENTS,
    CONTINUE_AUTHENTICATION,
    REAUTHENTICATE,
    SERVER_EVENTS,
    SUCCESS,
    Auth5,
    AuthEvent5,
    AuthState5,
)
from mqttref.oracle.statements import statements
from mqttref.statecharts.build import problems

A = AuthState5
METHOD = "SCRAM-SHA-1"


def exchanging() -> Auth5:
    """CONNECT with an Authentication Method: the server's turn."""
    auth = Auth5()
    auth.connect(METHOD)
    return auth


def authenticated() -> Auth5:
    auth = exchanging()
    auth.connack(0x00, METHOD)
    return auth


def plain() -> Auth5:
    auth = Auth5()
    auth.connect(None)
    auth.connack(0x00, None)
    return auth


# -- the chart as data -------------------------------------------------------------------


def test_the_chart_passes_the_graph_checks() -> None:
    assert problems(AUTH_5) == []


def test_every_row_cites_statements_of_mqtt_5() -> None:
    known = statements("5.0")
    assert AUTH_5.protocol == "5.0"
    assert [ref for ref in AUTH_5.refs if ref not in known] == []
    assert "0x18" in known["MQTT-4.12.0-2"].text
    assert "0x19" in known["MQTT-4.12.1-1"].text


def test_every_event_is_the_client_s_or_the_server_s_or_the_close() -> None:
    assert set(CLIENT_EVENTS) | set(SERVER_EVENTS) | {AuthEvent5.CLOSED} == set(AuthEvent5)
    assert not set(CLIENT_EVENTS) & set(SERVER_EVENTS)


def test_every_state_but_the_closed_one_can_be_closed() -> None:
    for state in AUTH_5.state_names:
        assert AUTH_5.rows(state, AuthEvent5.CLOSED) or state == A.CLOSED


def test_the_server_never_sends_disconnect_before_a_connack_0() -> None:
    """[MQTT-3.14.0-1]: no unguarded DISCONNECT row from a state before CONNACK."""
    for state in (A.START, A.PLAIN_CONNECTING, A.SERVER_TURN, A.CLIENT_TURN):
        assert not AUTH_5.rows(state, AuthEvent5.SERVER_DISCONNECT)
    (row,) = AUTH_5.rows(A.CLOSE_DUE, AuthEvent5.SERVER_DISCONNECT)
    assert row.guard == "was_accepted"


def test_the_authenticate_reason_codes_agree_with_the_implementation() -> None:
    """Written twice on purpose (3.15.2.1): the model's against the codec's."""
    codes = {SUCCESS, CONTINUE_AUTHENTICATION, REAUTHENTICATE}
    assert codes == VALID_REASONS[PacketType.AUTH]


# -- no Authentication Method ---------------------------------------------------------------


def test_without_a_method_the_server_sends_no_auth() -> None:
    """[MQTT-4.12.0-6]"""
    auth = plain()
    with pytest.raises(Violation) as caught:
        auth.server_auth(0x18, METHOD)
    assert caught.value.refs == ("MQTT-4.12.0-6",)


def test_without_a_method_connack_carries_none() -> None:
    """[MQTT-4.12.0-6]"""
    auth = Auth5()
    auth.connect(None)
    with pytest.raises(Violation) as caught:
        auth.connack(0x00, METHOD)
    assert caught.value.refs == ("MQTT-4.12.0-6",)


def test_a_client_auth_without_a_method_is_a_protocol_error_the_server_closes_for() -> None:
    """[MQTT-4.12.0-7]; the server must close [MQTT-4.13.1-1]."""
    auth = plain()
    auth.client_auth(0x19, METHOD)
    assert auth.state == A.CLOSE_DUE
    assert auth.close_refs == ("MQTT-4.12.0-7", "MQTT-4.13.1-1")
    assert auth.allowed() == frozenset({"DISCONNECT", "close"})
    assert [o.refs for o in auth.obligations()] == [auth.close_refs]


def test_before_connack_a_plain_protocol_error_is_closed_without_disconnect() -> None:
    """[MQTT-3.14.0-1]: the close is owed, a DISCONNECT is not allowed yet; a refusing
    CONNACK still is (3.2.2.2), once [MQTT-3.2.0-2]."""
    auth = Auth5()
    auth.connect(None)
    auth.client_auth(0x18, None)
    assert auth.allowed() == frozenset({"CONNACK 0x80 or above", "close"})
    with pytest.raises(Violation) as caught:
        auth.server_disconnect(0x82)
    assert caught.value.refs == ("MQTT-3.14.0-1",)
    auth.connack(0x82, None)
    assert auth.allowed() == frozenset({"close"})
    with pytest.raises(Violation) as caught:
        auth.connack(0x82, None)
    assert caught.value.refs == ("MQTT-3.2.0-2",)


# -- the exchange ---------------------------------------------------------------------------


def test_the_scram_example_of_4_12_runs_through() -> None:
    """4.12's non-normative SCRAM challenge, packet by packet."""
    auth = exchanging()
    auth.server_auth(0x18, METHOD)
    auth.client_auth(0x18, METHOD)
    auth.connack(0x00, METHOD)
    assert auth.state == A.CONNECTED


def test_the_kerberos_example_of_4_12_runs_through() -> None:
    auth = exchanging()
    for _ in range(2):
        auth.server_auth(0x18, METHOD)
        auth.client_auth(0x18, METHOD)
    auth.connack(0x00, METHOD)
    assert auth.state == A.CONNECTED


def test_during_the_exchange_the_server_may_challenge_accept_refuse_or_close() -> None:
    """[MQTT-4.12.0-2] [MQTT-4.12.0-4]"""
    assert exchanging().allowed() == frozenset(
        {"AUTH 0x18", "CONNACK 0x00", "CONNACK 0x80 or above", "close"}
    )


def test_the_server_s_auth_before_connack_is_0x18() -> None:
    """[MQTT-4.12.0-2]"""
    auth = exchanging()
    with pytest.raises(Violation) as caught:
        auth.server_auth(0x00, METHOD)
    assert caught.value.refs == ("MQTT-4.12.0-2",)


def test_the_server_never_sends_auth_0x19() -> None:
    """[MQTT-3.15.2-1]: 0x19 is the Client's Authenticate Reason Code."""
    auth = exchanging()
    with pytest.raises(Violation) as caught:
        auth.server_auth(0x19, METHOD)
    assert caught.value.refs == ("MQTT-3.15.2-1",)


@pytest.mark.parametrize("method", [None, "GS2-KRB5"])
def test_every_server_auth_and_the_successful_connack_carry_the_connect_s_method(
    method: str | None,
) -> None:
    """[MQTT-4.12.0-5]"""
    auth = exchanging()
    with pytest.raises(Violation) as caught:
        auth.server_auth(0x18, method)
    assert caught.value.refs == ("MQTT-4.12.0-5",)
    with pytest.raises(Violation) as caught:
        auth.connack(0x00, method)
    assert caught.value.refs == ("MQTT-4.12.0-5",)


def test_a_refusing_connack_need_not_carry_the_method_and_is_followed_by_the_close() -> None:
    """[MQTT-4.12.0-1] [MQTT-4.12.0-4]"""
    auth = exchanging()
    auth.connack(0x8C, None)
    assert auth.state == A.CLOSE_DUE
    assert auth.allowed() == frozenset({"close"})
    with pytest.raises(Violation) as caught:
        auth.server_auth(0x18, METHOD)
    assert caught.value.refs == auth.close_refs


def test_only_auth_or_disconnect_may_follow_connect_with_a_method_before_connack() -> None:
    """[MQTT-3.1.2-30]"""
    auth = exchanging()
    auth.client_packet()
    assert auth.state == A.CLOSE_DUE
    assert auth.close_refs[0] == "MQTT-3.1.2-30"


def test_the_client_answers_a_challenge_with_0x18_not_0x19() -> None:
    """[MQTT-4.12.0-3]"""
    auth = exchanging()
    auth.server_auth(0x18, METHOD)
    auth.client_auth(0x19, METHOD)
    assert auth.state == A.CLOSE_DUE
    assert auth.close_refs[0] == "MQTT-4.12.0-3"


def test_the_client_may_disconnect_during_the_exchange() -> None:
    """4.12: the Client can close at any point and MAY send DISCONNECT [MQTT-3.1.2-30]."""
    for challenged in (False, True):
        auth = exchanging()
        if challenged:
            auth.server_auth(0x18, METHOD)
        auth.client_disconnect()
        assert auth.state == A.CLOSED
        assert auth.obligations() == []


def test_a_second_connack_is_a_violation() -> None:
    """[MQTT-3.2.0-2]"""
    auth = authenticated()
    with pytest.raises(Violation) as caught:
        auth.connack(0x00, METHOD)
    assert caught.value.refs == ("MQTT-3.2.0-2",)


# -- re-authentication ----------------------------------------------------------------------


def test_re_authentication_runs_with_the_same_method() -> None:
    """[MQTT-4.12.1-1]: AUTH 0x19, then the server's AUTH 0x18 or 0x00."""
    auth = authenticated()
    auth.client_auth(0x19, METHOD)
    assert auth.allowed() == frozenset({"AUTH 0x00", "AUTH 0x18", "DISCONNECT", "close"})
    auth.server_auth(0x18, METHOD)
    auth.client_auth(0x18, METHOD)
    auth.server_auth(0x00, METHOD)
    assert auth.state == A.CONNECTED


def test_re_authentication_with_another_method_is_a_protocol_error() -> None:
    """[MQTT-4.12.1-1]"""
    auth = authenticated()
    auth.client_auth(0x19, "PLAIN")
    assert auth.state == A.CLOSE_DUE
    assert auth.close_refs[0] == "MQTT-4.12.1-1"
    auth.server_disconnect(0x82)
    assert auth.state == A.DISCONNECT_SENT


def test_re_authentication_before_connack_is_a_protocol_error() -> None:
    auth = exchanging()
    auth.client_auth(0x19, METHOD)
    assert auth.state == A.CLOSE_DUE
    assert auth.close_refs[0] == "MQTT-4.12.0-3"


def test_a_failed_re_authentication_ends_in_disconnect_and_close() -> None:
    """[MQTT-4.12.1-2]"""
    auth = authenticated()
    auth.client_auth(0x19, METHOD)
    auth.server_disconnect(0x87)
    assert [o.refs for o in auth.obligations()] == [("MQTT-3.14.4-2",)]
    with pytest.raises(Violation) as caught:
        auth.server_auth(0x00, METHOD)
    assert caught.value.refs == ("MQTT-3.14.4-1",)
    auth.closed()
    assert auth.obligations() == []


def test_the_server_does_not_start_a_re_authentication() -> None:
    """[MQTT-4.12.1-1]: re-authentication is the Client's to start."""
    auth = authenticated()
    with pytest.raises(Violation) as caught:
        auth.server_auth(0x18, METHOD)
    assert caught.value.refs == ("MQTT-4.12.1-1",)


def test_other_packets_flow_during_re_authentication() -> None:
    """4.12.1: the flow of other packets can continue using the previous authentication."""
    auth = authenticated()
    auth.client_auth(0x19, METHOD)
    auth.client_packet()
    assert auth.state == A.REAUTH_SERVER_TURN


def test_the_harness_cannot_report_a_server_packet_before_connect() -> None:
    with pytest.raises(UsageError):
        Auth5().connack(0x00, None)
    auth = authenticated()
    with pytest.raises(UsageError):
        auth.connect(METHOD)
    auth.closed()
    with pytest.raises(NoTransition):
        auth.client_packet()


# -- properties ----------------------------------------------------------------------------

PAIRS = list(itertools.product(AUTH_5.state_names, AUTH_5.event_names))


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s}:{e}" for s, e in PAIRS])
def test_every_state_event_pair_fires_one_row_or_none(state: str, event: str) -> None:
    rows = AUTH_5.rows(state, event)
    guards = [row.guard for row in rows]
    assert len(guards) == len(set(guards))
    assert len(rows) <= 1 or all(guards)


client_steps = st.lists(
    st.one_of(
        st.tuples(st.just("auth"), st.sampled_from([0x00, 0x18, 0x19, 0x80])),
        st.tuples(st.just("packet"), st.just(0)),
        st.tuples(st.just("server"), st.integers(0, 99)),
    ),
    max_size=30,
)


@given(st.sampled_from([None, METHOD]), client_steps, st.data())
def test_a_server_choosing_only_what_allowed_lists_is_never_blamed(
    method: str | None, steps: list[tuple[str, int]], data: st.DataObject
) -> None:
    """``allowed()`` and the chart agree: any listed server move is accepted."""
    auth = Auth5()
    auth.connect(method)
    moves = {
        "AUTH 0x18": lambda: auth.server_auth(0x18, method),
        "AUTH 0x00": lambda: auth.server_auth(0x00, method),
        "CONNACK 0x00": lambda: auth.connack(0x00, method),
        "CONNACK 0x80 or above": lambda: auth.connack(0x87, None),
        "DISCONNECT": lambda: auth.server_disconnect(0x87),
        "close": auth.closed,
    }
    for kind, value in steps:
        if auth.state == A.CLOSED:
            break
        if kind == "auth":
            auth.client_auth(value, method)
        elif kind == "packet":
            auth.client_packet()
        else:
            choice = data.draw(st.sampled_from(sorted(auth.allowed())))
            moves[choice]()
        assert auth.state in AUTH_5.state_names
        if auth.state in (A.CLOSE_DUE, A.DISCONNECT_SENT):
            assert "close" in auth.allowed()
            assert auth.obligations()
