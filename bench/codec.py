"""Codec throughput: encode and decode, packets/s and MB/s, on one core.

    .venv/bin/python bench/codec.py            # about 20 s
    .venv/bin/python bench/codec.py --quick    # about 3 s, rougher figures

Decoding feeds a ready-made stream to one ``Decoder`` in 64 KiB chunks, as a
socket read would deliver it; encoding calls ``encode`` once per packet. Each
figure is the best of several rounds, so that a noisy neighbour slows no
figure down. The `floor:` line compares with issue 2's floor: decoding a
stream of 64-byte QoS 0 PUBLISH packets at 300,000 packets/s or more. The
script prints figures and exits 0 either way: speed is measured here, never
asserted by a timed test.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from mqttref.impl.codec.codec import Decoder, encode
from mqttref.impl.codec.packets import (
    Connect,
    Packet,
    Properties,
    ProtocolLevel,
    Publish,
    QoS,
    Subscribe,
    Subscription,
    Will,
)

CHUNK = 64 * 1024
FLOOR_PACKETS_PER_S = 300_000
V311 = ProtocolLevel.MQTT_3_1_1
V5 = ProtocolLevel.MQTT_5


def publish_of_size(total: int) -> Publish:
    """A QoS 0 PUBLISH whose encoding is exactly ``total`` bytes (below 129 bytes)."""
    topic = "sensors/room-1/temp"
    payload = bytes(total - 2 - (2 + len(topic)))
    packet = Publish(topic, payload)
    assert len(encode(packet)) == total
    return packet


def sample_packets() -> list[tuple[str, Packet, ProtocolLevel]]:
    topic = "sensors/room-1/temperature"
    return [
        ("PUBLISH qos0 64 B packet", publish_of_size(64), V311),
        ("PUBLISH qos0 16 B payload", Publish(topic, bytes(16)), V311),
        ("PUBLISH qos0 1 KiB payload", Publish(topic, bytes(1024)), V311),
        ("PUBLISH qos0 64 KiB payload", Publish(topic, bytes(64 * 1024)), V311),
        ("PUBLISH qos1 1 KiB 5.0 props", Publish(
            topic, bytes(1024), QoS.AT_LEAST_ONCE, packet_id=42,
            properties=Properties(message_expiry_interval=60, content_type="application/json",
                                  user_properties=(("trace", "abc123"),))), V5),
        ("CONNECT 3.1.1 with will", Connect(
            V311, "client-0001", keep_alive=30, will=Will("clients/0001/status", b"offline",
                                                         QoS.AT_LEAST_ONCE, True),
            username="user", password=b"secret"), V311),
        ("CONNECT 5.0", Connect(
            V5, "client-0001", keep_alive=30, username="user", password=b"secret",
            properties=Properties(session_expiry_interval=3600, receive_maximum=100)), V5),
        ("SUBSCRIBE 3 filters", Subscribe(7, (
            Subscription("sensors/+/temperature", QoS.AT_LEAST_ONCE),
            Subscription("alerts/#", QoS.EXACTLY_ONCE),
            Subscription("clients/0001/cmd", QoS.AT_MOST_ONCE))), V311),
    ]


def best_rate(run: Callable[[], int], seconds: float, rounds: int) -> float:
    """The best items/s over ``rounds`` runs of ``run`` (which returns items done)."""
    best = 0.0
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < seconds / rounds:
            done += run()
            elapsed = time.perf_counter() - start
        best = max(best, done / elapsed)
    return best


def decode_rate(packet: Packet, level: ProtocolLevel, seconds: float, rounds: int) -> float:
    wire = encode(packet, level)
    count = max(1, (4 * 1024 * 1024) // len(wire))  # about 4 MiB of stream
    stream = wire * count
    chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]
    connect_level = None if isinstance(packet, Connect) else level

    def run() -> int:
        decoder = Decoder(protocol_level=connect_level)
        got = 0
        for chunk in chunks:
            got += len(decoder.feed(chunk))
        assert got == count
        return count

    return best_rate(run, seconds, rounds)


def encode_rate(packet: Packet, level: ProtocolLevel, seconds: float, rounds: int) -> float:
    batch = 1000

    def run() -> int:
        for _ in range(batch):
            encode(packet, level)
        return batch

    return best_rate(run, seconds, rounds)


def large_packet_seconds(size: int) -> float:
    """Time to receive one PUBLISH of ``size`` payload bytes in 64 KiB socket reads."""
    wire = encode(Publish("big", bytes(size)))
    decoder = Decoder()
    start = time.perf_counter()
    packets = []
    for i in range(0, len(wire), CHUNK):
        packets.extend(decoder.feed(wire[i : i + CHUNK]))
    elapsed = time.perf_counter() - start
    assert len(packets) == 1
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter, rougher runs")
    args = parser.parse_args(argv)
    seconds, rounds = (0.3, 3) if args.quick else (1.5, 5)

    print(f"mqttref codec benchmark (Python {sys.version.split()[0]}, one core)")
    print(f"decode: one Decoder fed {CHUNK // 1024} KiB chunks; encode: encode() per packet\n")
    header = f"{'packet':<30} {'bytes':>7} {'decode pkt/s':>13} {'MB/s':>8} " \
             f"{'encode pkt/s':>13} {'MB/s':>8}"
    print(header)
    print("-" * len(header))
    floor_rate = 0.0
    for name, packet, level in sample_packets():
        size = len(encode(packet, level))
        dec = decode_rate(packet, level, seconds, rounds)
        enc = encode_rate(packet, level, seconds, rounds)
        if name.startswith("PUBLISH qos0 64 B"):
            floor_rate = dec
        print(f"{name:<30} {size:>7} {dec:>13,.0f} {dec * size / 1e6:>8.1f} "
              f"{enc:>13,.0f} {enc * size / 1e6:>8.1f}")

    verdict = "meets" if floor_rate >= FLOOR_PACKETS_PER_S else "BELOW"
    print(f"\nfloor: decoding 64-byte QoS 0 PUBLISH at {floor_rate:,.0f} packets/s "
          f"{verdict} the floor of {FLOOR_PACKETS_PER_S:,} packets/s")
    for size in (1 << 20, 16 << 20):
        took = large_packet_seconds(size)
        print(f"one {size >> 20} MiB PUBLISH in {CHUNK // 1024} KiB reads: {took * 1000:,.1f} ms "
              f"({size / took / 1e6:,.0f} MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
