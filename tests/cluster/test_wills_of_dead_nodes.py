"""The cluster publishes the wills of a node that died, once its lease has run out.

A client whose network connection is lost without DISCONNECT has its will published
[MQTT-3.1.2-8]; when the node holding the connection is killed, no one on it can.
The cluster's documented choice (docs/cluster.md, "Sessions, takeover and wills"):
a live node takes the dead node's client ids by compare-and-set once the lease has
run out, publishes each will once, and keeps each persistent session, subscribed, for
its client. A will discarded by DISCONNECT [MQTT-3.14.4-3] stays discarded.

n1 is a child process killed with SIGKILL; n2 is in this process; their lease is 2 s.
"""

from __future__ import annotations

import time

from tests.broker.paho_client import Paho
from tests.cluster.sessions_nodes import (
    NatsServer,
    ProcessNode,
    SessionNode,
    require_nats_server,
)

LEASE = 2.0
EARLIEST = LEASE / 3 * 2
"""The least time from a kill to the end of the lease: the last refresh came at most a
third of a lease before it."""
LATEST = LEASE * 1.5 + 2.0
"""A lease, half a lease until the next scan, and a margin for a loaded machine."""


def test_a_killed_node_s_wills_and_sessions_are_taken_over_after_its_lease() -> None:
    """After n1 is killed: nothing before its lease can have run out; then n2 publishes
    the will of the client that was connected on n1, once, but not the will of the one
    that disconnected cleanly; and the persistent session n1 held for an absent client
    receives what is published after, delivered when the client comes back on n2."""
    require_nats_server()
    nats = NatsServer().start()
    n1 = ProcessNode(nats.url, "n1", LEASE).start()
    n2 = SessionNode(nats.url, "n2", LEASE)
    try:
        watcher = Paho(n2.port, "watcher").connect()
        assert watcher.subscribe("wills/#", 1) == [1]
        connected = Paho(n1.port, "connected", will=("wills/connected", b"lost", 1, False))
        connected.connect()
        left = Paho(n1.port, "left", will=("wills/left", b"discarded", 1, False)).connect()
        left.disconnect()  # DISCONNECT: its will is discarded [MQTT-3.14.4-3]
        absent = Paho(n1.port, "absent", clean_session=False).connect()
        assert absent.subscribe("later/#", 1) == [1]
        absent.disconnect()

        n1.kill()
        killed_at = time.monotonic()
        assert watcher.nothing_within(EARLIEST - 0.2), "a will before the lease ran out"
        [will] = watcher.expect(1, timeout=LATEST)
        assert (will.topic, will.payload) == ("wills/connected", b"lost")
        assert time.monotonic() - killed_at >= EARLIEST
        assert watcher.nothing_within(1.0), "a will published twice, or a discarded one"

        assert n2.running.wait_for(lambda broker: "absent" in broker.sessions, LATEST)
        publisher = Paho(n2.port, "publisher").connect()
        publisher.publish("later/1", b"kept for you", 1)
        back = Paho(n2.port, "absent", clean_session=False).connect()
        assert back.session_present is True
        [message] = back.expect(1)
        assert (message.topic, message.payload) == ("later/1", b"kept for you")
        for client in (watcher, publisher, back):
            client.disconnect()
    finally:
        n1.kill()
        n2.stop()
        nats.stop()
