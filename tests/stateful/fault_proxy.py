"""A TCP proxy in front of the broker that breaks the protocol in one chosen way.

Some faults are easiest to make on the wire: a SUBACK with a reserved return
code, a PUBLISH sent on with the wrong QoS, a packet before CONNACK, a bad
packet from the client swallowed so that the broker never gets to close the
connection. A ``Rewrite`` sees each whole MQTT frame of one connection, in one
direction, and says what goes on instead: the same frame, other frames,
nothing, or a close of both sides. The proxy frames the stream itself (fixed
header and Remaining Length) and never decodes, so it passes malformed input
through untouched unless a rewrite says otherwise.

``FaultProxy`` runs on its own event loop in a daemon thread, like
``BrokerThread``, so that synchronous code (the power runner) can put it in
front of an in-process broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import attrs

CLOSE = b"<close>"
"""Returned among a rewrite's frames: close both sides of this connection here."""

HELD_DOWN = "held_down"
"""A rewrite may keep frames for the client in ``link.state[HELD_DOWN]`` (a list) to
send later with another frame; whatever is still held 0.2 s after the last frame is
sent then, so a held frame is late, never lost."""

HOLD_SECONDS = 0.2

KEEP_CLIENT_OPEN = "keep_client_open"
"""Set ``link.state[KEEP_CLIENT_OPEN] = True`` and a close by the broker is not passed on:
the client's side stays open (a broker that fails to close)."""


class Direction(enum.Enum):
    UP = "client->broker"
    DOWN = "broker->client"


@attrs.define
class Link:
    """One proxied connection: what a rewrite may remember about it."""

    number: int
    state: dict[str, Any] = attrs.Factory(dict)
    up_frames: int = 0
    down_frames: int = 0


Rewrite = Callable[[Direction, bytes, Link], list[bytes]]
"""(direction, whole frame, link) -> the frames to send on instead (``CLOSE`` closes)."""


def packet_type(frame: bytes) -> int:
    return frame[0] >> 4


def _frame_length(buffer: bytes | bytearray) -> int | None:
    """Length of the whole frame at the start of ``buffer``, or None if incomplete."""
    multiplier, value, index = 1, 0, 1
    while True:
        if index >= len(buffer):
            return None
        byte = buffer[index]
        value += (byte & 0x7F) * multiplier
        index += 1
        if not byte & 0x80 or index > 4:
            break
        multiplier *= 128
    total = index + value
    return total if len(buffer) >= total else None


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to the broker, frames rewritten by ``rewrite``."""

    def __init__(self, broker_port: int, rewrite: Rewrite, broker_host: str = "127.0.0.1"):
        self.broker_host, self.broker_port = broker_host, broker_port
        self.rewrite = rewrite
        self.host = "127.0.0.1"
        self.port = 0
        self._links = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="fault-proxy")
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()

    async def _accept(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        self._links += 1
        link = Link(self._links)
        try:
            broker_r, broker_w = await asyncio.open_connection(self.broker_host,
                                                               self.broker_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, broker_w}
        done = asyncio.Event()

        async def flush_later() -> None:
            await asyncio.sleep(HOLD_SECONDS)
            held: list[bytes] = link.state.get(HELD_DOWN, [])
            if held and not done.is_set():
                link.state[HELD_DOWN] = []
                for frame in held:
                    client_w.write(frame)

        flushes: list[asyncio.Task[None]] = []

        async def pump(direction: Direction, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
            buffer = bytearray()
            try:
                while not done.is_set():
                    data = await reader.read(65536)
                    if not data:
                        break
                    buffer += data
                    while (size := _frame_length(buffer)) is not None:
                        frame, buffer = bytes(buffer[:size]), buffer[size:]
                        if direction is Direction.UP:
                            link.up_frames += 1
                        else:
                            link.down_frames += 1
                        for out in self.rewrite(direction, frame, link):
                            if out == CLOSE:
                                done.set()
                                return
                            writer.write(out)
                    if len(buffer) > 5 and _frame_length(buffer) is None and buffer[1:5] \
                            and all(b & 0x80 for b in buffer[1:5]):
                        writer.write(bytes(buffer))  # a malformed length: pass it through
                        buffer.clear()
                    if link.state.get(HELD_DOWN):
                        flushes.append(asyncio.create_task(flush_later()))
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                done.set()

        tasks = [asyncio.create_task(pump(Direction.UP, client_r, broker_w)),
                 asyncio.create_task(pump(Direction.DOWN, broker_r, client_w))]
        await done.wait()
        if link.state.get(KEEP_CLIENT_OPEN) and not tasks[0].done():
            broker_w.transport.abort()
            tasks[0].cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await tasks[0]
            with contextlib.suppress(Exception):
                while await client_r.read(65536):  # hold the client's side until it closes
                    pass
        for writer in (client_w, broker_w):
            writer.transport.abort()
            self._writers.discard(writer)
        for task in tasks + flushes:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def forward(_direction: Direction, frame: bytes, _link: Link) -> list[bytes]:
    """The identity rewrite: a proxy that breaks nothing (the control)."""
    return [frame]
