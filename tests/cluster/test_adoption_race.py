"""A CONNECT that races the lease scan's adoption of its session ends with one owner.

Issue 19 (found by the cluster machine): a node started again as a new incarnation
makes its previous life's owner records orphans at once; node n1's scan took the
client id by compare-and-set while the client's CONNECT on n2 was claiming it. n2's
claim lost the compare-and-set, read n1 as the owner and asked it to release; n1,
whose adoption had not loaded the session yet, answered "released" for nothing and
adopted the session after: two owners, and the client on n2 told no session was
present [MQTT-3.2.2-2]. A release request now waits for the adoption in progress
(``ClusterLink.adopting``): the CONNECT's claim is a normal takeover across nodes,
and the session, with its subscription, resumes on n2 [MQTT-3.1.2-4].

The window between the compare-and-set and the adoption is held open here (the read
of the client's last will is slowed) so that the CONNECT falls in it every time.

Two nodes in this process share one real nats-server with JetStream; the lease (10 s)
keeps their own scans out of the test's few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from mqttref.impl.cluster import wills
from mqttref.impl.cluster.bridge import Inbox
from mqttref.impl.cluster.claims import ClusterLink
from mqttref.impl.cluster.ownership import NodeId
from mqttref.impl.cluster.session_store import session_prefix
from tests.broker.paho_client import Paho
from tests.cluster.sessions_nodes import SessionNode, own_nats_and_two_nodes

LEASE = 10.0
WINDOW = 0.5
"""Seconds the adoption waits between winning the client id and loading its session."""


@pytest.fixture
def nodes() -> Iterator[tuple[SessionNode, SessionNode]]:
    with own_nats_and_two_nodes(LEASE) as both:
        yield both


def _orphan_of_a_dead_life(node: SessionNode, client_id: str) -> None:
    """Leave ``client_id``'s persistent session in JetStream, owned by an incarnation of
    n3 that no lease holds, as a killed n3 started again leaves it: ``node`` writes the
    session and lets it go, and the owner record moves to the dead life."""
    handle = node.handle
    node.running.call(lambda broker: handle.sessions.release(client_id, node.running.loop.time()))
    record = handle.nats.call(handle.link.owner(client_id), 5.0)
    assert record is not None
    assert record.owner == handle.link.me
    owners = handle.link.owners
    assert owners is not None
    handle.nats.call(owners.update(session_prefix(client_id), NodeId("n3", "dead").encode(),
                                   last=record.revision), 5.0)


def _owner_name(link: ClusterLink, node: SessionNode, client_id: str) -> str | None:
    record = node.handle.nats.call(link.owner(client_id), 5.0)
    return None if record is None else record.owner.name


def test_a_connect_racing_the_adoption_of_its_session_takes_it_over_from_the_adopter(
    nodes: tuple[SessionNode, SessionNode], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """n1's scan wins the dead life's client id; while it has not loaded the session
    yet, the client connects on n2: CONNACK says the session is present, the client
    receives on its subscription through n2, and n1 does not hold the session after its
    adoption (it handed it over on n2's release request)."""
    n1, n2 = nodes
    client = Paho(n1.port, "raced", clean_session=False).connect()
    assert client.subscribe("raced/#", 1) == [1]
    client.disconnect()
    _orphan_of_a_dead_life(n1, "raced")

    read_will = wills._live_will

    async def slow_read(link: ClusterLink, client_id: str) -> bytes | None:
        await asyncio.sleep(WINDOW)  # the adoption's window, held open
        return await read_will(link, client_id)

    monkeypatch.setattr(wills, "_live_will", slow_read)
    handle = n1.handle
    inbox = Inbox.of_thread(n1.running._thread.ident or 0)
    scan = handle.nats.submit(wills.take_orphans(handle.sessions.adopt, handle.link,
                                                 n1.running.loop, inbox))
    deadline = time.monotonic() + 5.0
    while _owner_name(handle.link, n1, "raced") != "n1":
        assert time.monotonic() < deadline, "n1's scan did not take the dead life's client id"
        time.sleep(0.01)

    back = Paho(n2.port, "raced", clean_session=False).connect()
    assert back.session_present is True, "the session was lost at the reconnect"
    assert scan.result(10.0) == 1
    assert n1.running.call(lambda broker: "raced" not in broker.sessions), \
        "n1 adopted the session after n2 took it: two owners"
    assert _owner_name(handle.link, n1, "raced") == "n2"
    publisher = Paho(n2.port, "pub-raced").connect()
    publisher.publish("raced/here", b"subscribed", 1)
    [message] = back.expect(1)
    assert message.payload == b"subscribed"
