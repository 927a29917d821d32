"""A persistent 5.0 session comes back whole after a broker restart on the SQLite store.

Issue 15: "The SQLite store keeps the 5.0 session state." What came for a
client while it was away keeps its properties and the rest of its Message
Expiry Interval across the restart, a message whose interval ended while the
broker was down is not delivered [MQTT-3.3.2-5], and the session's
subscriptions keep their No Local option [MQTT-3.8.3-3]. Two brokers run one
after the other in this process on one data directory, seen through raw 5.0
sockets. A database of schema 3 (``tests/store/version3.py``) is migrated to 4.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import pytest

from mqttref.impl.broker.broker import Broker
from mqttref.impl.broker.config import Config
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Properties,
    ProtocolLevel,
    PubAck,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from mqttref.impl.codec.properties import encode_properties
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage
from mqttref.impl.store.base import SubscriptionOptions
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import RawClient
from tests.store.test_v5_state import open_sqlite, restart
from tests.store.version3 import Version3Database

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


# Migration 3 -> 4 -------------------------------------------------------------------------


CONTENT = Properties(content_type="text/plain")


def version_3_database(data_dir: Path, *, left_at: float) -> None:
    """A database of schema 3: session ``c`` left at wall time ``left_at`` with a 600 s
    Session Expiry Interval, a member of ``$share/g/t``, with a queued 5.0 message
    (content type, expiring 500 s after it left) and a QoS 1 message in flight."""
    with Version3Database(data_dir) as old:
        old.session(1, "c", left_at, 600.0)
        old.shared_subscription(1, "$share/g/t", 1, identifier=9)
        old.queued5(1, 7, "t", b"seven",
                    properties=encode_properties(CONTENT, PacketType.PUBLISH),
                    expires_at=left_at + 500.0)
        old.inflight(1, 4, OutboundState.AWAITING_PUBACK, OutboundMessage("t", 3, Q1, b"one"))


def test_a_version_3_database_is_migrated_to_4_keeping_its_5_0_state(tmp_path: Path) -> None:
    """Schema 4 adds what a restart lost: the shared subscription a message came through
    (none is known for a version 3 row) and the delayed wills (none yet)."""
    version_3_database(tmp_path, left_at=1000.0)
    store = open_sqlite(tmp_path, wall=1100.0, loop=10.0)
    try:
        record = store.load_session("c")
        assert record is not None
        assert record.subscriptions == {"$share/g/t": Q1}
        assert record.options == {"$share/g/t": SubscriptionOptions(identifier=9)}
        [(seq, seven)] = record.queue
        assert (seq, seven.topic, seven.payload, seven.properties) == (7, "t", b"seven", CONTENT)
        assert seven.expires_at == pytest.approx(10.0 + 400.0)
        assert seven.share is None
        [one] = record.inflight
        assert one.message == OutboundMessage("t", 3, Q1, b"one")
        assert list(store.wills()) == []
        # ... and takes what version 4 keeps.
        store.queue_append("c", 8, OutboundMessage("t", 0, Q1, b"eight", share="$share/g/t"))
        store.will_set("c", Message("w", b"bye"), 70.0)
        again = restart(store, later=5.0, loop=100.0)
    finally:
        store.close()
    try:
        record = again.load_session("c")
        assert record is not None
        assert [(seq, out.share) for seq, out in record.queue] == [(7, None), (8, "$share/g/t")]
        [will] = again.wills()
        assert (will.client_id, will.message.payload) == ("c", b"bye")
        assert will.due_at == pytest.approx(100.0 + 55.0)
    finally:
        again.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "mqttref.db")) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(4,)]


def test_the_broker_resumes_a_session_from_a_version_3_database(tmp_path: Path) -> None:
    version_3_database(tmp_path, left_at=time.time())
    with BrokerThread(sqlite_config(tmp_path)) as broker, Client5(broker.port) as client:
        assert client.connect5("c", clean_start=False).session_present
        again = client.receive()  # in flight: again first, with DUP [MQTT-4.4.0-1]
        assert isinstance(again, Publish)
        assert (again.packet_id, again.dup, again.payload) == (3, True, b"one")
        client.send5(PubAck(3))
        seven = client.next_publish()
        assert (seven.payload, seven.properties.content_type) == (b"seven", "text/plain")
        assert broker.call(lambda b: list(b.registry.shared.groups)) == ["$share/g/t"]
