"""Every DISCONNECT the broker starts at MQTT 5.0, seen on a raw socket: the reason code
says why [MQTT-3.14.2-1], and the connection then closes. (Protocol errors of each kind
are in test_v5_bad_inputs.py; 0x8B at shutdown and 0x8E on takeover in test_v5_peers.py.)"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    ProtocolLevel,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import CLOSED, RawClient

V5 = ProtocolLevel.MQTT_5
R = ReasonCode


def connect5(broker: BrokerThread, client_id: str, keep_alive: int = 60) -> RawClient:
    client = RawClient(broker.port)
    client.decoder.protocol_level = V5
    client.send(Connect(V5, client_id, keep_alive=keep_alive), V5)
    connack = client.receive()
    assert isinstance(connack, ConnAck)
    assert connack.return_code == R.SUCCESS
    return client


def disconnect_reason(client: RawClient, timeout: float = 5.0) -> int:
    """Read until DISCONNECT; its reason code, after checking the close follows."""
    while True:
        packet: Packet | str = client.receive(timeout)
        assert packet != CLOSED, "closed without DISCONNECT"
        if isinstance(packet, Disconnect):
            assert client.receive(timeout) == CLOSED
            return packet.reason_code


def test_keep_alive_expired_is_0x8d(start_broker: Callable[..., BrokerThread]) -> None:
    """No packet within one and a half times Keep Alive: the broker closes the connection
    [MQTT-3.1.2-22], DISCONNECT 0x8D first, the close after it [MQTT-4.13.2-1]."""
    broker = start_broker(keep_alive_factor=1.5)
    with connect5(broker, "quiet", keep_alive=1) as client:
        assert disconnect_reason(client) == R.KEEP_ALIVE_TIMEOUT


def test_a_taken_over_session_is_0x8e(start_broker: Callable[..., BrokerThread]) -> None:
    """The existing connection of a Client Identifier connecting again is sent DISCONNECT
    0x8E and closed [MQTT-3.1.4-3]."""
    broker = start_broker()
    with connect5(broker, "same") as first, connect5(broker, "same"):
        assert disconnect_reason(first) == R.SESSION_TAKEN_OVER


def test_more_qos_2_than_the_receive_maximum_is_0x93(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """DISCONNECT 0x93, then the close [MQTT-4.13.2-1]."""
    broker = start_broker(max_awaiting_rel=2)
    with connect5(broker, "eager") as client:
        for n in (1, 2, 3):  # never PUBREL: the third exceeds Receive Maximum 2
            client.send(Publish("t", b"x", QoS.EXACTLY_ONCE, packet_id=n), V5)
        assert disconnect_reason(client) == R.RECEIVE_MAXIMUM_EXCEEDED


@pytest.mark.parametrize(("config", "publish", "reason"), [
    ({"max_qos": 1}, Publish("t", b"x", QoS.EXACTLY_ONCE, packet_id=1), R.QOS_NOT_SUPPORTED),
    ({"retain_available": False}, Publish("t", b"x", retain=True), R.RETAIN_NOT_SUPPORTED),
    ({"max_topic_levels": 3}, Publish("a/b/c/d", b"x"), R.TOPIC_NAME_INVALID),
], ids=["qos-above-maximum", "retain-unavailable", "topic-beyond-limits"])
def test_a_publish_beyond_what_connack_stated_is_disconnected_with_its_reason(
    start_broker: Callable[..., BrokerThread], config: dict[str, object], publish: Publish,
    reason: ReasonCode,
) -> None:
    """DISCONNECT with the reason, then the close [MQTT-4.13.2-1]."""
    broker = start_broker(**config)
    with connect5(broker, "bold") as client:
        client.send(publish, V5)
        assert disconnect_reason(client) == reason


def test_a_subscriber_that_takes_nothing_past_stall_timeout_is_0x97(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """DISCONNECT 0x97, then the close [MQTT-4.13.2-1]."""
    broker = start_broker(stall_timeout=0.5, max_inflight=1)
    with connect5(broker, "stuck") as stuck, connect5(broker, "pub") as pub:
        stuck.send(Subscribe(1, (Subscription("t", QoS.AT_LEAST_ONCE),)), V5)
        assert isinstance(stuck.receive(), SubAck)
        for n in (1, 2, 3):
            pub.send(Publish("t", b"x", QoS.AT_LEAST_ONCE, packet_id=n), V5)
        assert disconnect_reason(stuck) == R.QUOTA_EXCEEDED  # it never sent PUBACK
