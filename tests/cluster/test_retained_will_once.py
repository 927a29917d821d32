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

import asyncio
import os
import queue
import time
import uuid

import nats
import paho.mqtt.client as mqtt

from mqttref.impl.cluster.envelope import seal
from mqttref.impl.cluster.retained import BUCKET, RETAINED_HEADER
from mqttref.impl.cluster.routing import MESSAGES
from mqttref.impl.cluster.subjects import topic_subject
from mqttref.impl.message import Message
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


async def _as_another_node(url: str, topic: str, body: bytes, *, bucket: bool,
                           live: bool) -> None:
    """What another node sends: the bucket's update, the live copy, or both."""
    connection = await nats.connect(url)
    try:
        if bucket:
            kv = await connection.jetstream().key_value(BUCKET)
            stamp = int(time.time() * 1000).to_bytes(RETAINED_HEADER, "big")
            await kv.put(topic_subject(topic), stamp + body)
        if live:
            await connection.publish(MESSAGES + topic_subject(topic), body)
        await connection.flush()
    finally:
        await connection.close()


def test_a_bucket_update_that_overtakes_its_live_copy_waits_for_it(cluster: Cluster) -> None:
    """The two roads can reorder on the receiving node: a retained message's bucket
    update may reach n2 before its live copy (a NATS client plays the publisher's node
    here, to send them in that order). n2 follows the topic (a bystander's filter), so
    it holds the update until the live copy is handed out: a subscription made in
    between gets the message live, once, and one made after gets the retained copy."""
    prefix = f"rb{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}/r"
    bystander = client(cluster, "n2", f"{prefix}-by")
    assert bystander.subscribe(f"{prefix}/#", 0) == [0]
    wait_for_interest(cluster, "n2", f"{prefix}/#")
    body = seal(Message(topic, b"early", retain=True), os.urandom(8), 1, 0.0)
    asyncio.run(_as_another_node(cluster.nats.url, topic, body, bucket=True, live=False))
    time.sleep(0.3)  # the update is at n2 by now (a millisecond on loopback)
    between = client(cluster, "n2", f"{prefix}-between")
    assert between.subscribe(topic, 0) == [0]
    assert between.nothing_within(0.2), "the retained copy before its live one"
    asyncio.run(_as_another_node(cluster.nats.url, topic, body, bucket=False, live=True))
    [live] = between.expect(1)
    assert (live.payload, live.retain) == (b"early", False)
    assert between.nothing_within(0.3)
    after = client(cluster, "n2", f"{prefix}-after")
    assert after.subscribe(topic, 0) == [0]
    [kept] = after.expect(1)
    assert (kept.payload, kept.retain) == (b"early", True)
    for each in (bystander, between, after):
        each.disconnect()
    cleaner = client(cluster, "n1")
    cleaner.publish(topic, b"", 1, retain=True)
    cleaner.disconnect()
