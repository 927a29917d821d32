"""PUBLISH and SUBSCRIBE at level 5 in the broker model, and across levels.

Reason Codes on SUBACK, UNSUBACK and the QoS acknowledgements are allowed sets;
subscription options (No Local, Retain As Published, Retain Handling) and
Subscription Identifiers shape each delivery; a message's properties reach every
level-5 subscriber unaltered, and a 3.1.1 subscriber gets the plain message.
Each scenario shows a conforming server's packets and a server breaking one
statement, which the model names.
"""

from __future__ import annotations

import attrs
import pytest

from mqttref.impl.codec.packets import (
    Properties,
    PubAck,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from mqttref.model import BrokerModel, Send
from tests.model.helpers import connect, publish, subscribe
from tests.model.test_levels_mix import connected5, refs_of

PROPS = Properties(
    payload_format_indicator=1,
    content_type="text/plain",
    response_topic="replies/a",
    correlation_data=b"\x01\x02",
    user_properties=(("k", "1"), ("k", "2"), ("a", "b")),
)


@pytest.fixture
def model() -> BrokerModel:
    return BrokerModel()


def subscribe5(
    model: BrokerModel,
    client: str,
    topic_filter: str,
    qos: int = 1,
    *,
    packet_id: int = 1,
    identifier: int | None = None,
    granted: int | None = None,
    **options: object,
) -> None:
    """A level-5 SUBSCRIBE (options, identifier) and the SUBACK granting it."""
    properties = Properties(subscription_identifiers=(identifier,) if identifier else ())
    request = Subscription(topic_filter, QoS(qos), **options)  # type: ignore[arg-type]
    model.apply(Send(client, Subscribe(packet_id, (request,), properties)))
    model.observe(client, SubAck(packet_id, (qos if granted is None else granted,)))


def publish5(
    topic: str, payload: bytes, qos: int = 0, packet_id: int | None = None, **fields: object
) -> Publish:
    return Publish(topic, payload, QoS(qos), packet_id=packet_id, **fields)  # type: ignore[arg-type]


# ------------------------------------------------------------ Reason Codes


def test_a_suback_grants_at_most_the_requested_qos(model: BrokerModel) -> None:
    """[MQTT-3.8.4-7]: 0x02 for a QoS 1 request is a grant nobody asked for; 0x01,
    0x00 or a refusal are fine."""
    connected5(model, "a")
    model.apply(Send("a", Subscribe(1, (Subscription("t", QoS.AT_LEAST_ONCE),))))
    assert "MQTT-3.8.4-7" in refs_of(model, "a", SubAck(1, (0x02,)))
    model.observe("a", SubAck(1, (0x01,)))


def test_a_suback_may_refuse_wildcards_only_for_a_wildcard_filter(model: BrokerModel) -> None:
    """0xA2 (Wildcard Subscriptions not supported) asserts a wildcard the filter lacks:
    no Subscribe Reason Code for this filter [MQTT-3.9.3-2]."""
    connected5(model, "a")
    model.apply(Send("a", Subscribe(1, (Subscription("t", QoS.AT_LEAST_ONCE),))))
    assert refs_of(model, "a", SubAck(1, (0xA2,))) == ("MQTT-3.9.3-2",)
    model.observe("a", SubAck(1, (0x87,)))  # Not authorized: always allowed
    assert model.check_quiescent() == []


def test_an_unsuback_says_whether_the_subscription_existed(model: BrokerModel) -> None:
    """3.11.3: 0x11 (No subscription existed) for one that did is not true; one
    Reason Code per Topic Filter [MQTT-3.11.3-2], in the order of the filters
    [MQTT-3.11.3-1]; one UNSUBACK per UNSUBSCRIBE [MQTT-3.10.4-6]."""
    connected5(model, "a")
    subscribe5(model, "a", "t")
    model.apply(Send("a", Unsubscribe(2, ("t", "u"))))
    assert refs_of(model, "a", UnsubAck(2, (0x00,))) == ("MQTT-3.11.3-2", "MQTT-3.10.4-6")
    assert refs_of(model, "a", UnsubAck(2, (0x11, 0x11))) == ("MQTT-3.10.4-5", "MQTT-3.11.3-2")
    assert refs_of(model, "a", UnsubAck(2, (0x11, 0x00))) == ("MQTT-3.11.3-1",)
    model.observe("a", UnsubAck(2, (0x00, 0x11)))
    assert refs_of(model, "a", UnsubAck(2, (0x00, 0x11))) == ("MQTT-3.10.4-6",)


def test_puback_0x10_only_when_nobody_subscribed(model: BrokerModel) -> None:
    """3.4.2.1: 0x10 (No matching subscribers) is no PUBACK Reason Code for a message
    that matched [MQTT-3.4.2-1]."""
    connect(model, "sub")
    subscribe(model, "sub", "t", 1)
    connected5(model, "pub")
    model.apply(Send("pub", publish("t", b"m", 1, 1)))
    assert refs_of(model, "pub", PubAck(1, 0x10)) == ("MQTT-3.4.2-1",)
    model.observe("pub", PubAck(1, 0x00))
    model.apply(Send("pub", publish("nobody", b"m", 1, 2)))
    model.observe("pub", PubAck(2, 0x10))


def test_a_refused_publish_is_owed_to_nobody(model: BrokerModel) -> None:
    """PUBACK 0x87 (Not authorized): the server did not take the message, so no
    subscriber is owed it."""
    connect(model, "sub")
    subscribe(model, "sub", "t", 1)
    connected5(model, "pub")
    model.apply(Send("pub", publish("t", b"m", 1, 1)))
    model.observe("pub", PubAck(1, 0x87))
    assert model.check_quiescent() == []


def test_pubrel_0x92_only_for_an_unknown_packet_identifier(model: BrokerModel) -> None:
    """3.6.2.1: the server's PUBREL for a message in flight is 0x00; 0x92 (Packet
    Identifier not found) is not true for an id it is using."""
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 2)
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"m", 2, 1)))
    model.observe("pub", PubRec(1))
    model.apply(Send("pub", PubRel(1)))
    model.observe("sub", publish5("t", b"m", 2, 3))
    model.apply(Send("sub", PubRec(3)))
    assert refs_of(model, "sub", PubRel(3, 0x92)) == ("MQTT-3.6.2-1",)
    model.observe("sub", PubRel(3))


