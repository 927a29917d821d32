"""A node killed with SIGKILL while QoS 1 and QoS 2 messages flow loses nothing acknowledged.

The promise (docs/cluster.md, "What the cluster promises"): a message whose PUBACK
(QoS 1) or PUBCOMP (QoS 2) the publisher got reaches every persistent subscriber
at least once (QoS 1) and exactly once (QoS 2) [MQTT-4.3.2-2, MQTT-4.3.3-2], even
when the node of the subscribers, or of the publisher, dies while it flows. A
persistent subscriber's session state is the broker's to keep [MQTT-3.1.2-4]; its
client, paho here, keeps its own (QoS 2 packet ids awaiting PUBREL) and reconnects
to another node with clean session 0.

The run: 1,000 QoS 1 and 1,000 QoS 2 messages from a publisher on n1 to two
persistent subscribers on n2 (one per QoS); n2 (or n1) is killed with SIGKILL once
a third of them are acknowledged; the subscribers of a killed n2 reconnect on n3 at
once. Every message is numbered, so a loss or a second copy is named.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.cluster.conftest import Cluster
from tests.cluster.helpers import eventually, wait_for_interest

COUNT = 1000
KILL_AFTER = 600
"""Acknowledged messages (of 2,000) before the kill: mid-flow."""
DELIVERY_WAIT = 40.0


class Subscriber:
    """A persistent paho subscriber that can move to another node, keeping its own
    session state (paho keeps QoS 2 packet ids awaiting PUBREL with clean session 0)."""

    def __init__(self, client_id: str, topic_filter: str, qos: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        self.client.max_inflight_messages_set(100)
        self.topic_filter = topic_filter
        self.qos = qos
        self.received: Counter[int] = Counter()
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_connect = lambda *_args: self.connected.set()

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received[int(message.payload)] += 1

    def counts(self) -> Counter[int]:
        with self._lock:
            return Counter(self.received)

    def connect(self, port: int) -> None:
        self.connected.clear()
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        assert self.connected.wait(10), f"no CONNACK from port {port}"

    def subscribe(self) -> None:
        result, _mid = self.client.subscribe(self.topic_filter, self.qos)
        assert result == mqtt.MQTT_ERR_SUCCESS

    def move(self, port: int) -> None:
        """Its node died: connect to another, same client id, clean session 0."""
        self.client.loop_stop()
        self.connect(port)

    def end(self, port: int) -> None:
        """Leave no persistent session behind for the other tests."""
        self.client.loop_stop()
        self.client.disconnect()
        ender = mqtt.Client(CallbackAPIVersion.VERSION2,
                            client_id=str(self.client._client_id.decode()),
                            clean_session=True)
        ender.connect("127.0.0.1", port, 30)
        ender.loop_start()
        time.sleep(0.2)
        ender.disconnect()
        ender.loop_stop()


class Publisher:
    """A paho publisher recording which messages were acknowledged (on_publish: PUBACK
    for QoS 1, PUBCOMP for QoS 2)."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kill-publisher",
                                  clean_session=True)
        self.client.max_inflight_messages_set(100)
        self._lock = threading.Lock()
        self._sent: dict[int, tuple[int, int]] = {}
        self._early: set[int] = set()
        self.acked: dict[int, set[int]] = {1: set(), 2: set()}
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()

    def _on_publish(self, _c: object, _u: object, mid: int, _r: object, _p: object) -> None:
        with self._lock:
            sent = self._sent.pop(mid, None)
            if sent is None:
                self._early.add(mid)  # before publish() had the mid
            else:
                self.acked[sent[0]].add(sent[1])

    def publish(self, topic: str, number: int, qos: int) -> None:
        # Not under the lock: paho calls on_publish holding its own (a deadlock).
        info = self.client.publish(topic, str(number).encode(), qos)
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.acked[qos].add(number)
            else:
                self._sent[info.mid] = (qos, number)

    def acknowledged(self) -> int:
        with self._lock:
            return len(self.acked[1]) + len(self.acked[2])

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.parametrize("victim", ["subscribers' node", "publisher's node"])
def test_nothing_acknowledged_is_lost_when_a_node_is_killed_mid_flow(
    cluster: Cluster, victim: str,
) -> None:
    """Every message the publisher saw acknowledged arrives: QoS 1 at least once, QoS 2
    exactly once; no QoS 2 message arrives twice at all."""
    n1, n2, n3 = (cluster.node(name) for name in ("n1", "n2", "n3"))
    tag = "s" if victim.startswith("subscriber") else "p"
    subscribers = {qos: Subscriber(f"kill-{tag}-q{qos}", f"kill/{tag}/{qos}", qos)
                   for qos in (1, 2)}
    for subscriber in subscribers.values():
        subscriber.connect(n2.port)
        subscriber.subscribe()
    for qos in (1, 2):
        wait_for_interest(cluster, "n2", f"kill/{tag}/{qos}")
    publisher = Publisher(n1.port)
    killed = n2 if tag == "s" else n1
    try:
        for number in range(COUNT):
            publisher.publish(f"kill/{tag}/1", number, 1)
            publisher.publish(f"kill/{tag}/2", number, 2)
            if number % 50 == 0 and killed.running and publisher.acknowledged() >= KILL_AFTER:
                killed.kill()
                if tag == "s":
                    for subscriber in subscribers.values():
                        subscriber.move(n3.port)
        if killed.running:  # the flow outran the acknowledgements: kill at the end
            eventually(lambda: publisher.acknowledged() >= KILL_AFTER, "acknowledgements")
            killed.kill()
            if tag == "s":
                for subscriber in subscribers.values():
                    subscriber.move(n3.port)
        if tag == "s":  # the publisher's node lives: everything is acknowledged in the end
            eventually(lambda: publisher.acknowledged() == 2 * COUNT, "every acknowledgement",
                       DELIVERY_WAIT)
        else:
            time.sleep(1.0)  # what the killed node acknowledged is all there is
        acked = {qos: set(publisher.acked[qos]) for qos in (1, 2)}
        assert len(acked[1]) + len(acked[2]) >= KILL_AFTER

        def all_arrived() -> bool:
            return all(acked[qos] <= set(subscribers[qos].counts()) for qos in (1, 2))

        deadline = time.monotonic() + DELIVERY_WAIT
        while not all_arrived() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a late second copy would show now
        counts = {qos: subscribers[qos].counts() for qos in (1, 2)}
        lost = {qos: sorted(acked[qos] - set(counts[qos])) for qos in (1, 2)}
        twice = sorted(number for number, seen in counts[2].items() if seen > 1)
        assert lost == {1: [], 2: []}, (
            f"{victim} killed: acknowledged but never delivered: QoS 1 {len(lost[1])} "
            f"{lost[1][:20]}, QoS 2 {len(lost[2])} {lost[2][:20]}\n{cluster.logs()}")
        assert twice == [], f"{victim} killed: QoS 2 delivered twice: {twice[:20]}"
    finally:
        publisher.stop()
        if not killed.running:
            killed.start()
        for subscriber in subscribers.values():
            subscriber.end(n3.port if tag == "s" else n2.port)
