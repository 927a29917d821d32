"""Messages across mqttref nodes clustered on NATS: publisher on one node, subscribers on
the others, with paho-mqtt and mosquitto's clients (peers written by others)."""

from __future__ import annotations

import shutil
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest

from tests.broker.paho_client import Paho
from tests.cluster.conftest import Cluster
from tests.cluster.helpers import client, eventually, wait_for_interest
from tests.helpers.peers import require_peer


def drain(subscriber: Paho) -> list[mqtt.MQTTMessage]:
    """Every message the subscriber has received and not yet taken."""
    taken = []
    while not subscriber.messages.empty():
        taken.append(subscriber.messages.get())
    return taken


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_a_message_published_on_one_node_reaches_subscribers_on_the_others(
        cluster: Cluster, qos: int) -> None:
    subscribers = [client(cluster, node) for node in ("n2", "n3")]
    publisher = client(cluster, "n1")
    try:
        for node, subscriber in zip(("n2", "n3"), subscribers, strict=True):
            assert subscriber.subscribe(f"routing/{qos}/+", qos) == [qos]
            wait_for_interest(cluster, node, f"routing/{qos}/+")
        publisher.publish(f"routing/{qos}/x", b"across", qos)
        for subscriber in subscribers:
            [message] = subscriber.expect()
            assert (message.topic, message.payload, message.qos) == (
                f"routing/{qos}/x", b"across", qos)
            assert not message.retain  # forwarded copies carry RETAIN 0 [MQTT-3.3.1-9]
            assert subscriber.nothing_within(0.2)  # once, not once per node or filter
    finally:
        for each in [*subscribers, publisher]:
            each.disconnect()


def test_overlapping_filters_on_another_node_deliver_one_copy(cluster: Cluster) -> None:
    """Both filters make n2 subscribe in NATS; the message still arrives once
    [MQTT-3.3.5-1]."""
    subscriber = client(cluster, "n2")
    publisher = client(cluster, "n1")
    try:
        subscriber.subscribe("overlap/#", 1)
        subscriber.subscribe("overlap/+", 1)
        wait_for_interest(cluster, "n2", "overlap/#")
        wait_for_interest(cluster, "n2", "overlap/+")
        publisher.publish("overlap/a", b"one", 1)
        [message] = subscriber.expect()
        assert message.payload == b"one"
        assert subscriber.nothing_within(0.3)
    finally:
        subscriber.disconnect()
        publisher.disconnect()


def test_order_per_topic_from_one_publisher_is_kept_across_nodes(cluster: Cluster) -> None:
    subscriber = client(cluster, "n3")
    publisher = client(cluster, "n1")
    try:
        subscriber.subscribe("order/#", 1)
        wait_for_interest(cluster, "n3", "order/#")
        sent = [(f"order/{i % 3}", str(i).encode()) for i in range(300)]
        for topic, payload in sent:
            publisher.client.publish(topic, payload, 1)
        received = subscriber.expect(len(sent), timeout=20)
        for topic in ("order/0", "order/1", "order/2"):
            assert [m.payload for m in received if m.topic == topic] == [
                p for t, p in sent if t == topic]
    finally:
        subscriber.disconnect()
        publisher.disconnect()


def test_wildcards_do_not_match_dollar_topics_across_nodes(cluster: Cluster) -> None:
    """[MQTT-4.7.2-1]: ``#`` and ``+/...`` on n2 get no ``$`` topic published on n1;
    a filter naming the ``$`` level does."""
    everything = client(cluster, "n2")
    single = client(cluster, "n3")
    dollar = client(cluster, "n3")
    publisher = client(cluster, "n1")
    try:
        everything.subscribe("#", 1)
        single.subscribe("+/reading", 1)
        dollar.subscribe("$app/+", 1)
        wait_for_interest(cluster, "n2", "#")
        wait_for_interest(cluster, "n3", "$app/+")
        wait_for_interest(cluster, "n3", "+/reading")
        # other tests of the session may have left retained messages, which "#" gets at
        # once with RETAIN 1: none of them may be a $ topic either
        time.sleep(0.3)
        left = drain(everything)
        assert all(m.retain and not m.topic.startswith("$") for m in left)
        publisher.publish("$app/reading", b"dollar", 1)
        publisher.publish("plain/reading", b"plain", 1)
        [message] = dollar.expect()
        assert message.topic == "$app/reading"
        assert [m.topic for m in single.expect()] == ["plain/reading"]
        eventually(lambda: not everything.messages.empty(), "n2's # subscriber got plain")
        time.sleep(0.3)  # the $ message, if it were wrongly routed, would be here by now
        assert [m.topic for m in drain(everything)] == ["plain/reading"]
        assert single.nothing_within(0.1)
    finally:
        for each in (everything, single, dollar, publisher):
            each.disconnect()


