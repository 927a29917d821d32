"""Shared Subscriptions in the broker model: a message goes to one member of a group (4.8.2).

Which member is the server's choice: the model owes the message to the group
and accepts it at any member, at that member's QoS, never at a second one.
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import (
    Disconnect,
    Properties,
    PubAck,
    Publish,
    QoS,
    Subscribe,
    Subscription,
)
from mqttref.model import BrokerModel, Closed, Send
from tests.model.helpers import connect, publish
from tests.model.test_levels_mix import connected5, refs_of
from tests.model.test_v5_broker_publish import subscribe5

GROUP = "$share/g/t"


@pytest.fixture
def model() -> BrokerModel:
    """Members ``a`` (QoS 1) and ``b`` (QoS 0) of one group; ``pub`` publishes."""
    model = BrokerModel()
    connected5(model, "a")
    subscribe5(model, "a", GROUP, 1)
    connected5(model, "b")
    subscribe5(model, "b", GROUP, 0)
    connected5(model, "pub")
    return model


def sent(model: BrokerModel, payload: bytes = b"m") -> None:
    model.apply(Send("pub", publish("t", payload, 1, 1)))
    model.observe("pub", PubAck(1))


def test_the_message_is_owed_to_the_group_until_one_member_gets_it(model: BrokerModel) -> None:
    """[MQTT-4.5.0-1]: owed to one member, any of them."""
    sent(model)
    assert [o.refs for o in model.check_quiescent()] == [("MQTT-4.5.0-1",)]
    model.observe("b", publish("t", b"m"))
    assert model.check_quiescent() == []


def test_only_one_member_gets_the_message(model: BrokerModel) -> None:
    """4.8: sent to the client of only one of the group's sessions (no statement id:
    the model names none rather than a wrong one)."""
    sent(model)
    model.observe("a", publish("t", b"m", 1, 1))
    assert refs_of(model, "b", publish("t", b"m")) == ()


def test_a_member_gets_the_message_at_its_own_qos(model: BrokerModel) -> None:
    """[MQTT-4.8.2-3]: b was granted QoS 0."""
    sent(model)
    assert "MQTT-4.8.2-3" in refs_of(model, "b", publish("t", b"m", 1, 1))


def test_a_rejected_message_goes_to_no_other_member(model: BrokerModel) -> None:
    """[MQTT-4.8.2-6]: the member's PUBACK 0x80 discards the message (and it is
    treated as acknowledged [MQTT-4.4.0-2])."""
    sent(model)
    model.observe("a", publish("t", b"m", 1, 1))
    model.apply(Send("a", PubAck(1, 0x80)))
    assert refs_of(model, "b", publish("t", b"m")) == ("MQTT-4.8.2-6", "MQTT-4.4.0-2")


def test_no_retained_message_answers_a_shared_subscription() -> None:
    """3.8.4: joining a group sends no retained message (the text gives that sentence
    no statement id, so the model names none)."""
    model = BrokerModel()
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"kept", retain=True)))
    connected5(model, "a")
    subscribe5(model, "a", GROUP, 0)
    assert model.check_quiescent() == []
    assert refs_of(model, "a", publish("t", b"kept", retain=True)) == ()


def test_no_local_on_a_shared_subscription_is_closed_on() -> None:
    """[MQTT-3.8.3-4]: a Protocol Error, so the close is owed [MQTT-4.13.1-1]."""
    model = BrokerModel()
    connected5(model, "a")
    request = Subscription(GROUP, QoS.AT_MOST_ONCE, no_local=True)
    model.apply(Send("a", Subscribe(1, (request,))))
    assert [o.refs for o in model.obligations("a")] == [("MQTT-4.13.1-1",)]
    model.observe("a", Disconnect(0x82))
    model.observe("a", Closed())


def test_a_member_copy_carries_only_its_own_identifier() -> None:
    """3.3.4: a shared subscription's copy carries that member's identifier only."""
    model = BrokerModel()
    connected5(model, "a")
    subscribe5(model, "a", GROUP, 0, identifier=5)
    connected5(model, "pub")
    sent(model)
    ids = Properties(subscription_identifiers=(5,))
    assert refs_of(model, "a", publish("t", b"m")) == ("MQTT-3.3.4-3",)
    model.observe("a", Publish("t", b"m", properties=ids))


def test_allowed_lists_the_members_copies(model: BrokerModel) -> None:
    """``allowed`` offers the message to each member at its own QoS; the model
    accepts the one the server picks, and then offers it to nobody else."""
    sent(model)
    [for_a] = [o for o in model.allowed("a") if isinstance(o, Publish)]
    [for_b] = [o for o in model.allowed("b") if isinstance(o, Publish)]
    assert (for_a.qos, for_b.qos) == (QoS.AT_LEAST_ONCE, QoS.AT_MOST_ONCE)
    model.observe("b", for_b)
    assert [o for o in model.allowed("a") if isinstance(o, Publish)] == []


def test_puback_0x10_is_no_answer_when_a_group_matched() -> None:
    """A group's member is a matching subscriber: 0x10 (No matching subscribers)
    is no PUBACK Reason Code for it [MQTT-3.4.2-1]."""
    model = BrokerModel()
    connected5(model, "a")
    subscribe5(model, "a", GROUP, 1)
    connected5(model, "pub")
    model.apply(Send("pub", publish("t", b"m", 1, 1)))
    assert refs_of(model, "pub", PubAck(1, 0x10)) == ("MQTT-3.4.2-1",)
