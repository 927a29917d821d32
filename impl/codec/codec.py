"""The sans-IO MQTT codec: bytes in, packets out, and back.

``Decoder.feed(data)`` takes whatever the network delivered (one byte, half a
packet, a hundred packets) and returns the whole packets it completes; what is
left waits for the next call, so the result never depends on the chunking.
``encode(packet, level)`` is the inverse. Neither does any I/O, keeps a clock,
or knows about sessions: the broker and the client call them at their edges.

Validation is strict: every rule of the specification about the shape of a
packet is checked here and broken rules raise a ``ProtocolError`` subclass
that names the rule. Rules about *sequences* of packets (CONNECT first, no
second CONNECT, packet ids in use) belong to the connection and session.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from mqttref.impl.codec import wire
from mqttref.impl.codec.encoder import encode, encode_publish
from mqttref.impl.codec.errors import (
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    UnsupportedProtocol,
)
from mqttref.impl.codec.packets import (
    CLIENT_TO_SERVER,
    NO_PROPERTIES,
    SERVER_TO_CLIENT,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from mqttref.impl.codec.properties import WILL, read_properties
from mqttref.impl.codec.reasons import VALID_REASONS
from mqttref.impl.codec.topicnames import (
    validate_shared_filter,
    validate_topic_filter,
    validate_topic_name,
)
from mqttref.impl.logtext import clip

DEFAULT_MAX_PACKET_SIZE = 1 + 4 + wire.MAX_VARINT
"""The largest packet the protocol can express (2.2.3): no limit of our own."""

_QOS = (QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE)
_V311 = ProtocolLevel.MQTT_3_1_1
_V5 = ProtocolLevel.MQTT_5
_LEVELS = {3: ProtocolLevel.MQTT_3_1, 4: ProtocolLevel.MQTT_3_1_1, 5: ProtocolLevel.MQTT_5}
_ACK_TYPES: dict[int, type[PubAck | PubRec | PubRel | PubComp]] = {
    PacketType.PUBACK: PubAck,
    PacketType.PUBREC: PubRec,
    PacketType.PUBREL: PubRel,
    PacketType.PUBCOMP: PubComp,
}
_REQUIRED_FLAGS = {
    PacketType.PUBREL: (0x02, "MQTT-3.6.1-1"),
    PacketType.SUBSCRIBE: (0x02, "MQTT-3.8.1-1"),
    PacketType.UNSUBSCRIBE: (0x02, "MQTT-3.10.1-1"),
}


_FAST_ACKS: dict[int, type[PubAck | PubRec | PubRel | PubComp]] = {
    int(ptype): cls for ptype, cls in _ACK_TYPES.items()
}
_FAST_ACK_FLAGS: dict[int, int] = {
    kind: _REQUIRED_FLAGS.get(PacketType(kind), (0, ""))[0] for kind in _FAST_ACKS
}
"""The acknowledgements' type numbers (plain ints: no Enum lookup) and required flags."""


class Role(Enum):
    """Which end of the connection decodes: each refuses the packets only it sends."""

    SERVER = "server"
    CLIENT = "client"


def _truncated(what: str) -> MalformedPacket:
    return MalformedPacket(f"packet ends inside {what}", ref="§2.2.3")


def _packet_id(reader: wire.Reader) -> int:
    packet_id = reader.u16("the packet identifier")
    if packet_id == 0:
        raise MalformedPacket("packet identifier 0", ref="MQTT-2.3.1-1")
    return packet_id


def _check_reason(kind: PacketType, code: int) -> int:
    if code not in VALID_REASONS[kind]:
        raise MalformedPacket(f"reason code 0x{code:02X} is not valid on {kind.name}", ref="§2.4")
    return code


class _Partial:
    """The bytes of an incomplete packet, kept as received: joining them on every
    feed would copy a large packet once per socket read, quadratic in its size."""

    __slots__ = ("need", "parts", "size")

    def __init__(self, parts: list[bytes], size: int, need: int) -> None:
        self.parts = parts
        self.size = size
        self.need = need
        """Length of the incomplete packet once its fixed header is known, else 0."""


