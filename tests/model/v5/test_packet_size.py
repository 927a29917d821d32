"""Maximum Packet Size (3.1.2.11.4, 3.2.2.3.6) as the model judges it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.model.errors import UsageError, Violation
from mqttref.model.v5.packet_size import (
    PACKET_SIZE_5,
    PROBLEM_INFORMATION,
    PROTOCOL_LIMIT,
    SERVER_PACKETS,
    PacketSizeLimit,
    SizeOutcome,
)
from mqttref.model.v5.reactions import Reaction
from mqttref.oracle.statements import statements
from mqttref.statecharts.build import problems

SEND, SEND_TRIMMED, DISCARD = SizeOutcome.SEND, SizeOutcome.SEND_TRIMMED, SizeOutcome.DISCARD


def test_the_chart_passes_the_graph_checks_and_cites_only_5_0_statements() -> None:
    assert problems(PACKET_SIZE_5) == []
    assert PACKET_SIZE_5.protocol == "5.0"
    assert [ref for ref in PACKET_SIZE_5.refs if ref not in statements("5.0")] == []


def test_the_packet_statements_cited_all_speak_of_the_maximum_packet_size() -> None:
    known = statements("5.0")
    for refs in PROBLEM_INFORMATION.values():
        for ref in refs:
            assert "Maximum Packet Size" in known[ref].text, ref


def test_a_maximum_of_0_is_a_protocol_error_and_absent_means_the_protocols_own_limit() -> None:
    """3.1.2.11.4"""
    with pytest.raises(UsageError, match="Protocol Error"):
        PacketSizeLimit.server_to_client(0)
    assert PacketSizeLimit.server_to_client(None).maximum == PROTOCOL_LIMIT == 268_435_460


# Server to Client: the Server is judged.


def test_a_packet_within_the_clients_maximum_is_sent_and_may_still_drop_its_reason_string() -> None:
    limit = PacketSizeLimit.server_to_client(100)
    assert limit.outcomes("PUBACK", 60, 4) == {SEND, SEND_TRIMMED}
    assert limit.outcomes("PUBACK", 100, 4) == {SEND, SEND_TRIMMED}
    limit.sent("PUBACK", 100, problem_information=True)


def test_the_server_must_not_send_a_packet_above_the_clients_maximum() -> None:
    limit = PacketSizeLimit.server_to_client(100, client="c")
    with pytest.raises(Violation) as raised:
        limit.sent("SUBACK", 101)
    assert raised.value.refs == ("MQTT-3.1.2-24",)


@pytest.mark.parametrize("kind", sorted(PROBLEM_INFORMATION))
def test_a_reason_string_or_user_property_is_left_out_before_the_limit_is_passed(
    kind: str,
) -> None:
    limit = PacketSizeLimit.server_to_client(50)
    assert limit.outcomes(kind, 120, 40) == {SEND_TRIMMED}
    with pytest.raises(Violation) as raised:
        limit.sent(kind, 120, problem_information=True)
    assert raised.value.refs == ("MQTT-3.1.2-24", *PROBLEM_INFORMATION[kind])


def test_a_publish_too_large_is_discarded_and_never_trimmed() -> None:
    """[MQTT-3.1.2-25]; its User Properties are the message's [MQTT-3.3.2-17]."""
    limit = PacketSizeLimit.server_to_client(100)
    assert limit.outcomes("PUBLISH", 101, 40) == {DISCARD}
    assert limit.outcomes("PUBLISH", 100) == {SEND}


def test_a_packet_too_large_even_bare_may_only_go_unsent() -> None:
    """A SUBACK for many filters: [MQTT-3.1.2-24] forbids sending it; 3.1.2-25 drops it."""
    assert PacketSizeLimit.server_to_client(100).outcomes("SUBACK", 300, 150) == {DISCARD}


def test_a_fitting_packet_has_no_size_reason_to_go_unsent() -> None:
    assert DISCARD not in PacketSizeLimit.server_to_client(100).outcomes("CONNACK", 150, 90)


def test_packets_no_server_sends_or_sizes_no_packet_has_are_refused_as_input() -> None:
    limit = PacketSizeLimit.server_to_client(100)
    with pytest.raises(UsageError):
        limit.outcomes("SUBSCRIBE", 10)
    with pytest.raises(UsageError):
        limit.outcomes("PUBACK", 10, 20)
    with pytest.raises(UsageError):
        limit.received(10)


# Client to Server: the Client is at fault, the Server is judged on its reaction.


def test_a_client_packet_above_the_servers_maximum_is_closed_on_with_0x95() -> None:
    """3.2.2.3.6 and 4.13.1 [MQTT-4.13.1-1]; the Client broke [MQTT-3.2.2-15]."""
    limit = PacketSizeLimit.client_to_server(100)
    assert limit.received(100) is None
    reactions = limit.received(101)
    assert reactions is not None
    assert reactions.reason_code == 0x95
    assert reactions.allowed == {Reaction.DISCONNECT_AND_CLOSE, Reaction.CLOSE}
    reactions.judge(reactions.classify(closed=True, disconnect_code=0x95), client="c")
    with pytest.raises(Violation) as raised:
        reactions.judge(Reaction.HANDLE, client="c")
    assert raised.value.refs == ("MQTT-4.13.1-1",)
    with pytest.raises(UsageError):
        limit.sent("PUBLISH", 10)


def test_without_a_server_maximum_only_the_protocol_limits_a_client_packet() -> None:
    assert PacketSizeLimit.client_to_server(None).received(10_000_000) is None


# Property: whatever the sizes, the Server always has an allowed outcome, and
# never one that puts a packet above the limit on the wire.


@given(
    maximum=st.integers(2, 500),
    kind=st.sampled_from(sorted(SERVER_PACKETS)),
    size=st.integers(2, 1000),
    cut=st.integers(0, 1000),
)
def test_the_server_always_has_a_way_that_keeps_within_the_limit(
    maximum: int, kind: str, size: int, cut: int
) -> None:
    limit = PacketSizeLimit.server_to_client(maximum)
    bare = max(2, size - cut)
    outcomes = limit.outcomes(kind, size, bare)
    smallest = bare if kind in PROBLEM_INFORMATION else size
    assert outcomes
    assert (SEND in outcomes) == (size <= maximum)
    assert (SEND_TRIMMED in outcomes) == (kind in PROBLEM_INFORMATION and bare < size
                                          and bare <= maximum)
    assert (DISCARD in outcomes) == (smallest > maximum)
    if size > maximum:
        with pytest.raises(Violation):
            limit.sent(kind, size)
    else:
        limit.sent(kind, size)
