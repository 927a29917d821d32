"""MQTT 5.0 across nodes: what a publisher on n1 sends reaches a 5.0 subscriber on n2 with
its properties unchanged, its expiry counted down, and Retain As Published honoured."""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.broker.test_v5_peers import Paho5, paho_properties, prop, publish_properties
from tests.cluster.conftest import Cluster
from tests.cluster.helpers import eventually, wait_for_interest


def test_properties_cross_nodes_unchanged(cluster: Cluster) -> None:
    """User Properties in order [MQTT-3.3.2-17, MQTT-3.3.2-18], Content Type
    [MQTT-3.3.2-20], Correlation Data [MQTT-3.3.2-16], Response Topic [MQTT-3.3.2-15];
    the Message Expiry Interval is the time left [MQTT-3.3.2-6]."""
    subscriber = Paho5(cluster.node("n2").port, "v5-across-sub")
    publisher = Paho5(cluster.node("n1").port, "v5-across-pub")
    try:
        subscriber.subscribe("v5across/#", 2)
        wait_for_interest(cluster, "n2", "v5across/#")
        properties = publish_properties(7)
        properties.MessageExpiryInterval = 60
        publisher.publish("v5across/x", b"with properties", 2, properties)
        [message] = subscriber.expect(1)
        assert (message.payload, message.qos) == (b"with properties", 2)
        assert prop(message, "UserProperty") == [("k", "v"), ("n", "7")]
        assert prop(message, "ContentType") == "text/plain"
        assert prop(message, "CorrelationData") == b"c7"
        assert prop(message, "ResponseTopic") == "reply/to"
        assert 0 < prop(message, "MessageExpiryInterval") <= 60
    finally:
        subscriber.stop()
        publisher.stop()


def test_retain_as_published_across_nodes(cluster: Cluster) -> None:
    """A live retained message published on n1 reaches n2's subscriber that asked for
    Retain As Published with RETAIN 1, and the one that did not with RETAIN 0
    [MQTT-3.3.1-12, MQTT-3.3.1-13]."""
    keeping = Paho5(cluster.node("n2").port, "v5-rap-keep")
    clearing = Paho5(cluster.node("n2").port, "v5-rap-clear")
    publisher = Paho5(cluster.node("n1").port, "v5-rap-pub")
    try:
        done = []
        keeping.client.on_subscribe = lambda *_args: done.append(1)
        keeping.client.subscribe("v5rap/t", options=SubscribeOptions(
            qos=1, retainAsPublished=True, retainHandling=2))
        clearing.client.on_subscribe = lambda *_args: done.append(1)
        clearing.client.subscribe("v5rap/t", options=SubscribeOptions(qos=1, retainHandling=2))
        eventually(lambda: len(done) == 2, "both SUBACKs")
        wait_for_interest(cluster, "n2", "v5rap/t")
        publisher.publish("v5rap/t", b"kept flag", 1, paho_properties(PacketTypes.PUBLISH))
        publisher.client.publish("v5rap/t", b"flagged", 1, retain=True).wait_for_publish(5)
        assert [(m.payload, m.retain) for m in keeping.expect(2)] == [
            (b"kept flag", False), (b"flagged", True)]
        assert [(m.payload, m.retain) for m in clearing.expect(2)] == [
            (b"kept flag", False), (b"flagged", False)]
        publisher.client.publish("v5rap/t", b"", 1, retain=True).wait_for_publish(5)
    finally:
        keeping.stop()
        clearing.stop()
        publisher.stop()
