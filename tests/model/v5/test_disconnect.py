"""The server's DISCONNECT under MQTT 5.0, read as 3.14 and 4.13 say it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.codec.packets import PacketType
from mqttref.impl.codec.reasons import VALID_REASONS
from mqttref.model.errors import UsageError, Violation
from mqttref.model.v5.disconnect import (
    DISCONNECT_REASON_CODES,
    DISCONNECT_RULES,
    IMPLEMENTATION_SPECIFIC_ERROR,
    PROTOCOL_ERROR,
    SERVER_DISCONNECT_5,
    SERVER_DISCONNECT_CODES,
    UNSPECIFIED_ERROR,
    DisconnectState5,
    Send,
    ServerDisconnect5,
    Situation,
    allowed_codes,
    check_code,
    rule_for,
)
from mqttref.oracle.statements import statements
from mqttref.statecharts.build import problems

D = DisconnectState5
X = Situation


def accepted() -> ServerDisconnect5:
    connection = ServerDisconnect5()
    connection.connack(0x00)
    return connection


# -- the table as data ---------------------------------------------------------------------


def test_the_reason_code_table_agrees_with_the_codec_but_for_0x8c() -> None:
    """Table 3-10 written twice on purpose; 0x8C is Table 2-6's gift to DISCONNECT."""
    assert set(DISCONNECT_REASON_CODES) - {0x8C} == VALID_REASONS[PacketType.DISCONNECT]


def test_the_server_may_send_every_disconnect_code_but_the_client_s_0x04() -> None:
    """Table 3-10's "Sent by" column [MQTT-3.14.2-1]."""
    assert set(DISCONNECT_REASON_CODES) - SERVER_DISCONNECT_CODES == {0x04}


def test_every_situation_has_exactly_one_rule() -> None:
    situations = [rule.situation for rule in DISCONNECT_RULES]
    assert sorted(situations) == sorted(Situation)


def test_every_rule_cites_statements_of_mqtt_5() -> None:
    known = statements("5.0")
    for rule in DISCONNECT_RULES:
        assert rule.refs, rule.situation
        assert [r for r in (*rule.refs, *rule.cause) if r not in known] == [], rule.situation


def test_every_allowed_code_is_one_a_server_may_send() -> None:
    """[MQTT-3.14.2-1]"""
    for rule in DISCONNECT_RULES:
        assert rule.allowed <= SERVER_DISCONNECT_CODES, rule.situation
        assert not rule.named & rule.also, rule.situation


def test_unspecified_error_fits_every_failure_but_where_a_statement_names_the_code() -> None:
    """0x80: the sender does not wish to reveal the reason (Table 3-10)."""
    strict = {rule.situation for rule in DISCONNECT_RULES if UNSPECIFIED_ERROR not in rule.allowed}
    assert strict == {X.DISCONNECT_RESERVED_BITS, X.SESSION_TAKEN_OVER, X.NORMAL}


def test_0x83_never_answers_a_malformed_packet_or_a_protocol_error() -> None:
    """0x83: "the packet received is valid but cannot be processed" (Table 3-10)."""
    for rule in DISCONNECT_RULES:
        if rule.refs == ("MQTT-4.13.1-1",) or rule.named & {0x81, 0x82}:
            assert IMPLEMENTATION_SPECIFIC_ERROR not in rule.allowed, rule.situation


def test_protocol_errors_with_a_specific_code_may_also_use_0x82() -> None:
    """4.13.1 lists 0x93, 0x95, 0x9A, 0x9B, 0x9E, 0xA1, 0xA2 among Protocol Error codes."""
    for code in (0x93, 0x94, 0x95, 0x9A, 0x9B, 0x9E, 0xA1, 0xA2):
        (rule,) = [r for r in DISCONNECT_RULES if r.named == {code}]
        assert rule.send is Send.SHOULD
        assert PROTOCOL_ERROR in rule.allowed


@pytest.mark.parametrize(
    ("situation", "code", "ref"),
    [
        (X.KEEP_ALIVE_TIMEOUT, 0x8D, "MQTT-3.1.2-22"),
        (X.SESSION_TAKEN_OVER, 0x8E, "MQTT-3.1.4-3"),
        (X.PROTOCOL_ERROR, 0x82, "MQTT-4.13.1-1"),
        (X.MALFORMED_PACKET, 0x81, "MQTT-4.13.1-1"),
        (X.RECEIVE_MAXIMUM_EXCEEDED, 0x93, "MQTT-4.13.1-1"),
        (X.TOPIC_ALIAS_INVALID, 0x94, "MQTT-4.13.1-1"),
        (X.PACKET_TOO_LARGE, 0x95, "MQTT-4.13.1-1"),
        (X.SERVER_SHUTTING_DOWN, 0x8B, "MQTT-4.13.2-1"),
        (X.SECOND_CONNECT, 0x82, "MQTT-3.1.0-2"),
        (X.REAUTHENTICATION_FAILED, 0x87, "MQTT-4.12.1-2"),
    ],
)
def test_each_situation_names_the_code_the_text_gives_it(
    situation: Situation, code: int, ref: str
) -> None:
    rule = rule_for(situation)
    assert rule.named == {code}
    assert code in allowed_codes(situation)
    assert ref in rule.refs


def test_a_takeover_is_0x8e_and_nothing_else() -> None:
    """[MQTT-3.1.4-3]"""
    assert allowed_codes(X.SESSION_TAKEN_OVER) == {0x8E}
    with pytest.raises(Violation) as caught:
        check_code(0x80, X.SESSION_TAKEN_OVER)
    assert caught.value.refs == ("MQTT-3.1.4-3", "MQTT-3.14.2-1")


