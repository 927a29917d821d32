"""Takeover across nodes: a CONNECT on node B closes the same client id's connection on A.

[MQTT-3.1.4-2]: if the client id is already connected, the server disconnects the
existing client; at 5.0 with DISCONNECT 0x8E (Session taken over). In a cluster the
two connections are on different nodes, and the owner record of the client id
moves by compare-and-set (``impl/cluster/ownership.py``); a persistent session
comes along with its subscriptions, as on one broker [MQTT-3.1.2-4].

Two nodes in this process share one real nats-server with JetStream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import nats.js.errors
import pytest
from nats.js.kv import KeyValue

from mqttref.impl.cluster.claims import ASK_TIMEOUT
from mqttref.impl.cluster.session_store import session_keys, session_prefix
from tests.broker.paho_client import Paho
from tests.broker.test_v5_peers import Paho5
from tests.cluster.sessions_nodes import SessionNode, own_nats_and_two_nodes

LEASE = 2.0
SESSION_TAKEN_OVER = 0x8E


@pytest.fixture
def nodes() -> Iterator[tuple[SessionNode, SessionNode]]:
    with own_nats_and_two_nodes(LEASE) as both:
        yield both


def owner_of(node: SessionNode, client_id: str) -> str | None:
    """The node name the owner record of ``client_id`` holds, read from JetStream."""
    handle = node.handle
    record = handle.nats.call(handle.link.owner(client_id), 5.0)
    return None if record is None else record.owner.name


def test_a_5_0_connect_on_another_node_closes_the_first_with_session_taken_over(
    nodes: tuple[SessionNode, SessionNode],
) -> None:
    """The client id connected on n1 connects on n2: n1 sends DISCONNECT 0x8E and closes
    [MQTT-3.1.4-2]; n2 owns the client id from then on."""
    n1, n2 = nodes
    first = Paho5(n1.port, "x5")
    assert owner_of(n1, "x5") == "n1"
    second = Paho5(n2.port, "x5")
    assert first.disconnected.wait(5.0), "n1 kept the first connection"
    assert first.disconnect_reason == SESSION_TAKEN_OVER
    assert not second.disconnected.is_set()
    assert owner_of(n2, "x5") == "n2"
    assert n1.running.call(lambda broker: "x5" not in broker.sessions)
    second.stop()


def test_a_persistent_session_moves_to_the_new_node_with_its_subscriptions(
    nodes: tuple[SessionNode, SessionNode],
) -> None:
    """A 3.1.1 client with clean session 0 subscribed on n1 connects again on n2 while
    still connected on n1: n1 closes the old connection [MQTT-3.1.4-2], n2 answers
    session present 1 [MQTT-3.2.2-2] and delivers on the subscription made on n1."""
    n1, n2 = nodes
    first = Paho(n1.port, "x311", clean_session=False).connect()
    assert first.subscribe("moves/#", 1) == [1]
    second = Paho(n2.port, "x311", clean_session=False).connect()
    assert first.disconnected.wait(5.0), "n1 kept the first connection"
    assert second.session_present is True
    publisher = Paho(n2.port, "pub").connect()
    publisher.publish("moves/here", b"after the takeover", qos=1)
    [message] = second.expect(1)
    assert (message.topic, message.payload, message.qos) == ("moves/here",
                                                             b"after the takeover", 1)
    assert first.nothing_within(0.2)
    assert n1.running.call(lambda broker: "x311" not in broker.sessions)
    for client in (second, publisher):
        client.disconnect()


def test_a_clean_session_taken_over_elsewhere_starts_empty(
    nodes: tuple[SessionNode, SessionNode],
) -> None:
    """Clean session 1 on n2 discards the session n1 held [MQTT-3.1.2-6]: session present 0,
    and nothing of it left in JetStream."""
    n1, n2 = nodes
    first = Paho(n1.port, "xc", clean_session=False).connect()
    first.subscribe("gone/#", 1)
    second = Paho(n2.port, "xc", clean_session=True).connect()
    assert first.disconnected.wait(5.0)
    assert second.session_present is False
    second.disconnect()
    keys = n2.handle.nats.call(_keys(n2, session_prefix("xc")), 5.0)
    assert keys == []


async def _keys(node: SessionNode, prefix: str) -> list[str]:
    """The keys (not deleted) of one session in the bucket."""
    js = node.handle.link.js
    kv = node.handle.link.sessions
    assert js is not None
    assert kv is not None
    return [key for key in await session_keys(js, prefix) if await _present(kv, key)]


async def _present(kv: KeyValue, key: str) -> bool:
    try:
        await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return False
    return True


def test_a_node_back_from_a_nats_outage_lets_go_of_the_sessions_taken_meanwhile(
    nodes: tuple[SessionNode, SessionNode],
) -> None:
    """n1 was cut off from NATS while n2 took the client id (here: n2 takes the owner
    record as it would from an owner nobody answered for). When n1's connection is
    back it closes the client's connection and forgets the session, writing nothing:
    the client resumes the session, as it was, on n2."""
    n1, n2 = nodes
    client = Paho(n1.port, "cut-off", clean_session=False).connect()
    assert client.subscribe("still/#", 1) == [1]
    link = n2.handle.link
    record = n2.handle.nats.call(link.owner("cut-off"), 5.0)
    assert record is not None
    assert n2.handle.nats.call(link.take_orphan("cut-off", record), 5.0)
    n1.running.call(lambda broker: n1.handle.sessions.verify_ownership(
        n1.running.loop.time()))
    assert client.disconnected.wait(5.0), "n1 kept a client id another node owns"
    assert n1.running.call(lambda broker: "cut-off" not in broker.sessions)
    back = Paho(n2.port, "cut-off", clean_session=False).connect()
    assert back.session_present is True
    publisher = Paho(n2.port, "pub-cut").connect()
    publisher.publish("still/here", b"subscribed", 1)
    [message] = back.expect(1)
    assert message.payload == b"subscribed"
    for each in (back, publisher):
        each.disconnect()


def test_two_nodes_taking_client_ids_from_each_other_at_once_do_not_wait_on_each_other(
    nodes: tuple[SessionNode, SessionNode],
) -> None:
    """n1 holds "a", n2 holds "b"; "a" connects on n2 while "b" connects on n1. Each node's
    loop waits for its claim, and each claim needs the other node to release: a node
    answers release requests while it waits, so both CONNECTs are answered well within
    the one-second retry of an unanswered request."""
    n1, n2 = nodes
    old_a = Paho(n1.port, "a").connect()
    old_b = Paho(n2.port, "b").connect()
    new_a, new_b = Paho(n2.port, "a"), Paho(n1.port, "b")
    started = time.monotonic()
    threads = [threading.Thread(target=each.connect) for each in (new_a, new_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    took = time.monotonic() - started
    assert new_a.connected.is_set()
    assert new_b.connected.is_set()
    assert took < ASK_TIMEOUT - 0.1, f"the takeovers waited on each other ({took:.2f} s)"
    assert old_a.disconnected.wait(5.0)
    assert old_b.disconnected.wait(5.0)
    for each in (new_a, new_b):
        each.disconnect()
