"""The Will Message as published (model/v5/will.py): stored with the session, retained
as Will Retain says, its User Properties in order."""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import Properties, Publish, QoS, Will
from mqttref.model.errors import Violation
from mqttref.model.v5.will import (
    WILL_5,
    Will5,
    WillEvent5,
    WillState5,
    check_retained_after_will,
    check_will_delivery,
    retained_after_will,
)

PAIRS = (("b", "2"), ("a", "1"))


def will(retain: bool) -> Will:
    return Will("w/t", b"gone", QoS.AT_LEAST_ONCE, retain, Properties(user_properties=PAIRS))


def delivery(retain: bool, pairs: tuple[tuple[str, str], ...] = PAIRS) -> Publish:
    return Publish("w/t", b"gone", QoS.AT_LEAST_ONCE, retain, False, 1,
                   Properties(user_properties=pairs))


def test_the_will_outlives_its_connection_because_the_session_stores_it() -> None:
    for event in (WillEvent5.DISCONNECT_OTHER, WillEvent5.CONNECTION_CLOSED):
        row = WILL_5.fire(WillState5.STORED, event)
        assert row.target == WillState5.DELAYED
        assert "MQTT-3.1.2-7" in row.refs
    will5 = Will5(delay=5)
    will5.connection_closed(session_expiry=60)
    assert will5.state == WillState5.DELAYED  # kept after the close
    will5.time_passes(5)
    assert will5.may_publish()


def test_will_retain_0_is_delivered_non_retained() -> None:
    check_will_delivery("c", will(False), delivery(False), retain_as_published=True)
    with pytest.raises(Violation) as raised:
        check_will_delivery("c", will(False), delivery(True), retain_as_published=True)
    assert raised.value.refs == ("MQTT-3.1.2-14",)


def test_will_retain_1_is_delivered_retained_where_the_flag_is_kept() -> None:
    check_will_delivery("c", will(True), delivery(True), retain_as_published=True)
    check_will_delivery("c", will(True), delivery(False), retain_as_published=False)
    with pytest.raises(Violation) as raised:
        check_will_delivery("c", will(True), delivery(False), retain_as_published=True)
    assert raised.value.refs == ("MQTT-3.1.2-15",)


def test_the_will_keeps_the_order_of_its_user_properties() -> None:
    with pytest.raises(Violation) as raised:
        check_will_delivery("c", will(False), delivery(False, PAIRS[::-1]),
                            retain_as_published=False)
    assert raised.value.refs == ("MQTT-3.1.3-10",)


def test_only_a_will_with_will_retain_1_becomes_the_retained_message() -> None:
    assert retained_after_will(will(True), b"old") == b"gone"
    assert retained_after_will(will(False), b"old") == b"old"
    check_retained_after_will("c", will(True), None, b"gone")
    with pytest.raises(Violation) as stored_anyway:
        check_retained_after_will("c", will(False), None, b"gone")
    assert stored_anyway.value.refs == ("MQTT-3.1.2-14",)
    with pytest.raises(Violation) as not_stored:
        check_retained_after_will("c", will(True), b"old", b"old")
    assert not_stored.value.refs == ("MQTT-3.1.2-15",)
