"""Shared subscriptions across nodes (4.8.2): a group with members on several nodes gets
each message once, whichever node published it: the nodes' NATS queue groups pick one
node, that node one member."""

from __future__ import annotations

import time

from tests.cluster.conftest import Cluster
from tests.cluster.helpers import client, eventually, nats_subjects


def test_a_group_spread_over_three_nodes_gets_each_message_once(cluster: Cluster) -> None:
    members = {node: client(cluster, node) for node in ("n1", "n2", "n3")}
    ordinary = client(cluster, "n2")
    publisher = client(cluster, "n1")
    try:
        for member in members.values():
            assert member.subscribe("$share/workers/jobs/+", 1) == [1]
        ordinary.subscribe("jobs/+", 1)
        for node in members:
            eventually(lambda node=node: nats_subjects("jobs/+")  # type: ignore[misc]
                       <= cluster.nats.subscriptions_of(f"{node}-shared"),
                       f"{node}'s queue subscription")
        sent = [str(i).encode() for i in range(30)]
        for payload in sent:
            publisher.publish("jobs/x", payload, 1)
        assert sorted(m.payload for m in ordinary.expect(30)) == sorted(sent)
        received: list[bytes] = []
        eventually(lambda: sum(m.messages.qsize() for m in members.values()) >= len(sent),
                   "the group got every message")
        time.sleep(0.3)  # a second copy anywhere would arrive meanwhile
        for member in members.values():
            while not member.messages.empty():
                received.append(bytes(member.messages.get().payload))
        assert sorted(received) == sorted(sent)  # each once, in the whole cluster
    finally:
        for each in [*members.values(), ordinary, publisher]:
            each.disconnect()
