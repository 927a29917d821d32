"""nats-server stopped and started again under running nodes: the nodes wait and recover.

While NATS is away a node keeps serving its own clients; what it must send to
other nodes waits in order (up to ``max_pending`` messages) and goes out when NATS
is back; a node that starts while NATS is away does not listen until it is there
(docs/cluster.md, "While NATS is away").
"""

from __future__ import annotations

import socket
import subprocess
import time

from tests.cluster.conftest import Cluster, NodeProcess
from tests.cluster.helpers import client, eventually, wait_for_interest
from tests.cluster.test_retained import retained_on
from tests.helpers.peers import HOST, wait_for_port


def listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), 0.2):
            return True
    except OSError:
        return False


def test_messages_published_while_nats_is_away_reach_other_nodes_once_it_is_back(
        cluster: Cluster) -> None:
    remote = client(cluster, "n2")
    local = client(cluster, "n1")
    publisher = client(cluster, "n1")
    try:
        remote.subscribe("outage/#", 1)
        local.subscribe("outage/#", 1)
        wait_for_interest(cluster, "n2", "outage/#")
        cluster.nats.stop()
        sent = [str(i).encode() for i in range(5)]
        for payload in sent:
            publisher.publish("outage/t", payload, 1)  # acknowledged by n1 meanwhile
        publisher.publish("outage/retained", b"kept", 1, retain=True)
        assert [m.payload for m in local.expect(6)] == [*sent, b"kept"]
        assert remote.nothing_within(0.5)
        cluster.nats.start()
        received = remote.expect(6, timeout=20)
        assert [m.payload for m in received] == [*sent, b"kept"]
        eventually(lambda: retained_on(cluster, "n3", "outage/retained") == b"kept",
                   "the retained message set while NATS was away reached n3", timeout=20)
        # and routing goes on as before
        publisher.publish("outage/t", b"after", 1)
        assert remote.expect()[0].payload == b"after"
    finally:
        for each in (remote, local, publisher):
            each.disconnect()
        cluster.ensure_running()


def test_a_node_started_while_nats_is_away_listens_only_once_nats_is_there(
        cluster: Cluster) -> None:
    cluster.nats.stop()
    late = NodeProcess("n4", cluster.nats, cluster.nats.log.with_name("n4.log"))
    with late.log.open("ab") as log:
        late.process = subprocess.Popen(late.command(), stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.5)
        assert late.running
        assert not listening(late.port)
        cluster.nats.start()
        wait_for_port(late.port, timeout=20, process=late.process)
    finally:
        late.stop()
        cluster.ensure_running()
