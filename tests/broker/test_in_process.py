"""The in-process API: ``Broker(Config(...))``, ``start()``, ``port``, ``stop()``."""

from __future__ import annotations

import asyncio

from mqttref.impl.broker.broker import Broker
from mqttref.impl.broker.config import Config
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    ConnectReturnCode,
    Packet,
    ProtocolLevel,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)


class AsyncClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = Decoder(role=Role.CLIENT, protocol_level=ProtocolLevel.MQTT_3_1_1)
        self.pending: list[Packet] = []

    @classmethod
    async def connect(cls, port: int, client_id: str) -> AsyncClient:
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        client.send(Connect(ProtocolLevel.MQTT_3_1_1, client_id))
        assert await client.receive() == ConnAck(False, ConnectReturnCode.ACCEPTED)
        return client

    def send(self, packet: Packet) -> None:
        self.writer.write(encode(packet))

    async def receive(self) -> Packet:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            assert data, "closed by the broker"
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)


async def test_a_broker_started_in_process_serves_clients_on_a_free_port() -> None:
    async with Broker(Config(port=0)) as broker:
        assert broker.port != 0
        subscriber = await AsyncClient.connect(broker.port, "sub")
        subscriber.send(Subscribe(1, (Subscription("t/#", QoS.EXACTLY_ONCE),)))
        assert await subscriber.receive() == SubAck(1, (2,))
        publisher = await AsyncClient.connect(broker.port, "pub")
        publisher.send(Publish("t/1", b"in process"))
        assert await subscriber.receive() == Publish("t/1", b"in process")
        assert set(broker.sessions) == {"sub", "pub"}
    assert await subscriber.reader.read() == b""  # stop() closed every connection


async def test_stop_then_start_a_new_broker_on_the_same_store_keeps_retained_messages() -> None:
    first = Broker(Config(port=0))
    await first.start()
    client = await AsyncClient.connect(first.port, "pub")
    client.send(Publish("keep", b"me", retain=True))
    await asyncio.sleep(0.1)
    await first.stop()
    second = Broker(Config(port=0), store=first.store)
    await second.start()
    try:
        subscriber = await AsyncClient.connect(second.port, "sub")
        subscriber.send(Subscribe(1, (Subscription("keep", QoS.AT_MOST_ONCE),)))
        assert await subscriber.receive() == SubAck(1, (0,))
        assert await subscriber.receive() == Publish("keep", b"me", retain=True)
    finally:
        await second.stop()
