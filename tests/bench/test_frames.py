"""The load generator's fixed-header scanner counts exactly what the codec encoded, however split.

The benchmark's loss figures are only as good as this scanner: it must find every PUBLISH frame
in a byte stream cut at arbitrary places, including frames whose remaining length needs more
than one byte, and leave an incomplete tail for the next read.
"""

from __future__ import annotations

import itertools

import frames
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import PubAck, Publish, PubRel, QoS

packets = st.one_of(
    st.builds(
        Publish,
        topic=st.sampled_from(["bench/0", "bench/fan", "a" * 200]),
        payload=st.binary(max_size=300),
    ),
    st.builds(
        Publish,
        topic=st.just("bench/q"),
        payload=st.binary(max_size=20_000),
        qos=st.just(QoS.AT_LEAST_ONCE),
        packet_id=st.integers(1, 0xFFFF),
    ),
    st.builds(PubAck, packet_id=st.integers(1, 0xFFFF)),
    st.builds(PubRel, packet_id=st.integers(1, 0xFFFF)),
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(st.lists(packets, max_size=30), st.lists(st.integers(0, 100_000), max_size=20))
def test_count_publishes_counts_every_publish_across_any_chunking(
    stream: list[object], cuts: list[int]
) -> None:
    data = b"".join(encode(p) for p in stream)  # type: ignore[arg-type]
    counted, rest = 0, b""
    for chunk in _chunks(data, cuts):
        buf = rest + chunk
        found, pos = frames.count_publishes(buf, 0)
        counted += found
        rest = buf[pos:]
    assert counted == sum(isinstance(p, Publish) for p in stream)
    assert rest == b""


@given(st.lists(packets, max_size=30), st.lists(st.integers(0, 100_000), max_size=20))
def test_split_yields_each_frame_with_its_type_and_bounds(
    stream: list[object], cuts: list[int]
) -> None:
    encoded = [encode(p) for p in stream]  # type: ignore[arg-type]
    seen: list[tuple[int, bytes]] = []
    rest = b""
    for chunk in _chunks(b"".join(encoded), cuts):
        buf = rest + chunk
        found, pos = frames.split(buf, 0)
        seen += [(first, buf[body:end]) for first, body, end in found]
        rest = buf[pos:]
    assert seen == [(packet[0], packet[_header_length(packet) :]) for packet in encoded]


def _header_length(packet: bytes) -> int:
    """Type byte plus the remaining-length bytes, each but the last with bit 7 set."""
    at = 1
    while packet[at] & 0x80:
        at += 1
    return at + 1


def test_packet_id_tables_match_the_codec() -> None:
    table = frames.publish_table("bench/q", b"x" * 64, 2)
    assert table[0x1234] == encode(
        Publish("bench/q", b"x" * 64, qos=QoS.EXACTLY_ONCE, packet_id=0x1234)
    )
    assert frames.ack_table(PubAck)[513] == encode(PubAck(513))


def test_publish_packet_id_and_payload_offset_read_the_variable_header() -> None:
    data = encode(Publish("bench/q", b"\x00" * 8 + b"tail", qos=QoS.AT_LEAST_ONCE, packet_id=777))
    [(first, body, end)] = frames.split(data, 0)[0]
    assert frames.publish_packet_id(data, body) == 777
    assert data[frames.publish_payload_offset(data, first, body) : end] == b"\x00" * 8 + b"tail"
