"""MQTT 5.0 Reason Codes, read as the specification (2.4 and each packet's table).

Which code a server may send depends on the packet (Table 2-6 and the packet's
own table) and on the situation it answers; where the server may choose, every
choice is accepted and only a code outside the set is a violation, naming the
statement behind it. Request Problem Information 0 keeps Reason Strings and
User Properties to PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29].
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.codec.packets import PacketType
from mqttref.impl.codec.reasons import VALID_REASONS
from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.v5.reason_codes import (
    PACKET_RULES,
    PROBLEM_INFORMATION_5,
    REASON_CODES_5,
    TABLE_2_6,
    PacketKind,
    ProblemInformation5,
    Situation,
    allowed,
    allowed_in,
    check,
    check_packet_code,
    client_id_guaranteed,
    connack_situations,
    packet_identifier_situations,
    publish_ack_situations,
    server_may_send,
    suback_situations,
    table_2_6_codes,
    unsuback_situations,
)
from mqttref.oracle.statements import statements
from mqttref.statecharts.build import problems

K, Si = PacketKind, Situation


def refused(kind: PacketKind, situations: frozenset[Situation], code: int) -> Violation:
    with pytest.raises(Violation) as caught:
        check("c", kind, situations, code)
    return caught.value


# ------------------------------------------------------------------- the tables


def test_table_2_6_and_the_packet_tables_agree_but_for_0x8c_in_disconnect() -> None:
    for kind, rule in PACKET_RULES.items():
        difference = table_2_6_codes(kind) ^ rule.codes
        assert difference == ({0x8C} if kind == K.DISCONNECT else set()), kind


def test_the_packet_tables_are_the_ones_the_codec_has_written_independently() -> None:
    for kind, rule in PACKET_RULES.items():
        assert rule.codes == VALID_REASONS[PacketType[kind.value]], kind


def test_table_2_6_lists_each_code_name_once_per_packet() -> None:
    seen = [(code, kind) for code, _, packets in TABLE_2_6 for kind in packets]
    assert len(seen) == len(set(seen))


def test_every_rule_cites_mqtt_5_statements_and_allows_only_its_packets_codes() -> None:
    known = statements("5.0")
    for rule in REASON_CODES_5:
        assert rule.refs, rule
        assert [r for r in rule.refs if r not in known] == [], rule
        assert all(server_may_send(rule.kind, code) for code in rule.codes), rule


def test_every_code_a_server_may_send_belongs_to_some_situation() -> None:
    for kind, rule in PACKET_RULES.items():
        covered = {c for r in REASON_CODES_5 if r.kind == kind for c in r.codes}
        assert rule.server_codes <= covered, (kind, sorted(rule.server_codes - covered))


def test_a_code_not_in_the_packets_table_breaks_the_packets_statement() -> None:
    with pytest.raises(Violation) as caught:
        check_packet_code("c", K.SUBACK, 0x81)
    assert caught.value.refs == ("MQTT-3.9.3-2",)
    with pytest.raises(Violation) as caught:
        check_packet_code("c", K.PUBREL, 0x80)
    assert caught.value.refs == ("MQTT-3.6.2-1",)


def test_codes_the_table_gives_only_to_the_client_are_not_the_servers() -> None:
    for kind, code, ref in ((K.DISCONNECT, 0x04, "MQTT-3.14.2-1"),
                            (K.AUTH, 0x19, "MQTT-3.15.2-1")):
        with pytest.raises(Violation, match="sent only by the Client") as caught:
            check_packet_code("c", kind, code)
        assert caught.value.refs == (ref,)


def test_0x8c_in_disconnect_is_not_blamed_since_table_2_6_gives_it() -> None:
    check_packet_code("c", K.DISCONNECT, 0x8C)
    check("c", K.DISCONNECT, frozenset({Si.SERVER_CLOSES}), 0x8C)


def test_publish_carries_no_reason_code() -> None:
    with pytest.raises(UsageError):
        check_packet_code("c", K.PUBLISH, 0)
    with pytest.raises(UsageError):
        allowed(K.PUBLISH, Si.MATCHED)


# --------------------------------------------------------------- PUBACK, PUBREC


@pytest.mark.parametrize("kind", [K.PUBACK, K.PUBREC])
def test_no_matching_subscribers_may_be_said_with_0x10_or_not(kind: PacketKind) -> None:
    facts = publish_ack_situations(matched=False)
    check("c", kind, facts, 0x00)
    check("c", kind, facts, 0x10)


@pytest.mark.parametrize(("kind", "ref"), [(K.PUBACK, "MQTT-3.4.2-1"),
                                           (K.PUBREC, "MQTT-3.5.2-1")])
def test_0x10_when_a_subscription_matched_says_what_is_not_so(kind: PacketKind, ref: str) -> None:
    assert refused(kind, publish_ack_situations(matched=True), 0x10).refs == (ref,)


@pytest.mark.parametrize("code", [0x80, 0x83, 0x87, 0x90, 0x97])
def test_the_server_may_refuse_any_publish(code: int) -> None:
    check("c", K.PUBACK, publish_ack_situations(matched=True), code)


def test_payload_format_invalid_only_for_a_payload_that_is_not_utf8() -> None:
    refused(K.PUBACK, publish_ack_situations(matched=True), 0x99)
    check("c", K.PUBACK, publish_ack_situations(matched=True, payload_format_invalid=True), 0x99)
    check("c", K.PUBACK, publish_ack_situations(matched=True, payload_format_invalid=True), 0x00)


def test_packet_identifier_in_use_only_when_it_is() -> None:
    assert "MQTT-2.2.1-3" in refused(K.PUBREC, publish_ack_situations(matched=True), 0x91).refs
    check("c", K.PUBREC,
          publish_ack_situations(matched=True, packet_identifier_in_use=True), 0x91)


# -------------------------------------------------------------- PUBREL, PUBCOMP


@pytest.mark.parametrize("kind", [K.PUBREL, K.PUBCOMP])
def test_a_known_packet_identifier_is_released_with_0x00_only(kind: PacketKind) -> None:
    facts = packet_identifier_situations(known=True)
    check("c", kind, facts, 0x00)
    refused(kind, facts, 0x92)


@pytest.mark.parametrize("kind", [K.PUBREL, K.PUBCOMP])
def test_an_unknown_packet_identifier_gets_0x92_or_0x00(kind: PacketKind) -> None:
    facts = packet_identifier_situations(known=False)
    assert allowed_in(kind, facts) == {0x00, 0x92}


# ------------------------------------------------------------------------ SUBACK


@pytest.mark.parametrize(("requested", "maximum"), list(itertools.product(range(3), range(3))))
def test_the_grant_is_at_most_the_requested_qos_and_the_servers_maximum(
    requested: int, maximum: int
) -> None:
    facts = suback_situations(requested_qos=requested, maximum_qos=maximum)
    grants = {code for code in allowed_in(K.SUBACK, facts) if code < 0x80}
    assert grants == set(range(min(requested, maximum) + 1))


def test_a_grant_above_the_request_breaks_the_granted_qos_rule() -> None:
    refs = refused(K.SUBACK, suback_situations(requested_qos=1), 0x02).refs
    assert refs == ("MQTT-3.8.4-7", "MQTT-3.9.3-2")


@pytest.mark.parametrize(
    ("code", "fact"),
    [(0x9E, {"shared": True}), (0xA1, {"subscription_identifier": True}),
     (0xA2, {"wildcard": True}), (0x91, {"packet_identifier_in_use": True})],
)
def test_a_feature_refusal_only_where_the_feature_is_used(code: int, fact: dict[str, bool]) -> None:
    refused(K.SUBACK, suback_situations(requested_qos=1), code)
    check("c", K.SUBACK, suback_situations(requested_qos=1, **fact), code)


@pytest.mark.parametrize("code", [0x80, 0x83, 0x87, 0x8F, 0x97])
def test_any_subscription_may_be_refused(code: int) -> None:
    check("c", K.SUBACK, suback_situations(requested_qos=2), code)


def test_a_requested_qos_of_3_is_no_situation() -> None:
    with pytest.raises(UsageError, match="Protocol Error"):
        suback_situations(requested_qos=3)


# ---------------------------------------------------------------------- UNSUBACK


def test_unsuback_says_0x00_for_a_deleted_subscription_and_0x11_for_none() -> None:
    check("c", K.UNSUBACK, unsuback_situations(existed=True), 0x00)
    check("c", K.UNSUBACK, unsuback_situations(existed=False), 0x11)
    assert refused(K.UNSUBACK, unsuback_situations(existed=False), 0x00).refs == (
        "MQTT-3.10.4-1", "MQTT-3.11.3-2")
    assert refused(K.UNSUBACK, unsuback_situations(existed=True), 0x11).refs == (
        "MQTT-3.10.4-5", "MQTT-3.11.3-2")


@pytest.mark.parametrize("code", [0x80, 0x83, 0x87, 0x8F])
def test_an_unsubscribe_may_be_refused(code: int) -> None:
    check("c", K.UNSUBACK, unsuback_situations(existed=True), code)


def test_unsuback_has_no_quota_exceeded() -> None:
    refused(K.UNSUBACK, unsuback_situations(existed=True), 0x97)


# ----------------------------------------------------------------------- CONNACK


def test_a_plain_connect_may_be_accepted_or_refused_for_the_servers_reasons() -> None:
    facts = connack_situations(client_id="abc")
    for code in (0x00, 0x80, 0x83, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x95, 0x97, 0x9C, 0x9D, 0x9F):
        check("c", K.CONNACK, facts, code)


def test_a_client_identifier_every_server_allows_is_never_refused_as_not_valid() -> None:
    assert client_id_guaranteed("abcXYZ019")
    assert refused(K.CONNACK, connack_situations(client_id="abc"), 0x85).refs == (
        "MQTT-3.1.3-5", "MQTT-3.1.3-8")
    for other in ("", "a" * 24, "a-b", "é"):
        assert not client_id_guaranteed(other)
        check("c", K.CONNACK, connack_situations(client_id=other), 0x85)


def test_a_will_qos_above_the_maximum_must_be_refused() -> None:
    facts = connack_situations(client_id="abc", will=True, will_qos=2, maximum_qos=1)
    check("c", K.CONNACK, facts, 0x9B)
    check("c", K.CONNACK, facts, 0x80)
    assert "MQTT-3.2.2-12" in refused(K.CONNACK, facts, 0x00).refs


def test_a_will_retain_where_retain_is_unavailable_must_be_refused() -> None:
    facts = connack_situations(client_id="abc", will=True, will_retain=True,
                               retain_available=False)
    check("c", K.CONNACK, facts, 0x9A)
    assert "MQTT-3.2.2-13" in refused(K.CONNACK, facts, 0x00).refs


def test_will_and_authentication_codes_only_when_the_connect_has_them() -> None:
    plain = connack_situations(client_id="abc")
    for code in (0x8C, 0x90, 0x99, 0x9A, 0x9B):
        refused(K.CONNACK, plain, code)
    check("c", K.CONNACK, connack_situations(client_id="abc", authentication_method=True), 0x8C)
    check("c", K.CONNACK, connack_situations(client_id="abc", will=True), 0x90)
    check("c", K.CONNACK, connack_situations(
        client_id="abc", will=True, will_payload_format_invalid=True), 0x99)


def test_malformed_protocol_error_and_version_codes_name_their_cause() -> None:
    plain = connack_situations(client_id="abc")
    for code, situation in ((0x81, Si.MALFORMED_CONNECT), (0x82, Si.CONNECT_PROTOCOL_ERROR),
                            (0x84, Si.UNSUPPORTED_PROTOCOL_VERSION)):
        refused(K.CONNACK, plain, code)
        check("c", K.CONNACK, frozenset({situation}), code)


# ------------------------------------------------------------------ AUTH, others


def test_the_server_continues_authentication_with_0x18_and_accepts_with_0x00() -> None:
    assert allowed(K.AUTH, Si.AUTHENTICATION_CONTINUES) == {0x18}
    assert allowed(K.AUTH, Si.RE_AUTHENTICATION_SUCCEEDS) == {0x00}


def test_a_situation_that_is_not_the_packets_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        allowed(K.SUBACK, Si.MATCHED)


situation_sets = st.sampled_from([r.kind for r in REASON_CODES_5]).flatmap(
    lambda kind: st.tuples(
        st.just(kind),
        st.sets(st.sampled_from([r.situation for r in REASON_CODES_5 if r.kind == kind]),
                min_size=1),
        st.integers(0, 0xFF),
    )
)


@given(situation_sets)
def test_a_code_passes_exactly_when_the_situations_allow_it(
    case: tuple[PacketKind, set[Situation], int]
) -> None:
    kind, facts, code = case
    assert allowed_in(kind, facts) <= PACKET_RULES[kind].codes | {0x8C}
    if code in allowed_in(kind, facts):
        check("c", kind, frozenset(facts), code)
    else:
        with pytest.raises(Violation) as caught:
            check("c", kind, frozenset(facts), code)
        assert caught.value.refs


# -------------------------------------------------- Request Problem Information


def test_the_problem_information_chart_cites_mqtt_5_statements_that_exist() -> None:
    assert PROBLEM_INFORMATION_5.protocol == "5.0"
    assert [r for r in PROBLEM_INFORMATION_5.refs if r not in statements("5.0")] == []
    assert problems(PROBLEM_INFORMATION_5) == []


def test_the_only_missing_row_after_connect_is_the_rule() -> None:
    missing = [
        (state, event)
        for state, event in itertools.product(("requested", "withheld"),
                                              PROBLEM_INFORMATION_5.event_names)
        if not PROBLEM_INFORMATION_5.rows(state, event) and not event.startswith("connect")
    ]
    assert missing == [("withheld", "send_diagnostics_other")]
    with pytest.raises(NoTransition):
        PROBLEM_INFORMATION_5.fire("withheld", "send_diagnostics_other")


def connection(request_problem_information: int | None) -> ProblemInformation5:
    conn = ProblemInformation5("c")
    conn.connect(request_problem_information)
    return conn


@pytest.mark.parametrize("kind", [K.PUBLISH, K.CONNACK, K.DISCONNECT])
def test_with_request_problem_information_0_publish_connack_disconnect_may_explain(
    kind: PacketKind
) -> None:
    connection(0).sent(kind, reason_string=kind != K.PUBLISH, user_properties=True)


@pytest.mark.parametrize(
    "kind", [K.PUBACK, K.PUBREC, K.PUBREL, K.PUBCOMP, K.SUBACK, K.UNSUBACK, K.AUTH]
)
def test_with_request_problem_information_0_other_packets_carry_no_reason_string_or_user_property(
    kind: PacketKind
) -> None:
    conn = connection(0)
    conn.sent(kind, reason_string=False, user_properties=False)
    for reason_string, user_properties in ((True, False), (False, True)):
        with pytest.raises(Violation) as caught:
            conn.sent(kind, reason_string=reason_string, user_properties=user_properties)
        assert caught.value.refs == ("MQTT-3.1.2-29",)


@pytest.mark.parametrize("value", [None, 1])
def test_absent_or_1_lets_every_packet_explain(value: int | None) -> None:
    connection(value).sent(K.SUBACK, reason_string=True, user_properties=True)


def test_request_problem_information_other_than_0_or_1_is_a_protocol_error() -> None:
    with pytest.raises(UsageError, match="0x82"):
        ProblemInformation5("c").connect(2)


def test_nothing_is_judged_before_the_connect_or_after_the_close() -> None:
    with pytest.raises(UsageError, match="before"):
        ProblemInformation5("c").sent(K.CONNACK, reason_string=False, user_properties=False)
    conn = connection(0)
    conn.close()
    with pytest.raises(UsageError, match="closed"):
        conn.sent(K.PUBACK, reason_string=False, user_properties=False)
