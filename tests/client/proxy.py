"""A TCP proxy between a client and a broker that a test can cut or gag.

It lets a test withhold an acknowledgement (stop forwarding one direction),
drop the network under both peers at once (``cut``), and read the packets the
client really sent (decoded with the real codec), which is how a test sees
the DUP flag on a resent PUBLISH.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from mqttref.impl.codec.codec import Decoder, Role
from mqttref.impl.codec.errors import ProtocolError
from mqttref.impl.codec.packets import Packet

UP = "client->broker"
DOWN = "broker->client"


class Proxy:
    def __init__(self, broker_port: int, broker_host: str = "127.0.0.1") -> None:
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.port = 0
        self.held: set[str] = set()
        """Directions whose bytes are swallowed instead of forwarded."""
        self.client_packets: list[Packet] = []
        """Every packet clients sent through the proxy, in order (including swallowed ones)."""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop listening and cut every connection (the port stays known for ``start``)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.cut()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def cut(self) -> None:
        """Reset every proxied connection, as if the network failed."""
        for writer in self._writers:
            with contextlib.suppress(OSError):
                writer.transport.abort()
        self._writers.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        if me is not None:
            self._tasks.add(me)
        try:
            await self._forward(client_r, client_w)
        except asyncio.CancelledError:
            pass
        finally:
            if me is not None:
                self._tasks.discard(me)

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection(self.broker_host, self.broker_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers += [client_w, broker_w]
        up = asyncio.create_task(self._pump(client_r, broker_w, UP))
        down = asyncio.create_task(self._pump(broker_r, client_w, DOWN))
        self._tasks |= {up, down}
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for writer in (client_w, broker_w):
            writer.transport.abort()
        for task in (up, down):
            task.cancel()
        self._tasks -= {up, down}

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        decoder = Decoder(role=Role.SERVER) if direction == UP else None
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if decoder is not None:
                    try:
                        self.client_packets += decoder.feed(data)
                    except ProtocolError:
                        decoder = None
                if direction not in self.held:
                    writer.write(data)
                    await writer.drain()
