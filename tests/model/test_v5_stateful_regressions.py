"""Model faults the level-5 broker machine (``oracle/stateful/machine5``) found against
the real broker, each fixed from the specification's text and pinned here."""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
)
from mqttref.model import BrokerModel, Closed, Drop, Send, TimePasses
from tests.model.helpers import connect, subscribe
from tests.model.test_levels_mix import connected5, refs_of
from tests.model.test_v5_broker_publish import subscribe5


def overlapping_retain_as_published(model: BrokerModel) -> None:
    """Client a has two matching subscriptions, one with Retain As Published and
    one without, and b publishes a retained message to both."""
    connected5(model, "a")
    connected5(model, "b")
    subscribe5(model, "a", "t/#", 0, packet_id=1, identifier=2, retain_as_published=True)
    subscribe5(model, "a", "t/b", 0, packet_id=2)
    model.apply(Send("b", Publish("t/b", b"m", QoS.AT_MOST_ONCE, True)))


def test_one_copy_for_overlapping_subscriptions_may_keep_retain_when_one_has_rap() -> None:
    """3.3.4 lets the server send one copy for overlapping subscriptions; RETAIN must be
    0 for the subscription without Retain As Published [MQTT-3.3.1-12] and as published
    for the one with it [MQTT-3.3.1-13]; no statement says which the one copy follows.
    The model owed a RETAIN 0 copy after the broker's single RETAIN 1 copy."""
    model = BrokerModel()
    overlapping_retain_as_published(model)
    one = Properties(subscription_identifiers=(2,))
    model.observe("a", Publish("t/b", b"m", QoS.AT_MOST_ONCE, True, properties=one))
    assert model.check_quiescent() == []


def test_one_copy_for_overlapping_subscriptions_may_clear_retain_too() -> None:
    """The other reading of the same text: the one copy with RETAIN 0."""
    model = BrokerModel()
    overlapping_retain_as_published(model)
    one = Properties(subscription_identifiers=(2,))
    model.observe("a", Publish("t/b", b"m", QoS.AT_MOST_ONCE, False, properties=one))
    assert model.check_quiescent() == []


def test_retain_is_still_cleared_where_no_matching_subscription_has_rap() -> None:
    """Without Retain As Published on any matching subscription RETAIN 1 on a forwarded
    message breaks [MQTT-3.3.1-12]: the fix is only for options that differ."""
    model = BrokerModel()
    connected5(model, "a")
    connected5(model, "b")
    subscribe5(model, "a", "t/#", 0, packet_id=1)
    subscribe5(model, "a", "t/b", 0, packet_id=2)
    model.apply(Send("b", Publish("t/b", b"m", QoS.AT_MOST_ONCE, True)))
    refs = refs_of(model, "a", Publish("t/b", b"m", QoS.AT_MOST_ONCE, True))
    assert "MQTT-3.3.1-12" in refs or "MQTT-3.3.1-9" in refs


def test_a_copy_that_may_be_an_old_optional_one_or_a_qos_2_one_before_its_release() -> None:
    """Found by the level-5 machine with 3.1.1 clients. c0 was away while c1 sent a
    QoS 0 message with an empty payload (queued or dropped: [MQTT-3.1.2-5]); c0 came
    back, and c1 sent the same empty payload at QoS 2. The server forwarded it at once
    (before the PUBREL, Method B of 4.3.3): one packet that may be either copy. The
    model read it as the old one and then owed the QoS 2 one on release; either
    reading is the server's right, so the released copy is no longer owed."""
    model = BrokerModel()
    connect(model, "s0", client_id="c0", clean=False)
    subscribe(model, "s0", "t/#", 0)
    model.apply(Drop("s0"))
    connect(model, "s1", client_id="c1")
    model.apply(Send("s1", Publish("t/b", b"", QoS.AT_MOST_ONCE)))
    connect(model, "s2", client_id="c0", clean=False, session_present=True)
    model.apply(Send("s1", Publish("t/b", b"", QoS.EXACTLY_ONCE, packet_id=1)))
    model.observe("s1", PubRec(1))
    model.observe("s2", Publish("t/b", b"", QoS.AT_MOST_ONCE))
    model.apply(Send("s1", PubRel(1)))
    model.observe("s1", PubComp(1))
    assert model.check_quiescent() == []


def test_the_released_copy_is_still_owed_when_no_packet_could_have_been_it() -> None:
    """The same story without the forwarded packet: the released copy is owed
    [MQTT-4.5.0-1], the fix only reads an ambiguous packet."""
    model = BrokerModel()
    connect(model, "s0", client_id="c0", clean=False)
    subscribe(model, "s0", "t/#", 0)
    model.apply(Drop("s0"))
    connect(model, "s1", client_id="c1")
    model.apply(Send("s1", Publish("t/b", b"", QoS.AT_MOST_ONCE)))
    connect(model, "s2", client_id="c0", clean=False, session_present=True)
    model.apply(Send("s1", Publish("t/b", b"", QoS.EXACTLY_ONCE, packet_id=1)))
    model.observe("s1", PubRec(1))
    model.apply(Send("s1", PubRel(1)))
    model.observe("s1", PubComp(1))
    assert [v.refs for v in model.check_quiescent()] == [("MQTT-4.5.0-1",)]