class Decoder:
    """Incremental decoder for one direction of one connection."""

    __slots__ = ("_partial", "max_packet_size", "protocol_level", "role")

    def __init__(
        self,
        *,
        role: Role | None = None,
        protocol_level: ProtocolLevel | None = None,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    ) -> None:
        self.role = role
        self.protocol_level = None if protocol_level is None else ProtocolLevel(protocol_level)
        """None until known: a server learns it from CONNECT."""
        self.max_packet_size = max_packet_size
        self._partial: _Partial | None = None
        """None while no packet is incomplete: most reads end on a packet boundary,
        and an idle connection should not hold a list and two counts for nothing."""

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole packet."""
        partial = self._partial
        return 0 if partial is None else partial.size

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Add received bytes; return every packet they complete, in order.

        On bad input raises a ``ProtocolError`` whose ``packets`` are the whole
        packets decoded before the bad one; the decoder must then be dropped
        with its connection.
        """
        partial = self._partial
        if partial is not None:
            partial.parts.append(bytes(data))
            partial.size += len(data)
            if partial.size < partial.need:
                return []
            buf = b"".join(partial.parts)
        else:
            buf = bytes(data)
        out: list[Packet] = []
        pos = 0
        size = len(buf)
        need = 0
        try:
            while size - pos >= 2:
                first = buf[pos]
                # Remaining Length: at most four bytes [§2.2.3].
                length = 0
                shift = 0
                index = pos + 1
                complete = False
                while index < size:
                    byte = buf[index]
                    index += 1
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        if byte == 0 and index - pos > 2:
                            raise MalformedPacket(
                                "remaining length not in the minimum number of bytes",
                                ref="MQTT-1.5.5-1",
                            )
                        complete = True
                        break
                    if index - pos > 4:
                        raise MalformedPacket(
                            "remaining length longer than four bytes", ref="§2.2.3"
                        )
                    shift += 7
                if not complete:
                    break
                total = index - pos + length
                if total > self.max_packet_size:
                    raise PacketTooLarge(
                        f"packet of {total} bytes exceeds the maximum of {self.max_packet_size}",
                        ref="§3.1.2.11",
                    )
                if size - pos < total:
                    need = total
                    break
                out.append(self._decode(first, buf, index, pos + total))
                pos += total
        except ProtocolError as exc:
            exc.packets = list(out)
            self._partial = None
            raise
        if pos < size:
            self._partial = _Partial([buf[pos:]], size - pos, need)
        elif partial is not None:
            self._partial = None
        return out

    def _decode(self, first: int, buf: bytes, start: int, end: int) -> Packet:
        kind = first >> 4
        flags = first & 0x0F
        if kind == PacketType.PUBLISH:
            return self._publish(flags, buf, start, end)
        if end - start == 2 and flags == _FAST_ACK_FLAGS.get(kind):
            # The other hot path: a two-byte PUBACK, PUBREC, PUBREL or PUBCOMP, valid in
            # either direction at every level; a packet id of 0 takes the general path.
            packet_id = buf[start] << 8 | buf[start + 1]
            if packet_id:
                return _FAST_ACKS[kind](packet_id)
        if kind == 0:
            raise MalformedPacket("packet type 0 is reserved", ref="§2.2.1")
        ptype = PacketType(kind)
        if self.role is Role.SERVER and ptype not in CLIENT_TO_SERVER:
            raise ProtocolError(f"a client may not send {ptype.name}", ref="MQTT-4.8.0-1")
        if self.role is Role.CLIENT and ptype not in SERVER_TO_CLIENT:
            raise ProtocolError(f"a server may not send {ptype.name}", ref="MQTT-4.8.0-1")
        required, ref = _REQUIRED_FLAGS.get(ptype, (0, "MQTT-2.2.2-2"))
        if flags != required:
            raise MalformedPacket(f"reserved flags 0x{flags:X} on {ptype.name}", ref=ref)
        reader = wire.Reader(buf, start, end)
        if ptype is PacketType.CONNECT:
            connect = _decode_connect(reader)
            if self.protocol_level is None:
                self.protocol_level = connect.protocol_level
            return connect
        level = self.protocol_level or _V311
        packet: Packet = _DECODERS[ptype](reader, level)
        reader.done(ptype.name)
        return packet

    def _publish(self, flags: int, buf: bytes, pos: int, end: int) -> Publish:
        """The hot path: inlined field reads for the commonest packet."""
        qos = (flags >> 1) & 0x03
        if qos == 3:
            raise MalformedPacket("PUBLISH with QoS 3", ref="MQTT-3.3.1-4")
        dup = bool(flags & 0x08)
        if dup and not qos:
            raise MalformedPacket("PUBLISH with DUP set at QoS 0", ref="MQTT-3.3.1-2")
        if end - pos < 2:
            raise _truncated("the topic name")
        topic_len = (buf[pos] << 8) | buf[pos + 1]
        pos += 2
        if pos + topic_len > end:
            raise _truncated("the topic name")
        try:
            topic = buf[pos : pos + topic_len].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPacket("topic name is not well-formed UTF-8",
                                  ref="MQTT-1.5.3-1") from exc
        if "\x00" in topic:  # a Malformed Packet like U+0000 in any string (1.5.4)
            raise MalformedPacket("topic name contains U+0000", ref="MQTT-1.5.3-2")
        pos += topic_len
        packet_id = None
        if qos:
            if end - pos < 2:
                raise _truncated("the packet identifier")
            packet_id = (buf[pos] << 8) | buf[pos + 1]
            if not packet_id:
                raise MalformedPacket("PUBLISH with packet identifier 0", ref="MQTT-2.3.1-1")
            pos += 2
        props = NO_PROPERTIES
        if self.protocol_level is _V5 and pos < end and buf[pos] == 0:
            pos += 1  # the commonest block: no properties (a hot path, as at 3.1.1)
            if not topic or "+" in topic or "#" in topic:
                validate_topic_name(topic)
        elif self.protocol_level is _V5:
            reader = wire.Reader(buf, pos, end)
            props = read_properties(reader, PacketType.PUBLISH)
            pos = reader.pos
            if props.subscription_identifiers and self.role is Role.SERVER:
                raise ProtocolError("a client's PUBLISH carries a subscription identifier",
                                    ref="MQTT-3.3.4-6")
            # 5.0: an empty topic name stands for its topic alias (3.3.2.3.4).
            if topic or props.topic_alias is None:
                validate_topic_name(topic)
        elif not topic or "+" in topic or "#" in topic:
            validate_topic_name(topic)
        return Publish(topic, buf[pos:end], _QOS[qos], bool(flags & 0x01), dup, packet_id, props)


