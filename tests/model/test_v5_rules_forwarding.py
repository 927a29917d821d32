"""How the server forwards messages under MQTT 5.0 (model/v5/forwarding.py): matching
without normalization, the Ordered Topic, DUP and Packet Identifier, and deliveries
completed after UNSUBSCRIBE."""

from __future__ import annotations

import pytest

from mqttref.model.errors import Violation
from mqttref.model.v5.forwarding import (
    BOM,
    OrderedTopics5,
    StartedDeliveries5,
    check_identity,
    check_match,
    check_topic,
)


def refs_of(raised: pytest.ExceptionInfo[Violation]) -> tuple[str, ...]:
    return raised.value.refs


def test_a_matching_filter_is_accepted() -> None:
    for topic_filter, topic in (("a/+", "a/b"), ("#", "a"), ("$SYS/#", "$SYS/x"),
                                ("a/" + BOM + "b", "a/" + BOM + "b")):
        check_match("c", topic_filter, topic)


def test_a_wildcard_first_filter_never_gets_a_dollar_topic() -> None:
    for topic_filter in ("#", "+/x"):
        with pytest.raises(Violation) as raised:
            check_match("c", topic_filter, "$SYS/x")
        assert refs_of(raised) == ("MQTT-4.7.2-1",)


def test_matching_does_not_normalize_or_strip_the_bom() -> None:
    with pytest.raises(Violation) as raised:
        check_match("c", "caf\u00e9", "cafe\u0301")  # NFC against NFD
    assert refs_of(raised) == ("MQTT-4.7.3-4",)
    with pytest.raises(Violation) as stripped:
        check_match("c", "a/b", "a/" + BOM + "b")
    assert refs_of(stripped) == ("MQTT-1.5.4-3", "MQTT-4.7.3-4")
    with pytest.raises(Violation) as unrelated:
        check_match("c", "a/b", "x/y")
    assert refs_of(unrelated) == ("MQTT-3.3.2-3",)


def test_the_forwarded_topic_name_is_the_published_one() -> None:
    check_topic("c", BOM + "t", BOM + "t")
    with pytest.raises(Violation) as raised:
        check_topic("c", BOM + "t", "t")
    assert refs_of(raised) == ("MQTT-1.5.4-3",)
    with pytest.raises(Violation) as normalized:
        check_topic("c", "cafe\u0301", "caf\u00e9")
    assert refs_of(normalized) == ("MQTT-4.7.3-4",)


def test_packet_identifier_and_dup_follow_the_delivery_not_the_publisher() -> None:
    check_identity("c", qos=0, packet_id=None, dup=False, retransmission=False)
    check_identity("c", qos=1, packet_id=4, dup=False, retransmission=False)
    check_identity("c", qos=2, packet_id=4, dup=True, retransmission=True)
    cases = (
        ({"qos": 0, "packet_id": 3, "dup": False, "retransmission": False}, "MQTT-2.2.1-2"),
        ({"qos": 1, "packet_id": 0, "dup": False, "retransmission": False}, "MQTT-2.2.1-4"),
        ({"qos": 1, "packet_id": None, "dup": False, "retransmission": False}, "MQTT-2.2.1-4"),
        # The publisher's PUBLISH was a DUP re-send; the first forwarded copy is not.
        ({"qos": 1, "packet_id": 5, "dup": True, "retransmission": False}, "MQTT-3.3.1-3"),
        ({"qos": 1, "packet_id": 5, "dup": False, "retransmission": True}, "MQTT-3.3.1-1"),
    )
    for facts, ref in cases:
        with pytest.raises(Violation) as raised:
            check_identity("c", **facts)
        assert ref in refs_of(raised)


def test_non_shared_deliveries_keep_the_publishers_order_per_topic_and_qos() -> None:
    ordered = OrderedTopics5()
    ordered.forwarded("p", "t", 1, 1)
    ordered.forwarded("p", "u", 1, 3)
    ordered.forwarded("p", "t", 0, 2)  # another QoS is another order
    ordered.forwarded("p", "t", 1, 4)
    with pytest.raises(Violation) as raised:
        ordered.forwarded("p", "t", 1, 2)
    assert refs_of(raised) == ("MQTT-4.6.0-5", "MQTT-4.6.0-6")


def test_shared_deliveries_carry_no_order_promise() -> None:
    ordered = OrderedTopics5()
    ordered.forwarded("p", "t", 1, 4, shared=True)
    ordered.forwarded("p", "t", 1, 2, shared=True)


def test_a_qos_2_delivery_started_before_unsubscribe_is_completed() -> None:
    started = StartedDeliveries5()
    started.sent(1, 2, "a/b")
    started.sent(2, 1, "z")
    started.client_acknowledged("PUBREC", 1)
    started.unsubscribe(["a/#"])
    assert [o.refs for o in started.obligations()] == [("MQTT-3.10.4-3",)]
    with pytest.raises(Violation) as raised:
        started.abandoned(1)
    assert refs_of(raised) == ("MQTT-3.10.4-3",)
    started.abandoned(2)  # its subscription stays: other rules judge it
    started.pubrel(1)
    assert started.obligations() == []
    started.client_acknowledged("PUBCOMP", 1)
    assert 1 not in started.started
