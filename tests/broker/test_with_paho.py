"""The broker with paho-mqtt clients: the everyday behaviour of MQTT 3.1.1."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from mqttref.impl.codec.packets import Publish, PubRel, QoS
from tests.broker.paho_client import Paho
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import CLOSED, RawClient


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_a_message_makes_the_round_trip_at_each_qos(broker: BrokerThread, qos: int) -> None:
    subscriber = Paho(broker.port, "sub").connect()
    assert subscriber.subscribe("room/+/temp", 2) == [2]
    publisher = Paho(broker.port, "pub").connect()
    publisher.publish("room/kitchen/temp", b"21.5", qos)
    [message] = subscriber.expect()
    assert (message.topic, message.payload, message.qos, message.retain) == (
        "room/kitchen/temp", b"21.5", qos, False)
    publisher.disconnect()
    subscriber.disconnect()


def test_delivery_is_downgraded_to_the_granted_qos(broker: BrokerThread) -> None:
    subscriber = Paho(broker.port, "sub").connect()
    subscriber.subscribe("t", 1)
    publisher = Paho(broker.port, "pub").connect()
    publisher.publish("t", b"x", 2)
    assert subscriber.expect()[0].qos == 1


def test_overlapping_subscriptions_deliver_one_copy_at_the_highest_qos(
    broker: BrokerThread,
) -> None:
    subscriber = Paho(broker.port, "sub").connect()
    subscriber.subscribe("a/#", 0)
    subscriber.subscribe("a/+", 2)
    Paho(broker.port, "pub").connect().publish("a/b", b"once", 2)
    [message] = subscriber.expect()
    assert message.qos == 2
    assert subscriber.nothing_within(0.5)


def test_retained_messages_are_set_replaced_and_cleared(broker: BrokerThread) -> None:
    publisher = Paho(broker.port, "pub").connect()
    publisher.publish("status", b"one", 1, retain=True)
    publisher.publish("status", b"two", 1, retain=True)
    first = Paho(broker.port, "first").connect()
    first.subscribe("status", 1)
    [retained] = first.expect()
    assert (retained.payload, retained.retain) == (b"two", True)
    publisher.publish("status", b"live", 1)
    [live] = first.expect()
    assert (live.payload, live.retain) == (b"live", False)  # normal forwarding: RETAIN=0
    publisher.publish("status", b"", 1, retain=True)  # clear
    [cleared] = first.expect()
    assert cleared.payload == b""
    later = Paho(broker.port, "later").connect()
    later.subscribe("status", 1)
    assert later.nothing_within(0.5)


def test_subscribing_again_sends_the_retained_message_again(broker: BrokerThread) -> None:
    """D7 [MQTT-3.8.4-3]"""
    Paho(broker.port, "pub").connect().publish("r", b"v", 0, retain=True)
    subscriber = Paho(broker.port, "sub").connect()
    subscriber.subscribe("r", 0)
    subscriber.subscribe("r", 0)
    assert [m.payload for m in subscriber.expect(2)] == [b"v", b"v"]


def test_the_will_is_published_when_the_connection_is_lost(broker: BrokerThread) -> None:
    watcher = Paho(broker.port, "watcher").connect()
    watcher.subscribe("wills/#", 1)
    with RawClient(broker.port) as doomed:
        from mqttref.impl.codec.packets import Will
        doomed.connect("doomed", will=Will("wills/doomed", b"gone", QoS.AT_LEAST_ONCE))
    [will] = watcher.expect()
    assert (will.topic, will.payload, will.qos) == ("wills/doomed", b"gone", 1)


def test_the_will_is_discarded_on_disconnect(broker: BrokerThread) -> None:
    """[MQTT-3.14.4-3]"""
    watcher = Paho(broker.port, "watcher").connect()
    watcher.subscribe("wills/#", 1)
    polite = Paho(broker.port, "polite", will=("wills/polite", b"gone", 1, False)).connect()
    polite.disconnect()
    assert watcher.nothing_within(0.7)


def test_a_persistent_session_gets_its_queue_on_reconnect_with_session_present(
    broker: BrokerThread,
) -> None:
    away = Paho(broker.port, "away", clean_session=False).connect()
    assert away.session_present is False
    away.subscribe("news/#", 2)
    away.disconnect()
    publisher = Paho(broker.port, "pub").connect()
    for n in range(5):
        publisher.publish("news/a", f"q1-{n}".encode(), 1)
        publisher.publish("news/b", f"q2-{n}".encode(), 2)
    publisher.publish("news/c", b"qos0 is not queued", 0)
    back = Paho(broker.port, "away", clean_session=False).connect()
    assert back.session_present is True
    got = [m.payload for m in back.expect(10)]
    assert [p for p in got if p.startswith(b"q1")] == [f"q1-{n}".encode() for n in range(5)]
    assert [p for p in got if p.startswith(b"q2")] == [f"q2-{n}".encode() for n in range(5)]
    assert back.nothing_within(0.5)
    back.disconnect()
    clean = Paho(broker.port, "away", clean_session=True).connect()
    assert clean.session_present is False
    clean.disconnect()
    assert broker.wait_for(lambda b: "away" not in b.sessions)


def test_a_new_connection_with_the_same_client_id_takes_over(broker: BrokerThread) -> None:
    """[MQTT-3.1.4-2]; the old connection's will is published, as mosquitto does."""
    watcher = Paho(broker.port, "watcher").connect()
    watcher.subscribe("wills/#", 0)
    old = Paho(broker.port, "twin", will=("wills/twin", b"old one", 0, False)).connect()
    new = Paho(broker.port, "twin").connect()
    assert old.disconnected.wait(5)
    assert watcher.expect()[0].payload == b"old one"
    new.subscribe("after", 0)
    watcher.publish("after", b"to the new one")
    assert new.expect()[0].payload == b"to the new one"


