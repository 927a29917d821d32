"""MQTT 5.0 statements of the Will Message (3.1.2.5 to 3.1.2.7, 3.1.3.2) that bind the
server, each shown by the broker meeting it: on a raw socket, or in the sans-IO core with
a made-up clock where the statement is about time (the will delay, the session's end),
so no test waits.

Driven as ``test_v5_statements_packet_format.py`` describes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mqttref.impl.codec.packets import (
    Disconnect,
    Properties,
    Publish,
    Subscription,
    Will,
)
from tests.broker.test_v5_core import connect5, subscribe5
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.core5 import clocked_world
from tests.helpers.peer5 import (
    CLOSED,
    Q0,
    Q1,
    Peer,
    R,
    mark,
    session,
    watching,
)


@pytest.fixture
def watcher(broker: BrokerThread) -> Iterator[Peer]:
    """A subscriber to everything under ``w/`` (``watching``), closed after the test."""
    with watching(broker) as peer:
        yield peer


# --- the will ---------------------------------------------------------------------------------


def test_a_will_is_stored_and_published_non_retained_when_the_network_fails(
    broker: BrokerThread, watcher: Peer,
) -> None:
    """With the Will Flag the server stores the Will Message with the session
    [MQTT-3.1.2-7] and publishes it once the connection closes without DISCONNECT 0x00
    [MQTT-3.1.2-8]; with Will Retain 0 as a non-retained message [MQTT-3.1.2-14]: the
    RETAIN flag is 0 (the watcher subscribed with Retain As Published) and a later
    subscriber gets no retained copy."""
    will = Will("w/will", b"gone", Q1, retain=False)
    session(broker, "dies", will=will).drop()
    got = watcher.expect(Publish)
    watcher.acknowledge(got)
    assert (got.topic, got.payload, got.retain) == ("w/will", b"gone", False)
    with session(broker, "late") as late:
        late.subscribe(Subscription("w/will", Q1), Subscription("w/marker", Q1))
        assert late.until(mark(broker)) == []


def test_a_will_with_will_retain_is_published_as_a_retained_message(
    broker: BrokerThread, watcher: Peer,
) -> None:
    """Will Retain 1: the Will Message is published as a retained message
    [MQTT-3.1.2-15]: forwarded with RETAIN 1 (Retain As Published) and kept for a later
    subscriber."""
    session(broker, "dies", will=Will("w/kept", b"gone", Q1, retain=True)).drop()
    got = watcher.expect(Publish)
    watcher.acknowledge(got)
    assert (got.topic, got.retain) == ("w/kept", True)
    with session(broker, "late") as late:
        late.subscribe(Subscription("w/kept", Q1))
        retained = late.expect(Publish)
        assert (retained.topic, retained.payload, retained.retain) == ("w/kept", b"gone", True)


def test_disconnect_0x00_deletes_the_will(broker: BrokerThread, watcher: Peer) -> None:
    """DISCONNECT 0x00 removes the Will Message [MQTT-3.1.2-10], so none is published at
    the close that follows [MQTT-3.1.2-8]; 0x04 (Disconnect with Will Message) on the same
    path publishes it, so the path is watched."""
    with session(broker, "polite", will=Will("w/polite", b"gone")) as polite:
        polite.send(Disconnect(R.SUCCESS))
        assert polite.next() == CLOSED
    with session(broker, "asks", will=Will("w/asks", b"gone")) as asks:
        asks.send(Disconnect(R.DISCONNECT_WITH_WILL))
        assert asks.next() == CLOSED
    assert [p.topic for p in watcher.until(mark(broker))] == ["w/asks"]



def test_a_will_is_published_once_though_its_delay_and_its_session_both_end() -> None:
    """The will goes when its delay ends or its session ends, whichever is first
    [MQTT-3.1.2-8], and once published it is removed from the session [MQTT-3.1.2-10]: the
    session ending later publishes nothing more."""
    world, clock = clocked_world()
    watcher, _ = connect5(world, "watcher")
    subscribe5(watcher, Subscription("w/#", Q0))
    client, _ = connect5(world, "w", properties=Properties(session_expiry_interval=20),
                         will=Will("w/will", b"gone",
                                   properties=Properties(will_delay_interval=5)))
    client.inner.core.connection_lost(clock.at(1.0))
    world.table.tick(clock.at(5.9))
    assert [p for p in watcher.received() if isinstance(p, Publish)] == []
    world.table.tick(clock.at(6.1))
    assert [p.payload for p in watcher.received() if isinstance(p, Publish)] == [b"gone"]
    world.table.tick(clock.at(30.0))
    assert "w" not in world.table.sessions  # the session did end
    assert [p for p in watcher.received() if isinstance(p, Publish)] == []


def test_the_will_keeps_the_order_of_its_user_properties(
    broker: BrokerThread, watcher: Peer,
) -> None:
    """The server keeps the order of the Will's User Properties when it publishes it
    [MQTT-3.1.3-10], a name repeated included."""
    pairs = (("z", "1"), ("a", "2"), ("z", "0"), ("m", "3"), ("a", "1"))
    session(broker, "dies", will=Will("w/ordered", b"gone", properties=Properties(
        user_properties=pairs))).drop()
    got = watcher.expect(Publish)
    assert got.topic == "w/ordered"
    assert got.properties.user_properties == pairs
