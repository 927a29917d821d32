"""The noisy neighbours of issue 20, and the well-behaved QoS 1 stream they must not disturb.

Everything here runs in a child process of ``bench/noisy.py`` with its own asyncio loop: the good
stream in one, the adversary in another, so the adversary's CPU time never delays the stream's
clock readings. Packets are raw bytes on asyncio sockets (encoded once with the project's codec
through ``frames.py``, or by hand where they must be malformed); nothing here uses a client library
whose own queues could hide the broker's pauses.

Each adversary counts the bytes it sends and receives (MQTT bytes on the socket, not TCP/IP
headers), so the broker's log growth can be judged per byte of attack.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from frames import (
    CONNACK,
    MAX_PACKET_ID,
    PUBLISH,
    SUBACK,
    connect_frame,
    publish_frame,
    publish_packet_id,
    publish_payload_offset,
    split,
    subscribe_frame,
)

HOST = "127.0.0.1"
GOOD_TOPIC = "noisy/good"
BIG_TOPIC = "noisy/big"
GOOD_RATE = 50
"""Messages per second of the good stream (issue 20)."""
GOOD_PAYLOAD = 64
NOACK_PERIOD_S = 1.5
"""The non-acknowledging subscriber reconnects under a new client id this often (issue 20)."""
GARBAGE_WAIT_S = 1.0
"""How long a garbage connection waits for the broker to close it before closing itself."""
SLOW_READ_BYTES = 256
SLOW_READ_EVERY_S = 0.25
"""256 bytes every 0.25 s: the 1 KB/s reader."""
SLOW_RCVBUF = 4096
READY_TIMEOUT_S = 30.0


@dataclass
class Size:
    """How hard a run pushes: the measured time and each adversary's strength."""

    seconds: float
    warmup: float
    grace: float
    """After the last publish, how long late deliveries are still waited for."""
    garbage_rate: int
    """Garbage connections opened per second; each lives at most ``GARBAGE_WAIT_S``."""
    silent: int
    """Silent sockets held open at once."""
    big_bytes: int
    """Payload of each message the slow reader is fed."""
    big_rate: float
    """Of those messages, per second."""


@dataclass
class Traffic:
    """What an adversary (or the good stream) put on the wire and got back."""

    sent: int = 0
    received: int = 0
    connections: int = 0
    failed_connects: int = 0
    closed_by_broker: int = 0


