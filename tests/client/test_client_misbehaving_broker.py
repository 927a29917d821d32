"""The client against a scripted peer that breaks the rules a real broker keeps.

Real brokers do not send a PUBLISH before CONNACK or go silent after CONNECT,
so these cases need a peer that does: a loopback server answering CONNECT
with fixed bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mqttref.client import Client, ConnectionClosed, MQTTTimeout, ProtocolViolation
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import ConnAck, Publish

Serve = Callable[[bytes | None, bool], Awaitable[int]]
"""``serve(answer, close)``: a port where CONNECT gets ``answer``, then a close or silence."""


@pytest.fixture
async def scripted() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def serve(answer: bytes | None, close: bool) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1024)  # the CONNECT
            if answer is not None:
                writer.write(answer)
                await writer.drain()
            if close:
                writer.close()
            else:
                await reader.read()  # stay silent until the client goes

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield serve
    for server in servers:
        server.close()


async def test_publish_before_connack_is_a_protocol_violation(scripted: Serve) -> None:
    port = await scripted(encode(Publish("t", b"x")), False)
    with pytest.raises(ProtocolViolation) as caught:
        await Client("127.0.0.1", port).connect()
    assert caught.value.error.ref == "MQTT-3.2.0-1"


async def test_malformed_bytes_are_a_protocol_violation(scripted: Serve) -> None:
    port = await scripted(b"\x21\x02\x00\x00", False)  # CONNACK with reserved flag bits set
    with pytest.raises(ProtocolViolation):
        await Client("127.0.0.1", port).connect()


async def test_no_connack_in_time_is_a_timeout(scripted: Serve) -> None:
    port = await scripted(None, False)
    with pytest.raises(MQTTTimeout, match="CONNACK"):
        await Client("127.0.0.1", port, timeout=0.3).connect()


async def test_close_before_connack_is_connection_closed(scripted: Serve) -> None:
    port = await scripted(None, True)
    with pytest.raises(ConnectionClosed):
        await Client("127.0.0.1", port).connect()


async def test_session_present_for_a_clean_session_is_a_protocol_violation(scripted: Serve) -> None:
    port = await scripted(encode(ConnAck(session_present=True, return_code=0)), False)
    with pytest.raises(ProtocolViolation) as caught:
        await Client("127.0.0.1", port, clean_session=True).connect()
    assert caught.value.error.ref == "MQTT-3.2.2-1"
