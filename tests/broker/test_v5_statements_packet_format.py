"""MQTT 5.0 statements of chapters 1 and 2 that bind the server, each shown by the broker
meeting it on a raw socket: the UTF-8 strings it accepts (1.5.4, 1.5.7), the Variable
Byte Integers it writes (1.5.5), the fixed header flags (2.1.3), Packet Identifiers
(2.2.1) and the Property Length (2.2.2). The bytes the broker writes are read as written,
before the strict client-side codec decodes them.

Where a statement says what must not happen, a control that must happen comes after it
on the same path (a marker message, a PINGRESP), so its absence is observed, not assumed.
Statements that other files already show cite their id there; the ones no test can show
against this broker are in ``v5_left_out_a.json`` with the reason.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peer5 import (
    CLOSED,
    Q0,
    Q1,
    Q2,
    V5,
    Peer,
    R,
    body_of,
    closes_after,
    fewest_bytes,
    frame,
    mark,
    publish,
    read_varint,
    session,
    string,
    varint,
    watching,
)


@pytest.fixture
def watcher(broker: BrokerThread) -> Iterator[Peer]:
    """A subscriber to everything under ``w/`` (``watching``), closed after the test."""
    with watching(broker) as peer:
        yield peer


# --- 1.5 data representation -------------------------------------------------------------


def user_property_block(name: bytes, value: bytes) -> bytes:
    block = b"\x26" + string(name) + string(value)
    return varint(len(block)) + block


ILL_FORMED = {
    # A surrogate (U+D800) encoded as UTF-8: ill-formed, whatever else is around it.
    "surrogate in the topic": frame(0x30, string(b"w/\xed\xa0\x80") + b"\x00x"),
    # An overlong form of '/' (0xC0 0xAF): ill-formed UTF-8 (RFC 3629 section 3).
    "overlong form in the topic": frame(0x30, string(b"w/\xc0\xaf") + b"\x00x"),
    "surrogate in a user property name": frame(
        0x30, string("w/t") + user_property_block(b"k\xed\xb0\x80", b"v") + b"x"),
    "truncated sequence in a user property value": frame(
        0x30, string("w/t") + user_property_block(b"k", b"v\xe2\x82") + b"x"),
}


@pytest.mark.parametrize("case", ILL_FORMED)
def test_ill_formed_utf8_in_a_string_is_a_malformed_packet(
    broker: BrokerThread, watcher: Peer, case: str,
) -> None:
    """The character data of a UTF-8 Encoded String must be well-formed: no surrogates,
    no overlong forms [MQTT-1.5.4-1], in the two strings of a UTF-8 String Pair too
    [MQTT-1.5.7-1]; a packet that has any is malformed: DISCONNECT 0x81 and the close
    [MQTT-4.13.1-1], and it goes to nobody."""
    with session(broker, "offender") as offender:
        offender.send_bytes(ILL_FORMED[case])
        assert closes_after(offender, Disconnect).reason_code == R.MALFORMED_PACKET
    assert watcher.until(mark(broker)) == []


NUL = {
    "topic name": frame(0x30, string(b"w/a\x00") + b"\x00x"),
    "user property value": frame(0x30, string("w/t") + user_property_block(b"k", b"\x00")
                                 + b"x"),
    "topic filter": frame(0x82, b"\x00\x01\x00" + string(b"w/\x00") + b"\x01"),
    "content type": frame(0x30, string("w/t") + varint(4) + b"\x03" + string(b"\x00")
                          + b"x"),
}


@pytest.mark.parametrize("case", NUL)
def test_u0000_in_a_string_is_a_malformed_packet(
    broker: BrokerThread, watcher: Peer, case: str,
) -> None:
    """A UTF-8 Encoded String must not hold U+0000 [MQTT-1.5.4-2] (nor may a topic name
    or filter [MQTT-4.7.3-2]): the broker takes such a packet as malformed, DISCONNECT
    0x81 and the close, and forwards nothing of it."""
    with session(broker, "offender") as offender:
        offender.send_bytes(NUL[case])
        assert closes_after(offender, Disconnect).reason_code == R.MALFORMED_PACKET
    assert watcher.until(mark(broker)) == []


def test_a_u0000_client_identifier_is_not_accepted(broker: BrokerThread) -> None:
    """U+0000 in CONNECT's Client Identifier [MQTT-1.5.4-2]: refused (CONNACK 0x81 or
    0x85, or a close with none), never a session."""
    with Peer(broker.port) as peer:
        peer.send_bytes(frame(0x10, string("MQTT") + b"\x05\x02\x00\x3c\x00"
                              + string(b"a\x00b")))
        answer = peer.rest()
        assert answer == [CLOSED] or (isinstance(answer[0], ConnAck) and answer[0].return_code
                                      in (R.MALFORMED_PACKET, R.CLIENT_IDENTIFIER_NOT_VALID)
                                      and answer[1:] == [CLOSED]), answer
    assert not broker.call(lambda b: any("\x00" in name for name in b.sessions))


def test_a_byte_order_mark_is_neither_skipped_nor_stripped(broker: BrokerThread) -> None:
    """0xEF 0xBB 0xBF is U+FEFF wherever it stands, and no receiver skips or strips it
    [MQTT-1.5.4-3]: a topic beginning with it is another topic than the one without, and
    it reaches its subscriber byte for byte, in a user property too."""
    bom = "\ufeff"
    with session(broker, "with") as with_bom, session(broker, "without") as without:
        with_bom.subscribe(Subscription(f"{bom}w/t", Q0), Subscription("w/marker", Q1))
        without.subscribe(Subscription("w/t", Q0), Subscription("w/marker", Q1))
        with session(broker, "pub") as pub:
            publish(pub, f"{bom}w/t", b"m", properties=Properties(
                user_properties=((f"{bom}k", f"v{bom}"),)))
        marker = mark(broker)
        [got] = with_bom.until(marker)
        assert without.until(marker) == []
        assert got.topic == f"{bom}w/t"
        assert got.properties.user_properties == ((f"{bom}k", f"v{bom}"),)
        raw = with_bom.frames[-2]
        assert body_of(raw).startswith(b"\x00\x06\xef\xbb\xbfw/t")


# --- 1.5.5 Variable Byte Integers; 2.1 and 2.2 the fixed header, identifiers, properties -----


def publish_fields(raw: bytes) -> tuple[int, int, int, bytes, bytes]:
    """A PUBLISH as written: (remaining length, its bytes, property length, its bytes, the
    property block); QoS 0 only (no packet identifier)."""
    length, start = read_varint(raw, 1)
    topic_length = struct.unpack_from("!H", raw, start)[0]
    at = start + 2 + topic_length
    prop_length, props_start = read_varint(raw, at)
    return (length, start - 1, prop_length, bytes(raw[at:props_start]),
            raw[props_start:props_start + prop_length])


def test_the_brokers_variable_byte_integers_take_the_fewest_bytes(
    broker: BrokerThread,
) -> None:
    """Every Variable Byte Integer the broker writes uses the minimum number of bytes
    [MQTT-1.5.5-1]: the Remaining Length either side of 127/128 and 16383/16384, the
    Property Length, and Subscription Identifiers 127 (one byte) and 16384 (three)."""
    with session(broker, "small") as small, session(broker, "large") as large:
        for peer, identifier in ((small, 127), (large, 16_384)):
            peer.subscribe(Subscription("w/v", Q0), Subscription("w/marker", Q1),
                           properties=Properties(subscription_identifiers=(identifier,)))
        with session(broker, "pub") as pub:
            for size in (*range(118, 133), *range(16_374, 16_389)):
                publish(pub, "w/v", b"x" * size)
                for peer in (small, large):  # read each: QoS 0 may be dropped if unread
                    assert len(peer.expect(Publish).payload) == size
        lengths: set[int] = set()
        for peer in (small, large):
            for raw in peer.frames:
                if raw[0] >> 4 != 3 or raw[0] & 0x06:
                    continue  # QoS 0 PUBLISH only (no packet identifier to skip)
                length, length_bytes, prop_length, prop_bytes, block = publish_fields(raw)
                lengths.add(length)
                assert length_bytes == fewest_bytes(length), (length, raw[:6].hex())
                assert len(prop_bytes) == fewest_bytes(prop_length)
                assert block[0] == 0x0B  # the Subscription Identifier
                identifier, end = read_varint(block, 1)
                assert end - 1 == fewest_bytes(identifier)
        assert {127, 128, 16_383, 16_384} <= lengths  # both sides of each boundary seen


def flows_of_every_kind(broker: BrokerThread) -> list[bytes]:
    """One connection that makes the broker write every packet type it sends a 5.0 client
    after CONNECT: SUBACK, UNSUBACK, PINGRESP, PUBACK, PUBREC, PUBCOMP, PUBLISH at each QoS,
    PUBREL, and at the end DISCONNECT (for a second CONNECT). Its frames, as written."""
    peer = session(broker, "every")
    peer.subscribe(Subscription("w/0", Q0), Subscription("w/1", Q1), Subscription("w/2", Q2))
    peer.send(Unsubscribe(2, ("w/none",)))
    peer.expect(UnsubAck)
    peer.send(PingReq())
    peer.expect(PingResp)
    peer.send(Publish("w/0", b"0"), Publish("w/1", b"1", Q1, packet_id=11),
              Publish("w/2", b"2", Q2, packet_id=12), PubRel(12))
    kinds: set[type[Packet]] = set()
    while not {PubAck, PubRec, PubComp, PubRel} <= kinds or len(
            [k for k in peer.frames if k[0] >> 4 == 3]) < 3:
        packet = peer.next()
        assert not isinstance(packet, str), "closed"
        kinds.add(type(packet))
        if isinstance(packet, Publish):
            peer.acknowledge(packet)
        elif isinstance(packet, PubRel):
            peer.send(PubComp(packet.packet_id))
    peer.send(Connect(V5, "every"))
    assert peer.rest()[-1] == CLOSED
    peer.sock.close()
    return peer.frames


FIRST_BYTES = {
    # Table 2-2 (2.1.3): the flags of each packet the server sends; PUBLISH's are
    # DUP, QoS and RETAIN, so only its QoS is fixed by what was subscribed here.
    "CONNACK": 0x20, "PUBACK": 0x40, "PUBREC": 0x50, "PUBREL": 0x62, "PUBCOMP": 0x70,
    "SUBACK": 0x90, "UNSUBACK": 0xB0, "PINGRESP": 0xD0, "DISCONNECT": 0xE0,
}


def test_the_brokers_packets_carry_the_reserved_flags_table_2_2_lists(
    broker: BrokerThread,
) -> None:
    """Where a flag bit is reserved, the broker sets the value listed [MQTT-2.1.3-1]: the
    fixed header of every packet type it sends, PUBREL's 0010 included."""
    seen: dict[int, set[int]] = {}
    for raw in flows_of_every_kind(broker):
        seen.setdefault(raw[0] >> 4, set()).add(raw[0] & 0x0F)
    publish_flags = seen.pop(3)
    assert seen == {value >> 4: {value & 0x0F} for value in FIRST_BYTES.values()}
    assert sorted(publish_flags) == [0x0, 0x2, 0x4]  # QoS 0, 1, 2; DUP 0, RETAIN 0


