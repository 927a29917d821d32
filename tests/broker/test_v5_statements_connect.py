"""MQTT 5.0 statements of chapters 1 and 2, CONNECT (3.1) and CONNACK (3.2) that bind
the server, each shown by the broker meeting it: on a raw socket, where the bytes the
broker writes are read as written (their flags, lengths and property blocks) before the
strict client-side codec decodes them; in the sans-IO core with a made-up clock where
the statement is about time (keep alive, will delay, session expiry), so no test waits.

Where a statement says what must not happen, a control that must happen comes after it
on the same path (a marker message, a PINGRESP), so its absence is observed, not assumed.
Statements that other files already show cite their id there; the ones no test can show
against this broker are in ``v5_left_out_a.json`` with the reason.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import pytest

from mqttref.impl.auth import SCRAM_SHA_256
from mqttref.impl.codec.codec import encode
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
    Will,
)
from tests.broker.test_protocol_core import World
from tests.broker.test_v5_core import connect5, subscribe5
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.core5 import clocked_world
from tests.helpers.peer5 import (
    CLOSED,
    KEEP,
    Q0,
    Q1,
    Q2,
    V5,
    Peer,
    R,
    body_of,
    closes_after,
    connack_of,
    fewest_bytes,
    frame,
    mark,
    publish,
    read_varint,
    session,
    string,
    varint,
)


@pytest.fixture
def watcher(broker: BrokerThread) -> Iterator[Peer]:
    """A subscriber to everything under ``w/`` (QoS 2, Retain As Published, so a forwarded
    message keeps its RETAIN flag), for what others publish."""
    peer = session(broker, "watcher")
    peer.subscribe(Subscription("w/#", Q2, retain_as_published=True))
    yield peer
    peer.sock.close()


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


# --- 3.1 CONNECT -----------------------------------------------------------------------------


def test_a_second_connect_is_a_protocol_error_and_gets_no_second_connack(
    broker: BrokerThread,
) -> None:
    """A second CONNECT, the very bytes the broker accepted first, is a Protocol Error: the
    broker closes the connection [MQTT-3.1.0-2] after DISCONNECT 0x82 [MQTT-4.13.1-1], and
    never sends another CONNACK [MQTT-3.2.0-2]."""
    connect = Connect(V5, "twice")
    with Peer(broker.port) as peer:
        peer.send(connect)
        assert peer.expect(ConnAck).return_code == R.SUCCESS
        assert peer.pinged()
        peer.send(connect)
        answer = peer.rest()
        assert [type(p).__name__ if p != CLOSED else p for p in answer] == [
            "Disconnect", CLOSED]
        assert isinstance(answer[0], Disconnect)
        assert answer[0].reason_code == R.PROTOCOL_ERROR
        assert [f[0] for f in peer.frames].count(0x20) == 1


def connect_bytes(name: str = "MQTT", level: int = 5, flags: int = 0x02,
                  client_id: str = "c") -> bytes:
    return frame(0x10, string(name) + bytes([level, flags]) + b"\x00\x3c\x00" + string(client_id))


def refused_raw(port: int, data: bytes) -> list[bytes | None]:
    """Send ``data``; the frames the broker answers with as written, then None (closed)."""
    with Peer(port) as peer:
        peer.send_bytes(data)
        return [*peer.frames_until_closed(), None]


def test_a_protocol_name_other_than_mqtt_is_not_accepted_and_closed(
    broker: BrokerThread,
) -> None:
    """The protocol name must be "MQTT"; a server that does not accept the CONNECT MAY
    answer CONNACK 0x84 and then MUST close [MQTT-3.1.2-1]. The broker closes (with no
    CONNACK, or 0x84), while the same CONNECT named "MQTT" is accepted."""
    for name in ("MQTX", "mqtt", "MQT"):
        answer = refused_raw(broker.port, connect_bytes(name=name))
        assert answer in ([None], [b"\x20\x03\x00\x84\x00", None]), (name, answer)
    accepted = refused_raw(broker.port, connect_bytes() + encode(Disconnect(), V5))
    assert accepted[0] is not None
    assert (accepted[0][0], accepted[0][2:4]) == (0x20, b"\x00\x00")  # CONNACK Success


def test_a_protocol_version_the_broker_does_not_speak_is_refused_and_closed(
    broker: BrokerThread,
) -> None:
    """A Protocol Version the server does not accept: it MAY answer CONNACK 0x84 and then
    MUST close [MQTT-3.1.2-2]. For a level it cannot know the client reads, the broker
    answers in the form every level shares (3.1.1's CONNACK 0x01, unacceptable protocol
    version) or 5.0's 0x84, and closes."""
    for level in (0, 2, 6, 255):
        answer = refused_raw(broker.port, connect_bytes(level=level))
        assert answer in ([None], [b"\x20\x02\x00\x01", None],
                          [b"\x20\x03\x00\x84\x00", None]), (level, answer)


