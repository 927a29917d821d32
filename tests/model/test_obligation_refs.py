"""What the server still owes names the statement that makes it owed.

A missing close names why the close is due (the connection chart's transition
into ``close_due``), not [MQTT-4.8.0-1] whatever the cause; the one copy owed for
overlapping subscriptions names [MQTT-3.3.5-1]. Fault hunts and ``mqttref check``
report these ids, so a broker that keeps a taken-over connection open is found
breaking [MQTT-3.1.4-2], not a protocol-violation rule.
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    ProtocolLevel,
    PubAck,
    Publish,
    PubRec,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Will,
)
from mqttref.model import BrokerModel, Send, TimePasses, Violation
from tests.model.helpers import connect, publish, subscribe


def owed_refs(model: BrokerModel, client: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(o.what, o.refs) for o in model.obligations(client)]


def test_a_close_owed_for_a_takeover_names_the_takeover_rule() -> None:
    model = BrokerModel()
    connect(model, "old", client_id="x")
    model.apply(Send("new", Connect(ProtocolLevel.MQTT_3_1_1, "x")))
    model.observe("new", ConnAck(False, 0))
    assert owed_refs(model, "old") == [("close (takeover)", ("MQTT-3.1.4-2",))]


def test_a_close_owed_for_keep_alive_names_the_keep_alive_rule() -> None:
    model = BrokerModel()
    connect(model, "k", keep_alive=2)
    model.apply(TimePasses(3.0 + model.keep_alive_grace + 0.1))
    assert owed_refs(model, "k") == [("close (keep-alive)", ("MQTT-3.1.2-24",))]


def test_a_close_owed_for_a_second_connect_names_the_second_connect_rule() -> None:
    model = BrokerModel()
    connect(model, "a")
    model.apply(Send("a", Connect(ProtocolLevel.MQTT_3_1_1, "a")))
    assert owed_refs(model, "a") == [("close (connect)", ("MQTT-3.1.0-2",))]


def test_a_close_owed_for_a_refused_connect_names_the_refusal_rules() -> None:
    model = BrokerModel()
    model.apply(Send("a", Connect(ProtocolLevel.MQTT_3_1_1, "", clean_session=False)))
    model.observe("a", ConnAck(False, 2))  # identifier rejected [MQTT-3.1.3-8]
    assert owed_refs(model, "a") == [("close (connack_refused)", ("MQTT-3.2.2-5", "MQTT-3.1.4-5"))]


def test_the_copy_owed_for_overlapping_subscriptions_names_the_overlap_rule() -> None:
    model = BrokerModel()
    connect(model, "a")
    subscribe(model, "a", "t/#", 1)
    subscribe(model, "a", "t/+", 0, packet_id=2)
    subscribe(model, "a", "u", 1, packet_id=3)
    connect(model, "p")
    model.apply(Send("p", publish("t/x", b"m", 1, 1)))
    model.observe("p", PubAck(1))
    model.apply(Send("p", publish("u", b"n", 1, 2)))
    model.observe("p", PubAck(2))
    assert owed_refs(model, "a") == [
        ("PUBLISH 't/x' b'm' QoS [1] retain=0", ("MQTT-4.5.0-1", "MQTT-3.3.5-1")),
        ("PUBLISH 'u' b'n' QoS [1] retain=0", ("MQTT-4.5.0-1",)),
    ]


def test_a_will_owed_through_overlapping_subscriptions_names_every_rule_it_may_break(
) -> None:
    """No copy came: never published [MQTT-3.1.2-8], or published and lost
    [MQTT-4.5.0-1], and owed at the highest QoS [MQTT-3.3.5-1]."""
    model = BrokerModel()
    connect(model, "a")
    subscribe(model, "a", "w/#", 1)
    subscribe(model, "a", "#", 0, packet_id=2)
    connect(model, "k", keep_alive=1, will=Will("w/k", b"gone", qos=QoS.AT_LEAST_ONCE))
    model.apply(TimePasses(1.5 + model.keep_alive_grace + 0.1))
    assert owed_refs(model, "a") == [
        ("PUBLISH 'w/k' b'gone' QoS [1] retain=0", ("MQTT-3.1.2-8", "MQTT-4.5.0-1", "MQTT-3.3.5-1"))
    ]


def test_a_grant_above_the_request_names_the_downgrade_rule_not_the_reserved_codes() -> None:
    model = BrokerModel()
    connect(model, "a")
    model.apply(Send("a", Subscribe(1, (Subscription("t", QoS.AT_MOST_ONCE),))))
    with pytest.raises(Violation) as raised:
        model.observe("a", SubAck(1, (QoS.AT_LEAST_ONCE,)))
    assert raised.value.refs == ("MQTT-3.8.4-6",)


def test_a_reserved_return_code_names_the_reserved_codes_rule() -> None:
    model = BrokerModel()
    connect(model, "a")
    model.apply(Send("a", Subscribe(1, (Subscription("t", QoS.AT_MOST_ONCE),))))
    with pytest.raises(Violation) as raised:
        model.observe("a", SubAck(1, (0x03,)))
    assert raised.value.refs == ("MQTT-3.9.3-2",)


def test_a_second_delivery_of_a_qos2_message_names_exactly_once() -> None:
    model = BrokerModel()
    connect(model, "a")
    subscribe(model, "a", "t", 2)
    connect(model, "p")
    model.apply(Send("p", publish("t", b"m", 2, 1)))
    model.observe("p", PubRec(1))
    model.observe("a", Publish("t", b"m", QoS.EXACTLY_ONCE, packet_id=5))
    with pytest.raises(Violation) as raised:
        model.observe("a", Publish("t", b"m", QoS.EXACTLY_ONCE, packet_id=6))
    assert raised.value.refs == ("MQTT-4.3.3-2",)


def test_a_retained_message_owed_to_a_new_subscription_names_the_retained_rule() -> None:
    model = BrokerModel()
    connect(model, "p")
    model.apply(Send("p", Publish("r", b"kept", QoS.AT_LEAST_ONCE, retain=True, packet_id=1)))
    model.observe("p", PubAck(1))
    connect(model, "a")
    subscribe(model, "a", "r", 1)
    assert owed_refs(model, "a") == [("PUBLISH 'r' b'kept' QoS [1] retain=1", ("MQTT-3.3.1-6",))]


def test_a_qos0_delivery_with_two_more_bytes_names_the_packet_id_rule() -> None:
    model = BrokerModel()
    connect(model, "a")
    subscribe(model, "a", "t", 0)
    connect(model, "p")
    model.apply(Send("p", Publish("t", b"zero")))
    with pytest.raises(Violation) as raised:
        model.observe("a", Publish("t", b"\x00\x07zero"))
    assert raised.value.refs == ("MQTT-2.3.1-5",)


def test_the_overlap_copy_owed_after_a_lower_copy_came_names_the_overlap_rule_alone() -> None:
    """A copy at the lower QoS came: the message was routed [MQTT-4.5.0-1] held, only
    the copy at the highest QoS is missing [MQTT-3.3.5-1]."""
    model = BrokerModel()
    connect(model, "a")
    subscribe(model, "a", "t/#", 1)
    subscribe(model, "a", "t/+", 0, packet_id=2)
    connect(model, "p")
    model.apply(Send("p", publish("t/x", b"m", 1, 1)))
    model.observe("p", PubAck(1))
    model.observe("a", Publish("t/x", b"m"))  # the QoS 0 copy for "t/+"
    assert owed_refs(model, "a") == [("PUBLISH 't/x' b'm' QoS [1] retain=0", ("MQTT-3.3.5-1",))]
