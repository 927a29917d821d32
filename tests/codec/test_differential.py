"""Differential test against an independent codec: the npm package ``mqtt-packet``.

Both directions, on generated packets of every type at 3.1, 3.1.1 and 5.0:

- ours encodes, mqtt-packet parses, and its fields map back to the same packet;
- mqtt-packet generates from our packet's fields, and our decoder gives back the same packet
  (and, where both write the same optional bytes, the same bytes).

Where the two disagree the specification decides; the cases where mqtt-packet is wrong (or
stricter than the specification) are documented one by one in
docs/spec/codec-differential.md and skipped here by the predicates named after them.
Skipped only when ``node`` is missing; without ``mqtt-packet`` installed the tests fail.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mqttref.impl.codec.codec import decode_all, encode
from mqttref.impl.codec.errors import ProtocolError
from mqttref.impl.codec.packets import (
    Auth,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
)
from tests import strategies as s
from tests.helpers.peers import requires_peer

from .node_peer import NODE_DIR, NodePeer, from_theirs, normalised, to_theirs
from .test_arbitrary_bytes import mutated_streams

pytestmark = [
    pytest.mark.external,
    requires_peer("node", shutil.which("node") is not None, "Node.js runs mqtt-packet"),
]

CASES = [(level, ptype) for level in s.LEVELS for ptype in s.packet_types(level)]
IDS = [f"{level.name}-{ptype.name}" for level, ptype in CASES]


@pytest.fixture(scope="session")
def peer() -> Iterator[NodePeer]:
    if not (NODE_DIR / "node_modules" / "mqtt-packet").is_dir():
        pytest.fail("mqtt-packet is not installed: run `npm ci` in tests/node (scripts/test does)")
    node_peer = NodePeer()
    yield node_peer
    node_peer.close()


# ---------------------------------------------------------------- documented disagreements
# Each predicate is one section of docs/spec/codec-differential.md.


def d1_empty_auth(packet: Packet) -> bool:
    """D1: mqtt-packet cannot parse an AUTH of Remaining Length 0 (allowed by 3.15.2.1)."""
    return isinstance(packet, Auth) and packet.reason_code == 0 and packet.properties.is_empty()


def d2_refused_connect_fields(packet: Packet) -> bool:
    """D2: mqtt-packet's generator refuses CONNECTs the specification lets a server judge:
    a password without a user name at 5.0, an empty client id at 3.1 or without clean
    session."""
    if not isinstance(packet, Connect):
        return False
    return (
        (packet.password is not None and packet.username is None)
        or (packet.client_id == "" and packet.protocol_level is ProtocolLevel.MQTT_3_1)
        or (packet.client_id == "" and not packet.clean_session)
    )


def _all_properties(packet: Packet) -> list[Properties]:
    found = [packet.properties] if hasattr(packet, "properties") else []
    if isinstance(packet, Connect) and packet.will is not None:
        found.append(packet.will.properties)
    return found


def d3_repeated_user_property_after_empty_value(packet: Packet) -> bool:
    """D3: mqtt-packet's parser overwrites a user property whose earlier value is ""."""
    for props in _all_properties(packet):
        first: dict[str, str] = {}
        for name, value in props.user_properties:
            if name in first and first[name] == "":
                return True
            first.setdefault(name, value)
    return False


def e1_optional_trailing_fields(packet: Packet, level: ProtocolLevel) -> bool:
    """E1 (an equivalent encoding, not a disagreement): where 5.0 lets the sender omit the
    Property Length, or a success Reason Code with it, we omit them and mqtt-packet writes
    them (3.4.2.1, 3.14.2.1, 3.15.2.1)."""
    kinds = (PubAck, PubRec, PubRel, PubComp, Disconnect, Auth)
    return level is s.V5 and isinstance(packet, kinds) and packet.properties.is_empty()


def packet_has_user_properties(packet: Packet) -> bool:
    return any(props.user_properties for props in _all_properties(packet))


# ---------------------------------------------------------------- ours -> theirs