def test_a_node_subscribes_in_nats_only_to_what_its_sessions_want(cluster: Cluster) -> None:
    """Interest: n2 subscribes to the subjects of its one filter and drops them on
    UNSUBSCRIBE; n3, with no subscriber, is sent none of the messages (nats-server's
    own count of messages it sent each connection)."""
    nats = cluster.nats
    subscriber = client(cluster, "n2")
    publisher = client(cluster, "n1")
    try:
        subscriber.subscribe("interest/only/#", 1)
        wait_for_interest(cluster, "n2", "interest/only/#")
        assert not any("interest" in s for s in nats.subscriptions_of("n3"))

        def sent_to(node: str) -> int:
            for connection in nats.monitor("/connz")["connections"]:
                if connection.get("name") == f"mqttref-{node}":
                    return int(connection["out_msgs"])
            raise AssertionError(f"{node} has no NATS connection")

        before = sent_to("n3"), sent_to("n2")
        for i in range(20):
            publisher.publish("interest/only/x", str(i).encode(), 1)
        assert len(subscriber.expect(20)) == 20
        # n3 is sent none of the 20; at most a JetStream heartbeat of its retained mirror
        # (one per 5 s) may fall in this window
        assert sent_to("n3") - before[0] <= 1
        assert sent_to("n2") >= before[1] + 20
        subscriber.client.unsubscribe("interest/only/#")
        eventually(lambda: not any("interest" in s for s in nats.subscriptions_of("n2")),
                   "n2 unsubscribed in NATS")
    finally:
        subscriber.disconnect()
        publisher.disconnect()


def test_mosquitto_clients_across_nodes_with_awkward_topic_levels(cluster: Cluster) -> None:
    """Levels that NATS subjects cannot hold as they are: '.', ' ', '*', '>', empty."""
    require_peer("mosquitto_sub", shutil.which("mosquitto_sub") is not None,
                 "mosquitto-clients is not installed")
    topics = ["odd/a.b", "odd/with space", "odd/*", "odd/>", "odd//x"]
    sub = subprocess.Popen(
        ["mosquitto_sub", "-p", str(cluster.node("n3").port), "-q", "2", "-t", "odd/#",
         "-v", "-C", str(len(topics)), "-W", "15"],
        stdout=subprocess.PIPE, text=True)
    try:
        wait_for_interest(cluster, "n3", "odd/#")
        for topic in topics:
            subprocess.run(["mosquitto_pub", "-p", str(cluster.node("n1").port), "-q", "2",
                            "-t", topic, "-m", f"to {topic}"], check=True, timeout=10)
        out, _ = sub.communicate(timeout=20)
    finally:
        sub.kill()
    assert out.splitlines() == [f"{topic} to {topic}" for topic in topics]


def test_a_topic_too_long_for_nats_stays_on_its_node_and_routing_goes_on(
        cluster: Cluster) -> None:
    """A topic whose subject exceeds NATS's protocol line (4 KiB) is delivered on its own
    node only (docs/cluster.md): sending it would cost the node its NATS connection."""
    local, remote = client(cluster, "n1"), client(cluster, "n2")
    publisher = client(cluster, "n1")
    try:
        for each in (local, remote):
            each.subscribe("large/#", 1)
        wait_for_interest(cluster, "n2", "large/#")
        long_topic = "large/" + "x" * 5000
        publisher.publish(long_topic, b"long topic", 1)
        publisher.publish("large/ok", b"small", 1)
        assert [m.topic for m in local.expect(2)] == [long_topic, "large/ok"]
        [message] = remote.expect()
        assert (message.topic, message.payload) == ("large/ok", b"small")
    finally:
        for each in (local, remote, publisher):
            each.disconnect()


def test_a_node_killed_and_restarted_receives_again_for_its_new_subscribers(
        cluster: Cluster) -> None:
    """After ``kill -9`` the node's NATS subscriptions die with its connection; restarted,
    it subscribes for its new sessions and routing to it resumes."""
    n3 = cluster.node("n3")
    n3.kill()
    eventually(lambda: not cluster.nats.subscriptions_of("n3"), "n3's NATS subscriptions gone")
    n3.start()
    subscriber = client(cluster, "n3")
    publisher = client(cluster, "n1")
    try:
        subscriber.subscribe("restarted/+", 2)
        wait_for_interest(cluster, "n3", "restarted/+")
        publisher.publish("restarted/x", b"welcome back", 2)
        [message] = subscriber.expect()
        assert (message.payload, message.qos) == (b"welcome back", 2)
    finally:
        subscriber.disconnect()
        publisher.disconnect()


def test_a_retained_message_too_large_for_nats_stays_on_its_node_without_stalling_routing(
        cluster: Cluster) -> None:
    """A retained message within MQTT's default 1 MiB packet but, in its envelope, above
    NATS's 1 MiB max_payload is retained and delivered on its node only; what follows is
    routed at once (the node neither retries it nor holds the queue behind it)."""
    local, remote = client(cluster, "n1"), client(cluster, "n2")
    publisher = client(cluster, "n1")
    big = b"r" * 1_048_560
    try:
        for each in (local, remote):
            each.subscribe("huge/#", 1)
        wait_for_interest(cluster, "n2", "huge/#")
        publisher.publish("huge/r", big, 1, retain=True)
        publisher.publish("huge/after", b"small", 1)
        [message] = remote.expect(timeout=2)
        assert (message.topic, message.payload) == ("huge/after", b"small")
        assert [m.topic for m in local.expect(2)] == ["huge/r", "huge/after"]
        late = client(cluster, "n1")
        try:
            late.subscribe("huge/r", 1)
            [kept] = late.expect()
            assert (kept.payload == big, kept.retain) == (True, True)
        finally:
            late.disconnect()
        publisher.publish("huge/r", b"", 1, retain=True)
    finally:
        for each in (local, remote, publisher):
            each.disconnect()