class Framed:
    """One MQTT connection on asyncio streams: frames in, bytes out, both counted."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, traffic: Traffic
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.traffic = traffic
        self.buf = b""

    @classmethod
    async def connect(cls, port: int, client_id: str, traffic: Traffic) -> Framed:
        reader, writer = await asyncio.open_connection(HOST, port)
        traffic.connections += 1
        peer = cls(reader, writer, traffic)
        peer.write(connect_frame(client_id))
        body = await peer.expect(CONNACK)
        if body[1] != 0:
            raise ConnectionError(f"{client_id}: CONNACK return code {body[1]}")
        return peer

    def write(self, data: bytes) -> None:
        self.writer.write(data)
        self.traffic.sent += len(data)

    async def frames(self) -> tuple[list[tuple[int, bytes]], int]:
        """The whole frames of one read, as (first byte, body), and the monotonic ns of the read."""
        data = await self.reader.read(1 << 16)
        now = time.monotonic_ns()
        if not data:
            self.traffic.closed_by_broker += 1
            raise ConnectionError("closed by the broker")
        self.traffic.received += len(data)
        self.buf += data
        found, pos = split(self.buf, 0)
        frames = [(first, self.buf[body:end]) for first, body, end in found]
        self.buf = self.buf[pos:]
        return frames, now

    async def expect(self, kind: int) -> bytes:
        while True:
            frames, _ = await self.frames()
            for first, body in frames:
                if first >> 4 == kind:
                    return body

    async def drain_forever(self) -> None:
        """Read and drop what comes (a publisher's PUBACKs), so the broker never waits on us."""
        while True:
            await self.frames()

    def close(self) -> None:
        self.writer.close()


def puback(packet_id: int) -> bytes:
    return b"\x40\x02" + packet_id.to_bytes(2, "big")


# --- the good stream -------------------------------------------------------------------------


async def good_stream(size: Size, port: int, go: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    """A publisher at 50 msg/s and a QoS 1 subscriber that acknowledges at once.

    Latency is the subscriber's ``CLOCK_MONOTONIC`` on arrival minus the publisher's, written into
    the payload just before the PUBLISH is written; both are in this process. The publisher never
    waits for the broker (no drain, no in-flight window), so a broker that stops reading it shows
    as latency rather than as a slower schedule.
    """
    traffic = Traffic()
    sub = await Framed.connect(port, "noisy-good-sub", traffic)
    sub.write(subscribe_frame(GOOD_TOPIC, 1))
    await sub.expect(SUBACK)
    pub = await Framed.connect(port, "noisy-good-pub", traffic)
    await go()
    warm = round(size.warmup * GOOD_RATE)
    total = warm + round(size.seconds * GOOD_RATE)
    latencies: dict[int, int] = {}
    duplicates = [0]
    all_in = asyncio.Event()
    tasks = [
        asyncio.create_task(_receive_good(sub, latencies, duplicates, range(warm, total), all_in)),
        asyncio.create_task(pub.drain_forever()),
    ]
    start = time.monotonic()
    for seq in range(total):
        delay = start + seq / GOOD_RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        payload = struct.pack(">QQ", seq, time.monotonic_ns()).ljust(GOOD_PAYLOAD, b".")
        pub.write(publish_frame(GOOD_TOPIC, payload, 1, seq % MAX_PACKET_ID + 1))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(size.grace):
            await all_in.wait()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await task
    measured = sorted(latencies[seq] / 1e6 for seq in range(warm, total) if seq in latencies)
    pub.close()
    sub.close()
    return {
        "sent": total - warm,
        "received": len(measured),
        "duplicates": duplicates[0],
        "p50_ms": _rank(measured, 0.50),
        "p99_ms": _rank(measured, 0.99),
        "max_ms": measured[-1] if measured else None,
    }


async def _receive_good(
    sub: Framed,
    latencies: dict[int, int],
    duplicates: list[int],
    measured: range,
    all_in: asyncio.Event,
) -> None:
    while True:
        frames, now = await sub.frames()
        for first, body in frames:
            if first >> 4 != PUBLISH:
                continue
            at = publish_payload_offset(body, first, 0)
            seq, stamp = struct.unpack_from(">QQ", body, at)
            sub.write(puback(publish_packet_id(body, 0)))
            if seq in latencies:
                duplicates[0] += 1
            else:
                latencies[seq] = now - stamp
        if sum(1 for seq in measured if seq in latencies) == len(measured):
            all_in.set()


def _rank(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    return values[min(len(values), max(1, math.ceil(q * len(values)))) - 1]


# --- the adversaries ---------------------------------------------------------------------------


async def noack(size: Size, port: int, traffic: Traffic, ready: asyncio.Event) -> None:
    """Subscribes to ``#`` at QoS 1, reads everything, never sends PUBACK, reconnects every 1.5 s.

    Each connection has a fresh client id and a clean session, so the broker owes the old one
    nothing; only its unacknowledged window (and what queues behind it) is at stake.
    """
    for n in range(1, 1 << 62):
        try:
            peer = await Framed.connect(port, f"noisy-noack-{os.getpid()}-{n}", traffic)
        except (OSError, ConnectionError):
            traffic.failed_connects += 1
            await asyncio.sleep(0.1)
            continue
        try:
            peer.write(subscribe_frame("#", 1))
            async with asyncio.timeout(NOACK_PERIOD_S):
                await peer.expect(SUBACK)
                ready.set()
                await peer.drain_forever()
        except (TimeoutError, OSError, ConnectionError):
            pass
        finally:
            peer.close()


def _connect_bytes(
    name: bytes, level: int, flags: int, client_id: bytes, keep_alive: int = 60
) -> bytes:
    """A CONNECT written by hand, so that it can say what the codec would refuse to encode."""
    body = (
        len(name).to_bytes(2, "big")
        + name
        + bytes([level, flags])
        + keep_alive.to_bytes(2, "big")
        + len(client_id).to_bytes(2, "big")
        + client_id
    )
    return bytes([0x10]) + _remaining_length(len(body)) + body


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def garbage_frames() -> list[bytes]:
    """What a garbage connection sends, one kind per connection in turn."""
    junk = random.Random(20).randbytes(63)
    control_id = b"\x01" * 65_000
    return [
        b"\x00" + junk,  # packet type 0 is reserved [MQTT-2.2.1]
        _connect_bytes(b"MQTX", 4, 0x02, b"garbage"),  # wrong protocol name [MQTT-3.1.2-1]
        _connect_bytes(b"MQTT", 9, 0x02, b"\x01" * 1_000),  # unknown level: CONNACK 1 [3.1.2-2]
        _connect_bytes(b"MQTT", 4, 0x03, b"garbage"),  # reserved flag set [MQTT-3.1.2-3]
        _connect_bytes(b"MQTT", 4, 0x42, b"garbage"),  # password without user name [3.1.2-22]
        _connect_bytes(b"MQTT", 4, 0x02, control_id),  # a 65,000-character id of U+0001, then gone
        publish_frame("garbage", b"before CONNECT"),  # first packet not CONNECT [MQTT-3.1.0-1]
        b"\x10\xff\xff\xff\xff\x7f",  # remaining length of five bytes [MQTT-2.2.3]
        _connect_bytes(b"MQTT", 4, 0x02, b"garbage")[:20],  # cut short, then closed
        connect_frame("noisy-garbage-twice") * 2,  # a second CONNECT [MQTT-3.1.0-2]
    ]


async def garbage(size: Size, port: int, traffic: Traffic, ready: asyncio.Event) -> None:
    """Opens ``garbage_rate`` connections a second, each sending one kind of garbage.

    Each waits up to a second for the broker to close it (reading what it answers), then closes;
    at 200 a second that keeps up to about 200 garbage connections open at any time.
    """
    kinds = garbage_frames()
    pending: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    for n in range(1 << 62):
        task = asyncio.create_task(_one_garbage(port, kinds[n % len(kinds)], traffic))
        pending.add(task)
        task.add_done_callback(pending.discard)
        ready.set()
        delay = start + (n + 1) / size.garbage_rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def _one_garbage(port: int, data: bytes, traffic: Traffic) -> None:
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        traffic.failed_connects += 1
        return
    traffic.connections += 1
    try:
        writer.write(data)
        traffic.sent += len(data)
        async with asyncio.timeout(GARBAGE_WAIT_S):
            while chunk := await reader.read(1 << 16):
                traffic.received += len(chunk)
            traffic.closed_by_broker += 1
    except (TimeoutError, OSError):
        pass
    finally:
        writer.close()


async def silent(size: Size, port: int, traffic: Traffic, ready: asyncio.Event) -> None:
    """Holds ``silent`` TCP connections that never send CONNECT; reopens those the broker closes."""
    opened = asyncio.Semaphore(0)
    holders = set()
    for n in range(size.silent):
        holders.add(asyncio.create_task(_hold_silent(port, traffic, opened)))
        if n % 50 == 49:
            await asyncio.sleep(0.01)  # the listen backlog is finite: do not SYN-flood it
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(READY_TIMEOUT_S / 2):
            for _ in range(size.silent):
                await opened.acquire()
    ready.set()
    await asyncio.gather(*holders)


async def _hold_silent(port: int, traffic: Traffic, opened: asyncio.Semaphore) -> None:
    first = True
    while True:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            traffic.failed_connects += 1
            await asyncio.sleep(0.1)
            continue
        traffic.connections += 1
        if first:
            opened.release()
            first = False
        try:
            while chunk := await reader.read(4096):
                traffic.received += len(chunk)
            traffic.closed_by_broker += 1
        except OSError:
            traffic.closed_by_broker += 1
        finally:
            writer.close()


async def slowreader(size: Size, port: int, traffic: Traffic, ready: asyncio.Event) -> None:
    """A QoS 1 subscriber reading 1 KB/s through a small receive buffer, fed big messages.

    Its own publisher sends ``big_bytes`` QoS 1 messages ``big_rate`` times a second to the only
    topic the reader subscribes to. The reader acknowledges a message once all of it came (which at
    1 KB/s takes far longer than a run); if the broker drops it, it comes back.
    """
    loop = asyncio.get_running_loop()
    subscribed = asyncio.Event()
    reading = asyncio.create_task(_slow_read(loop, port, traffic, subscribed))
    async with asyncio.timeout(READY_TIMEOUT_S):
        await subscribed.wait()
    pub = await Framed.connect(port, "noisy-big-pub", traffic)
    acks = asyncio.create_task(pub.drain_forever())
    ready.set()
    payload = bytes(size.big_bytes)
    start = time.monotonic()
    for n in range(1 << 62):
        pub.write(publish_frame(BIG_TOPIC, payload, 1, n % MAX_PACKET_ID + 1))
        await pub.writer.drain()  # the adversary's own publisher may well be held back
        delay = start + (n + 1) / size.big_rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if reading.done() or acks.done():
            break
    await asyncio.gather(reading, acks)


async def _slow_read(
    loop: asyncio.AbstractEventLoop, port: int, traffic: Traffic, subscribed: asyncio.Event
) -> None:
    for n in range(1, 1 << 62):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)  # before connect
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (HOST, port))
            traffic.connections += 1
            hello = connect_frame(f"noisy-slow-{os.getpid()}-{n}") + subscribe_frame(BIG_TOPIC, 1)
            await loop.sock_sendall(sock, hello)
            traffic.sent += len(hello)
            await _read_slowly(loop, sock, traffic, subscribed)
        except OSError:
            traffic.failed_connects += 1
            await asyncio.sleep(0.1)
        finally:
            sock.close()


async def _read_slowly(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    traffic: Traffic,
    subscribed: asyncio.Event,
) -> None:
    buf = b""
    while True:
        await asyncio.sleep(SLOW_READ_EVERY_S)
        try:
            data = sock.recv(SLOW_READ_BYTES)
        except BlockingIOError:
            continue
        if not data:
            traffic.closed_by_broker += 1
            return
        traffic.received += len(data)
        buf += data
        found, pos = split(buf, 0)
        for first, body, _ in found:
            if first >> 4 == SUBACK:
                subscribed.set()
            elif first >> 4 == PUBLISH and first & 0x06:
                ack = puback(publish_packet_id(buf, body))
                await loop.sock_sendall(sock, ack)
                traffic.sent += len(ack)
        buf = buf[pos:]


Adversary = Callable[[Size, int, Traffic, asyncio.Event], Coroutine[Any, Any, None]]

ADVERSARIES: dict[str, Adversary] = {
    "noack": noack,
    "garbage": garbage,
    "silent": silent,
    "slowreader": slowreader,
}
