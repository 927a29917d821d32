"""Messages of a shared subscription group survive a broker restart like any others.

Issue 15: a QoS 1 or 2 message a group sent to one member (4.8.2) is that member's
session state: in flight until acknowledged, or queued until sent. Across a restart
on the SQLite store it stays with the member's session, which gets it when it
resumes [MQTT-4.4.0-1]; and it still remembers its group, so if the member's
session ends instead (a Clean Start, or its Session Expiry Interval passing, even
while the broker was down) the messages its client may never have seen go to
another member, as 4.8.2 says the Server SHOULD. A QoS 2 message once sent is
not handed over: its delivery belongs to the client that has it [MQTT-4.8.2-5].

The member that holds messages is a raw 5.0 socket (it must leave them
unacknowledged); the other member and the publisher are paho-mqtt at MQTTv5.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from mqttref.impl.broker.broker import Broker
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Properties,
    ProtocolLevel,
    PubAck,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import OutboundMessage
from mqttref.impl.store.base import SessionRecord
from tests.broker.test_v5_peers import WAIT, Paho5
from tests.helpers.broker_thread import BrokerThread
from tests.store.test_v5_restart import Client5, sqlite_config
from tests.store.test_v5_state import open_sqlite, restart

V5 = ProtocolLevel.MQTT_5
Q1, Q2 = QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
GROUP = "$share/g/s/t"
LONG = 600


def member(port: int, client_id: str, *, receive_maximum: int, session_expiry: int,
           clean_start: bool = True) -> Client5:
    """A raw 5.0 member of ``GROUP`` at QoS 2 that takes at most ``receive_maximum``
    messages unacknowledged; the broker queues the rest for it [MQTT-3.3.4-9]."""
    client = Client5(port)
    client.send5(Connect(V5, client_id, clean_start, properties=Properties(
        session_expiry_interval=session_expiry, receive_maximum=receive_maximum)))
    connack = client.receive()
    assert isinstance(connack, ConnAck)
    assert connack.return_code == 0
    if clean_start:
        client.send5(Subscribe(1, (Subscription(GROUP, Q2),)))
        assert client.receive() == SubAck(1, (Q2,))
    return client


def held(client: Client5, count: int) -> list[Publish]:
    """The next ``count`` PUBLISH packets, left unacknowledged."""
    packets = []
    for _ in range(count):
        packet = client.receive()
        assert isinstance(packet, Publish), packet
        packets.append(packet)
    return packets


def queued(client_id: str, count: int) -> Callable[[Broker], bool]:
    """The session of ``client_id`` is left, with ``count`` messages in its queue."""
    def check(broker: Broker) -> bool:
        session = broker.sessions.get(client_id)
        return session is not None and session.connection is None and len(
            session.queue) == count
    return check


def other_member(port: int, *, clean_start: bool) -> Paho5:
    """``b``: a persistent paho member of the group, also subscribed to ``s/end``."""
    other = Paho5(port, "b", clean_start=clean_start, session_expiry=LONG)
    if clean_start:
        other.subscribe(GROUP, 2)
        other.subscribe("s/end", 2)
    return other


def until_end(client: Paho5) -> list[bytes]:
    """What ``client`` received before the ``s/end`` marker, which comes after every
    message sent to it before (one session delivers in order, [MQTT-4.6.0-6]). The
    marker is QoS 2 like the messages before it: paho hands a QoS 2 message over at
    PUBREL, a QoS 1 one at once, so a QoS 1 marker could overtake them."""
    got: list[bytes] = []
    while True:
        message: mqtt.MQTTMessage = client.messages.get(timeout=WAIT + 5)
        if message.topic == "s/end":
            return got
        got.append(bytes(message.payload))


def publish(port: int, messages: list[tuple[str, bytes, int]]) -> None:
    publisher = Paho5(port, "pub")
    for topic, payload, qos in messages:
        publisher.publish(topic, payload, qos)
    publisher.stop()


def test_a_member_that_resumes_after_a_restart_gets_its_in_flight_and_queued_messages(
    tmp_path: Path,
) -> None:
    with BrokerThread(sqlite_config(tmp_path)) as first:
        with member(first.port, "a", receive_maximum=1, session_expiry=LONG) as a:
            publish(first.port, [("s/t", b"m1", 1), ("s/t", b"m2", 1)])
            [m1] = held(a, 1)
        assert first.wait_for(queued("a", 1))  # m2: the window of 1 holds m1
    with BrokerThread(sqlite_config(tmp_path)) as second, member(
        second.port, "a", receive_maximum=1, session_expiry=LONG, clean_start=False,
    ) as a:
        [again] = held(a, 1)
        # The same PUBLISH again, with DUP, on the resumed session [MQTT-4.4.0-1].
        assert (again.payload, again.packet_id, again.dup) == (b"m1", m1.packet_id, True)
        a.send5(PubAck(again.packet_id or 0))
        m2 = a.next_publish()
        assert (m2.payload, m2.dup) == (b"m2", False)


def test_what_a_member_holds_goes_to_another_when_its_session_ends_after_a_restart(
    tmp_path: Path,
) -> None:
    """``a`` holds m1 (QoS 2, sent), m2 (QoS 1, sent) and m3 (QoS 2, queued) across the
    restart, then comes back with Clean Start: its session ends, and ``b`` gets m2 and
    m3, which ``a``'s client may never have seen, but not m1 [MQTT-4.8.2-5]."""
    with BrokerThread(sqlite_config(tmp_path)) as first:
        with member(first.port, "a", receive_maximum=2, session_expiry=LONG) as a:
            publish(first.port, [("s/t", b"m1", 2), ("s/t", b"m2", 1), ("s/t", b"m3", 2)])
            assert [p.payload for p in held(a, 2)] == [b"m1", b"m2"]
        assert first.wait_for(queued("a", 1))
        other_member(first.port, clean_start=True).stop()
    with BrokerThread(sqlite_config(tmp_path)) as second:
        b = other_member(second.port, clean_start=False)
        with member(second.port, "a", receive_maximum=2, session_expiry=LONG) as a:
            publish(second.port, [("s/end", b"", 2)])
            assert sorted(until_end(b)) == [b"m2", b"m3"]
            a.send5(Subscribe(2, (Subscription("s/x", Q1),)))  # its new session: nothing
            assert a.receive() == SubAck(2, (Q1,))           # of the old one came to it
        b.stop()


