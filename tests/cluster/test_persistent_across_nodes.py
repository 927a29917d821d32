"""Persistent sessions across nodes: what docs/cluster.md promises of their shared
subscriptions and of the order of their QoS 1 messages.

* A shared subscription group gets each message once in the whole cluster (4.8.2),
  also when a member is a persistent session whose client is away: the messages
  NATS gave that member's node wait in its session, and reach it on another node.
  (Not promised: a single broker prefers a connected member; NATS picks among the
  nodes with members, whether connected or not, so a share of the group's messages
  waits for the away member while a connected one on another node is idle.)
* Messages of one publisher on one topic reach a persistent subscriber in the order
  published [MQTT-4.6.0-6], while its session moves from node to node (takeovers
  across nodes) as the publisher goes on: QoS 1 may come twice (a re-send, DUP 1), but
  no message comes for the first time after a later one.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid

import paho.mqtt.client as mqtt

from tests.cluster.conftest import Cluster
from tests.cluster.helpers import client, eventually, nats_subjects


def drain(messages: queue.Queue[mqtt.MQTTMessage], settle: float = 0.5,
          ) -> list[mqtt.MQTTMessage]:
    """What arrives until nothing has for ``settle`` seconds."""
    found: list[mqtt.MQTTMessage] = []
    while True:
        try:
            found.append(messages.get(timeout=settle))
        except queue.Empty:
            return found


def test_a_group_with_an_away_persistent_member_gets_each_message_once(
        cluster: Cluster) -> None:
    prefix = f"sp{uuid.uuid4().hex[:8]}"
    group = f"$share/{prefix}/{prefix}/jobs"
    away = client(cluster, "n1", f"{prefix}-away", clean_session=False)
    assert away.subscribe(group, 1) == [1]
    away.disconnect()
    present = client(cluster, "n2", f"{prefix}-present")
    assert present.subscribe(group, 1) == [1]
    for node in ("n1", "n2"):
        eventually(lambda node=node: nats_subjects(f"{prefix}/jobs")  # type: ignore[misc]
                   <= cluster.nats.subscriptions_of(f"{node}-shared"),
                   f"{node}'s queue subscription")
    publisher = client(cluster, "n3")
    sent = [b"%d" % n for n in range(40)]
    for payload in sent:
        publisher.publish(f"{prefix}/jobs", payload, 1)
    now_there = [bytes(m.payload) for m in drain(present.messages)]
    back = client(cluster, "n3", f"{prefix}-away", clean_session=False)
    assert back.session_present is True
    waited = [bytes(m.payload) for m in drain(back.messages)]
    assert sorted(now_there + waited) == sorted(sent), "each message once in the group"
    assert waited, "NATS gave the away member's node none of 40 (random pick)"
    for each in (back, present, publisher):
        each.disconnect()
    client(cluster, "n1", f"{prefix}-away", clean_session=True).disconnect()


def test_one_publishers_qos_1_messages_keep_their_order_while_the_subscriber_moves(
        cluster: Cluster) -> None:
    prefix = f"so{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}/t"
    subscriber = client(cluster, "n2", f"{prefix}-sub", clean_session=False)
    assert subscriber.subscribe(f"{prefix}/#", 1) == [1]
    publisher = client(cluster, "n1")
    time.sleep(0.2)  # n2's interest in NATS (the documented latency)
    count = 60
    done = threading.Event()

    def publish() -> None:
        for n in range(count):
            publisher.publish(topic, b"%d" % n, 1)
            time.sleep(0.005)
        done.set()

    sender = threading.Thread(target=publish)
    sender.start()
    received: list[tuple[int, bool]] = []
    current = subscriber
    for node in ("n3", "n1", "n2"):
        time.sleep(0.08)
        moved = client(cluster, node, f"{prefix}-sub", clean_session=False)
        assert current.disconnected.wait(5.0)
        received += [(int(m.payload), bool(m.dup)) for m in drain(current.messages, 0.05)]
        current = moved
    sender.join(30)
    assert done.is_set()
    received += [(int(m.payload), bool(m.dup)) for m in drain(current.messages)]
    firsts: list[int] = []
    for n, _dup in received:
        if n not in firsts:
            firsts.append(n)
    assert firsts == list(range(count)), f"first deliveries out of order or missing: {received}"
    current.disconnect()
    publisher.disconnect()
    client(cluster, "n2", f"{prefix}-sub", clean_session=True).disconnect()
