"""Whatever bytes arrive, the decoder answers with packets or one of its own errors.

Never another exception (IndexError, UnicodeDecodeError, ValueError from an
enum, RecursionError), never a hang, never a buffer larger than what was fed.
A hang would show as pytest-timeout failing the test; Hypothesis' own
deadline is off in every profile, so the bound is the size of the input.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ProtocolError
from mqttref.impl.codec.packets import ProtocolLevel
from tests import strategies as s

ROLES = [None, Role.SERVER, Role.CLIENT]
LEVELS = [None, *s.LEVELS]


def feed_all(decoder: Decoder, chunks: list[bytes]) -> tuple[list[object], ProtocolError | None]:
    """Feed until the first error, as a connection would, and report what came out."""
    out: list[object] = []  # ProtocolError.packets is a list[object]
    fed = 0
    for chunk in chunks:
        fed += len(chunk)
        try:
            out.extend(decoder.feed(chunk))
        except ProtocolError as exc:  # anything else fails the test
            error = exc
            break
        assert decoder.buffered <= fed
    else:
        return out, None
    assert error.reason_code >= 0x80
    assert error.ref
    return [*out, *error.packets], error


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(data=st.binary(max_size=512), role=st.sampled_from(ROLES),
       level=st.sampled_from(LEVELS), split=st.data())
def test_arbitrary_bytes_give_packets_or_a_protocol_error(
    data: bytes, role: Role | None, level: ProtocolLevel | None, split: st.DataObject
) -> None:
    feed_all(Decoder(role=role, protocol_level=level), split.draw(chunked(data)))


@given(level=s.protocol_levels(), packets=st.data(), noise=st.binary(min_size=1, max_size=64),
       split=st.data())
def test_bytes_after_a_valid_connect_give_packets_or_a_protocol_error(
    level: ProtocolLevel, packets: st.DataObject, noise: bytes, split: st.DataObject
) -> None:
    """A CONNECT first sets the level, so the noise reaches the 5.0 property readers too."""
    connect = packets.draw(s.connects(level))
    stream = encode(connect) + noise
    out, _ = feed_all(Decoder(role=Role.SERVER), split.draw(chunked(stream)))
    assert out[:1] == [connect]


@st.composite
def mutated_streams(draw: st.DrawFn, max_packets: int = 4) -> tuple[ProtocolLevel, bytes]:
    """Valid packets with a few bytes overwritten, dropped or inserted: near misses."""
    level = draw(s.protocol_levels())
    wire = bytearray(b"".join(encode(p, level) for p in draw(
        st.lists(s.packets(level, connect=False), min_size=1, max_size=max_packets))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(wire) - 1))
        action = draw(st.sampled_from(["set", "drop", "insert"]))
        if action == "set":
            wire[at] = draw(st.integers(0, 255))
        elif action == "drop" and len(wire) > 1:
            del wire[at]
        else:
            wire.insert(at, draw(st.integers(0, 255)))
    return level, bytes(wire)


@given(case=mutated_streams(), split=st.data())
def test_near_miss_packets_give_packets_or_a_protocol_error(
    case: tuple[ProtocolLevel, bytes], split: st.DataObject
) -> None:
    level, stream = case
    feed_all(Decoder(protocol_level=level), split.draw(chunked(stream)))


@pytest.mark.parametrize("level", s.LEVELS, ids=[lv.name for lv in s.LEVELS])
def test_every_first_byte_gives_a_packet_or_a_protocol_error(level: ProtocolLevel) -> None:
    """Exhaustive over the fixed header's first byte, with bodies of 0 to 3 zero bytes."""
    for first in range(256):
        for size in range(4):
            for role in ROLES:
                feed_all(Decoder(role=role, protocol_level=level),
                         [bytes([first, size]) + bytes(size)])
