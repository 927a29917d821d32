"""What a level-5 client limits in the broker model: Receive Maximum (the server's
send quota, 4.9), Topic Alias Maximum (the server's aliases are read before a
PUBLISH is matched to a delivery, 3.3.2.3.4), Maximum Packet Size (3.1.2.11.4),
and each message's own Message Expiry Interval on the model clock (3.3.2.3.3).
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Properties,
    ProtocolLevel,
    PubAck,
    Publish,
    QoS,
)
from mqttref.model import BrokerModel, Closed, Send, TimePasses
from tests.model.helpers import connect, publish
from tests.model.test_levels_mix import refs_of
from tests.model.test_v5_broker_publish import subscribe5


@pytest.fixture
def model() -> BrokerModel:
    return BrokerModel(expiry_margin=1.0)


def connected5(model: BrokerModel, client: str, **limits: int) -> None:
    """A level-5 client with the given CONNECT properties, accepted."""
    properties = Properties(**limits)  # type: ignore[arg-type]
    model.apply(Send(client, Connect(ProtocolLevel.MQTT_5, client, properties=properties)))
    model.observe(client, ConnAck(False, 0x00))


def aliased(topic: str, payload: bytes, alias: int) -> Publish:
    return Publish(topic, payload, properties=Properties(topic_alias=alias))


def published(model: BrokerModel, *messages: bytes, qos: int = 0, topic: str = "t") -> None:
    """A 3.1.1 publisher sends each message and gets its acknowledgement."""
    connect(model, "pub")
    for packet_id, payload in enumerate(messages, start=1):
        model.apply(Send("pub", publish(topic, payload, qos, packet_id if qos else None)))
        if qos:
            model.observe("pub", PubAck(packet_id))


# ---------------------------------------------------------- Receive Maximum


def test_the_server_sends_no_more_than_the_receive_maximum(model: BrokerModel) -> None:
    """[MQTT-3.3.4-9] [MQTT-4.9.0-2]: with one QoS 1 PUBLISH unacknowledged and a
    Receive Maximum of 1, the next waits for the PUBACK (and is not owed till then)."""
    connected5(model, "sub", receive_maximum=1)
    subscribe5(model, "sub", "t", 1)
    published(model, b"m1", b"m2", qos=1)
    model.observe("sub", publish("t", b"m1", 1, 1))
    assert model.check_quiescent() == []
    assert refs_of(model, "sub", publish("t", b"m2", 1, 2)) == ("MQTT-3.3.4-9", "MQTT-4.9.0-2")
    model.apply(Send("sub", PubAck(1)))
    assert model.check_quiescent() != []  # now m2 is owed
    model.observe("sub", publish("t", b"m2", 1, 2))


def test_qos_0_does_not_count_against_the_receive_maximum(model: BrokerModel) -> None:
    """4.9: the server MAY go on sending QoS 0 PUBLISHes at a quota of zero."""
    connected5(model, "sub", receive_maximum=1)
    subscribe5(model, "sub", "t", 1)
    subscribe5(model, "sub", "q", 0, packet_id=2)
    published(model, b"m1", qos=1)
    model.observe("sub", publish("t", b"m1", 1, 1))
    model.apply(Send("pub", publish("q", b"zero")))
    model.observe("sub", publish("q", b"zero"))


# --------------------------------------------------------------- Topic Alias


def test_an_alias_alone_reads_as_the_topic_it_maps(model: BrokerModel) -> None:
    """3.3.2.3.4: a Topic Name with an alias sets it; the alias alone reads it."""
    connected5(model, "sub", topic_alias_maximum=2)
    subscribe5(model, "sub", "t", 0)
    published(model, b"m1", b"m2")
    model.observe("sub", aliased("t", b"m1", 1))
    model.observe("sub", aliased("", b"m2", 1))
    assert model.check_quiescent() == []


def test_an_alias_above_the_clients_maximum(model: BrokerModel) -> None:
    """[MQTT-3.3.2-11] [MQTT-3.1.2-26]; alias 0 [MQTT-3.3.2-8]."""
    connected5(model, "sub", topic_alias_maximum=2)
    subscribe5(model, "sub", "t", 0)
    published(model, b"m1")
    assert refs_of(model, "sub", aliased("t", b"m1", 3)) == ("MQTT-3.3.2-11", "MQTT-3.1.2-26")
    assert refs_of(model, "sub", aliased("t", b"m1", 0)) == ("MQTT-3.3.2-8",)
    model.observe("sub", aliased("t", b"m1", 2))


def test_no_alias_to_a_client_that_allowed_none(model: BrokerModel) -> None:
    """[MQTT-3.1.2-27]."""
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 0)
    published(model, b"m1")
    assert refs_of(model, "sub", aliased("t", b"m1", 1)) == ("MQTT-3.1.2-27",)


def test_an_alias_alone_that_maps_nothing_names_no_topic(model: BrokerModel) -> None:
    """[MQTT-3.3.2-3]: and a rejected PUBLISH sets no mapping for the next one."""
    connected5(model, "sub", topic_alias_maximum=2)
    subscribe5(model, "sub", "t", 0)
    published(model, b"m1")
    assert refs_of(model, "sub", aliased("", b"m1", 1)) == ("MQTT-3.3.2-3",)
    model.observe("sub", aliased("t", b"m1", 1))


# ------------------------------------------------------ Maximum Packet Size


def test_a_publish_above_the_maximum_packet_size_is_discarded_not_sent(
    model: BrokerModel,
) -> None:
    """[MQTT-3.1.2-25]: not owed; [MQTT-3.1.2-24]: never on the wire."""
    connected5(model, "sub", maximum_packet_size=64)
    subscribe5(model, "sub", "t", 0)
    published(model, b"x" * 100, b"small")
    assert refs_of(model, "sub", publish("t", b"x" * 100)) == ("MQTT-3.1.2-24",)
    model.observe("sub", publish("t", b"small"))
    assert model.check_quiescent() == []


# ---------------------------------------------------------- Message Expiry


def expiring(model: BrokerModel, seconds: int) -> None:
    """A level-5 publisher's QoS 1 message with a Message Expiry Interval."""
    connected5(model, "pub")
    properties = Properties(message_expiry_interval=seconds)
    model.apply(Send("pub", Publish("t", b"m", QoS(1), packet_id=1, properties=properties)))
    model.observe("pub", PubAck(1))


