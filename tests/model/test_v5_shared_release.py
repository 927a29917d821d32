"""A QoS 2 message and a Shared Subscription group that forms or changes before its PUBREL.

The receiver of a QoS 2 PUBLISH may initiate onward delivery at the PUBLISH or
only at the PUBREL (4.3.3, Figure 4.3: Method A stores the message, Method B
delivers it at once): so the groups that decide where the message goes are the
ones of either moment. A group formed after the PUBLISH and before the PUBREL
may be sent the message (a server delivering at PUBREL) or not (one that
delivered at PUBLISH, to no member); a member of a group that existed at the
PUBLISH may be sent it before the PUBREL. Once released, it goes to exactly one
member (4.8.2), any of them.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import PubComp, PubRec, PubRel, QoS
from mqttref.model import BrokerModel, Send
from tests.model.helpers import publish
from tests.model.test_levels_mix import connected5, refs_of
from tests.model.test_v5_broker_publish import subscribe5

GROUP = "$share/g/t"


def published_unreleased(model: BrokerModel) -> None:
    """``pub`` sends a QoS 2 PUBLISH to t and gets its PUBREC: no PUBREL yet."""
    connected5(model, "pub")
    model.apply(Send("pub", publish("t", b"m", 2, 1)))
    model.observe("pub", PubRec(1))


def released(model: BrokerModel) -> None:
    """The PUBREL, and the PUBCOMP that completes the publisher's flow."""
    model.apply(Send("pub", PubRel(1)))
    model.observe("pub", PubComp(1))


def test_a_group_formed_before_the_pubrel_may_get_the_message_but_is_not_owed_it() -> None:
    model = BrokerModel()
    published_unreleased(model)
    connected5(model, "a")
    subscribe5(model, "a", GROUP, 2)
    released(model)
    assert model.check_quiescent() == []  # a server delivering at PUBLISH matched no group
    model.observe("a", publish("t", b"m", 2, 1))  # one delivering at PUBREL chose a


def test_a_group_formed_before_the_pubrel_gets_at_most_one_copy() -> None:
    model = BrokerModel()
    published_unreleased(model)
    for member in ("a", "b"):
        connected5(model, member)
        subscribe5(model, member, GROUP, 0)
    released(model)
    model.observe("a", publish("t", b"m"))
    assert refs_of(model, "b", publish("t", b"m")) == ()  # 4.8: only one member


def test_a_member_may_be_sent_the_message_before_its_pubrel() -> None:
    """A server that delivers at the PUBLISH (Method B) chose a member of the group of
    then; the PUBREL that follows owes nothing more."""
    model = BrokerModel()
    connected5(model, "a")
    subscribe5(model, "a", GROUP, 1)
    published_unreleased(model)
    model.observe("a", publish("t", b"m", 1, 1))
    released(model)
    assert model.check_quiescent() == []


def test_a_group_that_existed_at_the_publish_is_owed_the_message_once_released() -> None:
    """[MQTT-4.5.0-1]: every member stayed, so one of them must get it."""
    model = BrokerModel()
    connected5(model, "a")
    subscribe5(model, "a", GROUP, QoS.AT_MOST_ONCE)
    published_unreleased(model)
    released(model)
    assert [o.refs for o in model.check_quiescent()] == [("MQTT-4.5.0-1",)]
    model.observe("a", publish("t", b"m"))
    assert model.check_quiescent() == []


def test_a_retained_message_no_group_matches_is_judged_as_a_plain_delivery() -> None:
    """A group exists but does not match the topic: the retained copy a later plain
    subscription gets is an ordinary delivery (the model once asked the groups about
    it, found the message numbered there with no routing, and crashed)."""
    model = BrokerModel()
    connected5(model, "a")
    subscribe5(model, "a", "$share/g/other", 0)
    model.apply(Send("a", publish("t", b"m", retain=True)))
    subscribe5(model, "a", "t", 0, packet_id=2)
    model.observe("a", publish("t", b"m", retain=True))
    assert model.check_quiescent() == []
