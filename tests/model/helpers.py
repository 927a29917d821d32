"""Short constructors so that scenario tests read like the specification's flows."""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    ProtocolLevel,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Will,
)
from mqttref.model import BrokerModel, Send


def connect(
    model: BrokerModel,
    client: str,
    *,
    clean: bool = True,
    will: Will | None = None,
    keep_alive: int = 0,
    session_present: bool = False,
    client_id: str | None = None,
) -> None:
    """CONNECT and observe the CONNACK 0 the server must answer."""
    model.apply(
        Send(
            client,
            Connect(
                ProtocolLevel.MQTT_3_1_1,
                client if client_id is None else client_id,
                clean_session=clean,
                keep_alive=keep_alive,
                will=will,
            ),
        )
    )
    model.observe(client, ConnAck(session_present, 0))


def subscribe(
    model: BrokerModel, client: str, topic_filter: str, qos: int, packet_id: int = 1
) -> None:
    """SUBSCRIBE and observe a SUBACK granting the requested QoS."""
    model.apply(Send(client, Subscribe(packet_id, (Subscription(topic_filter, QoS(qos)),))))
    model.observe(client, SubAck(packet_id, (qos,)))


def publish(
    topic: str,
    payload: bytes,
    qos: int = 0,
    packet_id: int | None = None,
    *,
    retain: bool = False,
    dup: bool = False,
) -> Publish:
    return Publish(topic, payload, QoS(qos), retain, dup, packet_id)
