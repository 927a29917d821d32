"""Flow control (4.9) as the model runs it: Receive Maximum is the sender's send quota."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.v5.flow_control import (
    FLOW_CONTROL_5,
    Acknowledgement,
    QuotaState,
    SendQuota,
)
from mqttref.model.v5.reactions import Reaction
from mqttref.oracle.statements import statements
from mqttref.statecharts.build import problems


def test_the_chart_passes_the_graph_checks_and_cites_only_5_0_statements() -> None:
    assert problems(FLOW_CONTROL_5) == []
    assert FLOW_CONTROL_5.protocol == "5.0"
    assert [ref for ref in FLOW_CONTROL_5.refs if ref not in statements("5.0")] == []


def test_a_receive_maximum_of_0_is_a_protocol_error_and_absent_means_65535() -> None:
    """3.1.2.11.3: 0 is a Protocol Error; absent, the value is 65,535."""
    with pytest.raises(UsageError, match="Protocol Error"):
        SendQuota.server_to_client(0)
    assert SendQuota.server_to_client(None).quota == 65_535


# Server to Client: the Server is judged.


def test_the_server_may_have_receive_maximum_publishes_unacknowledged_and_not_one_more() -> None:
    quota = SendQuota.server_to_client(2, client="c")
    quota.publish(1, 1)
    quota.publish(2, 2)
    assert (quota.state, quota.quota) == (QuotaState.EXHAUSTED, 0)
    with pytest.raises(Violation) as raised:
        quota.publish(1, 3)
    assert set(raised.value.refs) == {"MQTT-3.3.4-9", "MQTT-4.9.0-2"}
    assert quota.state == QuotaState.EXHAUSTED


def test_qos0_publishes_take_no_quota_and_may_go_on_at_zero() -> None:
    """[MQTT-4.9.0-2]: only QoS > 0 is counted; QoS 0 MAY continue."""
    quota = SendQuota.server_to_client(1)
    quota.publish(0)
    quota.publish(1, 1)
    assert quota.may_publish(0)
    assert not quota.may_publish(1)
    quota.publish(0)
    assert quota.state == QuotaState.EXHAUSTED


@pytest.mark.parametrize(
    ("packet", "reason_code"),
    [("PUBACK", 0x00), ("PUBACK", 0x80), ("PUBCOMP", 0x00), ("PUBCOMP", 0x92), ("PUBREC", 0x80)],
)
def test_an_acknowledgement_that_ends_the_flow_returns_quota_whatever_its_reason_code(
    packet: str, reason_code: int
) -> None:
    quota = SendQuota.server_to_client(1)
    quota.publish(2 if packet != "PUBACK" else 1, 9)
    quota.acknowledged(ACKS[packet], 9, reason_code)
    assert (quota.state, quota.quota) == (QuotaState.OPEN, 1)
    quota.publish(1, 10)


def test_a_pubrec_below_0x80_returns_no_quota_until_the_pubcomp() -> None:
    quota = SendQuota.server_to_client(1)
    quota.publish(2, 4)
    quota.acknowledged("PUBREC", 4, 0x00)
    assert quota.refusal(1) is not None
    quota.released(4)
    quota.acknowledged("PUBCOMP", 4)
    assert quota.refusal(1) is None


def test_the_quota_is_never_returned_above_receive_maximum() -> None:
    """4.9: a PUBCOMP for a PUBREL re-sent on a new connection returns nothing."""
    quota = SendQuota.server_to_client(2)
    quota.acknowledged("PUBCOMP", 77)
    assert quota.quota == 2
    quota.publish(1, 1)
    quota.publish(1, 2)
    with pytest.raises(Violation):
        quota.publish(1, 3)


def test_every_other_packet_flows_at_zero_quota() -> None:
    """[MQTT-4.9.0-3] [MQTT-3.3.4-10]"""
    quota = SendQuota.server_to_client(1)
    quota.publish(2, 1)
    quota.acknowledged("PUBREC", 1)
    row = FLOW_CONTROL_5.fire(quota.state, "other_packet")
    assert row.refs == ("MQTT-4.9.0-3", "MQTT-3.3.4-10")
    quota.released(1)
    quota.other_packet()
    assert quota.state == QuotaState.EXHAUSTED


def test_the_quota_does_not_outlive_the_network_connection() -> None:
    """4.9: re-initialised with each connection; not part of the session state."""
    quota = SendQuota.server_to_client(1)
    quota.publish(1, 1)
    quota.closed()
    assert quota.state == QuotaState.CLOSED
    with pytest.raises(NoTransition):
        quota.publish(1, 2)
    assert SendQuota.server_to_client(1).may_publish(1)


# Client to Server: the Client is at fault, the Server is judged on its reaction.


def test_a_client_within_the_servers_receive_maximum_gets_no_special_reaction() -> None:
    quota = SendQuota.client_to_server(2)
    assert quota.publish(1, 1) is None
    assert quota.publish(2, 2) is None


def test_a_client_beyond_the_receive_maximum_may_get_disconnect_0x93() -> None:
    """3.3.4 and 4.13.1: 0x93 is a Protocol Error's code; the Server MUST close
    [MQTT-4.13.1-1] once it detects it, but PUBACKs may be crossing the excess PUBLISH."""
    quota = SendQuota.client_to_server(1, client="c")
    quota.publish(1, 1)
    reactions = quota.publish(1, 2)
    assert reactions is not None
    assert reactions.reason_code == 0x93
    assert reactions.refs == ("MQTT-4.13.1-1",)
    assert reactions.allowed == {Reaction.DISCONNECT_AND_CLOSE, Reaction.CLOSE, Reaction.HANDLE}
    quota.server_disconnected(0x93)
    assert quota.state == QuotaState.CLOSED


def test_an_excess_the_server_cannot_have_missed_leaves_it_only_the_close() -> None:
    """QoS 2 PUBLISHes whose PUBREC the Client holds and whose PUBREL it has not
    sent: the Server cannot have sent their PUBCOMP, so it counts them all."""
    quota = SendQuota.client_to_server(2, client="c")
    for packet_id in (1, 2):
        quota.publish(2, packet_id)
        quota.acknowledged("PUBREC", packet_id)
    reactions = quota.publish(1, 3)
    assert reactions is not None
    assert reactions.allowed == {Reaction.DISCONNECT_AND_CLOSE, Reaction.CLOSE}
    reactions.judge(reactions.classify(closed=True, disconnect_code=0x93), client="c")
    reactions.judge(reactions.classify(closed=True), client="c")
    with pytest.raises(Violation) as raised:
        reactions.judge(reactions.classify(closed=False), client="c")
    assert raised.value.refs == ("MQTT-4.13.1-1",)


def test_a_pubrel_sent_makes_the_excess_uncertain_again() -> None:
    quota = SendQuota.client_to_server(1)
    quota.publish(2, 1)
    quota.acknowledged("PUBREC", 1)
    quota.released(1)
    reactions = quota.publish(2, 2)
    assert reactions is not None
    assert Reaction.HANDLE in reactions.allowed


def test_the_server_may_not_disconnect_0x93_a_client_that_never_exceeded() -> None:
    quota = SendQuota.client_to_server(2, client="c")
    quota.publish(1, 1)
    quota.publish(1, 2)
    with pytest.raises(Violation) as raised:
        quota.server_disconnected(0x93)
    assert raised.value.refs == ("MQTT-3.3.4-1",)


def test_a_0x93_stays_founded_after_the_acknowledgements_come_back() -> None:
    """The Server decided while it counted the excess; its PUBACKs may arrive first."""
    quota = SendQuota.client_to_server(1)
    quota.publish(1, 1)
    quota.publish(1, 2)
    quota.acknowledged("PUBACK", 1)
    quota.acknowledged("PUBACK", 2)
    assert quota.state == QuotaState.OPEN
    quota.server_disconnected(0x93)
    assert quota.state == QuotaState.CLOSED


def test_a_qos2_publish_refused_by_pubrec_may_still_count_for_the_servers_0x93() -> None:
    """3.3.4 counts the PUBLISHes 'where it has not sent a PUBACK or PUBCOMP'."""
    quota = SendQuota.client_to_server(1)
    quota.publish(2, 1)
    quota.acknowledged("PUBREC", 1, 0x80)
    assert quota.publish(1, 2) is None  # within the quota, by 4.9's arithmetic
    quota.server_disconnected(0x93)


def test_another_disconnect_code_just_closes_the_quota() -> None:
    quota = SendQuota.client_to_server(1)
    quota.server_disconnected(0x8B)
    assert quota.state == QuotaState.CLOSED
    with pytest.raises(NoTransition):
        quota.server_disconnected(0x93)


# Properties: the model against an independent count of the same events.

Action = tuple[str, int, int, int]
"""(what, QoS, Packet Identifier, Reason Code): what is "PUBLISH", "PUBREL" or an ack."""
ACKS: dict[str, Acknowledgement] = {"PUBACK": "PUBACK", "PUBREC": "PUBREC", "PUBCOMP": "PUBCOMP"}
ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["PUBLISH", "PUBLISH", "PUBREL", *ACKS]),
        st.integers(0, 2),
        st.integers(1, 6),
        st.sampled_from([0x00, 0x10, 0x80, 0x87]),
    ),
    max_size=40,
)


def returns_quota(what: str, reason_code: int) -> bool:
    """4.9: PUBACK and PUBCOMP whatever their code; PUBREC from 0x80."""
    return what in ("PUBACK", "PUBCOMP") or (what == "PUBREC" and reason_code >= 0x80)


@given(maximum=st.integers(1, 4), actions=ACTIONS)
def test_a_server_is_refused_exactly_the_publishes_that_would_pass_its_quota(
    maximum: int, actions: list[Action]
) -> None:
    quota = SendQuota.server_to_client(maximum)
    used, in_flight = 0, set[int]()
    for what, qos, packet_id, code in actions:
        if what == "PUBLISH":
            assert quota.may_publish(qos) == (qos == 0 or used < maximum)
            if qos > 0 and packet_id not in in_flight and used == maximum:
                with pytest.raises(Violation):
                    quota.publish(qos, packet_id)
                continue
            quota.publish(qos, packet_id)
            if qos > 0 and packet_id not in in_flight:
                used += 1
                in_flight.add(packet_id)
        elif what == "PUBREL":
            quota.released(packet_id)
        else:
            quota.acknowledged(ACKS[what], packet_id, code)
            if returns_quota(what, code):
                used = max(0, used - 1)
                in_flight.discard(packet_id)
        assert quota.quota == maximum - used
        assert quota.state == (QuotaState.OPEN if used < maximum else QuotaState.EXHAUSTED)


@given(maximum=st.integers(1, 3), actions=ACTIONS)
def test_a_client_beyond_the_quota_always_leaves_the_server_the_close_and_0x93(
    maximum: int, actions: list[Action]
) -> None:
    quota = SendQuota.client_to_server(maximum)
    used, refused, peak = 0, 0, 0
    unanswered: dict[int, int] = {}
    holding = set[int]()  # QoS 2: PUBREC below 0x80 received, no PUBREL sent
    for what, qos, packet_id, code in actions:
        if what == "PUBLISH":
            certain = len(holding) >= maximum
            reactions = quota.publish(qos, packet_id)
            if qos == 0 or packet_id in unanswered:
                assert reactions is None
                continue
            used += 1
            unanswered[packet_id] = qos
            peak = max(peak, len(unanswered) + refused)
            assert (reactions is not None) == (used > maximum)
            if reactions is not None:
                assert {Reaction.DISCONNECT_AND_CLOSE, Reaction.CLOSE} <= reactions.allowed
                assert (Reaction.HANDLE in reactions.allowed) == (not certain)
        elif what == "PUBREL":
            quota.released(packet_id)
            holding.discard(packet_id)
        else:
            quota.acknowledged(ACKS[what], packet_id, code)
            if not returns_quota(what, code):
                if unanswered.get(packet_id) == 2:
                    holding.add(packet_id)
                continue
            used = max(0, used - 1)
            refused += what == "PUBREC" and unanswered.get(packet_id) == 2
            unanswered.pop(packet_id, None)
            holding.discard(packet_id)
    if peak > maximum:
        quota.server_disconnected(0x93)
    else:
        with pytest.raises(Violation):
            quota.server_disconnected(0x93)