def test_a_connect_with_its_reserved_flag_set_is_not_accepted(broker: BrokerThread) -> None:
    """The server validates that CONNECT's reserved flag is 0 [MQTT-3.1.2-3]; if not, the
    packet is malformed: no session, a close (with CONNACK 0x81 at most) [MQTT-3.1.4-1],
    where the same CONNECT with the bit clear is accepted."""
    answer = refused_raw(broker.port, connect_bytes(flags=0x03, client_id="reserved"))
    assert answer in ([None], [b"\x20\x03\x00\x81\x00", None]), answer
    assert not broker.call(lambda b: "reserved" in b.sessions)
    accepted = refused_raw(broker.port, connect_bytes(flags=0x02, client_id="reserved")
                           + encode(Disconnect(), V5))
    assert accepted[0] is not None
    assert accepted[0][2:4] == b"\x00\x00"  # session present 0, Success


def test_clean_start_1_discards_the_existing_session(broker: BrokerThread) -> None:
    """Clean Start 1 discards the session there was [MQTT-3.1.2-4], as the server must
    process Clean Start [MQTT-3.1.4-4]: Session Present 0 [MQTT-3.2.2-2], the message
    queued for it is never sent, and its subscription is gone (a publish to it now finds
    no subscriber, PUBACK 0x10)."""
    with session(broker, "s", clean_start=False, properties=KEEP) as first:
        first.subscribe(Subscription("w/s", Q1))
        first.send(Disconnect())
        assert first.next() == CLOSED
    with session(broker, "pub") as pub:
        assert publish(pub, "w/s", b"queued", Q1) == R.SUCCESS  # it had a subscriber
        peer, raw, connack = connack_of(broker.port, Connect(V5, "s", True, properties=KEEP))
        with peer:
            assert raw[2:4] == b"\x00\x00"
            assert not connack.session_present
            peer.subscribe(Subscription("w/marker", Q1))
            assert publish(pub, "w/s", b"after", Q1) == R.NO_MATCHING_SUBSCRIBERS
            assert peer.until(mark(broker)) == []


def test_clean_start_0_resumes_the_session_the_client_id_names(broker: BrokerThread) -> None:
    """Clean Start 0 with a session: the server resumes it [MQTT-3.1.2-5] [MQTT-3.1.4-4],
    says Session Present 1 [MQTT-3.2.2-3], and the state it kept after the close
    (Session Expiry Interval above 0 [MQTT-3.1.2-23]) is the state of that Client
    Identifier [MQTT-3.1.3-2]: its subscription, the message queued for it and no other
    session's."""
    for name, topic in (("one", "w/one"), ("two", "w/two")):
        with session(broker, name, clean_start=False, properties=KEEP) as peer:
            peer.subscribe(Subscription(topic, Q1), Subscription("w/marker", Q1))
            peer.drop()
    with session(broker, "pub") as pub:
        publish(pub, "w/one", b"for one", Q1)
        publish(pub, "w/two", b"for two", Q1)
        peer, raw, connack = connack_of(broker.port, Connect(V5, "one", False,
                                                             properties=KEEP))
        with peer:
            assert raw[2:4] == b"\x01\x00"
            assert connack.session_present
            publish(pub, "w/one", b"after", Q1)
            assert [p.payload for p in peer.until(mark(broker))] == [b"for one", b"after"]


