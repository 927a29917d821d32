"""The main flows of MQTT 3.1.1, played against the model, each naming its statements.

Each test drives the model with client events and feeds it the packets a
correct server sends; where a server could go wrong, the test also shows the
model rejecting the wrong packet (so the scenario can fail).
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    ProtocolLevel,
    PubAck,
    PubComp,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from mqttref.model import BrokerModel, Closed, Drop, Send, SendMalformed, TimePasses, Violation
from tests.model.helpers import connect, publish, subscribe


@pytest.fixture
def model() -> BrokerModel:
    return BrokerModel()


def owed(model: BrokerModel, client: str | None = None) -> list[str]:
    return [o.what for o in model.obligations(client)]


def test_connack_is_owed_and_must_be_the_first_packet(model: BrokerModel) -> None:
    """[MQTT-3.2.0-1] [MQTT-3.1.4-4]"""
    model.apply(Send("a", Connect(ProtocolLevel.MQTT_3_1_1, "a")))
    assert owed(model) == ["CONNACK"]
    with pytest.raises(Violation) as caught:
        model.observe("a", PingResp())
    assert "MQTT-3.2.0-1" in caught.value.refs
    model.observe("a", ConnAck(False, 0))
    assert model.check_quiescent() == []


def test_qos1_handshake_publisher_gets_puback_subscriber_gets_message(model: BrokerModel) -> None:
    """[MQTT-4.3.2-1] [MQTT-4.3.2-2] [MQTT-4.5.0-1] [MQTT-3.3.1-9]"""
    connect(model, "sub")
    subscribe(model, "sub", "a/+", 1)
    connect(model, "pub")
    model.apply(Send("pub", publish("a/b", b"x", 1, 10, retain=True)))
    assert owed(model) == ["PUBACK 10", "PUBLISH 'a/b' b'x' QoS [1] retain=0"]
    model.observe("pub", PubAck(10))
    with pytest.raises(Violation, match="other RETAIN flag") as caught:
        model.observe("sub", publish("a/b", b"x", 1, 5, retain=True))  # RETAIN must be 0
    assert caught.value.refs == ("MQTT-3.3.1-9",)
    model.observe("sub", publish("a/b", b"x", 1, 5))
    assert owed(model) == []
    model.apply(Send("sub", PubAck(5)))
    assert model.check_quiescent() == []
    assert model.check_invariants() == []


def test_qos2_handshake_and_no_publish_after_pubrel(model: BrokerModel) -> None:
    """[MQTT-4.3.3-1] [MQTT-4.3.3-2]"""
    connect(model, "sub")
    subscribe(model, "sub", "q", 2)
    connect(model, "pub")
    model.apply(Send("pub", publish("q", b"once", 2, 3)))
    assert owed(model, "pub") == ["PUBREC 3"]
    model.observe("pub", PubRec(3))
    model.apply(Send("pub", publish("q", b"once", 2, 3, dup=True)))  # a duplicate is acked again
    model.observe("pub", PubRec(3))
    model.apply(Send("pub", PubRel(3)))
    model.observe("pub", PubComp(3))
    model.observe("sub", publish("q", b"once", 2, 9))
    model.apply(Send("sub", PubRec(9)))
    assert owed(model, "sub") == ["PUBREL 9"]
    model.observe("sub", PubRel(9))
    with pytest.raises(Violation) as caught:
        model.observe("sub", publish("q", b"once", 2, 9, dup=True))
    assert "MQTT-4.3.3-1" in caught.value.refs
    model.apply(Send("sub", PubComp(9)))
    assert model.check_quiescent() == []


def test_qos2_duplicate_from_publisher_is_not_delivered_twice(model: BrokerModel) -> None:
    """[MQTT-4.3.3-2]: until PUBREL, a re-sent PUBLISH must not cause a second delivery."""
    connect(model, "sub")
    subscribe(model, "sub", "q", 2)
    connect(model, "pub")
    model.apply(Send("pub", publish("q", b"m", 2, 1)))
    model.observe("pub", PubRec(1))
    model.apply(Send("pub", publish("q", b"m", 2, 1, dup=True)))
    model.observe("pub", PubRec(1))
    model.apply(Send("pub", PubRel(1)))
    model.observe("pub", PubComp(1))
    model.observe("sub", publish("q", b"m", 2, 1))
    with pytest.raises(Violation):
        model.observe("sub", publish("q", b"m", 2, 2))


def test_persistent_session_resumes_with_dup_redelivery_and_queued_messages(
    model: BrokerModel,
) -> None:
    """[MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-4.4.0-1] [MQTT-3.3.1-1]"""
    connect(model, "sub", clean=False)
    subscribe(model, "sub", "t", 1)
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"1", 1, 1)))
    model.observe("pub", PubAck(1))
    model.observe("sub", publish("t", b"1", 1, 4))
    model.apply(Drop("sub"))  # PUBACK withheld
    model.apply(Send("pub", publish("t", b"2", 1, 2)))
    model.observe("pub", PubAck(2))
    model.apply(Send("pub", publish("t", b"3", 0)))  # QoS 0 while offline: may be dropped
    model.apply(Send("sub", Connect(ProtocolLevel.MQTT_3_1_1, "sub", clean_session=False)))
    with pytest.raises(Violation, match="session present must be 1"):
        model.observe("sub", ConnAck(False, 0))
    model.observe("sub", ConnAck(True, 0))
    assert owed(model, "sub") == ["PUBLISH (DUP=1) 4", "PUBLISH 't' b'2' QoS [1] retain=0"]
    with pytest.raises(Violation, match="re-delivery must set DUP") as caught:
        model.observe("sub", publish("t", b"1", 1, 4))  # DUP must be set
    assert caught.value.refs == ("MQTT-3.3.1-1",)
    model.observe("sub", publish("t", b"1", 1, 4, dup=True))
    model.observe("sub", publish("t", b"2", 1, 5))
    model.apply(Send("sub", PubAck(4)))
    model.apply(Send("sub", PubAck(5)))
    assert model.check_quiescent() == []
    assert model.check_invariants() == []


def test_connect_clean_discards_a_disconnected_persistent_session(model: BrokerModel) -> None:
    """[MQTT-3.1.2-6] [MQTT-3.2.2-1]: nothing of the old session comes back."""
    connect(model, "c", clean=False)
    subscribe(model, "c", "t", 1)
    model.apply(Send("c", Disconnect()))
    connect(model, "p")
    model.apply(Send("p", publish("t", b"queued", 1, 1)))
    model.observe("p", PubAck(1))
    connect(model, "c", clean=True)
    assert owed(model, "c") == []
    with pytest.raises(Violation):
        model.observe("c", publish("t", b"queued", 1, 1))
    assert model.check_invariants() == []


def test_retained_message_is_sent_on_subscribe_with_retain_set(model: BrokerModel) -> None:
    """[MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8]"""
    connect(model, "p")
    model.apply(Send("p", publish("r/1", b"kept", 1, 1, retain=True)))
    model.observe("p", PubAck(1))
    connect(model, "s")
    model.apply(Send("s", Subscribe(1, (Subscription("r/#", QoS.AT_LEAST_ONCE),))))
    assert owed(model, "s") == ["SUBACK 1", "PUBLISH 'r/1' b'kept' QoS [0, 1] retain=1"]
    model.observe("s", SubAck(1, (1,)))
    with pytest.raises(Violation):
        model.observe("s", publish("r/1", b"kept", 1, 1))  # RETAIN=0 is wrong here
    model.observe("s", publish("r/1", b"kept", 1, 1, retain=True))
    model.apply(Send("s", PubAck(1)))
    assert model.check_quiescent() == []


def test_resubscribing_sends_the_retained_message_again(model: BrokerModel) -> None:
    """[MQTT-3.8.4-3] (D7)"""
    connect(model, "p")
    model.apply(Send("p", publish("r", b"v", 1, 1, retain=True)))
    model.observe("p", PubAck(1))
    connect(model, "s")
    subscribe(model, "s", "r", 1)
    model.observe("s", publish("r", b"v", 1, 1, retain=True))
    model.apply(Send("s", PubAck(1)))
    subscribe(model, "s", "r", 1, packet_id=2)
    assert owed(model, "s") == ["PUBLISH 'r' b'v' QoS [1] retain=1"]


def test_empty_retained_publish_clears_and_is_forwarded_as_normal(model: BrokerModel) -> None:
    """[MQTT-3.3.1-10] [MQTT-3.3.1-11] (D8)"""
    connect(model, "s")
    subscribe(model, "s", "r", 0)
    connect(model, "p")
    model.apply(Send("p", publish("r", b"v", 0, retain=True)))
    model.observe("s", publish("r", b"v"))
    model.apply(Send("p", publish("r", b"", 0, retain=True)))
    model.observe("s", publish("r", b""))
    connect(model, "late")
    subscribe(model, "late", "#", 0)
    assert owed(model, "late") == []


def test_will_is_published_on_network_loss(model: BrokerModel) -> None:
    """[MQTT-3.1.2-8] [MQTT-3.1.2-10]"""
    connect(model, "s")
    subscribe(model, "s", "will/#", 1)
    connect(model, "w", will=Will("will/w", b"gone", QoS.AT_LEAST_ONCE))
    model.apply(Drop("w"))
    assert owed(model, "s") == ["PUBLISH 'will/w' b'gone' QoS [1] retain=0"]
    model.observe("s", publish("will/w", b"gone", 1, 1))


def test_will_is_discarded_on_disconnect(model: BrokerModel) -> None:
    """[MQTT-3.14.4-3]"""
    connect(model, "s")
    subscribe(model, "s", "will/#", 0)
    connect(model, "w", will=Will("will/w", b"gone"))
    model.apply(Send("w", Disconnect()))
    with pytest.raises(Violation):
        model.observe("s", publish("will/w", b"gone"))


def test_keep_alive_expiry_closes_and_publishes_the_will(model: BrokerModel) -> None:
    """[MQTT-3.1.2-24] [MQTT-3.1.2-8]"""
    connect(model, "s")
    subscribe(model, "s", "will", 0)
    connect(model, "k", keep_alive=2, will=Will("will", b"timeout"))
    model.apply(TimePasses(1.5))
    with pytest.raises(Violation, match="no reason to close"):
        model.observe("k", Closed())
    model.apply(TimePasses(1.0))  # past 1 x keep-alive: a close is allowed, not yet due
    assert owed(model, "k") == []
    model.apply(TimePasses(1.6))  # past 1.5 x keep-alive + grace: the close is due
    assert owed(model, "k") == ["close (keep-alive)"]
    model.observe("k", Closed())
    assert owed(model, "s") == ["PUBLISH 'will' b'timeout' QoS [0] retain=0"]


def test_ping_is_answered(model: BrokerModel) -> None:
    """[MQTT-3.12.4-1]"""
    connect(model, "a")
    model.apply(Send("a", PingReq()))
    assert owed(model) == ["PINGRESP"]
    model.observe("a", PingResp())
    with pytest.raises(Violation):
        model.observe("a", PingResp())


def test_second_connect_is_a_protocol_violation(model: BrokerModel) -> None:
    """[MQTT-3.1.0-2] (D1)"""
    connect(model, "a")
    model.apply(Send("a", Connect(ProtocolLevel.MQTT_3_1_1, "a")))
    assert owed(model) == ["close (connect)"]
    with pytest.raises(Violation):
        model.observe("a", ConnAck(False, 0))
    model.observe("a", Closed())


def test_packet_before_connect_must_be_closed(model: BrokerModel) -> None:
    """[MQTT-3.1.0-1] (D2)"""
    model.apply(Send("a", Connect(ProtocolLevel.MQTT_3_1_1, "a")))
    model.observe("a", ConnAck(False, 0))
    model.apply(Send("a", Disconnect()))
    from mqttref.model import Open

    model.apply(Open("b"))
    model.apply(Send("b", PingReq()))
    assert owed(model, "b") == ["close (control_packet)"]
    with pytest.raises(Violation):
        model.observe("b", PingResp())


def test_malformed_packet_closes_without_processing(model: BrokerModel) -> None:
    """[MQTT-4.8.0-1] [MQTT-3.3.1-4] (D3, D4)"""
    connect(model, "a")
    model.apply(SendMalformed("a", "PUBLISH with QoS bits 11"))
    assert owed(model) == ["close (violation)"]
    model.observe("a", Closed())
    assert owed(model) == []


def test_publish_to_a_wildcard_topic_closes_and_is_never_delivered(model: BrokerModel) -> None:
    """[MQTT-3.3.2-2] (D5)"""
    connect(model, "s")
    subscribe(model, "s", "#", 0)
    connect(model, "p")
    model.apply(Send("p", publish("a/+", b"x")))
    assert owed(model, "p") == ["close (violation)"]
    with pytest.raises(Violation):
        model.observe("s", publish("a/+", b"x"))


def test_persistent_connect_with_empty_client_id_is_refused_then_closed(
    model: BrokerModel,
) -> None:
    """[MQTT-3.1.3-8] [MQTT-3.2.2-4] [MQTT-3.2.2-5] (D6)"""
    model.apply(Send("a", Connect(ProtocolLevel.MQTT_3_1_1, "", clean_session=False)))
    with pytest.raises(Violation):
        model.observe("a", ConnAck(False, 0))
    model.observe("a", ConnAck(False, 2))
    assert owed(model) == ["close (connack_refused)"]
    model.observe("a", Closed())


def test_takeover_closes_the_old_connection_and_its_will_is_optional(model: BrokerModel) -> None:
    """[MQTT-3.1.4-2] (D9)"""
    connect(model, "s")
    subscribe(model, "s", "w", 0)
    connect(model, "old", client_id="x", will=Will("w", b"old will"))
    subscribe(model, "old", "t", 0)
    model.apply(Send("new", Connect(ProtocolLevel.MQTT_3_1_1, "x")))
    model.observe("new", ConnAck(False, 0))
    assert owed(model, "old") == ["close (takeover)"]
    model.observe("old", Closed())
    assert owed(model, "s") == []  # the will may come or not
    model.observe("s", publish("w", b"old will"))
    connect(model, "p")
    model.apply(Send("p", publish("t", b"after")))
    assert owed(model, "new") == []  # clean takeover: the old subscription is gone


def test_retained_message_does_not_reach_a_filter_that_does_not_match(
    model: BrokerModel,
) -> None:
    """[MQTT-3.3.2-3] (D11) and [MQTT-4.7.2-1]: '#' does not match '$SYS/...'."""
    connect(model, "p")
    model.apply(Send("p", publish("$SYS/x", b"sys", 0, retain=True)))
    model.apply(Send("p", publish("a/b", b"ab", 0, retain=True)))
    connect(model, "s")
    subscribe(model, "s", "#", 0)
    with pytest.raises(Violation):
        model.observe("s", publish("$SYS/x", b"sys", retain=True))
    model.observe("s", publish("a/b", b"ab", retain=True))  # QoS 0 retained: allowed


def test_qos0_publish_with_dup_may_be_accepted_or_closed(model: BrokerModel) -> None:
    """[MQTT-3.3.1-2] (D13): both outcomes are allowed."""
    connect(model, "s")
    subscribe(model, "s", "t", 0)
    connect(model, "p")
    model.apply(Send("p", publish("t", b"d", dup=True)))
    assert owed(model) == []
    model.observe("s", publish("t", b"d"))
    model.observe("p", Closed())


def test_granted_qos_may_be_lower_never_higher(model: BrokerModel) -> None:
    """[MQTT-3.8.4-6] [MQTT-3.9.3-2]"""
    connect(model, "a")
    model.apply(Send("a", Subscribe(1, (Subscription("x", QoS.AT_LEAST_ONCE),))))
    with pytest.raises(Violation, match="not allowed"):
        model.observe("a", SubAck(1, (2,)))
    model.observe("a", SubAck(1, (0,)))
    connect(model, "p")
    model.apply(Send("p", publish("x", b"m", 2, 1)))
    model.observe("p", PubRec(1))
    model.apply(Send("p", PubRel(1)))
    model.observe("p", PubComp(1))
    with pytest.raises(Violation):
        model.observe("a", publish("x", b"m", 1, 1))
    model.observe("a", publish("x", b"m", 0))


def test_refused_subscription_is_owed_nothing(model: BrokerModel) -> None:
    """[MQTT-3.9.3-2]: 0x80 is an allowed answer; then no message is owed."""
    connect(model, "a")
    model.apply(Send("a", Subscribe(1, (Subscription("x", QoS.AT_MOST_ONCE),))))
    model.observe("a", SubAck(1, (0x80,)))
    connect(model, "p")
    model.apply(Send("p", publish("x", b"m")))
    assert owed(model, "a") == []


def test_overlapping_subscriptions_one_copy_required_extra_copies_allowed(
    model: BrokerModel,
) -> None:
    """[MQTT-3.3.5-1]"""
    connect(model, "a")
    subscribe(model, "a", "t/#", 1)
    subscribe(model, "a", "t/+", 0, packet_id=2)
    connect(model, "p")
    model.apply(Send("p", publish("t/x", b"m", 1, 1)))
    model.observe("p", PubAck(1))
    assert owed(model, "a") == ["PUBLISH 't/x' b'm' QoS [1] retain=0"]
    model.observe("a", publish("t/x", b"m", 1, 1))
    model.observe("a", publish("t/x", b"m", 0))  # a second copy for the other subscription


def test_order_per_publisher_topic_and_qos_is_kept(model: BrokerModel) -> None:
    """[MQTT-4.6.0-6]"""
    connect(model, "s")
    subscribe(model, "s", "#", 1)
    connect(model, "p")
    for n in (1, 2):
        model.apply(Send("p", publish("t", b"%d" % n, 1, n)))
        model.observe("p", PubAck(n))
    model.apply(Send("p", publish("u", b"other", 1, 3)))
    model.observe("p", PubAck(3))
    model.observe("s", publish("u", b"other", 1, 1))  # other topics may interleave
    with pytest.raises(Violation) as caught:
        model.observe("s", publish("t", b"2", 1, 2))
    assert caught.value.refs == ("MQTT-4.6.0-6",)


def test_unsubscribe_is_acknowledged_and_stops_new_messages(model: BrokerModel) -> None:
    """[MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-3.10.4-2]"""
    connect(model, "a")
    subscribe(model, "a", "t", 0)
    model.apply(Send("a", Unsubscribe(2, ("t", "never"))))
    assert owed(model, "a") == ["UNSUBACK 2"]
    model.observe("a", UnsubAck(2))
    connect(model, "p")
    model.apply(Send("p", publish("t", b"m")))
    with pytest.raises(Violation):
        model.observe("a", publish("t", b"m"))


def test_a_close_without_cause_is_a_violation(model: BrokerModel) -> None:
    """[MQTT-4.8.0-1]: the server may not drop a well-behaved client."""
    connect(model, "a")
    with pytest.raises(Violation) as caught:
        model.observe("a", Closed())
    assert "close" in str(caught.value)


def test_qos2_message_before_pubrel_is_allowed_and_after_pubrel_required(
    model: BrokerModel,
) -> None:
    """4.3.3 Method A or B: onward delivery at PUBLISH or at PUBREL [MQTT-4.3.3-2]."""
    connect(model, "s")
    subscribe(model, "s", "q", 1)
    connect(model, "p")
    model.apply(Send("p", publish("q", b"m", 2, 1)))
    model.observe("p", PubRec(1))
    assert owed(model, "s") == []
    connect(model, "late")
    subscribe(model, "late", "q", 0)
    model.apply(Send("p", PubRel(1)))
    model.observe("p", PubComp(1))
    assert owed(model, "s") == ["PUBLISH 'q' b'm' QoS [1] retain=0"]
    assert owed(model, "late") == []  # subscribed after the PUBLISH: either way is right
    model.observe("late", publish("q", b"m"))


def test_retained_qos2_message_is_certain_only_after_pubrel(model: BrokerModel) -> None:
    """[MQTT-3.3.1-5] with 4.3.3: the receiver may store the message at PUBLISH or PUBREL."""
    connect(model, "p")
    model.apply(Send("p", publish("r", b"old", 1, 1, retain=True)))
    model.observe("p", PubAck(1))
    model.apply(Send("p", publish("r", b"new", 2, 2, retain=True)))
    model.observe("p", PubRec(2))
    connect(model, "between")
    subscribe(model, "between", "r", 1)
    assert owed(model, "between") == []  # old or new, or nothing: each is allowed
    model.observe("between", publish("r", b"old", 1, 1, retain=True))
    model.apply(Send("p", PubRel(2)))
    model.observe("p", PubComp(2))
    connect(model, "after")
    subscribe(model, "after", "r", 1)
    assert owed(model, "after") == ["PUBLISH 'r' b'new' QoS [1] retain=1"]
    with pytest.raises(Violation):
        model.observe("after", publish("r", b"old", 1, 1, retain=True))


def test_a_puback_lost_with_the_connection_is_not_owed_until_the_resend(
    model: BrokerModel,
) -> None:
    """[MQTT-4.4.0-1]: the client re-sends the PUBLISH; only then is a PUBACK owed."""
    connect(model, "a", clean=False)
    model.apply(Send("a", publish("t", b"m", 1, 2)))
    model.apply(Drop("a"))
    connect(model, "a", clean=False, session_present=True)
    assert owed(model, "a") == []
    model.apply(Drop("a"))
    connect(model, "a", clean=False, session_present=True)
    model.apply(Send("a", publish("t", b"m", 1, 2, dup=True)))
    assert owed(model, "a") == ["PUBACK 2"]
    model.observe("a", PubAck(2))
    model.apply(Send("a", Disconnect()))
    assert model.check_quiescent() == []


def test_a_takeover_will_may_arrive_before_the_new_connack(model: BrokerModel) -> None:
    """[MQTT-3.1.4-2] [MQTT-3.1.2-8]: packets on different connections have no order."""
    connect(model, "s", client_id="watcher")
    subscribe(model, "s", "t", 0)
    connect(model, "old", client_id="x", will=Will("t", b"will of x"))
    model.apply(Send("new", Connect(ProtocolLevel.MQTT_3_1_1, "x")))
    model.observe("s", publish("t", b"will of x"))
    model.observe("old", Closed())
    model.observe("new", ConnAck(False, 0))
    with pytest.raises(Violation):
        model.observe("s", publish("t", b"will of x"))  # published once, not twice
    assert model.check_quiescent() == []


def test_next_deadline_says_when_a_keep_alive_close_becomes_owed(model: BrokerModel) -> None:
    """[MQTT-3.1.2-24]: 1.5 x keep-alive (plus the model's grace) after the last packet."""
    assert model.next_deadline() is None
    connect(model, "k", keep_alive=4)
    assert model.next_deadline() == 7.0
    model.apply(TimePasses(3))
    assert model.next_deadline() == 4.0
    model.apply(Send("k", PingReq()))
    model.observe("k", PingResp())
    assert model.next_deadline() == 7.0
    model.apply(TimePasses(7))
    assert model.next_deadline() is None  # the connection is now owed a close
    assert owed(model) == ["close (keep-alive)"]


def test_a_will_may_arrive_before_the_close_it_follows(model: BrokerModel) -> None:
    """[MQTT-3.1.2-8] [MQTT-4.8.0-1]: once the close is due, the will is owed, and a
    third client may see it before the closed client sees its close."""
    connect(model, "s")
    subscribe(model, "s", "w", 0)
    connect(model, "v", will=Will("w", b"bye"))
    model.apply(SendMalformed("v"))
    assert owed(model) == ["PUBLISH 'w' b'bye' QoS [0] retain=0", "close (violation)"]
    model.observe("s", publish("w", b"bye"))
    model.observe("v", Closed())
    assert model.check_quiescent() == []


def test_a_will_may_go_out_while_a_keep_alive_close_is_only_allowed(model: BrokerModel) -> None:
    """[MQTT-3.1.2-24]: between 1 and 1.5 x keep-alive the server may close; if it
    does, its will may reach others first."""
    connect(model, "s")
    subscribe(model, "s", "w", 0)
    connect(model, "k", keep_alive=2, will=Will("w", b"late"))
    model.apply(TimePasses(2.5))
    assert owed(model) == []
    model.observe("s", publish("w", b"late"))
    model.observe("k", Closed())
    assert model.check_quiescent() == []


def test_one_filter_twice_in_a_subscribe_is_two_subscriptions_in_a_row(
    model: BrokerModel,
) -> None:
    """[MQTT-3.8.4-4] [MQTT-3.8.4-3]: the second replaces the first and the retained
    message is sent for each, at each one's granted QoS."""
    connect(model, "p")
    model.apply(Send("p", publish("t", b"kept", 2, 1, retain=True)))
    model.observe("p", PubRec(1))
    model.apply(Send("p", PubRel(1)))
    model.observe("p", PubComp(1))
    connect(model, "s")
    model.apply(
        Send(
            "s",
            Subscribe(
                1, (Subscription("t", QoS.AT_LEAST_ONCE), Subscription("t", QoS.EXACTLY_ONCE))
            ),
        )
    )
    model.observe("s", SubAck(1, (1, 2)))
    model.observe("s", publish("t", b"kept", 1, 1, retain=True))
    model.observe("s", publish("t", b"kept", 2, 2, retain=True))
    model.apply(Send("s", PubAck(1)))
    model.apply(Send("s", PubRec(2)))
    model.observe("s", PubRel(2))
    model.apply(Send("s", PubComp(2)))
    assert model.check_quiescent() == []


def test_an_answer_owed_before_the_client_disconnected_may_still_arrive(
    model: BrokerModel,
) -> None:
    """[MQTT-3.12.4-1]: the server may have written the PINGRESP before it read the
    DISCONNECT; a second one is still a violation."""
    connect(model, "a")
    model.apply(Send("a", PingReq()))
    model.apply(Send("a", Disconnect()))
    assert owed(model) == []
    model.observe("a", PingResp())
    with pytest.raises(Violation):
        model.observe("a", PingResp())