def _decode_connect(reader: wire.Reader) -> Connect:
    name = reader.string("the protocol name")
    level_byte = reader.u8("the protocol level")
    if name == "MQTT":
        if level_byte not in (4, 5):
            raise UnsupportedProtocol(f"protocol level {level_byte} for 'MQTT'", ref="MQTT-3.1.2-2")
    elif name == "MQIsdp":
        if level_byte != 3:
            raise UnsupportedProtocol(f"protocol level {level_byte} for 'MQIsdp'",
                                      ref="MQTT-3.1.2-2")
    else:
        raise MalformedPacket(f"protocol name {clip(name)}", ref="MQTT-3.1.2-1")
    level = _LEVELS[level_byte]
    flags = reader.u8("the connect flags")
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set", ref="MQTT-3.1.2-3")
    will_flag = bool(flags & 0x04)
    will_qos = (flags >> 3) & 0x03
    will_retain = bool(flags & 0x20)
    has_password = bool(flags & 0x40)
    has_user = bool(flags & 0x80)
    if not will_flag and will_qos:
        raise MalformedPacket("Will QoS set without the Will Flag", ref="MQTT-3.1.2-13")
    if not will_flag and will_retain:
        raise MalformedPacket("Will Retain set without the Will Flag", ref="MQTT-3.1.2-15")
    if will_qos == 3:
        raise MalformedPacket("Will QoS 3", ref="MQTT-3.1.2-14")
    if has_password and not has_user and level is not _V5:
        raise MalformedPacket("password without a user name", ref="MQTT-3.1.2-22")
    keep_alive = reader.u16("the keep alive")
    props = read_properties(reader, PacketType.CONNECT) if level is _V5 else NO_PROPERTIES
    client_id = reader.string("the client identifier")
    will = None
    if will_flag:
        will_props = read_properties(reader, WILL) if level is _V5 else NO_PROPERTIES
        will_topic = reader.string("the will topic")
        validate_topic_name(will_topic)
        will_payload = reader.binary("the will message")
        will = Will(will_topic, will_payload, _QOS[will_qos], will_retain, will_props)
    username = reader.string("the user name") if has_user else None
    password = reader.binary("the password") if has_password else None
    reader.done("CONNECT")
    return Connect(level, client_id, bool(flags & 0x02), keep_alive, will, username, password,
                   props)