def test_a_disconnect_with_reserved_bits_set_is_answered_0x81() -> None:
    """[MQTT-3.14.1-1]"""
    assert allowed_codes("disconnect_reserved_bits") == {0x81}


def test_a_code_for_another_situation_is_a_violation() -> None:
    with pytest.raises(Violation) as caught:
        check_code(0x8D, X.SESSION_TAKEN_OVER)
    assert "MQTT-3.14.2-1" in caught.value.refs
    with pytest.raises(Violation):
        check_code(0x8E, X.KEEP_ALIVE_TIMEOUT)


def test_the_client_s_0x04_and_a_made_up_code_are_violations_whatever_the_situation() -> None:
    """[MQTT-3.14.2-1]"""
    for code in (0x04, 0x8A, 0x01):
        with pytest.raises(Violation) as caught:
            check_code(code)
        assert caught.value.refs == ("MQTT-3.14.2-1",)


def test_an_unknown_situation_is_the_harness_s_mistake() -> None:
    with pytest.raises(UsageError):
        rule_for("bored")


# -- the chart -----------------------------------------------------------------------------


def test_the_chart_passes_the_graph_checks() -> None:
    assert problems(SERVER_DISCONNECT_5) == []
    known = statements("5.0")
    assert [ref for ref in SERVER_DISCONNECT_5.refs if ref not in known] == []


def test_no_disconnect_before_connack() -> None:
    """[MQTT-3.14.0-1]"""
    connection = ServerDisconnect5()
    with pytest.raises(Violation) as caught:
        connection.disconnect(0x82)
    assert caught.value.refs == ("MQTT-3.14.0-1",)


def test_no_disconnect_after_a_refusing_connack() -> None:
    """[MQTT-3.14.0-1]: only a CONNACK below 0x80 opens the way; the close is owed
    [MQTT-3.2.2-7]."""
    connection = ServerDisconnect5()
    connection.connack(0x87)
    assert [o.refs for o in connection.obligations()] == [("MQTT-3.2.2-7",)]
    with pytest.raises(Violation) as caught:
        connection.disconnect(0x87)
    assert caught.value.refs == ("MQTT-3.14.0-1",)
    connection.closed()
    assert connection.obligations() == []


def test_auth_may_come_before_connack_nothing_else() -> None:
    """[MQTT-3.2.0-1]"""
    connection = ServerDisconnect5()
    connection.server_auth()
    with pytest.raises(Violation) as caught:
        connection.server_packet("PUBLISH")
    assert caught.value.refs == ("MQTT-3.2.0-1",)


def test_after_disconnect_nothing_more_and_then_the_close() -> None:
    """[MQTT-3.14.4-1] [MQTT-3.14.4-2]"""
    connection = accepted()
    connection.disconnect(0x8D, X.KEEP_ALIVE_TIMEOUT)
    assert [o.refs for o in connection.obligations()] == [("MQTT-3.14.4-2",)]
    with pytest.raises(Violation) as caught:
        connection.server_packet("PUBLISH")
    assert caught.value.refs == ("MQTT-3.14.4-1",)
    with pytest.raises(Violation) as caught:
        connection.disconnect(0x8D)
    assert caught.value.refs == ("MQTT-3.14.4-1",)
    connection.closed()
    assert connection.state == D.CLOSED


def test_a_second_connack_is_a_violation() -> None:
    """[MQTT-3.2.0-2]"""
    connection = accepted()
    with pytest.raises(Violation) as caught:
        connection.connack(0x00)
    assert caught.value.refs == ("MQTT-3.2.0-2",)


def test_a_disconnect_is_judged_against_its_situation() -> None:
    connection = accepted()
    with pytest.raises(Violation):
        connection.disconnect(0x8E, X.PACKET_TOO_LARGE)


def test_the_server_may_close_without_disconnect() -> None:
    """4.13.2: the close is what is owed; the DISCONNECT is optional."""
    connection = accepted()
    connection.closed()
    assert connection.state == D.CLOSED


# -- properties ----------------------------------------------------------------------------


@given(st.sampled_from(list(Situation)), st.integers(0, 0xFF))
def test_check_code_accepts_exactly_the_allowed_set(situation: Situation, code: int) -> None:
    allowed = allowed_codes(situation)
    if code in allowed:
        check_code(code, situation)
    else:
        with pytest.raises(Violation) as caught:
            check_code(code, situation)
        assert "MQTT-3.14.2-1" in caught.value.refs


@given(st.lists(st.sampled_from(["auth", "packet", "connack", "refuse", "disconnect"])))
def test_disconnect_is_accepted_only_after_a_connack_below_0x80_and_only_once(
    script: list[str],
) -> None:
    """[MQTT-3.14.0-1] [MQTT-3.14.4-1]"""
    connection = ServerDisconnect5()
    answered = accepted_seen = disconnected = False
    for step in script:
        try:
            if step == "auth":
                connection.server_auth()
            elif step == "packet":
                connection.server_packet()
            elif step in ("connack", "refuse"):
                connection.connack(0x00 if step == "connack" else 0x80)
            else:
                connection.disconnect(0x80)
        except Violation:
            break
        if step == "disconnect":
            assert accepted_seen
            assert not disconnected
            disconnected = True
        if step in ("connack", "refuse"):
            assert not answered
            answered, accepted_seen = True, step == "connack"
