"""The server as a QoS 2 receiver under MQTT 5.0 (model/v5/qos2_receiver.py): after a
refusing PUBREC the next PUBLISH is new; an expired message still completes."""

from __future__ import annotations

import pytest

from mqttref.model.errors import Violation
from mqttref.model.v5.qos2_receiver import QOS2_RECEIVER_5, Qos2Receiver5, Qos2ReceiverState5
from mqttref.statecharts.build import problems


def test_the_chart_is_well_formed() -> None:
    assert problems(QOS2_RECEIVER_5) == []


def test_after_a_refusing_pubrec_the_next_publish_is_a_new_message() -> None:
    flow = Qos2Receiver5(7)
    flow.publish()
    flow.pubrec(0x87)
    assert flow.state == Qos2ReceiverState5.FREE
    assert flow.obligations() == []
    flow.publish()  # the same identifier: a new Application Message, owed a PUBREC
    assert flow.obligations()
    flow.pubrec(0x00)
    flow.pubrel()
    flow.pubcomp(0x00)
    assert flow.state == Qos2ReceiverState5.FREE


def test_pubcomp_0x92_after_accepting_the_message_that_followed_a_refusal() -> None:
    flow = Qos2Receiver5(7)
    flow.publish()
    flow.pubrec(0x80)
    flow.publish()
    flow.pubrec(0x00)
    flow.pubrel()
    with pytest.raises(Violation) as raised:
        flow.pubcomp(0x92)  # still holding the refused exchange as the identifier's last word
    assert "MQTT-4.3.3-9" in raised.value.refs


def test_an_expired_message_still_completes_its_acknowledgements() -> None:
    flow = Qos2Receiver5(3)
    flow.publish()
    flow.pubrec(0x00)
    flow.message_expired()
    flow.pubrel()
    assert "MQTT-4.3.3-13" in flow.obligations()[0].refs
    flow.pubcomp(0x00)


def test_dropping_the_exchange_of_an_expired_message_is_a_violation() -> None:
    flow = Qos2Receiver5(3)
    flow.publish()
    flow.pubrec(0x00)
    flow.message_expired()
    flow.pubrel()
    with pytest.raises(Violation) as raised:
        flow.pubcomp(0x92)
    assert "MQTT-4.3.3-13" in raised.value.refs


def test_a_pubrel_for_no_exchange_may_get_either_pubcomp() -> None:
    for code in (0x00, 0x92):
        flow = Qos2Receiver5(9)
        flow.pubrel()
        flow.pubcomp(code)
        assert flow.state == Qos2ReceiverState5.FREE


def test_a_pubrec_nobody_asked_for_is_a_violation() -> None:
    with pytest.raises(Violation):
        Qos2Receiver5(1).pubrec(0x00)