def test_a_silent_client_is_closed_after_one_and_a_half_keep_alives(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """[MQTT-3.1.2-24], and its will is published."""
    broker = start_broker(keep_alive_factor=1.5)
    watcher = Paho(broker.port, "watcher").connect()
    watcher.subscribe("wills/#", 0)
    from mqttref.impl.codec.packets import Will
    with RawClient(broker.port) as silent:
        silent.connect("silent", keep_alive=1, will=Will("wills/silent", b"timed out"))
        started = time.monotonic()
        assert silent.receive(5) == CLOSED
        elapsed = time.monotonic() - started
    assert 1.3 <= elapsed <= 3.0
    assert watcher.expect()[0].payload == b"timed out"


def test_pingreq_keeps_a_client_alive(start_broker: Callable[..., BrokerThread]) -> None:
    from mqttref.impl.codec.packets import PingReq, PingResp
    broker = start_broker()
    with RawClient(broker.port) as client:
        client.connect("pinger", keep_alive=1)
        for _ in range(4):
            time.sleep(0.6)
            client.send(PingReq())
            assert client.receive() == PingResp()


def test_wildcards_match_levels_and_not_dollar_topics(broker: BrokerThread) -> None:
    """[MQTT-4.7.1-2, MQTT-4.7.1-3, MQTT-4.7.2-1]"""
    everything = Paho(broker.port, "all").connect()
    everything.subscribe("#", 0)
    plus = Paho(broker.port, "plus").connect()
    plus.subscribe("+/b", 0)
    dollar = Paho(broker.port, "dollar").connect()
    dollar.subscribe("$app/#", 0)
    publisher = Paho(broker.port, "pub").connect()
    publisher.publish("$app/b", b"dollar", 1)
    publisher.publish("a/b", b"plain", 1)
    publisher.publish("a/b/c", b"deep", 1)
    assert sorted(m.payload for m in everything.expect(2)) == [b"deep", b"plain"]
    assert [m.payload for m in plus.expect()] == [b"plain"]
    assert [m.payload for m in dollar.expect()] == [b"dollar"]
    assert everything.nothing_within(0.3)
    assert plus.nothing_within(0.1)


def test_a_thousand_qos1_messages_arrive_in_order(broker: BrokerThread) -> None:
    subscriber = Paho(broker.port, "sub").connect()
    subscriber.subscribe("seq", 1)
    publisher = Paho(broker.port, "pub").connect()
    infos = [publisher.client.publish("seq", str(n).encode(), 1) for n in range(1000)]
    for info in infos:
        info.wait_for_publish(10)
    got = [int(m.payload) for m in subscriber.expect(1000, timeout=10)]
    assert got == list(range(1000))


def test_mqtt_3_1_clients_are_served(broker: BrokerThread) -> None:
    import paho.mqtt.client as mqtt
    subscriber = Paho(broker.port, "old-sub", protocol=mqtt.MQTTv31).connect()
    subscriber.subscribe("v31", 1)
    Paho(broker.port, "old-pub", protocol=mqtt.MQTTv31).connect().publish("v31", b"hi", 1)
    assert subscriber.expect()[0].payload == b"hi"


def test_unacknowledged_messages_are_resent_with_dup_on_reconnect(broker: BrokerThread) -> None:
    """[MQTT-4.4.0-1]: PUBLISH again with DUP=1, PUBREL again."""
    from mqttref.impl.codec.packets import PubRec
    with RawClient(broker.port) as first:
        first.connect("forgetful", clean_session=False)
        first.subscribe("d/#", QoS.EXACTLY_ONCE)
        publisher = Paho(broker.port, "pub").connect()
        publisher.publish("d/1", b"one", 1)
        publisher.publish("d/2", b"two", 2)
        one = first.receive()
        two = first.receive()
        assert isinstance(one, Publish)
        assert isinstance(two, Publish)
        assert two.packet_id is not None
        first.send(PubRec(two.packet_id))
        assert first.receive() == PubRel(two.packet_id)
    with RawClient(broker.port) as second:
        assert second.connect("forgetful", clean_session=False).session_present
        resent = second.receive_all()
        assert resent == [
            Publish("d/1", b"one", QoS.AT_LEAST_ONCE, False, True, one.packet_id),
            PubRel(two.packet_id),
        ]


def test_unacknowledged_messages_are_resent_while_connected_after_the_retry_interval(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(retry_interval=0.3)
    with RawClient(broker.port) as slow:
        slow.connect("slow")
        slow.subscribe("r", QoS.AT_LEAST_ONCE)
        Paho(broker.port, "pub").connect().publish("r", b"again", 1)
        first = slow.receive()
        again = slow.receive(2)
        assert isinstance(first, Publish)
        assert isinstance(again, Publish)
        assert (again.dup, again.packet_id, again.payload) == (True, first.packet_id, b"again")


def test_an_inbound_qos2_duplicate_is_not_delivered_twice(broker: BrokerThread) -> None:
    """[MQTT-4.3.3-2]: a PUBLISH whose id awaits PUBREL is acknowledged, not routed."""
    from mqttref.impl.codec.packets import PubComp, PubRec
    subscriber = Paho(broker.port, "sub").connect()
    subscriber.subscribe("once", 2)
    with RawClient(broker.port) as publisher:
        publisher.connect("raw-pub")
        packet = Publish("once", b"exactly", QoS.EXACTLY_ONCE, packet_id=5)
        publisher.send(packet)
        assert publisher.receive() == PubRec(5)
        publisher.send(Publish("once", b"exactly", QoS.EXACTLY_ONCE, dup=True, packet_id=5))
        assert publisher.receive() == PubRec(5)
        publisher.send(PubRel(5))
        assert publisher.receive() == PubComp(5)
    assert [m.payload for m in subscriber.expect()] == [b"exactly"]
    assert subscriber.nothing_within(0.5)


def test_a_will_with_retain_is_kept_as_the_retained_message(broker: BrokerThread) -> None:
    from mqttref.impl.codec.packets import Will
    with RawClient(broker.port) as doomed:
        doomed.connect("doomed", will=Will("status/doomed", b"offline", QoS.AT_LEAST_ONCE, True))
    time.sleep(0.2)
    later = Paho(broker.port, "later").connect()
    later.subscribe("status/+", 1)
    [will] = later.expect()
    assert (will.payload, will.qos, will.retain) == (b"offline", 1, True)
