"""The client's share of the rules (``ClientModel``), as issue 7's checker uses it."""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    PingReq,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from mqttref.model.client import ClientModel
from mqttref.model.errors import Violation


def connected(clean: bool = True) -> ClientModel:
    client = ClientModel()
    client.sent(Connect(ProtocolLevel.MQTT_3_1_1, "c", clean_session=clean))
    client.received(ConnAck(False, 0))
    return client


def pub(qos: int, packet_id: int | None, dup: bool = False) -> Publish:
    return Publish("t", b"m", QoS(qos), dup=dup, packet_id=packet_id)


def test_first_packet_must_be_connect_and_only_once() -> None:
    """[MQTT-3.1.0-1] [MQTT-3.1.0-2]"""
    with pytest.raises(Violation):
        ClientModel().sent(PingReq())
    client = connected()
    with pytest.raises(Violation):
        client.sent(Connect(ProtocolLevel.MQTT_3_1_1, "c"))


def test_nothing_after_disconnect() -> None:
    """3.1.1: [MQTT-3.14.4-2] (3.14.4-1 is the close)"""
    client = connected()
    client.sent(Disconnect())
    with pytest.raises(Violation):
        client.sent(PingReq())


def test_client_owes_puback_and_must_ack_in_order() -> None:
    """[MQTT-4.5.0-2] [MQTT-4.6.0-2]"""
    client = connected()
    client.received(pub(1, 1))
    client.received(pub(1, 2))
    assert [o.what for o in client.obligations()] == ["PUBACK 1", "PUBACK 2"]
    with pytest.raises(Violation, match="out of order"):
        client.sent(PubAck(2))
    client.sent(PubAck(1))
    client.sent(PubAck(2))
    assert client.obligations() == []


def test_client_qos2_publish_full_handshake() -> None:
    """[MQTT-4.3.3-1]"""
    client = connected()
    client.sent(pub(2, 5))
    client.received(PubRec(5))
    assert [o.what for o in client.obligations()] == ["PUBREL 5"]
    client.sent(PubRel(5))
    with pytest.raises(Violation):
        client.sent(pub(2, 5, dup=True))


def test_client_resends_with_dup_after_resuming_a_persistent_session() -> None:
    """[MQTT-4.4.0-1] [MQTT-3.3.1-1]"""
    client = connected(clean=False)
    client.sent(pub(1, 3))
    client.connection_lost()
    client.sent(Connect(ProtocolLevel.MQTT_3_1_1, "c", clean_session=False))
    client.received(ConnAck(True, 0))
    assert [o.what for o in client.obligations()] == ["PUBLISH (DUP=1) 3"]
    with pytest.raises(Violation):
        client.sent(pub(1, 3))  # DUP=0
    client.sent(pub(1, 3, dup=True))
    client.received(PubAck(3))
    assert client.obligations() == []


def test_packet_ids_in_use_cannot_be_reused() -> None:
    """[MQTT-2.3.1-2]"""
    client = connected()
    client.sent(Subscribe(1, (Subscription("a", QoS.AT_MOST_ONCE),)))
    with pytest.raises(Violation):
        client.sent(Subscribe(1, (Subscription("b", QoS.AT_MOST_ONCE),)))
    client.received(SubAck(1, (0,)))
    client.sent(Subscribe(1, (Subscription("b", QoS.AT_MOST_ONCE),)))
    client.sent(pub(1, 9))
    with pytest.raises(Violation):
        client.sent(pub(1, 9))


def test_qos0_publish_has_no_dup_and_no_packet_id() -> None:
    """[MQTT-3.3.1-2] [MQTT-2.3.1-5]"""
    client = connected()
    with pytest.raises(Violation):
        client.sent(pub(0, None, dup=True))


def test_a_server_ack_for_an_unknown_id_is_the_servers_fault() -> None:
    client = connected()
    with pytest.raises(Violation) as caught:
        client.received(PubComp(4))
    assert caught.value.client == "server"