def test_a_reserved_flag_set_by_the_client_is_a_malformed_packet(
    broker: BrokerThread,
) -> None:
    """The client too must set reserved flags as listed [MQTT-2.1.3-1]; a PINGREQ with
    flags 0001 or a SUBSCRIBE with 0000 is malformed: DISCONNECT 0x81 and the close."""
    for bad in (b"\xc1\x00", frame(0x80, b"\x00\x01\x00" + string("w/x") + b"\x01")):
        with session(broker, "offender") as offender:
            offender.send_bytes(bad)
            assert closes_after(offender, Disconnect).reason_code == R.MALFORMED_PACKET


def test_a_qos_0_publish_from_the_broker_has_no_packet_identifier(
    broker: BrokerThread,
) -> None:
    """A QoS 0 PUBLISH carries no Packet Identifier [MQTT-2.2.1-2]: after the topic comes
    the property length, even for a message published at QoS 2 and sent at the QoS 0 of
    the subscription."""
    with session(broker, "sub") as sub:
        sub.subscribe(Subscription("w/q", Q0), Subscription("w/marker", Q1))
        with session(broker, "pub") as pub:
            publish(pub, "w/q", b"payload", Q2, packet_id=0x0102)
        assert [p.payload for p in sub.until(mark(broker))] == [b"payload"]
        [raw] = [f for f in sub.frames if f[0] >> 4 == 3 and b"payload" in f]
        assert raw[0] == 0x30
        assert body_of(raw) == string("w/q") + b"\x00" + b"payload"