# -------------------------------------------------------------- properties


def test_properties_reach_a_level_5_subscriber_unaltered(model: BrokerModel) -> None:
    """[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-20]."""
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 0)
    connected5(model, "pub")
    model.apply(Send("pub", publish5("t", b"m", properties=PROPS)))
    altered = {
        "MQTT-3.3.2-4": attrs.evolve(PROPS, payload_format_indicator=0),
        "MQTT-3.3.2-20": attrs.evolve(PROPS, content_type="text/html"),
        "MQTT-3.3.2-15": attrs.evolve(PROPS, response_topic="elsewhere"),
        "MQTT-3.3.2-16": attrs.evolve(PROPS, correlation_data=None),
        "MQTT-3.3.2-17": attrs.evolve(PROPS, user_properties=PROPS.user_properties[:2]),
    }
    for ref, wrong in altered.items():
        assert refs_of(model, "sub", publish5("t", b"m", properties=wrong)) == (ref,)
    model.observe("sub", publish5("t", b"m", properties=PROPS))


def test_user_properties_keep_their_order(model: BrokerModel) -> None:
    """[MQTT-3.3.2-18]: all there, in another order, is still wrong."""
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 0)
    connected5(model, "pub")
    model.apply(Send("pub", publish5("t", b"m", properties=PROPS)))
    reordered = attrs.evolve(PROPS, user_properties=PROPS.user_properties[::-1])
    assert refs_of(model, "sub", publish5("t", b"m", properties=reordered)) == ("MQTT-3.3.2-18",)


def test_a_3_1_1_message_reaches_a_level_5_subscriber_without_properties(
    model: BrokerModel,
) -> None:
    """Cross-level: nothing to forward, so nothing may be invented [MQTT-3.3.2-17]."""
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 0)
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"m")))
    invented = Properties(user_properties=(("x", "y"),))
    assert refs_of(model, "sub", publish5("t", b"m", properties=invented)) == ("MQTT-3.3.2-17",)
    model.observe("sub", publish("t", b"m"))


def test_a_level_5_message_reaches_a_3_1_1_subscriber_as_a_plain_publish(
    model: BrokerModel,
) -> None:
    """Cross-level: a 3.1.1 PUBLISH has no properties; the message is the same."""
    connect(model, "sub")
    subscribe(model, "sub", "t", 1)
    connected5(model, "pub")
    model.apply(Send("pub", publish5("t", b"m", 1, 1, properties=PROPS)))
    model.observe("pub", PubAck(1))
    model.observe("sub", publish("t", b"m", 1, 1))
    assert model.check_quiescent() == []


def test_the_message_expiry_interval_never_grows(model: BrokerModel) -> None:
    """[MQTT-3.3.2-6]: the received value less the wait: present, and not above it."""
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 0)
    connected5(model, "pub")
    model.apply(Send("pub", publish5("t", b"m", properties=Properties(message_expiry_interval=60))))
    for wrong in (None, 61):
        properties = Properties(message_expiry_interval=wrong)
        assert refs_of(model, "sub", publish5("t", b"m", properties=properties)) == (
            "MQTT-3.3.2-6",
        )
    model.observe("sub", publish5("t", b"m", properties=Properties(message_expiry_interval=59)))


