"""The client over WebSocket (MQTT chapter 6): against the mqttref broker's ``ws``
listener, and against a hand-made wsproto server that answers as we tell it, to
see the client refuse what the chapter forbids.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import attrs
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    Event,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from mqttref.client import Client, ConnectionClosed
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.listeners import Listener
from mqttref.impl.client.errors import WebSocketRefused
from tests.helpers.broker_thread import BrokerThread

CONNACK = b"\x20\x02\x00\x00"


@pytest.fixture(scope="module")
def ws_broker() -> Iterator[BrokerThread]:
    """A WebSocket listener and a plain TCP one (``broker.port`` is the first)."""
    listeners = (Listener(port=0, transport="ws", max_frame_size=65_536),
                 Listener(port=0, transport="tcp"))  # fmt: skip
    with BrokerThread(Config(port=0, listeners=listeners)) as running:
        yield running


async def test_from_url_ws_publishes_and_receives_over_the_websocket(
    ws_broker: BrokerThread,
) -> None:
    """A 100 kB PUBLISH each way: ours goes in frames within the listener's 64 KiB
    limit, the broker's frames are joined into one stream [MQTT-6.0.0-2]."""
    async with Client.from_url(f"ws://127.0.0.1:{ws_broker.port}/any/path") as client:
        assert client.websocket_path == "/any/path"
        await client.subscribe("ws/t", 1)
        await client.publish("ws/t", b"w" * 100_000, 1)
        async for message in client.messages:
            assert (message.topic, message.payload) == ("ws/t", b"w" * 100_000)
            break


async def test_websocket_to_a_plain_mqtt_listener_is_refused(ws_broker: BrokerThread) -> None:
    plain = ws_broker.broker.listening[1][1]
    client = Client("127.0.0.1", plain, transport="websockets")
    with pytest.raises(WebSocketRefused, match="WebSocket handshake for '/mqtt' failed"):
        await client.connect()


# -- a WebSocket server that answers as the test says ----------------------------------------


@attrs.define
class HandServer:
    """Accepts one WebSocket at a time and runs ``script`` with it."""

    script: Callable[[HandServer, WSConnection, asyncio.StreamWriter, Request], Awaitable[None]]
    requests: list[Request] = attrs.field(factory=list)
    received: bytearray = attrs.field(factory=bytearray)
    pongs: int = 0
    reader: asyncio.StreamReader | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        ws = WSConnection(ConnectionType.SERVER)
        while True:
            data = await reader.read(65536)
            if not data:
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Request):
                    self.requests.append(event)
                    await self.script(self, ws, writer, event)
                    return

    async def events(self, ws: WSConnection) -> list[Event]:
        assert self.reader is not None
        data = await self.reader.read(65536)
        ws.receive_data(data or None)
        return list(ws.events())


@pytest.fixture
async def hand() -> AsyncIterator[Callable[[HandServer], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: HandServer) -> int:
        server = await asyncio.start_server(handler.serve, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()


async def accept_then(
    frames: list[Event], *, subprotocol: str | None = "mqtt"
) -> Callable[[HandServer, WSConnection, asyncio.StreamWriter, Request], Awaitable[None]]:
    async def script(server: HandServer, ws: WSConnection, writer: asyncio.StreamWriter,
                     request: Request) -> None:  # fmt: skip
        writer.write(ws.send(AcceptConnection(subprotocol=subprotocol)))
        for event in await server.events(ws):  # the CONNECT
            if isinstance(event, BytesMessage):
                server.received += event.data
        for frame in frames:
            writer.write(ws.send(frame))
        for event in await server.events(ws):
            if isinstance(event, Pong):
                server.pongs += 1
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    return script


async def test_the_handshake_offers_mqtt_on_the_path_and_frames_are_not_packets(
    hand: Callable[[HandServer], Awaitable[int]],
) -> None:
    """[MQTT-6.0.0-3] the client offers ``mqtt``; [MQTT-6.0.0-2] a CONNACK split over two
    frames is one packet; a ping between them is answered with a pong."""
    frames: list[Event] = [BytesMessage(CONNACK[:1]), Ping(b"p"), BytesMessage(CONNACK[1:])]
    server = HandServer(await accept_then(frames))
    port = await hand(server)
    client = Client.from_url(f"ws://127.0.0.1:{port}/custom", client_id="hand")
    await client.connect()
    try:
        assert server.requests[0].target == "/custom"
        assert server.requests[0].subprotocols == ["mqtt"]
        assert server.received.startswith(b"\x10")  # CONNECT, in binary frames
        await asyncio.sleep(0.05)
        assert server.pongs == 1
    finally:
        await client.disconnect()


async def test_an_answer_without_the_mqtt_subprotocol_is_refused(
    hand: Callable[[HandServer], Awaitable[int]],
) -> None:
    """[MQTT-6.0.0-4]: the server must select ``mqtt``."""
    port = await hand(HandServer(await accept_then([], subprotocol=None)))
    with pytest.raises(WebSocketRefused, match=r"without the 'mqtt' subprotocol.*6\.0\.0-4"):
        await Client("127.0.0.1", port, transport="websockets").connect()


async def test_an_http_refusal_is_named_by_its_status(
    hand: Callable[[HandServer], Awaitable[int]],
) -> None:
    async def refuse(server: HandServer, ws: WSConnection, writer: asyncio.StreamWriter,
                     request: Request) -> None:  # fmt: skip
        writer.write(ws.send(RejectConnection(status_code=404)))
        await writer.drain()
        writer.close()

    port = await hand(HandServer(refuse))
    with pytest.raises(WebSocketRefused, match="refused: HTTP 404"):
        await Client.from_url(f"ws://127.0.0.1:{port}/nowhere").connect()


async def test_a_text_frame_ends_the_connection(
    hand: Callable[[HandServer], Awaitable[int]],
) -> None:
    """[MQTT-6.0.0-1]: MQTT is sent in binary frames; anything else closes."""
    port = await hand(HandServer(await accept_then([TextMessage("20020000")])))
    with pytest.raises(ConnectionClosed, match=r"text frame.*6\.0\.0-1"):
        await Client("127.0.0.1", port, transport="websockets").connect()