def test_a_member_whose_session_expired_while_the_broker_was_down_hands_over_at_start_up(
    tmp_path: Path,
) -> None:
    with BrokerThread(sqlite_config(tmp_path)) as first:
        with member(first.port, "a", receive_maximum=1, session_expiry=1) as a:
            publish(first.port, [("s/t", b"m1", 1), ("s/t", b"m2", 2)])
            held(a, 1)
            dropped_at = time.monotonic()
        assert first.wait_for(queued("a", 1))
        other_member(first.port, clean_start=True).stop()
    time.sleep(max(0.0, dropped_at + 1.3 - time.monotonic()))  # down past a's expiry
    with BrokerThread(sqlite_config(tmp_path)) as second:
        assert not second.call(lambda broker: "a" in broker.sessions)
        b = other_member(second.port, clean_start=False)
        publish(second.port, [("s/end", b"", 2)])
        assert sorted(until_end(b)) == [b"m1", b"m2"]
        b.stop()


def test_the_store_keeps_the_group_of_queued_and_in_flight_messages(tmp_path: Path) -> None:
    store = open_sqlite(tmp_path, wall=1_700_000_000.0, loop=500.0)
    store.create_session("a")
    store.queue_append("a", 1, OutboundMessage("s/t", 0, Q2, b"q", share=GROUP))
    store.queue_append("a", 2, OutboundMessage("s/t", 0, Q1, b"plain"))
    store.inflight_set("a", 5, OutboundState.AWAITING_PUBACK,
                       OutboundMessage("s/t", 5, Q1, b"i", share=GROUP))
    again = restart(store, later=1.0, loop=3.0)
    try:
        record = again.load_session("a")
        assert isinstance(record, SessionRecord)
        assert [(out.payload, out.share) for _seq, out in record.queue] == [
            (b"q", GROUP), (b"plain", None)]
        assert [(i.message.payload, i.message.share) for i in record.inflight] == [
            (b"i", GROUP)]
    finally:
        again.close()