# ------------------------------------------------------ subscription options


def test_no_local_withholds_the_clients_own_messages(model: BrokerModel) -> None:
    """[MQTT-3.8.3-3]."""
    connected5(model, "a")
    subscribe5(model, "a", "t", 0, no_local=True)
    model.apply(Send("a", publish("t", b"mine")))
    assert model.check_quiescent() == []
    assert refs_of(model, "a", publish("t", b"mine")) == ("MQTT-3.8.3-3",)


@pytest.mark.parametrize(("rap", "ref"), [(False, "MQTT-3.3.1-12"), (True, "MQTT-3.3.1-13")])
def test_retain_as_published_decides_the_retain_flag(
    model: BrokerModel, rap: bool, ref: str
) -> None:
    """RAP 0: RETAIN 0 [MQTT-3.3.1-12]; RAP 1: RETAIN as published [MQTT-3.3.1-13]."""
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 0, retain_as_published=rap)
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"m", retain=True)))
    assert refs_of(model, "sub", publish("t", b"m", retain=not rap)) == (ref,)
    model.observe("sub", publish("t", b"m", retain=rap))


def test_retain_handling_2_sends_no_retained_message(model: BrokerModel) -> None:
    """[MQTT-3.3.1-11]; Retain Handling 0 sends it [MQTT-3.3.1-9]."""
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"kept", 1, 1, retain=True)))
    model.observe("pub", PubAck(1))
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 1, retain_handling=2)
    assert model.check_quiescent() == []
    assert refs_of(model, "sub", publish("t", b"kept", 1, 1, retain=True)) == ("MQTT-3.3.1-11",)
    subscribe5(model, "sub", "t", 1, packet_id=2)
    model.observe("sub", publish("t", b"kept", 1, 1, retain=True))


def test_retain_handling_1_sends_retained_messages_to_a_new_subscription_only(
    model: BrokerModel,
) -> None:
    """[MQTT-3.3.1-10]."""
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"kept", retain=True)))
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 0, retain_handling=1)
    model.observe("sub", publish("t", b"kept", retain=True))
    subscribe5(model, "sub", "t", 0, packet_id=2, retain_handling=1)
    assert model.check_quiescent() == []
    assert refs_of(model, "sub", publish("t", b"kept", retain=True)) == ("MQTT-3.3.1-10",)


def test_the_clients_own_retained_message_under_no_local_and_retain_handling_2_names_both(
    model: BrokerModel,
) -> None:
    """Either option forbids the copy [MQTT-3.8.3-3] [MQTT-3.3.1-11]: a broker that
    honours No Local and ignores Retain Handling breaks only the second, so the verdict
    does not name No Local alone."""
    connected5(model, "a")
    model.apply(Send("a", publish("t", b"kept", retain=True)))
    subscribe5(model, "a", "t", 0, no_local=True, retain_handling=2)
    assert model.check_quiescent() == []
    assert refs_of(model, "a", publish("t", b"kept", retain=True)) == (
        "MQTT-3.8.3-3",
        "MQTT-3.3.1-11",
    )


def test_a_delivery_carries_its_subscription_identifier(model: BrokerModel) -> None:
    """[MQTT-3.3.4-3]: the identifier of the subscription that matched."""
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 0, identifier=7)
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"m")))
    assert refs_of(model, "sub", publish("t", b"m")) == ("MQTT-3.3.4-3",)
    model.observe("sub", publish5("t", b"m", properties=Properties(subscription_identifiers=(7,))))


def test_one_copy_carries_every_identifier_or_each_copy_its_own(model: BrokerModel) -> None:
    """Overlapping subscriptions: one copy with both identifiers [MQTT-3.3.4-4], or
    one copy per subscription with its own [MQTT-3.3.4-5]."""
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 0, identifier=1)
    subscribe5(model, "sub", "#", 0, identifier=2, packet_id=2)
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"m")))
    one = Properties(subscription_identifiers=(1,))
    assert refs_of(model, "sub", publish5("t", b"m", properties=Properties(
        subscription_identifiers=(3,)))) == ("MQTT-3.3.4-4",)
    both = Properties(subscription_identifiers=(1, 2))
    model.observe("sub", publish5("t", b"m", properties=both))
    model.observe("sub", publish5("t", b"m", properties=one))  # an extra copy stays allowed
    assert model.check_quiescent() == []

