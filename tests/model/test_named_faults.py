"""A broker that breaks one statement is blamed for that statement, not for sending
something "not due".

Two broken brokers of the fault hunts (``tests/stateful/faults.py``) sent a packet
the model used to reject only as "no such message is due to this client", a verdict
naming neither statement they break: a queue delivered last in, first out
[MQTT-4.6.0-6], and a zero-byte retained message stored and sent to a new
subscription [MQTT-3.3.1-10] [MQTT-3.3.1-11]. Each scenario feeds the model that
broker's packets; the conforming variants show the allowed outcomes are unchanged.
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import Disconnect, PubAck, PubRec
from mqttref.model import BrokerModel, Drop, Send, Violation
from tests.model.helpers import connect, publish, subscribe


@pytest.fixture
def model() -> BrokerModel:
    return BrokerModel()


def refs_of(model: BrokerModel, client: str, packet: object) -> tuple[str, ...]:
    """The statements the model names for ``packet``; it must reject it."""
    snapshot = [repr(o) for o in model.obligations()]
    with pytest.raises(Violation) as caught:
        model.observe(client, packet)  # type: ignore[arg-type]
    assert [repr(o) for o in model.obligations()] == snapshot  # a rejection changes nothing
    return caught.value.refs


def owed(model: BrokerModel, client: str) -> list[str]:
    return [o.what for o in model.obligations(client)]


def queued_while_away(model: BrokerModel, qos: int, sub_qos: int) -> None:
    """``sub`` (persistent, subscribed to ``t`` at ``sub_qos``) is away while ``pub``
    publishes ``m1`` then ``m2`` at ``qos`` (QoS 2 left unreleased: allowed, not owed);
    then ``sub`` comes back to its session."""
    connect(model, "sub", clean=False)
    subscribe(model, "sub", "t", sub_qos)
    model.apply(Drop("sub"))
    connect(model, "pub")
    for n in (1, 2):
        model.apply(Send("pub", publish("t", b"m%d" % n, qos, n if qos else None)))
        if qos == 1:
            model.observe("pub", PubAck(n))
        elif qos == 2:
            model.observe("pub", PubRec(n))
    connect(model, "sub", clean=False, session_present=True)


def test_an_unreleased_qos_2_message_arriving_after_a_later_one_is_out_of_order(
    model: BrokerModel,
) -> None:
    """[MQTT-4.6.0-6]: the fault hunt's "reorder queued messages" finding. Both
    messages are allowed (before PUBREL); m2 first drops m1, and m1 then is late."""
    queued_while_away(model, qos=2, sub_qos=1)
    assert owed(model, "sub") == []
    model.observe("sub", publish("t", b"m2", 1, 1))
    assert refs_of(model, "sub", publish("t", b"m1", 1, 2)) == ("MQTT-4.6.0-6",)


def test_a_queued_qos_0_message_may_be_dropped_but_not_come_late(model: BrokerModel) -> None:
    """[MQTT-3.1.2-5] QoS 0 for an offline session may be dropped; the order of
    [MQTT-4.6.0-6] holds at every QoS, so one that does come must keep it."""
    queued_while_away(model, qos=0, sub_qos=0)
    model.observe("sub", publish("t", b"m2"))  # m1 dropped: allowed
    assert owed(model, "sub") == []
    assert model.check_quiescent() == []
    assert refs_of(model, "sub", publish("t", b"m1")) == ("MQTT-4.6.0-6",)


def test_queued_messages_in_order_are_still_accepted(model: BrokerModel) -> None:
    """The conforming order: nothing is remembered as overtaken, nothing rejected."""
    queued_while_away(model, qos=0, sub_qos=0)
    model.observe("sub", publish("t", b"m1"))
    model.observe("sub", publish("t", b"m2"))
    assert model.check_quiescent() == []


def test_a_late_message_of_another_topic_or_publisher_is_no_order_error(
    model: BrokerModel,
) -> None:
    """Order is per publisher, topic and QoS: m2 on ``u`` overtakes nothing on ``t``;
    a message never published stays "not due"."""
    connect(model, "sub", clean=False)
    subscribe(model, "sub", "#", 0)
    model.apply(Drop("sub"))
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"m1")))
    model.apply(Send("pub", publish("u", b"m2")))
    connect(model, "sub", clean=False, session_present=True)
    model.observe("sub", publish("u", b"m2"))
    model.observe("sub", publish("t", b"m1"))  # another topic: no order between them
    refs = refs_of(model, "sub", publish("t", b"m1"))  # twice: a duplicate, not late
    assert "MQTT-4.6.0-6" not in refs


def test_an_overtaken_message_is_forgotten_with_its_session(model: BrokerModel) -> None:
    """A clean session discards everything [MQTT-3.1.2-6], the memory of overtaken
    messages included: the same content later is judged afresh."""
    queued_while_away(model, qos=0, sub_qos=0)
    model.observe("sub", publish("t", b"m2"))
    model.apply(Send("sub", Disconnect()))
    connect(model, "sub", clean=True)
    assert "MQTT-4.6.0-6" not in refs_of(model, "sub", publish("t", b"m1"))


def emptied(model: BrokerModel, *, had_one: bool) -> None:
    """``pub`` publishes a zero-byte retained message to ``r`` (after a retained
    ``v`` when ``had_one``); ``late`` connects."""
    connect(model, "pub")
    if had_one:
        model.apply(Send("pub", publish("r", b"v", 1, 1, retain=True)))
        model.observe("pub", PubAck(1))
    model.apply(Send("pub", publish("r", b"", 1, 2, retain=True)))
    model.observe("pub", PubAck(2))
    connect(model, "late")


@pytest.mark.parametrize("had_one", [True, False], ids=["cleared", "nothing-to-clear"])
def test_a_stored_zero_byte_retained_message_names_the_empty_retained_rules(
    model: BrokerModel, had_one: bool
) -> None:
    """[MQTT-3.3.1-10] future subscribers get no retained message; [MQTT-3.3.1-11] a
    zero-byte retained message is never stored: the "store an empty retained message"
    finding."""
    emptied(model, had_one=had_one)
    subscribe(model, "late", "r", 1)
    assert owed(model, "late") == []
    refs = refs_of(model, "late", publish("r", b"", 1, 1, retain=True))
    assert refs == ("MQTT-3.3.1-10", "MQTT-3.3.1-11")
    assert refs_of(model, "late", publish("r", b"", 0, retain=True)) == refs  # any QoS


def test_an_empty_retained_publish_nobody_sent_is_just_not_due(model: BrokerModel) -> None:
    """Only a zero-byte retained message that was published can have been stored;
    one no client published, or one to a client not subscribed, stays "not due"."""
    emptied(model, had_one=False)
    subscribe(model, "late", "other", 1)
    assert "MQTT-3.3.1-11" not in refs_of(model, "late", publish("r", b"", 1, 1, retain=True))
    model.apply(Send("late", publish("x", b"", 0)))  # RETAIN=0: nothing to store
    subscribe(model, "late", "x", 0, packet_id=2)
    assert "MQTT-3.3.1-11" not in refs_of(model, "late", publish("x", b"", 0, retain=True))


def test_a_zero_byte_retained_publish_is_still_forwarded_as_normal(model: BrokerModel) -> None:
    """[MQTT-3.3.1-10]: existing subscribers get it with RETAIN=0; with RETAIN=1 it
    is a flag error [MQTT-3.3.1-9], not a stored message."""
    connect(model, "sub")
    subscribe(model, "sub", "r", 0)
    connect(model, "pub")
    model.apply(Send("pub", publish("r", b"", 0, retain=True)))
    assert refs_of(model, "sub", publish("r", b"", 0, retain=True)) == ("MQTT-3.3.1-9",)
    model.observe("sub", publish("r", b""))
    assert model.check_quiescent() == []