def test_clean_start_0_without_a_session_creates_one(broker: BrokerThread) -> None:
    """Clean Start 0 and no session: the server creates one [MQTT-3.1.2-6] [MQTT-3.1.4-4]
    and says Session Present 0 [MQTT-3.2.2-3]; it is there to resume next time."""
    peer, raw, connack = connack_of(broker.port, Connect(V5, "new", False, properties=KEEP))
    with peer:
        assert raw[2:4] == b"\x00\x00"
        assert not connack.session_present
        peer.subscribe(Subscription("w/new", Q1))
        peer.drop()
    again, raw, connack = connack_of(broker.port, Connect(V5, "new", False, properties=KEEP))
    with again:
        assert raw[2:4] == b"\x01\x00"
        with session(broker, "pub") as pub:
            assert publish(pub, "w/new", b"m", Q1) == R.SUCCESS
        assert again.expect(Publish).payload == b"m"


# --- the will ---------------------------------------------------------------------------------


def test_a_will_is_stored_and_published_non_retained_when_the_network_fails(
    broker: BrokerThread, watcher: Peer,
) -> None:
    """With the Will Flag the server stores the Will Message with the session
    [MQTT-3.1.2-7] and publishes it once the connection closes without DISCONNECT 0x00
    [MQTT-3.1.2-8]; with Will Retain 0 as a non-retained message [MQTT-3.1.2-14]: the
    RETAIN flag is 0 (the watcher subscribed with Retain As Published) and a later
    subscriber gets no retained copy."""
    will = Will("w/will", b"gone", Q1, retain=False)
    session(broker, "dies", will=will).drop()
    got = watcher.expect(Publish)
    watcher.acknowledge(got)
    assert (got.topic, got.payload, got.retain) == ("w/will", b"gone", False)
    with session(broker, "late") as late:
        late.subscribe(Subscription("w/will", Q1), Subscription("w/marker", Q1))
        assert late.until(mark(broker)) == []


def test_a_will_with_will_retain_is_published_as_a_retained_message(
    broker: BrokerThread, watcher: Peer,
) -> None:
    """Will Retain 1: the Will Message is published as a retained message
    [MQTT-3.1.2-15]: forwarded with RETAIN 1 (Retain As Published) and kept for a later
    subscriber."""
    session(broker, "dies", will=Will("w/kept", b"gone", Q1, retain=True)).drop()
    got = watcher.expect(Publish)
    watcher.acknowledge(got)
    assert (got.topic, got.retain) == ("w/kept", True)
    with session(broker, "late") as late:
        late.subscribe(Subscription("w/kept", Q1))
        retained = late.expect(Publish)
        assert (retained.topic, retained.payload, retained.retain) == ("w/kept", b"gone", True)


def test_disconnect_0x00_deletes_the_will(broker: BrokerThread, watcher: Peer) -> None:
    """DISCONNECT 0x00 removes the Will Message [MQTT-3.1.2-10], so none is published at
    the close that follows [MQTT-3.1.2-8]; 0x04 (Disconnect with Will Message) on the same
    path publishes it, so the path is watched."""
    with session(broker, "polite", will=Will("w/polite", b"gone")) as polite:
        polite.send(Disconnect(R.SUCCESS))
        assert polite.next() == CLOSED
    with session(broker, "asks", will=Will("w/asks", b"gone")) as asks:
        asks.send(Disconnect(R.DISCONNECT_WITH_WILL))
        assert asks.next() == CLOSED
    assert [p.topic for p in watcher.until(mark(broker))] == ["w/asks"]



