"""A retained QoS 1 will of a dropped connection reaches a subscriber on another node once.

On one broker a will is published at one moment: a subscription that exists then gets
it live (RETAIN 0) [MQTT-3.3.1-9], a subscription made later gets the retained copy
(RETAIN 1) [MQTT-3.3.1-6], and no subscription gets both (one PUBLISH per matching
subscription). In the cluster the retained copy travels through the key-value bucket
and the live one through the stream; the fault (found by ``test_cluster_machine.py``)
was n1 putting the will in the bucket at once and in the stream only at its next
commit (up to a second later, a dropped connection commits nothing): a subscription
made on n2 in between got the retained copy and then the live one.

The subscriber on n2 subscribes and unsubscribes to the will's topic until it gets a
copy, then stays subscribed: it must get no second one. A bystander on n2 subscribed
before the will (n2 follows the stream on the topic already, so a new subscription
there takes the live will at once) gets it once, live.
"""

from __future__ import annotations

import queue
import time
import uuid

import paho.mqtt.client as mqtt

from tests.cluster.conftest import Cluster
from tests.cluster.helpers import client, wait_for_interest

POLL = 0.03
"""Seconds the subscriber waits for a copy in each round before it unsubscribes."""


def test_a_retained_will_of_a_dropped_connection_reaches_a_new_subscription_on_another_node_once(
        cluster: Cluster) -> None:
    prefix = f"rw{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}/will"
    bystander = client(cluster, "n2", f"{prefix}-by")
    assert bystander.subscribe(f"{prefix}/#", 1) == [1]
    wait_for_interest(cluster, "n2", f"{prefix}/#")
    subscriber = client(cluster, "n2", f"{prefix}-sub")
    lost = client(cluster, "n1", f"{prefix}-lost", will=(topic, b"gone", 1, True))
    lost.client.loop_stop()
    socket = lost.client.socket()
    assert socket is not None
    socket.close()  # no DISCONNECT: n1 publishes the will [MQTT-3.1.2-8]
    first: mqtt.MQTTMessage | None = None
    deadline = time.monotonic() + 5.0
    while first is None and time.monotonic() < deadline:
        assert subscriber.subscribe(topic, 1) == [1]
        try:
            first = subscriber.messages.get(timeout=POLL)
        except queue.Empty:
            subscriber.client.unsubscribe(topic)
    assert first is not None, "the will reached no subscription on n2 within 5 s"
    assert bytes(first.payload) == b"gone"
    try:
        second = subscriber.messages.get(timeout=1.5)
    except queue.Empty:
        second = None
    assert second is None, (
        f"a second copy of the will on n2 (first RETAIN {int(first.retain)}, "
        f"then RETAIN {int(second.retain)})")
    [seen] = bystander.expect(1)
    assert (seen.payload, seen.retain) == (b"gone", False)
    assert bystander.nothing_within(0.2)
    subscriber.disconnect()
    bystander.disconnect()
    cleaner = client(cluster, "n1")
    cleaner.publish(topic, b"", 1, retain=True)
    cleaner.disconnect()
