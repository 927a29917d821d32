"""Retained messages across nodes: set on one node, every node's new subscriptions get
it [MQTT-3.3.1-6]; replaced and cleared [MQTT-3.3.1-10] from any node, seen by all."""

from __future__ import annotations

import queue
import time

from tests.cluster.conftest import Cluster
from tests.cluster.helpers import client, eventually

NODES = ("n1", "n2", "n3")


def retained_on(cluster: Cluster, node: str, topic: str) -> bytes | None:
    """What a new subscription to ``topic`` on ``node`` gets as retained (None: nothing).

    Only a message with RETAIN 1 counts [MQTT-3.3.1-8]: a publication still on its way
    (a node holds what it forwards for a moment after NATS came back) reaches a new
    subscriber as a live message, RETAIN 0, and says nothing of the retained one."""
    subscriber = client(cluster, node)
    try:
        subscriber.subscribe(topic, 1)
        deadline = time.monotonic() + 0.3
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = subscriber.messages.get(timeout=left)
            except queue.Empty:
                break
            if message.retain:
                return bytes(message.payload)
        return None
    finally:
        subscriber.disconnect()


def seen_everywhere(cluster: Cluster, topic: str, payload: bytes | None) -> None:
    for node in NODES:
        eventually(lambda node=node: retained_on(cluster, node, topic) == payload,  # type: ignore[misc]
                   f"{node} has {payload!r} retained on {topic}")


def test_a_retained_message_set_on_one_node_is_seen_from_every_node(cluster: Cluster) -> None:
    publisher = client(cluster, "n1")
    try:
        publisher.publish("retained/every/node", b"first", 1, retain=True)
        seen_everywhere(cluster, "retained/every/node", b"first")
    finally:
        publisher.disconnect()


def test_a_retained_message_replaced_on_another_node_is_replaced_everywhere(
        cluster: Cluster) -> None:
    first, second = client(cluster, "n1"), client(cluster, "n2")
    try:
        first.publish("retained/replaced", b"old", 1, retain=True)
        seen_everywhere(cluster, "retained/replaced", b"old")
        second.publish("retained/replaced", b"new", 1, retain=True)
        seen_everywhere(cluster, "retained/replaced", b"new")
    finally:
        first.disconnect()
        second.disconnect()


def test_a_clear_on_one_node_is_seen_everywhere(cluster: Cluster) -> None:
    """An empty retained message removes the topic's retained message on every node
    [MQTT-3.3.1-10]; it is not kept as one itself [MQTT-3.3.1-11]."""
    setter, clearer = client(cluster, "n2"), client(cluster, "n3")
    try:
        setter.publish("retained/cleared", b"doomed", 1, retain=True)
        seen_everywhere(cluster, "retained/cleared", b"doomed")
        clearer.publish("retained/cleared", b"", 1, retain=True)
        seen_everywhere(cluster, "retained/cleared", None)
    finally:
        setter.disconnect()
        clearer.disconnect()


def test_a_wildcard_subscription_gets_the_retained_messages_of_every_node(
        cluster: Cluster) -> None:
    publishers = {node: client(cluster, node) for node in NODES}
    try:
        for node, publisher in publishers.items():
            publisher.publish(f"retained/wild/{node}", node.encode(), 0, retain=True)
        for node in NODES:
            seen_everywhere(cluster, f"retained/wild/{node}", node.encode())
        subscriber = client(cluster, "n2")
        try:
            subscriber.subscribe("retained/wild/+", 0)
            got = {m.topic: bytes(m.payload) for m in subscriber.expect(3)}
            assert got == {f"retained/wild/{node}": node.encode() for node in NODES}
        finally:
            subscriber.disconnect()
    finally:
        for publisher in publishers.values():
            publisher.disconnect()


def test_a_node_killed_and_restarted_gets_the_retained_messages_back(cluster: Cluster) -> None:
    """A node keeps no retained message of its own (``--memory``): after ``kill -9`` and a
    restart it copies them from the bucket before it listens again."""
    publisher = client(cluster, "n1")
    try:
        publisher.publish("retained/after/restart", b"still here", 1, retain=True)
        seen_everywhere(cluster, "retained/after/restart", b"still here")
    finally:
        publisher.disconnect()
    n3 = cluster.node("n3")
    n3.kill()
    n3.start()
    assert retained_on(cluster, "n3", "retained/after/restart") == b"still here"
