"""Shared subscriptions and subscription identifiers with clients written by others:
paho-mqtt 2 at MQTTv5 and mosquitto_sub -V mqttv5 (4.8.2, 3.3.4)."""

from __future__ import annotations

import queue
import subprocess

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.broker.test_v5_peers import WAIT, Paho5, mosquitto, paho_properties, prop
from tests.helpers.broker_thread import BrokerThread

MESSAGES = 20


def until(member: Paho5, marker: bytes) -> list[bytes]:
    """What a member received up to the marker, which comes after every message before
    it (one session delivers in order, [MQTT-4.6.0-6])."""
    got: list[bytes] = []
    while True:
        message: mqtt.MQTTMessage = member.messages.get(timeout=WAIT)
        if message.payload == marker:
            return got
        got.append(bytes(message.payload))


def test_two_paho_members_of_one_group_share_the_messages_between_them(
    broker: BrokerThread,
) -> None:
    members = [Paho5(broker.port, f"share-{n}") for n in range(2)]
    for member in members:
        member.subscribe("$share/g/sh/t", 1)
        member.subscribe("sh/end", 1)
    pub = Paho5(broker.port, "share-pub")
    sent = [b"m%d" % n for n in range(MESSAGES)]
    for payload in sent:
        pub.publish("sh/t", payload, 1)
    pub.publish("sh/end", b"end", 1)
    first, second = (until(member, b"end") for member in members)
    assert first  # both get some
    assert second
    assert not set(first) & set(second)  # none twice
    assert sorted(first + second) == sorted(sent)  # and none lost
    for client in (*members, pub):
        client.stop()


def test_paho_receives_the_identifiers_of_overlapping_subscriptions(
    broker: BrokerThread,
) -> None:
    """paho, subscribed with identifier 1 and 2 to overlapping filters, gets one copy that
    carries both [MQTT-3.3.4-4]."""
    sub = Paho5(broker.port, "ids-sub")
    done: queue.Queue[object] = queue.Queue()
    sub.client.on_subscribe = lambda *args: done.put(args)
    for identifier, topic_filter in ((1, "ids/#"), (2, "ids/+")):
        properties = paho_properties(PacketTypes.SUBSCRIBE)
        properties.SubscriptionIdentifier = identifier
        sub.client.subscribe(topic_filter, options=SubscribeOptions(qos=1),
                             properties=properties)
        done.get(timeout=WAIT)
    pub = Paho5(broker.port, "ids-pub")
    pub.publish("ids/a", b"both", 1)
    [message] = sub.expect(1)
    assert sorted(prop(message, "SubscriptionIdentifier")) == [1, 2]  # [MQTT-3.3.4-4]
    sub.stop()
    pub.stop()


def test_mosquitto_sub_prints_the_identifier_of_a_retained_message(
    broker: BrokerThread,
) -> None:
    """A retained message sent because of a SUBSCRIBE carries that subscription's
    identifier [MQTT-3.3.4-3], as mosquitto_sub's %S shows."""
    subprocess.run([mosquitto("mosquitto_pub"), "-V", "mqttv5", "-p", str(broker.port),
                    "-t", "ids/kept", "-m", "kept", "-q", "1", "-r"], check=True, timeout=10)
    got = subprocess.run(
        [mosquitto("mosquitto_sub"), "-V", "mqttv5", "-p", str(broker.port), "-t", "ids/#",
         "-q", "1", "-D", "subscribe", "subscription-identifier", "7",
         "-F", "%S|%r|%p", "-C", "1", "-W", "10"],
        check=False, timeout=15, capture_output=True, text=True)
    assert got.stdout.splitlines() == ["7|1|kept"], got.stderr  # [MQTT-3.3.4-3]
