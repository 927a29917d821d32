"""SUBACK and UNSUBACK under MQTT 5.0 (model/v5/answers.py): one answer per request,
under its Packet Identifier, one Reason Code per Topic Filter, in order."""

from __future__ import annotations

import pytest

from mqttref.model.errors import Violation
from mqttref.model.v5.answers import (
    Answers5,
    check_codes,
    subscriptions_in_sequence,
    unsubscribe_in_sequence,
)
from mqttref.model.v5.reason_codes import (
    PacketKind,
    Situation,
    suback_situations,
    unsuback_situations,
)

SUBACK, UNSUBACK = PacketKind.SUBACK, PacketKind.UNSUBACK
QOS0 = suback_situations(requested_qos=0)
QOS2 = suback_situations(requested_qos=2)
GONE = unsuback_situations(existed=False)
THERE = unsuback_situations(existed=True)


def refs_of(error: pytest.ExceptionInfo[Violation]) -> set[str]:
    return set(error.value.refs)


def subscribed(*situations: frozenset[Situation]) -> Answers5:
    answers = Answers5()
    answers.request(SUBACK, 7, [f"f{i}" for i in range(len(situations))], situations)
    return answers


def test_a_suback_answering_every_filter_in_order_is_accepted() -> None:
    answers = subscribed(QOS0, QOS2)
    answers.answer(SUBACK, 7, [0x00, 0x02])
    assert answers.waiting == []


def test_a_suback_under_another_packet_identifier_answers_nothing() -> None:
    answers = subscribed(QOS0)
    with pytest.raises(Violation) as raised:
        answers.answer(SUBACK, 8, [0x00])
    assert {"MQTT-2.2.1-6", "MQTT-3.8.4-2"} <= refs_of(raised)


def test_a_second_suback_for_one_subscribe_is_refused() -> None:
    answers = subscribed(QOS0, QOS2)
    answers.answer(SUBACK, 7, [0x00, 0x01])
    with pytest.raises(Violation) as raised:
        answers.answer(SUBACK, 7, [0x00])
    assert refs_of(raised) == {"MQTT-3.8.4-5"}


def test_a_suback_missing_a_filter_code_is_refused() -> None:
    with pytest.raises(Violation) as raised:
        subscribed(QOS0, QOS2).answer(SUBACK, 7, [0x00])
    assert "MQTT-3.8.4-6" in refs_of(raised)


def test_codes_that_fit_only_in_another_order_break_the_order() -> None:
    # QoS 2 granted to the filter that asked for 0, QoS 0 to the one that asked for 2.
    with pytest.raises(Violation) as raised:
        subscribed(QOS0, QOS2).answer(SUBACK, 7, [0x02, 0x00])
    assert refs_of(raised) == {"MQTT-3.9.3-1"}


def test_a_code_no_order_explains_is_judged_by_its_situation() -> None:
    with pytest.raises(Violation) as raised:
        subscribed(QOS0, QOS0).answer(SUBACK, 7, [0x00, 0x02])
    assert "MQTT-3.9.3-1" not in refs_of(raised)
    assert "MQTT-3.8.4-7" in refs_of(raised)


def test_unsuback_codes_follow_the_unsubscribe_order() -> None:
    check_codes("c", UNSUBACK, [THERE, GONE], [0x00, 0x11])
    with pytest.raises(Violation) as raised:
        check_codes("c", UNSUBACK, [THERE, GONE], [0x11, 0x00])
    assert refs_of(raised) == {"MQTT-3.11.3-1"}


def test_one_unsuback_answers_an_unsubscribe_of_several_filters() -> None:
    answers = Answers5()
    answers.request(UNSUBACK, 3, ["a", "b"], [THERE, GONE])
    with pytest.raises(Violation) as raised:
        answers.answer(UNSUBACK, 3, [0x00])
    assert {"MQTT-3.11.3-2", "MQTT-3.10.4-6"} <= refs_of(raised)
    answers.answer(UNSUBACK, 3, [0x00, 0x11])
    with pytest.raises(Violation) as again:
        answers.answer(UNSUBACK, 3, [0x11])
    assert refs_of(again) == {"MQTT-3.10.4-6"}


def test_a_filter_twice_in_one_subscribe_keeps_its_later_options() -> None:
    assert subscriptions_in_sequence([("a", 1), ("b", 0), ("a", 2)]) == {"b": 0, "a": 2}


def test_a_filter_twice_in_one_unsubscribe_deletes_once() -> None:
    situations = unsubscribe_in_sequence(["a", "a", "z"], {"a"})
    assert situations == (THERE, GONE, GONE)
    check_codes("c", UNSUBACK, situations, [0x00, 0x11, 0x11])
    with pytest.raises(Violation):
        check_codes("c", UNSUBACK, situations, [0x00, 0x00, 0x11])