def test_an_expired_message_is_deleted_not_delivered(model: BrokerModel) -> None:
    """[MQTT-3.3.2-5]: past its interval it is no longer owed; past the margin too,
    a delivery is late."""
    connected5(model, "sub", receive_maximum=1)
    subscribe5(model, "sub", "t", 1)
    subscribe5(model, "sub", "x", 1, packet_id=2)
    connect(model, "other")
    model.apply(Send("other", publish("x", b"first", 1, 1)))
    model.observe("other", PubAck(1))
    model.observe("sub", publish("x", b"first", 1, 1))  # the quota is spent
    expiring(model, 10)
    model.apply(TimePasses(10))
    model.apply(Send("sub", PubAck(1)))
    assert model.check_quiescent() == []  # may have expired
    model.apply(TimePasses(2))
    late = Publish("t", b"m", QoS(1), packet_id=2, properties=Properties(message_expiry_interval=1))
    assert refs_of(model, "sub", late) == ("MQTT-3.3.2-5",)


def test_a_delivery_carries_the_interval_less_the_wait(model: BrokerModel) -> None:
    """[MQTT-3.3.2-6]: after 5 seconds in the server, at most 10 - 5 (within the
    margin) is left."""
    connected5(model, "sub", receive_maximum=1)
    subscribe5(model, "sub", "t", 1)
    subscribe5(model, "sub", "x", 1, packet_id=2)
    connect(model, "other")
    model.apply(Send("other", publish("x", b"first", 1, 1)))
    model.observe("other", PubAck(1))
    model.observe("sub", publish("x", b"first", 1, 1))
    expiring(model, 10)
    model.apply(TimePasses(5))
    model.apply(Send("sub", PubAck(1)))

    def copy(left: int) -> Publish:
        properties = Properties(message_expiry_interval=left)
        return Publish("t", b"m", QoS(1), packet_id=2, properties=properties)

    assert refs_of(model, "sub", copy(10)) == ("MQTT-3.3.2-6",)
    model.observe("sub", copy(5))


# ----------------------------------------------------- the client's aliases


def connected5_aliases(model: BrokerModel, client: str, maximum: int) -> None:
    """A level-5 client whose CONNACK lets it use Topic Aliases up to ``maximum``."""
    model.apply(Send(client, Connect(ProtocolLevel.MQTT_5, client)))
    model.observe(client, ConnAck(False, 0x00, Properties(topic_alias_maximum=maximum)))


def test_the_server_reads_a_clients_alias_as_its_topic(model: BrokerModel) -> None:
    """[MQTT-3.3.2-12]: an alias within the server's maximum is accepted; the alias
    alone reads as the mapped Topic Name, which is what subscribers get."""
    connected5(model, "sub")
    subscribe5(model, "sub", "t", 0)
    connected5_aliases(model, "pub", 1)
    model.apply(Send("pub", aliased("t", b"m1", 1)))
    model.apply(Send("pub", aliased("", b"m2", 1)))
    model.observe("sub", publish("t", b"m1"))
    model.observe("sub", publish("t", b"m2"))
    assert model.check_quiescent() == []


def test_a_clients_alias_above_the_maximum_is_closed_on(model: BrokerModel) -> None:
    """3.3.4: a Protocol Error: the close is owed [MQTT-4.13.1-1]; DISCONNECT 0x94
    (Topic Alias invalid) fits it, 0x8E (Session taken over) does not."""
    connected5_aliases(model, "pub", 1)
    model.apply(Send("pub", aliased("t", b"m1", 2)))
    assert refs_of(model, "pub", Disconnect(0x8E)) == ("MQTT-4.13.1-1", "MQTT-3.14.2-1")
    model.observe("pub", Disconnect(0x94))
    model.observe("pub", Closed())
    assert model.check_quiescent() == []


# ------------------------------------------------------ what allowed() lists


def test_every_publish_allowed_lists_is_accepted(model: BrokerModel) -> None:
    """``allowed`` is a conforming server: at level 5 its PUBLISHes carry the
    message's properties, the interval left and the Subscription Identifiers,
    within the quota; the model accepts each of them."""
    connected5(model, "sub", receive_maximum=1)
    subscribe5(model, "sub", "t", 1, identifier=4)
    connected5(model, "pub")
    properties = Properties(message_expiry_interval=30, user_properties=(("k", "v"),))
    model.apply(Send("pub", Publish("t", b"m", QoS(1), packet_id=1, properties=properties)))
    model.observe("pub", PubAck(1))
    model.apply(TimePasses(3))
    publishes = [o for o in model.allowed("sub") if isinstance(o, Publish)]
    assert [p.properties.subscription_identifiers for p in publishes] == [(4,)]
    model.observe("sub", publishes[0])
    assert model.check_quiescent() == []
