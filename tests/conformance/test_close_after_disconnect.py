"""After the server's own DISCONNECT the oracle waits ``Timing.close_lag`` for the close,
not the reply bound, and stops waiting for any other packet at once.

Sending DISCONNECT the server has already decided and acted (a code of 0x80 or above
announces the close [MQTT-4.13.2-1]) and may send nothing after it [MQTT-3.14.4-1]: a
server that never closes (mqttools 0.50) is judged after the lag, a server that closes a
little after its DISCONNECT is not blamed. A fake server on a loopback socket plays both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import Disconnect, ProtocolLevel, PubAck
from mqttref.oracle.checks5._closing import ending
from mqttref.oracle.evidence import Deviation
from mqttref.oracle.probe import Probe, Timing, Trace

V5 = ProtocolLevel.MQTT_5
TIMING = Timing()


@asynccontextmanager
async def server_sending_disconnect(close_after: float | None) -> AsyncIterator[int]:
    """A server that sends DISCONNECT 0x81 on each connection, then closes it after
    ``close_after`` seconds (None: never, until the client goes); yields its port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(encode(Disconnect(0x81), V5))
        await writer.drain()
        if close_after is None:
            await reader.read()  # until the client closes
        else:
            await asyncio.sleep(close_after)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def _probe(port: int) -> Probe:
    return await Probe.open("p", "127.0.0.1", port, Trace(), TIMING, level=V5)


async def _wait_for_close(probe: Probe, wait: str) -> None:
    """The close as the checks await it: ``Probe.wait_close`` or the 5.0 ``ending``."""
    if wait == "wait_close":
        await probe.wait_close(why="test")
    else:
        await ending(probe, "test")


@pytest.mark.parametrize("wait", ["wait_close", "ending"])
async def test_a_connection_left_open_after_disconnect_is_judged_after_the_close_lag(
        wait: str) -> None:
    async with server_sending_disconnect(None) as port:
        probe = await _probe(port)
        started = time.monotonic()
        with pytest.raises(Deviation, match="still open"):
            await _wait_for_close(probe, wait)
        waited = time.monotonic() - started
        await probe.close()
    assert TIMING.close_lag <= waited < TIMING.reply_bound


@pytest.mark.parametrize("wait", ["wait_close", "ending"])
async def test_a_close_shortly_after_disconnect_is_not_blamed(wait: str) -> None:
    async with server_sending_disconnect(TIMING.close_lag / 4) as port:
        probe = await _probe(port)
        if wait == "wait_close":
            seen = await probe.wait_close(why="test")
            assert seen == [Disconnect(0x81)]
        else:
            assert await ending(probe, "test") == Disconnect(0x81)


async def test_a_packet_awaited_after_the_servers_disconnect_is_missing_at_once() -> None:
    async with server_sending_disconnect(None) as port:
        probe = await _probe(port)
        started = time.monotonic()
        with pytest.raises(Deviation, match="DISCONNECT"):
            await probe.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]")
        assert time.monotonic() - started < TIMING.close_lag
        await probe.close()
