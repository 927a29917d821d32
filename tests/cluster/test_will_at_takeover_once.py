"""A will published at a takeover across nodes reaches the taken-over session once.

Client c0 (3.1.1, clean session 0, will at QoS 2) is subscribed to its own will's
topic at QoS 2 on n2 and connects again on n3. n2 closes the old connection, which
ended without DISCONNECT, so the will is published [MQTT-3.1.2-8] while c0's session
is still on n2: n2 gives it to the session itself (queued, written with it) and puts
it in the stream. The session then moves to n3 with the will in its queue. A QoS 2
message is delivered exactly once [MQTT-4.3.3-2 ff.]: n3 must not hand the session a
second copy from the stream, here through the stream consumer of another local
subscriber's wider filter (found by ``test_cluster_machine.py``: the will as packet
ids 1 and 2, both DUP 0). That subscriber gets the will once too, also when c0's
filter is the same wildcard as its own (n3 reads the stream up to its end before the
session joins, and hands what it read to the sessions there, by each message's topic).
"""

from __future__ import annotations

import uuid

import pytest

from mqttref.impl.cluster.replay import subjects_overlap
from tests.cluster.conftest import Cluster
from tests.cluster.helpers import client, wait_for_interest


@pytest.mark.parametrize("own_filter", ["{prefix}/a/b", "{prefix}/#"],
                         ids=["the_will_topic", "the_same_wildcard"])
def test_a_will_into_the_sessions_own_subscription_arrives_once_after_a_takeover_across_nodes(
        cluster: Cluster, own_filter: str) -> None:
    """The will of c0's connection on n2, published as n3 takes c0 over, reaches c0 on n3
    once, though a subscriber on n3 follows the stream on a subject as wide or wider;
    and that subscriber gets it once."""
    prefix = f"wt{uuid.uuid4().hex[:8]}"
    will_topic = f"{prefix}/a/b"
    bystander = client(cluster, "n3", f"{prefix}-by")
    assert bystander.subscribe(f"{prefix}/#", 1) == [1]
    wait_for_interest(cluster, "n3", f"{prefix}/#")
    first = client(cluster, "n2", f"{prefix}-c0", clean_session=False,
                   will=(will_topic, b"will of c0", 2, False))
    assert first.subscribe(own_filter.format(prefix=prefix), 2) == [2]
    second = client(cluster, "n3", f"{prefix}-c0", clean_session=False)
    assert first.disconnected.wait(5.0), "n2 kept the first connection [MQTT-3.1.4-2]"
    assert second.session_present is True
    [will] = second.expect(1)
    assert (will.topic, will.payload, will.qos) == (will_topic, b"will of c0", 2)
    assert second.nothing_within(1.0), (
        f"a second copy of the QoS 2 will: {second.messages.get().payload!r}")
    [seen] = bystander.expect(1)
    assert (seen.payload, seen.qos) == (b"will of c0", 1)
    assert bystander.nothing_within(0.2)
    second.client.disconnect()  # keep the session's end off the will path: clean end
    second.disconnected.wait(5.0)
    client(cluster, "n3", f"{prefix}-c0", clean_session=True).disconnect()
    bystander.disconnect()


@pytest.mark.parametrize(("first", "second", "overlap"), [
    ("m.a.b", "m.a.b", True),
    ("m.>", "m.a.b", True),
    ("m.a.>", "m.a", False),  # NATS's ">" takes one token at least (subjects.py)
    ("m.*.b", "m.a.*", True),
    ("m.*", "m.a.b", False),
    ("m.a.b", "m.a.c", False),
    ("s.>", "m.a", False),
])
def test_a_wider_stream_subject_is_caught_up_with_the_sessions_own(
        first: str, second: str, overlap: bool) -> None:
    """Which of a node's stream subjects can carry a message on one of the session's:
    those are caught up before it joins (``Replayer.catch_up``)."""
    assert subjects_overlap(first, second) is overlap
    assert subjects_overlap(second, first) is overlap
