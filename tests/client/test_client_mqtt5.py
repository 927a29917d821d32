"""The client at MQTT 5.0 against mosquitto 2.0 (a real 5.0 broker, started per test).

Where mosquitto cannot be made to do something (refuse a subscription: its ACLs
filter deliveries instead), a scripted 5.0 peer on a loopback socket plays the
broker; what the client really sent is read back through the decoding proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from mqttref.client import (
    Client,
    ConnectionEvent,
    Disconnected,
    InvalidArgument,
    Message,
    NotSupportedByServer,
    PayloadTooLarge,
    PublishRefused,
    QoS,
    ServerDisconnected,
    Subscription,
    SubscriptionRefused,
    Will,
)
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    ProtocolLevel,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
)
from mqttref.impl.codec.packets import Properties as Props
from tests.client.brokers import (
    BROKER_KINDS,
    Broker,
    Mosquitto,
    mosquitto_available,
    running_broker,
)
from tests.client.proxy import Proxy
from tests.helpers.peers import require_peer

WAIT = 5.0
V5 = ProtocolLevel.MQTT_5


@contextlib.contextmanager
def mosquitto(directory: Path, *options: str) -> Iterator[Mosquitto]:
    require_peer("mosquitto", mosquitto_available(), "the 5.0 client is tested against it")
    broker = Mosquitto(directory, options=options)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(params=BROKER_KINDS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """mosquitto 2.0 and the mqttref broker, both at level 5: the client's 5.0 against two
    brokers written apart (the limits that need mosquitto's options use it alone)."""
    with running_broker(request.param, tmp_path) as running:
        yield running


def client(broker: Broker | Proxy, **kwargs: object) -> Client:
    port = broker.port
    return Client("127.0.0.1", port, protocol=5, **kwargs)  # type: ignore[arg-type]


async def receive(messages: AsyncIterator[Message], timeout: float = WAIT) -> Message:
    return await asyncio.wait_for(anext(messages), timeout)


async def nothing_arrives(messages: AsyncIterator[Message], within: float = 0.5) -> bool:
    try:
        await asyncio.wait_for(anext(messages), within)
    except TimeoutError:
        return True
    return False


# -- messages and their properties ------------------------------------------------


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_publish_properties_reach_a_subscriber_unchanged_at_each_qos(
    broker: Broker, qos: int
) -> None:
    users = [("z", "1"), ("a", "2"), ("z", "3")]  # order and repeats kept (3.3.2.3.7)
    async with client(broker, client_id="sub") as sub, client(broker, client_id="pub") as pub:
        assert await sub.subscribe("p/#", qos) == qos
        messages = sub.messages
        await pub.publish(
            "p/t",
            "héllo",
            qos,
            content_type="text/plain",
            response_topic="p/reply",
            correlation_data=b"\x00\x01xyz",
            message_expiry_interval=300,
            payload_format_indicator=1,
            user_properties=users,
        )
        message = await receive(messages)
    props = message.properties
    assert (message.topic, message.payload, message.qos) == ("p/t", "héllo".encode(), qos)
    assert props.user_properties == tuple(users)
    assert props.content_type == "text/plain"
    assert props.response_topic == "p/reply"
    assert props.correlation_data == b"\x00\x01xyz"
    assert props.payload_format_indicator == 1
    assert props.message_expiry_interval is not None
    assert 0 < props.message_expiry_interval <= 300  # the broker counts it down


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_messages_carry_the_subscription_identifier_of_the_matching_subscription(
    broker: Broker, qos: int
) -> None:
    async with client(broker) as sub, client(broker) as pub:
        await sub.subscribe("ids/a", qos, subscription_identifier=7)
        await sub.subscribe("ids/b", qos)
        messages = sub.messages
        await pub.publish("ids/a", b"1", qos)
        first = await receive(messages)
        await pub.publish("ids/b", b"2", qos)
        second = await receive(messages)
    assert first.properties.subscription_identifiers == (7,)
    assert second.properties.subscription_identifiers == ()


async def test_a_publish_nobody_receives_completes_with_reason_0x10(broker: Broker) -> None:
    async with client(broker) as pub:
        assert await pub.publish("nobody/here", b"x", 1) == 0x10  # mosquitto: on PUBACK only


async def test_a_publish_the_acl_forbids_raises_publish_refused_with_0x87(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite open/#\n")
    with mosquitto(tmp_path, f"acl_file {acl}") as broker:
        async with client(broker) as pub:
            assert await pub.publish("open/x", b"ok", 1) == 0x10
            with pytest.raises(PublishRefused) as caught:
                await pub.publish("secret/x", b"no", 1)
            assert caught.value.reason_code == 0x87
            assert await pub.publish("open/x", b"still connected", 1) == 0x10


# -- subscriptions ------------------------------------------------------------------


async def test_no_local_keeps_a_clients_own_messages_from_it(broker: Broker) -> None:
    async with client(broker) as me, client(broker) as other:
        await me.subscribe("chat", 1, no_local=True)
        messages = me.messages
        await me.publish("chat", b"mine", 1)
        await other.publish("chat", b"theirs", 1)
        message = await receive(messages)
        assert message.payload == b"theirs"
        assert await nothing_arrives(messages)


async def test_retain_handling_decides_whether_retained_messages_are_sent(
    broker: Broker,
) -> None:
    async with client(broker) as pub:
        await pub.publish("rh/t", b"kept", 1, retain=True)
    async with client(broker) as sub:
        messages = sub.messages
        await sub.subscribe("rh/t", 1, retain_handling=2)  # never
        assert await nothing_arrives(messages)
        messages = sub.messages  # a timed-out anext() ends an async generator
        await sub.unsubscribe("rh/t")
        await sub.subscribe("rh/t", 1, retain_handling=1)  # only for a new subscription
        assert (await receive(messages)).payload == b"kept"
        await sub.subscribe("rh/t", 1, retain_handling=1)  # exists already: nothing
        assert await nothing_arrives(messages)
        messages = sub.messages
        await sub.subscribe("rh/t", 1, retain_handling=0)  # always
        assert (await receive(messages)).payload == b"kept"


async def test_retain_as_published_keeps_the_retain_flag_on_live_messages(
    broker: Broker,
) -> None:
    async with client(broker) as sub, client(broker) as pub:
        await sub.subscribe("rap/kept", 1, retain_as_published=True)
        await sub.subscribe("rap/plain", 1)
        messages = sub.messages
        await pub.publish("rap/kept", b"1", 1, retain=True)
        kept = await receive(messages)
        await pub.publish("rap/plain", b"2", 1, retain=True)
        plain = await receive(messages)
    assert kept.retain
    assert not plain.retain


async def test_a_shared_subscription_delivers_each_message_to_one_member(
    broker: Broker,
) -> None:
    async with client(broker) as one, client(broker) as two, client(broker) as pub:
        for member in (one, two):
            await member.subscribe("$share/group/work/+", 1)
        for n in range(20):
            await pub.publish(f"work/{n}", str(n), 1)
        got: list[bytes] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                while len(got) < 20:
                    for member in (one, two):
                        while member.queued_messages:
                            got.append((await receive(member.messages)).payload)
                    await asyncio.sleep(0.02)
        assert sorted(got) == sorted(str(n).encode() for n in range(20))
        assert one.queued_messages == two.queued_messages == 0


async def test_a_shared_subscription_name_with_a_wildcard_is_refused_before_sending(
    broker: Broker,
) -> None:
    async with client(broker) as sub:
        for bad in ("$share/gr+oup/t", "$share/g#/t", "$share//t", "$share/g"):
            with pytest.raises(InvalidArgument):
                await sub.subscribe(bad)
        with pytest.raises(InvalidArgument, match=r"MQTT-3\.8\.3-4"):
            await sub.subscribe("$share/g/t", no_local=True)
        assert await sub.subscribe("$share/g/t", 1) == 1


async def test_unsubscribe_returns_the_reason_codes(broker: Broker) -> None:
    async with client(broker) as sub:
        await sub.subscribe("u/a")
        assert await sub.unsubscribe("u/a", "u/never") == (0x00, 0x11)


# -- the server's limits ------------------------------------------------------------


async def test_topic_aliases_replace_a_repeated_topic_on_the_wire(broker: Broker) -> None:
    proxy = Proxy(broker.port)
    await proxy.start()
    try:
        async with client(broker, client_id="s") as sub, client(proxy, client_id="p") as pub:
            assert pub.server_limits.topic_alias_maximum == 10  # mosquitto's default
            await sub.subscribe("alias/#", 1)
            messages = sub.messages
            for n in range(3):
                await pub.publish("alias/long/topic", str(n), 1)
            received = [await receive(messages) for _ in range(3)]
    finally:
        await proxy.stop()
    sent = [p for p in proxy.client_packets if isinstance(p, Publish)]
    assert [(p.topic, p.properties.topic_alias) for p in sent] == [
        ("alias/long/topic", 1),
        ("", 1),
        ("", 1),
    ]
    assert [(m.topic, m.payload) for m in received] == [
        ("alias/long/topic", b"0"), ("alias/long/topic", b"1"), ("alias/long/topic", b"2")
    ]  # fmt: skip


async def test_no_more_publishes_in_flight_than_the_servers_receive_maximum(
    tmp_path: Path,
) -> None:
    trace: list[tuple[str, Packet]] = []
    with mosquitto(tmp_path, "max_inflight_messages 2") as broker:
        async with client(broker, on_packet=lambda d, p: trace.append((d, p))) as pub:
            assert pub.server_limits.receive_maximum == 2
            await asyncio.gather(*(pub.publish("rm/t", str(n), 1) for n in range(10)))
    in_flight, most = 0, 0
    for direction, packet in trace:
        if direction == "sent" and isinstance(packet, Publish):
            in_flight += 1
            most = max(most, in_flight)
        elif direction == "received" and isinstance(packet, PubAck):
            in_flight -= 1
    assert most == 2


async def test_a_publish_beyond_the_servers_limits_fails_locally(tmp_path: Path) -> None:
    options = ("max_qos 1", "retain_available false", "max_packet_size 200")
    with mosquitto(tmp_path, *options) as broker:
        async with client(broker) as pub:
            with pytest.raises(NotSupportedByServer) as qos:
                await pub.publish("lim/t", b"x", 2)
            assert qos.value.reason_code == 0x9B
            with pytest.raises(NotSupportedByServer) as retain:
                await pub.publish("lim/t", b"x", 1, retain=True)
            assert retain.value.reason_code == 0x9A
            with pytest.raises(PayloadTooLarge, match="Maximum Packet Size of 200"):
                await pub.publish("lim/t", b"x" * 300, 1)
            assert pub.is_connected
            assert await pub.publish("lim/t", b"x" * 100, 1) == 0x10


async def test_server_keep_alive_and_assigned_client_id_are_used(tmp_path: Path) -> None:
    with mosquitto(tmp_path, "max_keepalive 10") as broker:
        async with client(broker, keepalive=60) as anonymous:
            assert anonymous.keepalive == 10
            assert anonymous.client_id.startswith("auto-")
            assert anonymous.connack_properties.assigned_client_identifier == anonymous.client_id


# -- sessions, wills and DISCONNECT --------------------------------------------------


async def test_a_subscription_beyond_the_brokers_limits_gets_its_reason_code(
    broker: Broker,
) -> None:
    """Both are legal: mosquitto closes with DISCONNECT 0x81, mqttref refuses the filter with
    SUBACK 0x80 (3.9.3); either way the client reports the broker's code."""
    async with client(broker) as sub:
        with pytest.raises((ServerDisconnected, SubscriptionRefused)) as caught:
            await sub.subscribe("deep" + "/x" * 300)  # beyond both brokers' 200 levels
    if isinstance(broker, Mosquitto):
        assert isinstance(caught.value, ServerDisconnected)
        assert caught.value.reason_code == 0x81
    else:
        assert isinstance(caught.value, SubscriptionRefused)
        assert caught.value.reason_code == 0x80


async def test_disconnect_with_will_publishes_the_will_and_a_normal_one_does_not(
    broker: Broker,
) -> None:
    async with client(broker) as watcher:
        await watcher.subscribe("wills/+", 1)
        messages = watcher.messages
        will = Will("wills/a", b"gone", QoS.AT_LEAST_ONCE)
        leaving = client(broker, will=will)
        await leaving.connect()
        await leaving.disconnect(with_will=True)
        assert (await receive(messages)).payload == b"gone"
        quiet = client(broker, will=Will("wills/b", b"never"))
        await quiet.connect()
        await quiet.disconnect()
        assert await nothing_arrives(messages)


async def test_a_session_with_an_expiry_interval_survives_a_disconnect(
    broker: Broker,
) -> None:
    def keeper() -> Client:
        return client(broker, client_id="keeper", clean_start=False, session_expiry_interval=60)

    async with keeper() as sub:
        await sub.subscribe("se/t", 1)
    async with client(broker) as pub:
        await pub.publish("se/t", b"while away", 1)
    async with keeper() as sub:
        assert sub.session_present
        assert (await receive(sub.messages)).payload == b"while away"
    async with client(broker, client_id="keeper", clean_start=True) as sub:
        assert not sub.session_present


# -- request / response ---------------------------------------------------------------


async def test_request_returns_the_response_with_the_same_correlation_data(
    broker: Broker,
) -> None:
    async with client(broker) as responder, client(broker) as requester:
        await responder.subscribe("service/double", 1)

        async def serve() -> None:
            async for message in responder.messages:
                props = message.properties
                assert props.response_topic is not None
                answer = str(2 * int(message.payload)).encode()
                await responder.publish(
                    props.response_topic, answer, 1, correlation_data=props.correlation_data
                )

        server = asyncio.create_task(serve())
        try:
            replies = await asyncio.gather(
                requester.request("service/double", b"21", timeout=WAIT),
                requester.request("service/double", b"5", timeout=WAIT),
            )
        finally:
            server.cancel()
        assert requester.queued_messages == 0  # responses go to their request, not to messages
    assert [r.payload for r in replies] == [b"42", b"10"]


# -- a scripted 5.0 peer for what mosquitto never does -------------------------------

Answer = Callable[[Packet], list[Packet]]


@contextlib.asynccontextmanager
async def scripted_server(answer: Answer, connack: ConnAck) -> AsyncIterator[int]:
    """A 5.0 'broker' that accepts CONNECT with ``connack`` and answers each packet."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = Decoder(role=Role.SERVER)
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                for packet in decoder.feed(data):
                    replies = [connack] if isinstance(packet, Connect) else answer(packet)
                    writer.write(b"".join(encode(r, V5) for r in replies))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_a_refused_subscription_raises_with_the_reason_code_and_string() -> None:
    def answer(packet: Packet) -> list[Packet]:
        assert isinstance(packet, Subscribe)
        codes = tuple(0x87 if s.topic_filter.startswith("secret") else 1
                      for s in packet.subscriptions)  # fmt: skip
        return [SubAck(packet.packet_id, codes, Props(reason_string="ask the admin"))]

    async with (
        scripted_server(answer, ConnAck(False, 0)) as port,
        Client("127.0.0.1", port, protocol=5) as sub,
    ):
        with pytest.raises(SubscriptionRefused) as caught:
            await sub.subscribe("secret/plans", 1)
        assert (caught.value.reason_code, caught.value.reason_string) == (
            0x87, "ask the admin"
        )  # fmt: skip
        assert "not authorized" in str(caught.value)
        both = [Subscription("open", QoS(1)), Subscription("secret", QoS(1))]
        assert await sub.subscribe_many(both) == (1, 0x87)
        assert sub.subscriptions == {"open": QoS.AT_LEAST_ONCE}


async def test_a_topic_alias_above_our_maximum_closes_with_disconnect_0x94() -> None:
    sent: list[Packet] = []

    def answer(packet: Packet) -> list[Packet]:
        sent.append(packet)
        if isinstance(packet, Subscribe):
            return [
                SubAck(packet.packet_id, (0,)),
                Publish("t", b"ok", properties=Props(topic_alias=2)),
                Publish("", b"by alias", properties=Props(topic_alias=2)),
                Publish("t", b"bad", properties=Props(topic_alias=3)),
            ]
        return []

    async with (
        scripted_server(answer, ConnAck(False, 0)) as port,
        Client("127.0.0.1", port, protocol=5, topic_alias_maximum=2) as sub,
    ):
        messages = sub.messages
        await sub.subscribe("t")
        assert [(await receive(messages)).topic for _ in range(2)] == ["t", "t"]
        with pytest.raises(Exception, match="topic alias 3"):
            await receive(messages)
    assert any(getattr(p, "reason_code", None) == 0x94 for p in sent)


async def test_a_servers_disconnect_reaches_the_application_with_its_reason() -> None:
    """mosquitto 2.0.11 closes a taken-over connection without DISCONNECT 0x8E, so a
    scripted server sends what a 5.0 broker should [MQTT-3.1.4-3]."""
    events: list[ConnectionEvent] = []
    takeover = Disconnect(0x8E, Props(reason_string="another connection took over"))

    def answer(packet: Packet) -> list[Packet]:
        return [takeover] if isinstance(packet, Publish) else []

    async with (
        scripted_server(answer, ConnAck(False, 0)) as port,
        Client("127.0.0.1", port, protocol=5, on_event=events.append) as first,
    ):
        messages = first.messages
        await first.publish("go", b"")
        with pytest.raises(ServerDisconnected) as caught:
            await receive(messages)
    assert (caught.value.reason_code, caught.value.reason_string) == (
        0x8E, "another connection took over"
    )  # fmt: skip
    assert [e.error for e in events if isinstance(e, Disconnected)] == [caught.value]