def level_5_session_with_expiry_0_taken_over_by_3_1_1(model: BrokerModel) -> None:
    """c2 connects at level 5 with no Session Expiry Interval (0) and subscribes; a
    3.1.1 CONNECT with Clean Session 0 for c2 then takes its connection over."""
    connected5(model, "s4", client_id="c2", clean_start=False)
    subscribe5(model, "s4", "t/a", 1)
    model.apply(Send("s0", Connect(ProtocolLevel.MQTT_3_1_1, "c2", False, 0)))


def test_a_3_1_1_takeover_of_a_level_5_session_with_expiry_0_finds_no_session() -> None:
    """Found by the level-5 machine: the server closes the existing connection first
    [MQTT-3.1.4-2], and a session whose Session Expiry Interval is 0 ends with its
    Network Connection (3.1.2.11.2): Session Present 0 [MQTT-3.2.2-1]. The model
    asked for 1 unless the old connection's close was read before the CONNACK."""
    model = BrokerModel()
    level_5_session_with_expiry_0_taken_over_by_3_1_1(model)
    assert refs_of(model, "s0", ConnAck(True, 0)) == ("MQTT-3.2.2-1",)
    model.observe("s0", ConnAck(False, 0))
    model.observe("s4", Disconnect(0x8E))
    model.observe("s4", Closed())
    connect(model, "s1", client_id="c1")
    model.apply(Send("s1", Publish("t/a", b"m", QoS.AT_LEAST_ONCE, packet_id=1)))
    model.observe("s1", PubAck(1))
    assert model.check_quiescent() == []  # the subscription ended with the session


def test_the_same_takeover_read_in_the_other_order_agrees() -> None:
    """The old connection's close read before the CONNACK: Session Present 0 as well."""
    model = BrokerModel()
    level_5_session_with_expiry_0_taken_over_by_3_1_1(model)
    model.observe("s4", Disconnect(0x8E))
    model.observe("s4", Closed())
    model.observe("s0", ConnAck(False, 0))


def subscriber_gone_for(model: BrokerModel, seconds: float) -> None:
    """a (level 5, Session Expiry Interval 1) subscribes to t/a and disconnects;
    ``seconds`` later b (level 5) publishes to t/a at QoS 1."""
    connected5(model, "a", clean_start=False, session_expiry=1)
    subscribe5(model, "a", "t/a", 1)
    model.apply(Send("a", Disconnect()))
    model.observe("a", Closed())
    connected5(model, "b")
    model.apply(TimePasses(seconds))
    model.apply(Send("b", Publish("t/a", b"m", QoS.AT_LEAST_ONCE, packet_id=1)))


def test_no_matching_subscribers_when_the_only_one_may_have_expired() -> None:
    """Found by the level-5 machine: 1.9 s after a session with Session Expiry
    Interval 1 was left, inside the model's one-second margin, the server may have
    discarded it [MQTT-4.1.0-2]; PUBACK 0x10 (No matching subscribers, 3.4.2.1) is
    then as right as 0x00. The model refused 0x10."""
    model = BrokerModel()
    subscriber_gone_for(model, 1.5)
    model.observe("b", PubAck(1, 0x10))
    other = BrokerModel()
    subscriber_gone_for(other, 1.5)
    other.observe("b", PubAck(1, 0x00))


def test_no_matching_subscribers_is_wrong_while_the_session_surely_lives() -> None:
    """0.5 s after the close the session exists: 0x10 asserts what is false [MQTT-3.4.2-1]."""
    model = BrokerModel()
    subscriber_gone_for(model, 0.5)
    assert refs_of(model, "b", PubAck(1, 0x10)) == ("MQTT-3.4.2-1",)


def test_no_local_is_named_when_a_3_1_1_connection_resumed_the_session() -> None:
    """Found by the level-5 machine (a broker fault, reported): c2 subscribed with No
    Local at level 5, came back at 3.1.1 resuming the session, and published; its own
    message came back. The ClientID is the publisher's [MQTT-3.8.3-3]; the model named
    only the 3.1.1 statements for a copy nothing explains."""
    model = BrokerModel()
    connected5(model, "s0", client_id="c2", clean_start=False, session_expiry=0xFFFFFFFF)
    subscribe5(model, "s0", "t/+", 0, no_local=True)
    model.apply(Send("s0", Disconnect()))
    model.observe("s0", Closed())
    connect(model, "s1", client_id="c2", clean=False, session_present=True)
    model.apply(Send("s1", Publish("t/b", b"m", QoS.AT_MOST_ONCE)))
    assert refs_of(model, "s1", Publish("t/b", b"m", QoS.AT_MOST_ONCE)) == ("MQTT-3.8.3-3",)
