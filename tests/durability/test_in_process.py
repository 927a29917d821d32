"""The broker with the SQLite store in-process: exact protocol states across a crash.

A crash is taken as a copy of the data directory's files made on the broker's
own event loop, between two batches: the database file and its write-ahead
log hold exactly what a ``kill -9`` at that instant would leave (the store
writes each group commit to the log before anything is acknowledged). A new
broker then starts on the copy, and raw clients check packet by packet what
it gives back.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from mqttref.impl.broker.broker import Broker
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.topic import TopicServer
from mqttref.impl.codec.packets import PubAck, PubComp, Publish, PubRec, PubRel, QoS
from mqttref.impl.message import Message
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import RawClient

Q1, Q2 = QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE


def sqlite_config(data_dir: Path) -> Config:
    return Config(port=0, store="sqlite", data_dir=str(data_dir), retry_interval=0)


def crash_copy(running: BrokerThread, source: Path, target: Path) -> None:
    """What ``kill -9`` would leave right now, copied to ``target``."""

    def copy(_broker: Broker) -> None:
        target.mkdir()
        for path in source.iterdir():
            if path.name.startswith("mqttref.db"):
                shutil.copy2(path, target / path.name)

    running.call(copy)


def test_in_flight_state_in_both_directions_survives_a_crash(tmp_path: Path) -> None:
    with BrokerThread(sqlite_config(tmp_path / "live")) as first:
        subscriber = RawClient(first.port)
        assert not subscriber.connect("sub", clean_session=False).session_present
        subscriber.subscribe("t/#", Q2)
        publisher = RawClient(first.port)
        publisher.connect("pub", clean_session=False)
        # Inbound QoS 2, acknowledged with PUBREC, PUBREL not yet sent.
        publisher.send(Publish("t/two", b"once", Q2, packet_id=7))
        assert publisher.receive() == PubRec(7)
        two = subscriber.receive()
        assert isinstance(two, Publish)
        assert (two.topic, two.qos, two.dup) == ("t/two", Q2, False)
        # Outbound QoS 2 moves on to PUBREL; a QoS 1 message stays unacknowledged.
        publisher.send(Publish("t/one", b"at least", Q1, packet_id=8))
        assert publisher.receive() == PubAck(8)
        one = subscriber.receive()
        assert isinstance(one, Publish)
        assert one.qos == Q1
        subscriber.send(PubRec(two.packet_id or 0))
        assert subscriber.receive() == PubRel(two.packet_id or 0)
        crash_copy(first, tmp_path / "live", tmp_path / "after-crash")

    with BrokerThread(sqlite_config(tmp_path / "after-crash")) as second:
        subscriber = RawClient(second.port)
        assert subscriber.connect("sub", clean_session=False).session_present
        # Resent in the order first sent [MQTT-4.4.0-1]: the PUBREL, then the PUBLISH with DUP.
        assert subscriber.receive_all() == [
            PubRel(two.packet_id or 0),
            Publish("t/one", b"at least", Q1, False, True, one.packet_id),
        ]
        subscriber.send(PubComp(two.packet_id or 0))
        subscriber.send(PubAck(one.packet_id or 0))
        publisher = RawClient(second.port)
        assert publisher.connect("pub", clean_session=False).session_present
        publisher.send(Publish("t/two", b"once", Q2, dup=True, packet_id=7))
        assert publisher.receive() == PubRec(7)  # acknowledged again [MQTT-4.3.3-2]...
        publisher.send(PubRel(7))
        assert publisher.receive() == PubComp(7)
        assert subscriber.receive_all() == []  # ...but not delivered a second time
        assert second.wait_for(lambda b: not b.sessions["sub"].inflight)


def test_a_crash_between_batches_loses_no_acknowledged_queue_entry(tmp_path: Path) -> None:
    with BrokerThread(sqlite_config(tmp_path / "live")) as first:
        subscriber = RawClient(first.port)
        subscriber.connect("away", clean_session=False)
        subscriber.subscribe("q", Q1)
        subscriber.sock.close()
        assert first.wait_for(lambda b: b.sessions["away"].connection is None)
        publisher = RawClient(first.port)
        publisher.connect("pub")
        for packet_id in range(1, 51):
            publisher.send(Publish("q", b"%d" % packet_id, Q1, packet_id=packet_id))
        acks = [publisher.receive() for _ in range(50)]
        assert acks == [PubAck(n) for n in range(1, 51)]
        crash_copy(first, tmp_path / "live", tmp_path / "after-crash")
    with BrokerThread(sqlite_config(tmp_path / "after-crash")) as second:
        subscriber = RawClient(second.port)
        assert subscriber.connect("away", clean_session=False).session_present
        payloads = []
        for _ in range(50):
            packet = subscriber.receive()
            assert isinstance(packet, Publish)
            payloads.append(packet.payload)
            subscriber.send(PubAck(packet.packet_id or 0))
        assert payloads == [b"%d" % n for n in range(1, 51)]


def test_a_crashed_topic_server_is_rebuilt_from_the_sqlite_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with BrokerThread(sqlite_config(tmp_path / "data")) as running:
        durable = RawClient(running.port)
        durable.connect("durable", clean_session=False)
        durable.subscribe("crash/+", Q1)
        clean = RawClient(running.port)
        clean.connect("clean")
        clean.subscribe("crash/#", Q1)
        publisher = RawClient(running.port)
        publisher.connect("pub")
        publisher.send(Publish("crash/a", b"kept", Q1, retain=True, packet_id=1))
        assert publisher.receive() == PubAck(1)
        for client in (durable, clean):
            packet = client.receive()
            assert isinstance(packet, Publish)
            client.send(PubAck(packet.packet_id or 0))
        original = TopicServer.publish
        crashed: list[str] = []

        def crash_once(self: TopicServer, message: Message, now: float) -> None:
            if not crashed:
                crashed.append(self.name)
                raise RuntimeError("injected crash in a topic server")
            original(self, message, now)

        monkeypatch.setattr(TopicServer, "publish", crash_once)
        with caplog.at_level(logging.ERROR, logger="mqttref.broker"):
            publisher.send(Publish("crash/a", b"lost in the crash", Q1, packet_id=2))
            publisher.send(Publish("crash/a", b"after", Q1, packet_id=3))
            assert publisher.receive_all() == [PubAck(2), PubAck(3)]
        assert crashed == ["crash/a"]
        assert running.call(lambda b: b.registry.supervisor.restarts) == 1
        # Both kinds of subscriber came back from the store: the persistent one from
        # disk, the clean one from the store's memory (it writes nothing to disk).
        for client in (durable, clean):
            packet = client.receive()
            assert isinstance(packet, Publish)
            assert packet.payload == b"after"
        late = RawClient(running.port)
        late.connect("late")
        late.subscribe("crash/a", Q1)
        retained = late.receive()
        assert isinstance(retained, Publish)
        assert (retained.payload, retained.retain) == (b"kept", True)