def _decode_connack(reader: wire.Reader, level: ProtocolLevel) -> ConnAck:
    flags = reader.u8("the acknowledge flags")
    code = reader.u8("the return code")
    if flags & 0xFE or (level is ProtocolLevel.MQTT_3_1 and flags):
        raise MalformedPacket("CONNACK reserved flags set", ref="§3.2.2.1")
    session_present = bool(flags & 0x01)
    if level is _V5:
        _check_reason(PacketType.CONNACK, code)
        props = read_properties(reader, PacketType.CONNACK)
    else:
        if code > 5:
            raise MalformedPacket(f"CONNACK return code {code} is reserved", ref="§3.2.2.3")
        props = NO_PROPERTIES
    if session_present and code:
        raise MalformedPacket("session present on a refused connection", ref="MQTT-3.2.2-4")
    return ConnAck(session_present, code, props)


def _decode_ack(ptype: PacketType) -> Callable[[wire.Reader, ProtocolLevel], Packet]:
    cls = _ACK_TYPES[ptype]

    def decode(reader: wire.Reader, level: ProtocolLevel) -> Packet:
        packet_id = _packet_id(reader)
        if level is not _V5 or not reader.remaining():
            return cls(packet_id)
        code = _check_reason(ptype, reader.u8("the reason code"))
        props = read_properties(reader, ptype) if reader.remaining() else NO_PROPERTIES
        return cls(packet_id, code, props)

    return decode


def _decode_subscribe(reader: wire.Reader, level: ProtocolLevel) -> Subscribe:
    packet_id = _packet_id(reader)
    props = read_properties(reader, PacketType.SUBSCRIBE) if level is _V5 else NO_PROPERTIES
    subscriptions = []
    while reader.remaining():
        topic_filter = reader.string("a topic filter")
        options = reader.u8("the subscription options")
        qos = options & 0x03
        if qos == 3:
            if level is _V5:  # 3.8.3.1; 5.0's MQTT-3.8.3-4 is about No Local
                raise ProtocolError("SUBSCRIBE requests Maximum QoS 3", ref="§3.8.3.1")
            raise MalformedPacket("SUBSCRIBE requests QoS 3", ref="MQTT-3.8.3-4")
        if level is _V5:
            if options & 0xC0:
                raise MalformedPacket("subscription options reserved bits set", ref="MQTT-3.8.3-5")
            retain_handling = (options >> 4) & 0x03
            if retain_handling == 3:
                raise ProtocolError("retain handling 3", ref="§3.8.3.1")
            no_local = bool(options & 0x04)
            if no_local and topic_filter.startswith("$share/"):
                raise ProtocolError("no local on a shared subscription", ref="MQTT-3.8.3-4")
            validate_topic_filter(topic_filter)
            validate_shared_filter(topic_filter)
            subscriptions.append(Subscription(topic_filter, _QOS[qos], no_local,
                                              bool(options & 0x08), retain_handling))
        else:
            if options & 0xFC:
                raise MalformedPacket("requested QoS byte reserved bits set", ref="MQTT-3.8.3-4")
            validate_topic_filter(topic_filter)
            subscriptions.append(Subscription(topic_filter, _QOS[qos]))
    if not subscriptions:
        raise ProtocolError("SUBSCRIBE without a topic filter", ref="MQTT-3.8.3-3")
    return Subscribe(packet_id, tuple(subscriptions), props)


