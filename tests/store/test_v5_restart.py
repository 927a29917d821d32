"""A persistent 5.0 session comes back whole after a broker restart on the SQLite store.

Issue 15: "The SQLite store keeps the 5.0 session state." What came for a
client while it was away keeps its properties and the rest of its Message
Expiry Interval across the restart, a message whose interval ended while the
broker was down is not delivered [MQTT-3.3.2-5], and the session's
subscriptions keep their No Local option [MQTT-3.8.3-3]. Two brokers run one
after the other in this process on one data directory, seen through raw 5.0
sockets.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from mqttref.impl.broker.broker import Broker
from mqttref.impl.broker.config import Config
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    Properties,
    ProtocolLevel,
    PubAck,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import RawClient

V5 = ProtocolLevel.MQTT_5
Q1 = QoS.AT_LEAST_ONCE
USER_PROPERTIES = (("k", "v1"), ("a", "x"), ("k", "v2"))  # order and repeats matter


class Client5(RawClient):
    """A raw socket speaking MQTT 5.0."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.decoder.protocol_level = V5

    def __enter__(self) -> Client5:
        return self

    def send5(self, packet: Packet) -> None:
        self.send_bytes(encode(packet, V5))

    def connect5(self, client_id: str, *, clean_start: bool) -> ConnAck:
        self.send5(Connect(V5, client_id, clean_start,
                           properties=Properties(session_expiry_interval=600)))
        connack = self.receive()
        assert isinstance(connack, ConnAck), connack
        assert connack.return_code == 0
        return connack

    def publish(self, packet_id: int, topic: str, payload: bytes,
                properties: Properties) -> None:
        self.send5(Publish(topic, payload, Q1, packet_id=packet_id, properties=properties))
        ack = self.receive()
        assert isinstance(ack, PubAck), ack
        assert ack.packet_id == packet_id

    def next_publish(self) -> Publish:
        packet = self.receive()
        assert isinstance(packet, Publish), packet
        assert packet.packet_id is not None
        self.send5(PubAck(packet.packet_id))
        return packet


def sqlite_config(data_dir: Path) -> Config:
    return Config(port=0, store="sqlite", data_dir=str(data_dir), retry_interval=0)


def queued_rows(data_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(data_dir / "mqttref.db")) as db:
        count: int = db.execute("SELECT count(*) FROM queue").fetchone()[0]
        return count


def test_a_5_0_session_keeps_properties_expiry_and_no_local_across_a_restart(
    tmp_path: Path,
) -> None:
    with BrokerThread(sqlite_config(tmp_path)) as first:
        with Client5(first.port) as subscriber:
            assert not subscriber.connect5("sub", clean_start=True).session_present
            subscriber.send5(Subscribe(1, (Subscription("t/#", Q1, no_local=True),)))
            assert subscriber.receive() == SubAck(1, (Q1,))
            subscriber.send5(Disconnect())

        def away(broker: Broker) -> bool:
            session = broker.sessions.get("sub")
            return session is not None and session.connection is None

        assert first.wait_for(away)
        with Client5(first.port) as publisher:
            publisher.connect5("pub", clean_start=True)
            publisher.publish(1, "t/long", b"long", Properties(
                message_expiry_interval=600, content_type="text/plain",
                correlation_data=b"\x01\x02", user_properties=USER_PROPERTIES))
            published_at = time.monotonic()
            publisher.publish(2, "t/short", b"short", Properties(message_expiry_interval=1))
            publisher.publish(3, "t/forever", b"forever",
                              Properties(response_topic="answers/here"))
    assert queued_rows(tmp_path) == 3  # the short one was stored: it expires while down
    time.sleep(max(0.0, published_at + 1.2 - time.monotonic()))

    with BrokerThread(sqlite_config(tmp_path)) as second, Client5(second.port) as subscriber:
        assert subscriber.connect5("sub", clean_start=False).session_present
        long = subscriber.next_publish()
        assert (long.topic, long.payload) == ("t/long", b"long")
        assert long.properties.user_properties == USER_PROPERTIES
        assert long.properties.content_type == "text/plain"
        assert long.properties.correlation_data == b"\x01\x02"
        expiry = long.properties.message_expiry_interval
        assert expiry is not None
        assert 590 <= expiry < 600  # what remains [MQTT-3.3.2-6]
        forever = subscriber.next_publish()  # t/short expired while the broker was down
        assert (forever.topic, forever.payload) == ("t/forever", b"forever")
        assert forever.properties.response_topic == "answers/here"
        assert forever.properties.message_expiry_interval is None
        # No Local still holds: its own message does not come back, another's does.
        subscriber.publish(1, "t/own", b"mine", Properties())
        with Client5(second.port) as other:
            other.connect5("other", clean_start=True)
            other.publish(1, "t/other", b"theirs", Properties())
        after = subscriber.next_publish()
        assert (after.topic, after.payload) == ("t/other", b"theirs")


def test_a_5_0_session_whose_expiry_passes_while_the_broker_is_down_is_gone(
    tmp_path: Path,
) -> None:
    """The stored session carries its own Session Expiry Interval and when it was left,
    so a short one expires across the restart while a long one is resumed."""
    with BrokerThread(sqlite_config(tmp_path)) as first:
        for client_id, interval in (("brief", 1), ("lasting", 600)):
            with Client5(first.port) as client:
                client.send5(Connect(V5, client_id, False, properties=Properties(
                    session_expiry_interval=interval)))
                connack = client.receive()
                assert isinstance(connack, ConnAck)
                client.send5(Subscribe(1, (Subscription("t", Q1),)))
                assert client.receive() == SubAck(1, (Q1,))
                client.send5(Disconnect())
        left_at = time.monotonic()
    time.sleep(max(0.0, left_at + 1.3 - time.monotonic()))
    with BrokerThread(sqlite_config(tmp_path)) as second:
        for client_id, present in (("brief", False), ("lasting", True)):
            with Client5(second.port) as client:
                client.send5(Connect(V5, client_id, False, properties=Properties(
                    session_expiry_interval=600)))
                connack = client.receive()
                assert isinstance(connack, ConnAck)
                assert connack.session_present is present, client_id
