"""What the cluster tests share: clients on a node, and waiting for the cluster to settle.

A subscription on one node takes effect for publishers on another once that node
has subscribed in NATS (a few milliseconds; the cluster's documented latency,
docs/cluster.md). Tests wait for exactly that, observed on nats-server's own
monitoring page, rather than sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mqttref.impl.cluster.routing import MESSAGES
from mqttref.impl.cluster.subjects import filter_subjects
from tests.broker.paho_client import Paho
from tests.cluster.conftest import Cluster

SETTLE = 10.0


def eventually(condition: Callable[[], bool], what: str, timeout: float = SETTLE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def nats_subjects(topic_filter: str) -> set[str]:
    return {MESSAGES + subject for subject in filter_subjects(topic_filter)}


def wait_for_interest(cluster: Cluster, node: str, topic_filter: str) -> None:
    """Until ``node`` is subscribed in NATS to every subject of ``topic_filter``."""
    wanted = nats_subjects(topic_filter)
    eventually(lambda: wanted <= cluster.nats.subscriptions_of(node),
               f"{node} subscribed in NATS to {sorted(wanted)}")


def client(cluster: Cluster, node: str, client_id: str = "", **options: object) -> Paho:
    """A connected paho client on ``node``."""
    return Paho(cluster.node(node).port, client_id, **options).connect()  # type: ignore[arg-type]