@pytest.mark.parametrize(("level", "ptype"), CASES, ids=IDS)
@given(data=st.data())
def test_mqtt_packet_parses_what_we_encode_into_the_same_fields(
    peer: NodePeer, level: ProtocolLevel, ptype: PacketType, data: st.DataObject
) -> None:
    packet = data.draw(s.packets_of_type(ptype, level))
    assume(not d1_empty_auth(packet))
    assume(not d3_repeated_user_property_after_empty_value(packet))
    wire = encode(packet, level)
    answer = peer.parse(wire, level)
    assert answer["error"] is None, (answer["error"], wire.hex())
    assert answer["left"] == 0
    assert len(answer["packets"]) == 1
    theirs = from_theirs(answer["packets"][0], level)
    assert normalised(theirs) == normalised(packet)


# ---------------------------------------------------------------- theirs -> ours


@pytest.mark.parametrize(("level", "ptype"), CASES, ids=IDS)
@given(data=st.data())
def test_we_decode_what_mqtt_packet_generates_from_the_same_fields(
    peer: NodePeer, level: ProtocolLevel, ptype: PacketType, data: st.DataObject
) -> None:
    packet = data.draw(s.packets_of_type(ptype, level))
    assume(not d2_refused_connect_fields(packet))
    answer = peer.generate(to_theirs(packet, level), level)
    assert "error" not in answer, answer
    wire = bytes.fromhex(answer["hex"])
    ours = decode_all(wire, protocol_level=level)
    assert [normalised(p) for p in ours] == [normalised(packet)], wire.hex()
    ours_wire = encode(packet, level)
    if e1_optional_trailing_fields(packet, level):
        assert len(ours_wire) <= len(wire)  # the same value, maybe shorter: see E1
    elif not packet_has_user_properties(packet):  # their order of pairs is not ours
        assert ours_wire == wire


# ---------------------------------------------------------------- the disagreements exist


def test_d1_mqtt_packet_still_refuses_an_auth_without_reason_code(peer: NodePeer) -> None:
    """If this fails, mqtt-packet was fixed: drop D1 from the doc and the skip above."""
    assert decode_all(b"\xf0\x00", protocol_level=s.V5) == [Auth()]
    assert peer.parse(b"\xf0\x00", s.V5)["error"] is not None


def test_d2_mqtt_packet_still_refuses_a_5_0_password_without_user_name(peer: NodePeer) -> None:
    packet = Connect(s.V5, "c", password=b"pw")
    assert decode_all(encode(packet)) == [packet]
    assert "error" in peer.generate(to_theirs(packet, s.V5), s.V5)


def test_d3_mqtt_packet_still_drops_a_user_property_after_an_empty_value(peer: NodePeer) -> None:
    packet = Publish("t", b"x", properties=Properties(user_properties=(("a", ""), ("a", "x"))))
    assert decode_all(encode(packet, s.V5), protocol_level=s.V5) == [packet]
    theirs = peer.parse(encode(packet, s.V5), s.V5)["packets"][0]
    assert theirs["properties"]["userProperties"] == {"a": "x"}


def test_d4_mqtt_packet_still_reads_a_short_disconnect_past_its_end(peer: NodePeer) -> None:
    stream = b"\xe0\x01\x04" + b"\xc0\x00"  # DISCONNECT 0x04 without properties, PINGREQ
    assert decode_all(stream, protocol_level=s.V5) == [Disconnect(0x04), PingReq()]
    assert peer.parse(stream, s.V5)["error"] is not None
    assert peer.parse(stream[:3], s.V5)["error"] is None


# ---------------------------------------------------------------- near misses


@given(case=mutated_streams(max_packets=1))
def test_what_mqtt_packet_refuses_we_refuse_too(
    peer: NodePeer, case: tuple[ProtocolLevel, bytes]
) -> None:
    """On near-miss bytes of one packet, mqttref is at least as strict as mqtt-packet.

    One packet at a time: mqtt-packet reads a 5.0 DISCONNECT's, AUTH's and CONNACK's
    optional fields up to the end of its buffer, not of the packet (D4), so a short one
    followed by another packet fails there for a reason that is not in the bytes.
    """
    level, stream = case
    if level is s.V5 and b"\xf0\x00" in stream:
        return  # D1, as bytes
    if peer.parse(stream, level)["error"] is None:
        return  # they accept: mqttref may still refuse (it validates more)
    with pytest.raises(ProtocolError):
        decode_all(stream, protocol_level=level)