def test_a_will_is_published_once_though_its_delay_and_its_session_both_end() -> None:
    """The will goes when its delay ends or its session ends, whichever is first
    [MQTT-3.1.2-8], and once published it is removed from the session [MQTT-3.1.2-10]: the
    session ending later publishes nothing more."""
    world, clock = clocked_world()
    watcher, _ = connect5(world, "watcher")
    subscribe5(watcher, Subscription("w/#", Q0))
    client, _ = connect5(world, "w", properties=Properties(session_expiry_interval=20),
                         will=Will("w/will", b"gone",
                                   properties=Properties(will_delay_interval=5)))
    client.inner.core.connection_lost(clock.at(1.0))
    world.table.tick(clock.at(5.9))
    assert [p for p in watcher.received() if isinstance(p, Publish)] == []
    world.table.tick(clock.at(6.1))
    assert [p.payload for p in watcher.received() if isinstance(p, Publish)] == [b"gone"]
    world.table.tick(clock.at(30.0))
    assert "w" not in world.table.sessions  # the session did end
    assert [p for p in watcher.received() if isinstance(p, Publish)] == []


def test_the_will_keeps_the_order_of_its_user_properties(
    broker: BrokerThread, watcher: Peer,
) -> None:
    """The server keeps the order of the Will's User Properties when it publishes it
    [MQTT-3.1.3-10], a name repeated included."""
    pairs = (("z", "1"), ("a", "2"), ("z", "0"), ("m", "3"), ("a", "1"))
    session(broker, "dies", will=Will("w/ordered", b"gone", properties=Properties(
        user_properties=pairs))).drop()
    got = watcher.expect(Publish)
    assert got.topic == "w/ordered"
    assert got.properties.user_properties == pairs


# --- keep alive and the CONNECT properties ----------------------------------------------------


def test_without_server_keep_alive_the_clients_keep_alive_times_the_connection() -> None:
    """No Server Keep Alive in CONNACK: the server uses the client's Keep Alive
    [MQTT-3.2.2-22], and with no packet for one and a half times it, closes the connection
    [MQTT-3.1.2-22] (DISCONNECT 0x8D first); any packet, PINGREQ here, starts the time
    again. Keep Alive 0 means no such close at all."""
    world = World()
    client, connack = connect5(world, "k", keep_alive=10)
    assert connack.properties.server_keep_alive is None
    client.inner.core.timer(14.9)
    assert not client.closed()
    client.send(PingReq(), now=14.9)
    assert client.received() == [PingResp()]
    client.inner.core.timer(29.8)
    assert not client.closed()
    client.inner.core.timer(30.0)
    assert [p.reason_code for p in client.received() if isinstance(p, Disconnect)] == [
        R.KEEP_ALIVE_TIMEOUT]
    assert client.closed()
    idle, connack = connect5(world, "idle", keep_alive=0)
    assert connack.properties.server_keep_alive is None
    idle.inner.core.timer(100_000.0)
    assert not idle.closed()


def test_the_broker_sends_nothing_above_the_clients_maximum_packet_size(
    broker: BrokerThread,
) -> None:
    """No packet above the client's Maximum Packet Size [MQTT-3.1.2-24]; one too large is
    discarded and counts as sent [MQTT-3.1.2-25]: with a Receive Maximum of 1 the QoS 1
    message after it still comes, which it could not if the large one held the quota."""
    limit = 64
    with session(broker, "small", properties=Properties(maximum_packet_size=limit,
                                                        receive_maximum=1)) as small:
        small.subscribe(Subscription("w/big", Q1), Subscription("w/marker", Q1))
        with session(broker, "pub") as pub:
            publish(pub, "w/big", b"x" * 200, Q1)
            publish(pub, "w/big", b"fits", Q1, packet_id=2)
        assert [p.payload for p in small.until(mark(broker))] == [b"fits"]
        assert max(len(raw) for raw in small.frames) <= limit


