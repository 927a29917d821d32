"""decode(encode(p)) == p for every packet type at every protocol level.

And the converse for the bytes we produce: re-encoding a decoded packet gives
the same bytes, so the encoding of a value is unique.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.codec.codec import Decoder, Role, decode_all, encode
from mqttref.impl.codec.packets import Packet, PacketType, ProtocolLevel
from tests import strategies as s

CASES = [(level, ptype) for level in s.LEVELS for ptype in s.packet_types(level)]


def decode_one(data: bytes, level: ProtocolLevel) -> Packet:
    """CONNECT names its own level; every other packet needs it from the caller."""
    packets = decode_all(data, protocol_level=level)
    assert len(packets) == 1
    return packets[0]


@pytest.mark.parametrize(("level", "ptype"), CASES, ids=[f"{lv.name}-{t.name}" for lv, t in CASES])
@given(data=st.data())
def test_every_packet_survives_encode_then_decode(
    level: ProtocolLevel, ptype: PacketType, data: st.DataObject
) -> None:
    packet = data.draw(s.packets_of_type(ptype, level))
    wire = encode(packet, level)
    assert decode_one(wire, level) == packet
    assert encode(decode_one(wire, level), level) == wire


@given(packet=s.connects())
def test_a_server_decoder_learns_the_protocol_level_from_connect(packet: Packet) -> None:
    decoder = Decoder()
    assert decoder.feed(encode(packet)) == [packet]
    assert decoder.protocol_level is packet.protocol_level  # type: ignore[union-attr]


@pytest.mark.parametrize("level", s.LEVELS, ids=[lv.name for lv in s.LEVELS])
@given(data=st.data())
def test_a_connection_worth_of_packets_decodes_in_order(
    level: ProtocolLevel, data: st.DataObject
) -> None:
    connect = data.draw(s.connects(level))
    rest = data.draw(st.lists(s.client_packets(level), max_size=8))
    stream = encode(connect, level) + b"".join(encode(p, level) for p in rest)
    assert Decoder(role=Role.SERVER).feed(stream) == [connect, *rest]


@pytest.mark.parametrize("level", s.LEVELS, ids=[lv.name for lv in s.LEVELS])
@given(data=st.data())
def test_a_client_decoder_accepts_everything_a_server_may_send(
    level: ProtocolLevel, data: st.DataObject
) -> None:
    sent = data.draw(st.lists(s.server_packets(level), max_size=8))
    stream = b"".join(encode(p, level) for p in sent)
    assert Decoder(role=Role.CLIENT, protocol_level=level).feed(stream) == sent



@given(packet=s.publishes(s.V5))
def test_a_plain_int_protocol_level_means_the_same_as_the_enum(packet: Packet) -> None:
    """``encode(p, 5)`` and ``Decoder(protocol_level=5)`` must not quietly act as 3.1.1."""
    wire = encode(packet, 5)  # type: ignore[arg-type]
    assert wire == encode(packet, ProtocolLevel.MQTT_5)
    assert Decoder(protocol_level=5).feed(wire) == [packet]  # type: ignore[arg-type]
