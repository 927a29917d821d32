"""What ``mqttref check`` found when it first judged the cluster as one broker, fixed.

Each test replays the finding with raw clients (the oracle's ``Probe``), so it needs
no exploration to come upon it again.
"""

from __future__ import annotations

import asyncio

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from mqttref.oracle.probe import Probe, Timing, Trace
from tests.cluster.conftest import Cluster
from tests.cluster.helpers import wait_for_interest
from tests.helpers.peers import HOST

V5 = ProtocolLevel.MQTT_5
SUCCESS = 0x00


async def _client(port: int, client_id: str, trace: Trace) -> Probe:
    probe = await Probe.open(client_id, HOST, port, trace, Timing(), level=V5)
    await probe.send(Connect(V5, client_id, True, 60))
    assert (await probe.expect(ConnAck)).return_code == SUCCESS
    return probe


def test_a_5_0_publish_whose_only_subscriber_is_on_another_node_is_not_answered_no_matching_subscribers(  # noqa: E501 - the name is the statement
        cluster: Cluster) -> None:
    """0x10 "No matching subscribers" is for a Server that knows there are none
    (3.4.2.1, 3.5.2.1); the cluster is one Server, and a subscriber on n2 is one.
    The 5.0 exploration of ``mqttref check`` saw n1 answer 0x10 while n2 delivered."""
    trace = Trace()

    async def scenario() -> None:
        subscriber = await _client(cluster.node("n2").port, "f10sub", trace)
        publisher = await _client(cluster.node("n1").port, "f10pub", trace)
        try:
            await subscriber.send(Subscribe(1, (Subscription("f10/t", QoS.EXACTLY_ONCE),)))
            await subscriber.expect(SubAck)
            await asyncio.to_thread(wait_for_interest, cluster, "n2", "f10/t")
            await publisher.send(Publish("f10/t", b"one", QoS.AT_LEAST_ONCE, False, False, 1))
            assert (await publisher.expect(PubAck)).reason_code == SUCCESS, trace.lines
            await publisher.send(Publish("f10/t", b"two", QoS.EXACTLY_ONCE, False, False, 2))
            assert (await publisher.expect(PubRec)).reason_code == SUCCESS, trace.lines
            await publisher.send(PubRel(2))
            await publisher.expect(PubComp)
            delivered = [await subscriber.expect(Publish) for _ in range(2)]
            assert [m.payload for m in delivered] == [b"one", b"two"]
        finally:
            await subscriber.close()
            await publisher.close()

    asyncio.run(scenario())
