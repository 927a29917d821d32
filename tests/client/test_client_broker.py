"""The client library against a real broker (mosquitto, started per test).

Each test names a behaviour of ``mqttref.client.Client`` that a user relies
on; the broker is real, and where the network must misbehave (a withheld
acknowledgement, a connection cut mid-flow) a TCP proxy sits in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mqttref.client import (
    Backoff,
    BrokerUnreachable,
    Client,
    Connected,
    ConnectionClosed,
    ConnectionEvent,
    ConnectionRefused,
    Disconnected,
    InvalidArgument,
    Message,
    MQTTTimeout,
    NotConnected,
    ProtocolLevel,
    QoS,
    QueueFull,
    Reconnecting,
    Resubscribed,
    WhenDisconnected,
    Will,
)
from mqttref.impl.codec.packets import Publish, PubRec
from tests.client.brokers import Broker
from tests.client.proxy import DOWN, UP, Proxy
from tests.helpers.peers import free_port

WAIT = 5.0
FAST_RECONNECT = Backoff(initial=0.05, maximum=0.2)


async def receive(messages: AsyncIterator[Message], timeout: float = WAIT) -> Message:
    return await asyncio.wait_for(anext(messages), timeout)


async def nothing_arrives(messages: AsyncIterator[Message], within: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(anext(messages), within)
    except TimeoutError:
        return True
    return False


async def wait_until(predicate: object, timeout: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_message_round_trip_at_each_qos(broker: Broker, qos: int) -> None:
    async with (
        Client(broker.host, broker.port, client_id="sub") as sub,
        Client(broker.host, broker.port, client_id="pub") as pub,
    ):
        assert await sub.subscribe("r/+/c", qos=qos) == qos
        messages = sub.messages
        await pub.publish("r/b/c", b"payload", qos=qos)
        message = await receive(messages)
    assert (message.topic, message.payload, message.qos) == ("r/b/c", b"payload", qos)
    assert (message.packet_id is None) == (qos == 0)


async def test_delivery_qos_is_the_lower_of_publish_and_subscription(broker: Broker) -> None:
    async with Client(broker.host, broker.port) as client:
        await client.subscribe("d", qos=1)
        messages = client.messages
        await client.publish("d", b"x", qos=2)
        assert (await receive(messages)).qos is QoS.AT_LEAST_ONCE


async def test_many_qos2_messages_arrive_once_each_and_in_order(broker: Broker) -> None:
    async with Client(broker.host, broker.port) as sub, Client(broker.host, broker.port) as pub:
        await sub.subscribe("order", qos=2)
        messages = sub.messages
        await asyncio.gather(*(pub.publish("order", b"%d" % n, qos=2) for n in range(200)))
        received = [(await receive(messages)).payload for _ in range(200)]
        assert await nothing_arrives(messages)
    assert received == [b"%d" % n for n in range(200)]


async def test_retained_message_reaches_a_later_subscriber_flagged_retain(
    broker: Broker,
) -> None:
    async with Client(broker.host, broker.port) as client:
        await client.publish("status", b"up", qos=1, retain=True)
        await client.subscribe("status", qos=1)
        message = await receive(client.messages)
    assert (message.payload, message.retain) == (b"up", True)


async def test_will_is_published_when_the_connection_breaks(broker: Broker, proxy: Proxy) -> None:
    will = Will(topic="wills/w1", payload=b"gone", qos=QoS.AT_LEAST_ONCE)
    async with Client(broker.host, broker.port) as watcher:
        await watcher.subscribe("wills/#", qos=1)
        messages = watcher.messages
        client = Client("127.0.0.1", proxy.port, client_id="w1", will=will)
        await client.connect()
        proxy.cut()
        message = await receive(messages)
        with pytest.raises(ConnectionClosed):
            await client.wait_connected(timeout=WAIT)
        await client.disconnect()
    assert (message.topic, message.payload) == ("wills/w1", b"gone")


async def test_will_is_not_published_after_disconnect(broker: Broker) -> None:
    will = Will(topic="wills/w2", payload=b"gone")
    async with Client(broker.host, broker.port) as watcher:
        await watcher.subscribe("wills/#")
        async with Client(broker.host, broker.port, client_id="w2", will=will):
            pass
        assert await nothing_arrives(watcher.messages, within=0.5)


@pytest.mark.parametrize("qos", [1, 2])
async def test_resumed_session_resends_the_unacknowledged_publish_with_dup(
    broker: Broker, proxy: Proxy, qos: int
) -> None:
    async with Client(broker.host, broker.port) as sub:
        await sub.subscribe("dup/t", qos=2)
        messages = sub.messages
        client = Client(
            "127.0.0.1",
            proxy.port,
            client_id="dup-pub",
            clean_session=False,
            reconnect=FAST_RECONNECT,
        )
        await client.connect()
        proxy.held.add(DOWN)  # the broker's PUBACK/PUBREC never reaches the client
        publish = asyncio.create_task(client.publish("dup/t", b"once", qos=qos))
        await wait_until(lambda: any(isinstance(p, Publish) for p in proxy.client_packets))
        await asyncio.sleep(0.1)
        assert not publish.done()
        proxy.held.clear()
        proxy.cut()
        await asyncio.wait_for(publish, WAIT)
        sent = [p for p in proxy.client_packets if isinstance(p, Publish)]
        received = [await receive(messages)]
        if qos == 2:  # mosquitto forwards QoS 2 on PUBREL, so exactly one copy
            assert await nothing_arrives(messages), "QoS 2 must not be delivered twice"
        await client.disconnect()
    assert received[0].payload == b"once"
    assert [p.dup for p in sent] == [False, True]
    assert sent[0].packet_id == sent[1].packet_id


async def test_resumed_session_redelivers_an_unacknowledged_qos1_message_with_dup(
    broker: Broker, proxy: Proxy
) -> None:
    async with Client(broker.host, broker.port) as pub:
        client = Client(
            "127.0.0.1",
            proxy.port,
            client_id="dup-sub",
            clean_session=False,
            reconnect=FAST_RECONNECT,
        )
        await client.connect()
        await client.subscribe("redeliver", qos=1)
        messages = client.messages
        proxy.held.add(UP)  # our PUBACK never reaches the broker
        await pub.publish("redeliver", b"m", qos=1)
        first = await receive(messages)
        proxy.held.clear()
        proxy.cut()
        again = await receive(messages)
        await client.disconnect()
    assert (first.payload, first.dup) == (b"m", False)
    assert (again.payload, again.dup, again.packet_id) == (b"m", True, first.packet_id)


async def test_resumed_session_does_not_deliver_a_qos2_message_twice(
    broker: Broker, proxy: Proxy
) -> None:
    async with Client(broker.host, broker.port) as pub:
        client = Client(
            "127.0.0.1",
            proxy.port,
            client_id="dup-sub2",
            clean_session=False,
            reconnect=FAST_RECONNECT,
        )
        await client.connect()
        await client.subscribe("exactly", qos=2)
        messages = client.messages
        proxy.held.add(UP)  # our PUBREC never reaches the broker
        await pub.publish("exactly", b"m", qos=2)
        first = await receive(messages)
        await wait_until(lambda: any(isinstance(p, PubRec) for p in proxy.client_packets))
        proxy.held.clear()
        proxy.cut()
        await client.wait_connected(WAIT)
        await wait_until(lambda: sum(isinstance(p, PubRec) for p in proxy.client_packets) >= 2)
        assert await nothing_arrives(messages, within=0.5)
        await client.disconnect()
    assert first.payload == b"m"


async def test_client_reconnects_after_the_broker_restarts_and_resubscribes(
    broker: Broker,
) -> None:
    events: list[ConnectionEvent] = []
    client = Client(
        broker.host,
        broker.port,
        client_id="phoenix",
        clean_session=False,
        reconnect=FAST_RECONNECT,
        on_event=events.append,
    )
    await client.connect()
    await client.subscribe("back/+", qos=1)
    messages = client.messages
    await asyncio.to_thread(broker.restart)  # persistence false: the session is lost
    await wait_until(lambda: any(isinstance(e, Resubscribed) for e in events))
    async with Client(broker.host, broker.port) as pub:
        await pub.publish("back/again", b"hello", qos=1)
    message = await receive(messages)
    await client.disconnect()
    assert message.payload == b"hello"
    kinds = [type(e) for e in events]
    assert kinds[0] is Connected
    assert Disconnected in kinds
    assert Reconnecting in kinds
    assert Connected(session_present=False) in events[1:]
    resubscribed = next(e for e in events if isinstance(e, Resubscribed))
    assert resubscribed.topic_filters == ("back/+",)


async def test_without_reconnect_a_lost_connection_ends_messages_with_the_error(
    broker: Broker, proxy: Proxy
) -> None:
    client = Client("127.0.0.1", proxy.port)
    await client.connect()
    messages = client.messages
    proxy.cut()
    with pytest.raises(ConnectionClosed) as caught:
        await receive(messages)
    assert caught.value.by_peer
    with pytest.raises(ConnectionClosed):
        await client.publish("x", b"")
    await client.disconnect()


async def test_messages_end_quietly_after_disconnect(broker: Broker) -> None:
    client = Client(broker.host, broker.port)
    await client.connect()
    messages = client.messages
    await client.disconnect()
    assert [m async for m in messages] == []


async def test_refused_connection_raises_with_the_connack_return_code(
    closed_broker: Broker,
) -> None:
    with pytest.raises(ConnectionRefused) as caught:
        async with Client(closed_broker.host, closed_broker.port):
            pass
    assert caught.value.return_code == 5
    assert caught.value.reason == "not authorized"


async def test_unreachable_port_raises_broker_unreachable() -> None:
    with pytest.raises(BrokerUnreachable, match="connection refused"):
        async with Client("127.0.0.1", free_port()):
            pass


async def test_missing_pingresp_is_a_timeout(broker: Broker, proxy: Proxy) -> None:
    events: list[ConnectionEvent] = []
    client = Client("127.0.0.1", proxy.port, keepalive=1, timeout=0.3, on_event=events.append)
    await client.connect()
    proxy.held.add(DOWN)
    with pytest.raises(MQTTTimeout):
        await asyncio.wait_for(anext(client.messages), WAIT)
    await client.disconnect()
    assert any(isinstance(e, Disconnected) and isinstance(e.error, MQTTTimeout) for e in events)


async def test_publish_timeout_raises_when_the_ack_never_comes(
    broker: Broker, proxy: Proxy
) -> None:
    async with Client("127.0.0.1", proxy.port, keepalive=0) as client:
        proxy.held.add(DOWN)
        with pytest.raises(MQTTTimeout):
            await client.publish("t", b"x", qos=1, timeout=0.2)


async def test_publish_while_disconnected_raises_by_default(broker: Broker, proxy: Proxy) -> None:
    client = Client("127.0.0.1", proxy.port, reconnect=Backoff(initial=5.0, maximum=5.0))
    await client.connect()
    proxy.cut()
    await wait_until(lambda: not client.is_connected)
    with pytest.raises(NotConnected):
        await client.publish("t", b"x")
    await client.disconnect()


@pytest.mark.parametrize("policy", [WhenDisconnected.QUEUE, WhenDisconnected.WAIT])
async def test_publish_while_disconnected_is_delivered_after_reconnecting(
    broker: Broker, proxy: Proxy, policy: WhenDisconnected
) -> None:
    async with Client(broker.host, broker.port) as sub:
        await sub.subscribe("later", qos=1)
        messages = sub.messages
        client = Client(
            "127.0.0.1",
            proxy.port,
            reconnect=Backoff(initial=0.3, maximum=0.3, jitter=0),
            when_disconnected=policy,
        )
        await client.connect()
        proxy.cut()
        await wait_until(lambda: not client.is_connected)
        await asyncio.wait_for(client.publish("later", b"kept", qos=1), WAIT)
        message = await receive(messages)
        await client.disconnect()
    assert message.payload == b"kept"


async def test_queue_policy_is_bounded(broker: Broker, proxy: Proxy) -> None:
    client = Client(
        "127.0.0.1",
        proxy.port,
        reconnect=Backoff(initial=5.0, maximum=5.0),
        when_disconnected=WhenDisconnected.QUEUE,
        max_queued_publishes=2,
    )
    await client.connect()
    proxy.cut()
    await wait_until(lambda: not client.is_connected)
    await client.publish("q", b"1", qos=1)
    await client.publish("q", b"2", qos=1)
    with pytest.raises(QueueFull):
        await client.publish("q", b"3", qos=1)
    await client.disconnect()


async def test_slow_consumer_bounds_the_queue_and_loses_nothing(broker: Broker) -> None:
    async with (
        Client(broker.host, broker.port, max_queued_messages=5) as slow,
        Client(broker.host, broker.port) as pub,
    ):
        await slow.subscribe("flood", qos=1)
        for n in range(300):
            await pub.publish("flood", b"%d" % n, qos=1)
        await asyncio.sleep(0.3)
        assert slow.queued_messages <= 5
        messages = slow.messages
        received = [(await receive(messages)).payload for _ in range(300)]
    assert received == [b"%d" % n for n in range(300)]


async def test_bad_arguments_raise_before_anything_is_sent(broker: Broker, proxy: Proxy) -> None:
    async with Client("127.0.0.1", proxy.port, max_packet_size=100) as client:
        before = len(proxy.client_packets)
        with pytest.raises(InvalidArgument):
            await client.publish("a/+", b"")
        with pytest.raises(InvalidArgument):
            await client.publish("a", b"", qos=3)
        with pytest.raises(InvalidArgument):
            await client.publish("a", b"x" * 100)
        with pytest.raises(InvalidArgument):
            await client.subscribe("a/#/b")
        await asyncio.sleep(0.1)
        assert len(proxy.client_packets) == before


async def test_unsubscribe_stops_delivery(broker: Broker) -> None:
    async with Client(broker.host, broker.port) as client:
        await client.subscribe("u/#", qos=1)
        await client.unsubscribe("u/#")
        await client.publish("u/x", b"x", qos=1)
        assert await nothing_arrives(client.messages)
        assert client.subscriptions == {}


async def test_mqtt_3_1_client_round_trip(broker: Broker) -> None:
    async with Client(
        broker.host, broker.port, client_id="old-timer", protocol=ProtocolLevel.MQTT_3_1
    ) as client:
        assert await client.subscribe("v31/#", qos=2) == 2
        messages = client.messages
        await client.publish("v31/x", b"MQIsdp", qos=2)
        message = await receive(messages)
    assert (message.topic, message.payload, message.qos) == ("v31/x", b"MQIsdp", 2)


async def test_subscribe_many_returns_one_code_per_filter(broker: Broker) -> None:
    async with Client(broker.host, broker.port) as client:
        codes = await client.subscribe_many([("m/a", 0), ("m/b", 1), ("m/c", 2)])
        assert codes == (0, 1, 2)
        assert client.subscriptions == {"m/a": 0, "m/b": 1, "m/c": 2}


async def test_the_same_client_object_can_connect_again_and_resume_its_session(
    broker: Broker,
) -> None:
    client = Client(broker.host, broker.port, client_id="again", clean_session=False)
    await client.connect()
    await client.subscribe("again/t", qos=1)
    await client.disconnect()
    async with Client(broker.host, broker.port) as pub:
        await pub.publish("again/t", b"queued for you", qos=1)
    await client.connect()
    assert client.session_present
    message = await receive(client.messages)
    await client.disconnect()
    assert message.payload == b"queued for you"


async def test_reconnection_stops_when_the_broker_refuses_the_client(broker: Broker) -> None:
    events: list[ConnectionEvent] = []
    client = Client(broker.host, broker.port, reconnect=FAST_RECONNECT, on_event=events.append)
    await client.connect()
    messages = client.messages
    broker.allow_anonymous = False
    await asyncio.to_thread(broker.restart)
    with pytest.raises(ConnectionRefused) as caught:
        await receive(messages)
    await client.disconnect()
    assert caught.value.return_code == 5
    assert sum(isinstance(e, Reconnecting) for e in events) >= 1