def test_topic_aliases_the_broker_sends_stay_within_the_clients_maximum(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """The server sends no Topic Alias above the client's Topic Alias Maximum
    [MQTT-3.1.2-26], and none at all where it is absent or 0 [MQTT-3.1.2-27]; with a
    maximum of 2 and three topics repeated, aliases 1 and 2 are used and none beyond."""
    broker = start_broker(send_topic_aliases=True)
    topics = ("w/a/long/topic", "w/b/long/topic", "w/c/long/topic")
    peers = {maximum: session(broker, f"max{maximum}", properties=Properties(
        topic_alias_maximum=maximum)) for maximum in (None, 0, 2)}
    for peer in peers.values():
        peer.subscribe(Subscription("w/#", Q0))
    with session(broker, "pub") as pub:
        for _round in range(3):
            for topic in topics:
                publish(pub, topic, b"m")
    marker = mark(broker)
    for maximum, peer in peers.items():
        got = peer.until(marker)
        assert len(got) == 9
        aliases = {p.properties.topic_alias for p in got} - {None}
        if maximum:
            assert aliases == {1, 2}
        else:
            assert aliases == set()
        peer.sock.close()


def test_response_information_only_to_a_client_that_requests_it(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """Request Response Information 0 (or absent): the server returns no Response
    Information [MQTT-3.1.2-28]; 1 gets it, so the broker has some to give."""
    broker = start_broker(response_information="reply/%c/")
    for request, expected in ((None, None), (0, None), (1, "reply/asks/")):
        peer, _raw, connack = connack_of(broker.port, Connect(V5, "asks", properties=Properties(
            request_response_information=request)))
        with peer:
            assert connack.properties.response_information == expected, request


def test_request_problem_information_0_keeps_reason_strings_off_other_packets(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """Request Problem Information 0: no Reason String nor User Property on any packet but
    PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29], seen on every acknowledgement that
    has something to explain (a refused filter 0xA2, no subscription 0x11, no subscriber
    0x10, an unknown packet identifier 0x92), on PINGRESP and on PUBREL. (The broker
    puts a Reason String on CONNACK and DISCONNECT only, where this rule allows it.)"""
    broker = start_broker(refuse_wildcard_subscriptions=True)
    quiet = Properties(request_problem_information=0)
    with session(broker, "quiet", properties=quiet) as peer:
        peer.send(Subscribe(1, (Subscription("w/+", Q1), Subscription("w/q", Q2))),
                  Unsubscribe(2, ("w/none",)), Publish("w/nobody", b"m", Q1, packet_id=3),
                  Publish("w/nobody", b"m", Q2, packet_id=4), PubRel(9), PingReq())
        answers = [peer.next() for _ in range(6)]
        assert [type(p).__name__ for p in answers] == [
            "SubAck", "UnsubAck", "PubAck", "PubRec", "PubComp", "PingResp"]
        assert isinstance(answers[0], SubAck)
        assert answers[0].return_codes == (R.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, Q2)
        peer.send(Publish("w/q", b"own", Q2, packet_id=5))
        while not isinstance(packet := peer.next(), PubRel):
            answers.append(packet)
            if isinstance(packet, Publish):
                peer.acknowledge(packet)
        answers.append(packet)
        for packet in answers:
            props = getattr(packet, "properties", NO_PROPERTIES)
            assert props.reason_string is None, packet
            assert props.user_properties == (), packet


# --- 3.1.3 the Client Identifier --------------------------------------------------------------


@pytest.mark.parametrize("client_id", [
    "0123456789abcdefghijklm", "nopqrstuvwxyzABCDEFGHIJ", "KLMNOPQRSTUVWXYZ", "a", "Z9"])
def test_client_ids_of_1_to_23_letters_and_digits_are_accepted(
    broker: BrokerThread, client_id: str,
) -> None:
    """The server allows Client Identifiers of 1 to 23 bytes of 0-9, a-z and A-Z
    [MQTT-3.1.3-5]: CONNACK 0x00 [MQTT-3.1.4-5], the identifier kept as given (no
    Assigned Client Identifier), and the session named by it."""
    peer, raw, connack = connack_of(broker.port, Connect(V5, client_id))
    with peer:
        assert raw[3] == R.SUCCESS
        assert connack.properties.assigned_client_identifier is None
        assert broker.call(lambda b: client_id in b.sessions)


def test_an_empty_client_id_gets_a_unique_assigned_one_and_is_that_client(
    broker: BrokerThread,
) -> None:
    """A zero-length ClientID is given a unique one [MQTT-3.1.3-6], told in CONNACK's
    Assigned Client Identifier and used as if the client had sent it [MQTT-3.1.3-7]: not
    the name of any other session in the server [MQTT-3.2.2-16] (two at once get two, and
    neither takes over the other), and the session it names is resumed by it later."""
    with session(broker, "existing", properties=KEEP):
        first, _raw, one = connack_of(broker.port, Connect(V5, "", properties=KEEP))
        second, _raw, two = connack_of(broker.port, Connect(V5, ""))
        assigned = one.properties.assigned_client_identifier
        other = two.properties.assigned_client_identifier
        assert assigned
        assert other
        assert len({assigned, other, "existing"}) == 3
        assert first.pinged()
        assert second.pinged()
        first.subscribe(Subscription("w/assigned", Q1))
        first.drop()
        second.sock.close()
        with session(broker, "pub") as pub:
            publish(pub, "w/assigned", b"kept", Q1)
        again, _raw, connack = connack_of(broker.port, Connect(V5, assigned, False,
                                                              properties=KEEP))
        with again:
            assert connack.session_present
            assert again.expect(Publish).payload == b"kept"


def test_a_client_id_the_broker_rejects_gets_0x85_and_the_close(
    broker: BrokerThread,
) -> None:
    """A rejected ClientID MAY be answered CONNACK 0x85 and then the connection MUST close
    [MQTT-3.1.3-8]: 2,000 characters, above the broker's max_client_id_length; Session
    Present 0 with the non-zero code [MQTT-3.2.2-6], closed as 0x80 or more requires
    [MQTT-3.2.2-7]."""
    peer, raw, connack = connack_of(broker.port, Connect(V5, "x" * 2000))
    with peer:
        assert connack.return_code == R.CLIENT_IDENTIFIER_NOT_VALID
        assert raw[2] == 0x00
        assert peer.next() == CLOSED


# --- 3.1.4 and 3.2 the server's answer ---------------------------------------------------------


def test_nothing_a_client_sends_after_a_refused_connect_is_processed(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """After a refused CONNECT the server processes nothing the client sent after it but
    AUTH [MQTT-3.1.4-6]: a retained PUBLISH and a SUBSCRIBE sent with the bad CONNECT in
    one write are neither forwarded, kept nor answered; the same write after a good
    CONNECT is (so the broker does read what follows a CONNECT at once)."""
    broker = start_broker(users={"u": "p"})

    def attempt(client_id: str, password: bytes, topic: str) -> list[Packet | str]:
        with Peer(broker.port) as peer:
            peer.send(Connect(V5, client_id, username="u", password=password),
                      Publish(topic, b"m", Q1, retain=True, packet_id=1),
                      Subscribe(2, (Subscription("w/#", Q0),)), Disconnect())
            return peer.rest()

    watcher_peer, _raw, _connack = connack_of(broker.port, Connect(
        V5, "watcher", username="u", password=b"p"))
    with watcher_peer:
        watcher_peer.subscribe(Subscription("w/#", Q1))
        refused = attempt("bad", b"wrong", "w/refused")
        assert [type(p).__name__ if p != CLOSED else p for p in refused] == [
            "ConnAck", CLOSED]
        assert isinstance(refused[0], ConnAck)
        assert refused[0].return_code == R.BAD_USER_NAME_OR_PASSWORD
        accepted = attempt("good", b"p", "w/accepted")
        assert {type(p).__name__ for p in accepted} >= {"ConnAck", "PubAck", "SubAck"}
        got = watcher_peer.expect(Publish)
        assert got.topic == "w/accepted"  # the refused one's came nowhere before it
        watcher_peer.acknowledge(got)
    late, _raw, _connack = connack_of(broker.port, Connect(
        V5, "late", username="u", password=b"p"))
    with late:
        late.subscribe(Subscription("w/#", Q0))
        assert late.expect(Publish).topic == "w/accepted"  # the only retained message
        assert late.pinged()
        assert [f[0] >> 4 for f in late.frames].count(3) == 1


def test_connack_comes_before_any_other_packet_and_only_once(broker: BrokerThread) -> None:
    """The server sends CONNACK 0x00 before any packet but AUTH [MQTT-3.2.0-1] and no more
    than one per connection [MQTT-3.2.0-2]: with PINGREQ and SUBSCRIBE in the CONNECT's
    own write, and on resuming a session whose queued message is waiting."""
    with Peer(broker.port) as peer:
        peer.send(Connect(V5, "eager", False, properties=KEEP), PingReq(),
                  Subscribe(1, (Subscription("w/e", Q1),)))
        assert [type(peer.next()).__name__ for _ in range(3)] == [
            "ConnAck", "PingResp", "SubAck"]
        peer.drop()
    with session(broker, "pub") as pub:
        publish(pub, "w/e", b"waiting", Q1)
    with Peer(broker.port) as again:
        again.send(Connect(V5, "eager", False, properties=KEEP))
        assert again.expect(ConnAck).session_present
        assert again.expect(Publish).payload == b"waiting"
        assert again.pinged()
        assert [f[0] >> 4 for f in again.frames].count(2) == 1


def test_connack_flags_bits_7_to_1_are_zero(start_broker: Callable[..., BrokerThread]) -> None:
    """Bits 7-1 of the Connect Acknowledge Flags are 0 [MQTT-3.2.2-1], on a new session,
    a resumed one and a refusal."""
    broker = start_broker(users={"u": "p"})
    flags = []
    for connect in (Connect(V5, "f", False, username="u", password=b"p", properties=KEEP),
                    Connect(V5, "f", False, username="u", password=b"p", properties=KEEP),
                    Connect(V5, "f", False, username="u", password=b"no", properties=KEEP)):
        peer, raw, _connack = connack_of(broker.port, connect)
        flags.append(raw[2])
        peer.drop()
    assert flags == [0x00, 0x01, 0x00]


def test_a_refusal_says_session_present_0_though_the_session_exists(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """A CONNACK with a non-zero Reason Code has Session Present 0 [MQTT-3.2.2-6], even for
    a Client Identifier whose session the server holds (a wrong password), and a code of
    0x80 or more is followed by the close [MQTT-3.2.2-7]; the session is still there for
    the right password."""
    broker = start_broker(users={"u": "p"})
    ok = Connect(V5, "held", False, username="u", password=b"p", properties=KEEP)
    peer, _raw, _connack = connack_of(broker.port, ok)
    peer.drop()
    bad = Connect(V5, "held", False, username="u", password=b"wrong", properties=KEEP)
    peer, raw, connack = connack_of(broker.port, bad)
    with peer:
        assert connack.return_code == R.BAD_USER_NAME_OR_PASSWORD
        assert raw[2:4] == b"\x00\x86"
        assert peer.next() == CLOSED
    peer, raw, connack = connack_of(broker.port, ok)
    with peer:
        assert raw[2:4] == b"\x01\x00"


CONNECT_REASON_CODES = frozenset({
    # Table 3-1 (3.2.2.2), written here from the specification on purpose.
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
    0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
})


def test_every_refusal_uses_a_connect_reason_code(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """Each CONNACK the broker sends has a Connect Reason Code [MQTT-3.2.2-8] (Table 3-1):
    seen for a bad password, an invalid Client Identifier, an unknown authentication
    method, a will above Maximum QoS, a will retained where retain is unavailable, and a
    protocol error in the properties; each refusal then closes [MQTT-3.2.2-7]."""
    broker = start_broker(users={"u": "p"}, max_qos=1, retain_available=False)
    refusals = {
        Connect(V5, "a", username="u", password=b"wrong"): R.BAD_USER_NAME_OR_PASSWORD,
        Connect(V5, "x" * 2000, username="u", password=b"p"): R.CLIENT_IDENTIFIER_NOT_VALID,
        Connect(V5, "b", properties=Properties(authentication_method="KERBEROS")):
            R.BAD_AUTHENTICATION_METHOD,
        Connect(V5, "c", username="u", password=b"p", will=Will("w/w", b"", Q2)):
            R.QOS_NOT_SUPPORTED,
        Connect(V5, "d", username="u", password=b"p", will=Will("w/w", b"", retain=True)):
            R.RETAIN_NOT_SUPPORTED,
        Connect(V5, "e", username="u", password=b"p", properties=Properties(
            authentication_data=b"x")): R.PROTOCOL_ERROR,
    }
    for connect, code in refusals.items():
        peer, raw, connack = connack_of(broker.port, connect)
        with peer:
            assert raw[3] in CONNECT_REASON_CODES
            assert (raw[3], connack.return_code) == (code, code)
            assert peer.next() == CLOSED


@pytest.mark.parametrize(("max_qos", "stated"), [(0, 0), (1, 1), (2, None)])
def test_connack_states_a_maximum_qos_below_2(
    start_broker: Callable[..., BrokerThread], max_qos: int, stated: int | None,
) -> None:
    """A server that does not support QoS 1 or 2 PUBLISH sends Maximum QoS in CONNACK,
    the highest it supports [MQTT-3.2.2-9] (absent means 2); and it still accepts a
    SUBSCRIBE requesting QoS 0, 1 or 2 [MQTT-3.2.2-10], granting at most its maximum."""
    broker = start_broker(max_qos=max_qos)
    peer, _raw, connack = connack_of(broker.port, Connect(V5, "q"))
    with peer:
        assert connack.properties.maximum_qos == stated
        granted = peer.subscribe(Subscription("w/0", Q0), Subscription("w/1", Q1),
                                 Subscription("w/2", Q2)).return_codes
        assert granted == tuple(min(q, max_qos) for q in (0, 1, 2))
        assert peer.pinged()


def test_a_connack_reason_string_gives_way_to_the_clients_maximum_packet_size(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """CONNACK carries no Reason String that would take it above the client's Maximum
    Packet Size [MQTT-3.2.2-19]: a SCRAM-SHA-256 exchange refused at its first message
    (not SCRAM's syntax) has one where there is room, and none where there is not, the
    CONNACK within the limit and still saying why in its Reason Code."""
    broker = start_broker(users={"alice": "pencil"})

    def refusal(limit: int | None) -> tuple[bytes, ConnAck]:
        peer, raw, connack = connack_of(broker.port, Connect(
            V5, "c", username="alice", properties=Properties(
                authentication_method=SCRAM_SHA_256, authentication_data=b"not scram",
                maximum_packet_size=limit)))
        with peer:
            assert peer.next() == CLOSED
        return raw, connack

    raw, connack = refusal(None)
    assert connack.return_code >= 0x80
    assert connack.properties.reason_string  # there is one to leave out
    limit = len(raw) - 1
    raw, bare = refusal(limit)
    assert bare.return_code == connack.return_code
    assert bare.properties.reason_string is None
    assert len(raw) <= limit
