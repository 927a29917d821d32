"""The decoder's output never depends on how the bytes were cut into chunks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.codec.codec import Decoder, encode
from mqttref.impl.codec.packets import Packet, ProtocolLevel, Publish
from tests import strategies as s


def feed_in_chunks(decoder: Decoder, stream: bytes, cuts: list[int]) -> list[Packet]:
    out: list[Packet] = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        out.extend(decoder.feed(stream[start:cut]))
        start = cut
    return out


@st.composite
def streams(draw: st.DrawFn) -> tuple[ProtocolLevel, list[Packet], bytes]:
    level = draw(s.protocol_levels())
    packets = [draw(s.connects(level)), *draw(st.lists(s.packets(level, connect=False),
                                                       max_size=10))]
    return level, packets, b"".join(encode(p, level) for p in packets)


@given(case=streams(), data=st.data())
def test_any_split_of_a_stream_gives_the_same_packets(
    case: tuple[ProtocolLevel, list[Packet], bytes], data: st.DataObject
) -> None:
    _, packets, stream = case
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    decoder = Decoder()
    assert feed_in_chunks(decoder, stream, cuts) == packets
    assert decoder.buffered == 0


@given(case=streams())
def test_one_byte_at_a_time_gives_the_same_packets(
    case: tuple[ProtocolLevel, list[Packet], bytes],
) -> None:
    _, packets, stream = case
    decoder = Decoder()
    out: list[Packet] = []
    for index in range(len(stream)):
        out.extend(decoder.feed(stream[index : index + 1]))
    assert out == packets


@given(case=streams())
def test_the_whole_stream_in_one_chunk_gives_every_packet(
    case: tuple[ProtocolLevel, list[Packet], bytes],
) -> None:
    _, packets, stream = case
    assert Decoder().feed(stream) == packets


@given(case=streams(), data=st.data())
def test_a_packet_is_returned_exactly_when_its_last_byte_arrives(
    case: tuple[ProtocolLevel, list[Packet], bytes], data: st.DataObject
) -> None:
    level, packets, _ = case
    decoder = Decoder()
    for packet in packets:
        wire = encode(packet, level)
        cut = data.draw(st.integers(0, len(wire) - 1))
        assert decoder.feed(wire[:cut]) == []
        assert decoder.buffered == cut
        assert decoder.feed(wire[cut:]) == [packet]


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_feed_accepts_bytearray_and_memoryview(kind: type) -> None:
    wire = encode(Publish("a/b", b"payload"))
    assert Decoder().feed(kind(wire)) == [Publish("a/b", b"payload")]
