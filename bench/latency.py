"""Latency at a fixed rate: a paced publisher stamps each payload, a subscriber reads the stamp.

Both processes read ``time.monotonic_ns()``, which is CLOCK_MONOTONIC on Linux: one clock for the
whole machine, so a stamp written by one process can be subtracted from a reading in another.
The publisher sends on a fixed schedule (message ``i`` at ``start + i / rate``), never in bursts,
so the figure is the broker's forwarding delay at a light, steady load and not queueing in the
generator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import frames
from clients import RECV_SIZE, Context, Role, open_client, subscribe

from mqttref.impl.codec.packets import PubAck

STAMP = 8
"""Bytes of big-endian nanoseconds at the start of each payload."""


@dataclass
class PacedPublisher(Role):
    """Publishes ``rate`` messages a second for ``duration_s``, each stamped with its send time."""

    client_id: str = "lat-pub"
    topic: str = "bench/lat"
    payload_size: int = 64
    qos: int = 0
    rate: int = 1000
    duration_s: float = 5.0
    ends_scenario: bool = False

    def setup(self) -> None:
        self.sockets = [open_client(self.port, self.client_id, level=self.level)]
        zeros = b"\0" * self.payload_size
        if self.qos:
            table = frames.publish_table(self.topic, zeros, self.qos, self.level)
            self.heads = [f[: -self.payload_size] for f in table]
        else:
            frame = frames.publish_frame(self.topic, zeros, level=self.level)
            self.heads = [frame[: -self.payload_size]]
        self.padding = zeros[STAMP:]

    def run(self, ctx: Context) -> dict[str, Any]:
        sock = self.sockets[0]
        sock.setblocking(False)
        total = int(self.rate * self.duration_s)
        interval = 1_000_000_000 // self.rate
        start = time.monotonic_ns()
        acked = 0
        for index in range(total):
            due = start + index * interval
            wait = due - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            head = self.heads[index % 0xFFFF + 1] if self.qos else self.heads[0]
            stamp = time.monotonic_ns().to_bytes(STAMP, "big")
            sock.setblocking(True)
            sock.sendall(head + stamp + self.padding)
            sock.setblocking(False)
            acked += self._drain(sock)
        ctx.wait_stop(self.deadline_s)
        return {"sent": total, "acked": acked}

    @staticmethod
    def _drain(sock: Any) -> int:
        """Read whatever acknowledgements arrived; their content does not matter here."""
        count = 0
        try:
            while data := sock.recv(RECV_SIZE):
                count += len(data) // 4
        except BlockingIOError:
            pass
        return count


@dataclass
class StampReader(Role):
    """Subscribes at ``qos``, acks QoS 1 deliveries, and collects one latency per message."""

    client_id: str = "lat-sub"
    topic_filter: str = "bench/#"
    qos: int = 0
    expected: int = 0
    idle_s: float = 5.0
    warmup: int = 50

    def setup(self) -> None:
        sock = open_client(self.port, self.client_id, level=self.level)
        subscribe(sock, self.topic_filter, self.qos, self.level)
        self.sockets = [sock]
        self.puback = frames.ack_table(PubAck, self.level)

    def run(self, ctx: Context) -> dict[str, Any]:
        sock = self.sockets[0]
        sock.settimeout(0.5)
        latencies: list[int] = []
        rest = b""
        delivered = 0
        start = last = time.monotonic()
        while delivered < self.expected and time.monotonic() - start < self.deadline_s:
            try:
                data = sock.recv(RECV_SIZE)
            except TimeoutError:
                if time.monotonic() - last > self.idle_s:
                    break
                continue
            now = time.monotonic_ns()
            if not data:
                break
            buf = rest + data if rest else data
            received, pos = frames.split(buf, 0)
            rest = buf[pos:]
            out = []
            for first, body, _ in received:
                if first >> 4 != frames.PUBLISH:
                    continue
                delivered += 1
                at = frames.publish_payload_offset(buf, first, body, self.level)
                latencies.append(now - int.from_bytes(buf[at : at + STAMP], "big"))
                if first & 0x06:
                    out.append(self.puback[frames.publish_packet_id(buf, body)])
            if out:
                sock.sendall(b"".join(out))
            last = time.monotonic()
        measured = sorted(
            latencies[self.warmup :] if len(latencies) > 2 * self.warmup else latencies
        )
        return {
            "delivered": delivered,
            "expected": self.expected,
            "t_last": last,
            "p50_ms": _percentile(measured, 0.50),
            "p99_ms": _percentile(measured, 0.99),
            "max_ms": measured[-1] / 1e6 if measured else None,
        }


def _percentile(ordered: list[int], fraction: float) -> float | None:
    """Nearest-rank percentile of nanosecond samples, in milliseconds."""
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))
    return ordered[rank] / 1e6