def _decode_suback(reader: wire.Reader, level: ProtocolLevel) -> SubAck:
    packet_id = _packet_id(reader)
    props = read_properties(reader, PacketType.SUBACK) if level is _V5 else NO_PROPERTIES
    codes = tuple(reader.rest())
    if not codes:
        raise MalformedPacket("SUBACK without a return code", ref="§3.9.3")
    for code in codes:
        if level is _V5:
            _check_reason(PacketType.SUBACK, code)
        elif code not in (0, 1, 2, 0x80):
            raise MalformedPacket(
                f"SUBACK return code 0x{code:02X} is reserved", ref="MQTT-3.9.3-2"
            )
    return SubAck(packet_id, codes, props)


def _decode_unsubscribe(reader: wire.Reader, level: ProtocolLevel) -> Unsubscribe:
    packet_id = _packet_id(reader)
    props = read_properties(reader, PacketType.UNSUBSCRIBE) if level is _V5 else NO_PROPERTIES
    filters = []
    while reader.remaining():
        topic_filter = reader.string("a topic filter")
        validate_topic_filter(topic_filter)
        if level is _V5:
            validate_shared_filter(topic_filter)
        filters.append(topic_filter)
    if not filters:
        raise ProtocolError("UNSUBSCRIBE without a topic filter", ref="MQTT-3.10.3-2")
    return Unsubscribe(packet_id, tuple(filters), props)


def _decode_unsuback(reader: wire.Reader, level: ProtocolLevel) -> UnsubAck:
    packet_id = _packet_id(reader)
    if level is not _V5:
        return UnsubAck(packet_id)
    props = read_properties(reader, PacketType.UNSUBACK)
    codes = tuple(reader.rest())
    if not codes:
        raise MalformedPacket("UNSUBACK without a reason code", ref="§3.11.3")
    for code in codes:
        _check_reason(PacketType.UNSUBACK, code)
    return UnsubAck(packet_id, codes, props)


def _decode_empty(cls: type[PingReq | PingResp]) -> Callable[[wire.Reader, ProtocolLevel], Packet]:
    def decode(reader: wire.Reader, level: ProtocolLevel) -> Packet:
        return cls()

    return decode


def _decode_reason_only(
    ptype: PacketType, cls: type[Disconnect | Auth]
) -> Callable[[wire.Reader, ProtocolLevel], Packet]:
    def decode(reader: wire.Reader, level: ProtocolLevel) -> Packet:
        if level is not _V5:
            if ptype is PacketType.AUTH:
                raise MalformedPacket("AUTH is reserved below MQTT 5.0", ref="§2.2.1")
            return cls()
        if not reader.remaining():
            return cls()
        code = _check_reason(ptype, reader.u8("the reason code"))
        props = read_properties(reader, ptype) if reader.remaining() else NO_PROPERTIES
        return cls(code, props)

    return decode


_DECODERS: dict[PacketType, Callable[[wire.Reader, ProtocolLevel], Any]] = {
    PacketType.CONNACK: _decode_connack,
    PacketType.PUBACK: _decode_ack(PacketType.PUBACK),
    PacketType.PUBREC: _decode_ack(PacketType.PUBREC),
    PacketType.PUBREL: _decode_ack(PacketType.PUBREL),
    PacketType.PUBCOMP: _decode_ack(PacketType.PUBCOMP),
    PacketType.SUBSCRIBE: _decode_subscribe,
    PacketType.SUBACK: _decode_suback,
    PacketType.UNSUBSCRIBE: _decode_unsubscribe,
    PacketType.UNSUBACK: _decode_unsuback,
    PacketType.PINGREQ: _decode_empty(PingReq),
    PacketType.PINGRESP: _decode_empty(PingResp),
    PacketType.DISCONNECT: _decode_reason_only(PacketType.DISCONNECT, Disconnect),
    PacketType.AUTH: _decode_reason_only(PacketType.AUTH, Auth),
}


def decode_all(
    data: bytes, *, role: Role | None = None, protocol_level: ProtocolLevel | None = None
) -> list[Packet]:
    """Decode a complete byte string; refuse a trailing partial packet."""
    decoder = Decoder(role=role, protocol_level=protocol_level)
    packets = decoder.feed(data)
    if decoder.buffered:
        raise MalformedPacket(f"{decoder.buffered} bytes of an incomplete packet", ref="§2.2.3")
    return packets

__all__ = ["DEFAULT_MAX_PACKET_SIZE", "Decoder", "Role", "decode_all", "encode", "encode_publish"]