def test_suback_and_unsuback_carry_the_packet_identifier_of_their_request(
    broker: BrokerThread,
) -> None:
    """SUBACK and UNSUBACK carry the Packet Identifier of the SUBSCRIBE and UNSUBSCRIBE
    they answer [MQTT-2.2.1-6], each its own when several are in flight at once."""
    with session(broker, "c") as peer:
        peer.send(Subscribe(0x4321, (Subscription("w/a", Q1),)),
                  Subscribe(0x0007, (Subscription("w/b", Q0),)),
                  Unsubscribe(0xFFFF, ("w/a",)), Unsubscribe(0x0100, ("w/none",)))
        answers = [peer.next() for _ in range(4)]
        assert [(type(p).__name__, getattr(p, "packet_id", None)) for p in answers] == [
            ("SubAck", 0x4321), ("SubAck", 0x0007), ("UnsubAck", 0xFFFF),
            ("UnsubAck", 0x0100)]


def test_a_packet_without_properties_has_a_property_length_of_zero(
    broker: BrokerThread,
) -> None:
    """No properties is said by a Property Length of zero [MQTT-2.2.2-1]: in SUBACK,
    UNSUBACK and a forwarded PUBLISH that has none, the byte is there and is 0x00."""
    with session(broker, "c") as peer:
        peer.send(Subscribe(5, (Subscription("w/p", Q0),)))
        assert peer.expect(SubAck).properties == NO_PROPERTIES
        assert body_of(peer.frames[-1]) == b"\x00\x05" + b"\x00" + b"\x00"
        peer.send(Unsubscribe(6, ("w/none",)))
        assert peer.expect(UnsubAck).reason_codes == (R.NO_SUBSCRIPTION_EXISTED,)
        assert body_of(peer.frames[-1]) == b"\x00\x06" + b"\x00" + b"\x11"
        peer.send(Publish("w/p", b"bare"))
        assert peer.expect(Publish).payload == b"bare"
        assert body_of(peer.frames[-1]) == string("w/p") + b"\x00" + b"bare"
