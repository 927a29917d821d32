"""Packets to bytes. The inverse of the decoder in ``codec.py``.

The encoder refuses values the wire cannot carry at the chosen level (a
packet id on QoS 0, properties below 5.0, a wildcard in a topic name) with
``EncodeError``, so that nothing invalid ever leaves mqttref.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqttref.impl.codec import wire
from mqttref.impl.codec.errors import EncodeError, MQTTError
from mqttref.impl.codec.packets import (
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
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from mqttref.impl.codec.properties import WILL, encode_properties
from mqttref.impl.codec.reasons import VALID_REASONS
from mqttref.impl.codec.topicnames import (
    validate_shared_filter,
    validate_topic_filter,
    validate_topic_name,
)

_V5 = ProtocolLevel.MQTT_5


def _frame(first: int, body: bytes) -> bytes:
    return bytes((first,)) + wire.varint(len(body)) + body


def _no_props_below_5(packet: Any, level: ProtocolLevel) -> None:
    if level is not _V5 and not packet.properties.is_empty():
        raise EncodeError(f"{type(packet).__name__} has properties, which need MQTT 5.0")


def _props(packet: Any, kind: PacketType, level: ProtocolLevel) -> bytes:
    if level is _V5:
        return encode_properties(packet.properties, kind)
    _no_props_below_5(packet, level)
    return b""


def _check_packet_id(packet_id: int | None) -> int:
    if packet_id is None or not 1 <= packet_id <= 0xFFFF:
        raise EncodeError(f"packet identifier {packet_id} is not in 1..65535 [MQTT-2.3.1-1]")
    return packet_id


def _reason(kind: PacketType, code: int, level: ProtocolLevel) -> int:
    if level is not _V5:
        if code:
            raise EncodeError(f"{kind.name} reason code 0x{code:02X} needs MQTT 5.0")
    elif code not in VALID_REASONS[kind]:
        raise EncodeError(f"reason code 0x{code:02X} is not valid on {kind.name}")
    return code


def encode_publish(packet: Publish, level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1) -> bytes:
    if type(level) is not ProtocolLevel:
        level = ProtocolLevel(level)
    qos = packet.qos
    packet_id = packet.packet_id
    if qos:
        _check_packet_id(packet_id)
    elif packet_id is not None:
        raise EncodeError("a QoS 0 PUBLISH has no packet identifier [MQTT-2.3.1-5]")
    elif packet.dup:
        raise EncodeError("DUP must be 0 on a QoS 0 PUBLISH [MQTT-3.3.1-2]")
    if qos not in (0, 1, 2):
        raise EncodeError(f"QoS {qos} [MQTT-3.3.1-4]")
    topic = packet.topic
    props = b""
    if level is _V5:
        props = encode_properties(packet.properties, PacketType.PUBLISH)
        if topic or packet.properties.topic_alias is None:
            _valid_name(topic)
    else:
        _no_props_below_5(packet, level)
        _valid_name(topic)
    head = wire.string(topic)
    if qos:
        head += wire.u16(packet_id)  # type: ignore[arg-type]
    body_len = len(head) + len(props) + len(packet.payload)
    first = 0x30 | (packet.dup << 3) | (qos << 1) | packet.retain
    return b"".join((bytes((first,)), wire.varint(body_len), head, props, packet.payload))


def _valid_name(topic: str) -> None:
    try:
        validate_topic_name(topic)
    except MQTTError as exc:
        raise EncodeError(str(exc)) from exc


def _valid_filter(topic_filter: str, level: ProtocolLevel) -> None:
    try:
        validate_topic_filter(topic_filter)
        if level is _V5:
            validate_shared_filter(topic_filter)
    except MQTTError as exc:
        raise EncodeError(str(exc)) from exc


def _connect(packet: Connect, level: ProtocolLevel) -> bytes:
    level = packet.protocol_level  # CONNECT states its own level
    will = packet.will
    flags = 0x02 if packet.clean_session else 0
    if will is not None:
        if will.qos not in (0, 1, 2):
            raise EncodeError(f"Will QoS {will.qos} [MQTT-3.1.2-14]")
        flags |= 0x04 | (int(will.qos) << 3) | (0x20 if will.retain else 0)
    if packet.username is not None:
        flags |= 0x80
    if packet.password is not None:
        if packet.username is None and level is not _V5:
            raise EncodeError("a password needs a user name below MQTT 5.0 [MQTT-3.1.2-22]")
        flags |= 0x40
    parts = [
        wire.string(level.protocol_name),
        bytes((int(level), flags)),
        wire.u16(packet.keep_alive),
        _props(packet, PacketType.CONNECT, level),
        wire.string(packet.client_id),
    ]
    if will is not None:
        if level is _V5:
            parts.append(encode_properties(will.properties, WILL))
        elif not will.properties.is_empty():
            raise EncodeError("will properties need MQTT 5.0")
        _valid_name(will.topic)
        parts.append(wire.string(will.topic))
        parts.append(wire.binary(will.payload))
    if packet.username is not None:
        parts.append(wire.string(packet.username))
    if packet.password is not None:
        parts.append(wire.binary(packet.password))
    return _frame(0x10, b"".join(parts))


def _connack(packet: ConnAck, level: ProtocolLevel) -> bytes:
    if level is ProtocolLevel.MQTT_3_1 and packet.session_present:
        raise EncodeError("MQTT 3.1 has no session present flag")
    if level is _V5:
        _reason(PacketType.CONNACK, packet.return_code, level)
    elif not 0 <= packet.return_code <= 5:
        raise EncodeError(f"CONNACK return code {packet.return_code} is reserved")
    if packet.session_present and packet.return_code:
        raise EncodeError("session present on a refused connection [MQTT-3.2.2-4]")
    body = bytes((int(packet.session_present), packet.return_code))
    return _frame(0x20, body + _props(packet, PacketType.CONNACK, level))


def _ack(first: int, kind: PacketType) -> Callable[[Any, ProtocolLevel], bytes]:
    def encode(packet: PubAck | PubRec | PubRel | PubComp, level: ProtocolLevel) -> bytes:
        body = wire.u16(_check_packet_id(packet.packet_id))
        code = _reason(kind, packet.reason_code, level)
        if level is _V5 and (code or not packet.properties.is_empty()):
            body += bytes((code,))
            if not packet.properties.is_empty():
                body += encode_properties(packet.properties, kind)
        elif level is not _V5:
            _no_props_below_5(packet, level)
        return _frame(first, body)

    return encode


def _subscribe(packet: Subscribe, level: ProtocolLevel) -> bytes:
    if not packet.subscriptions:
        raise EncodeError("SUBSCRIBE needs a topic filter [MQTT-3.8.3-3]")
    if len(packet.properties.subscription_identifiers) > 1:
        raise EncodeError("SUBSCRIBE carries at most one subscription identifier (3.8.2.1.2)")
    parts = [wire.u16(_check_packet_id(packet.packet_id)),
             _props(packet, PacketType.SUBSCRIBE, level)]
    for sub in packet.subscriptions:
        _valid_filter(sub.topic_filter, level)
        if sub.qos not in (0, 1, 2):
            raise EncodeError(f"QoS {sub.qos}")
        options = int(sub.qos)
        if level is _V5:
            if not 0 <= sub.retain_handling <= 2:
                raise EncodeError(f"retain handling {sub.retain_handling}")
            if sub.no_local and sub.topic_filter.startswith("$share/"):
                raise EncodeError("no local on a shared subscription [MQTT-3.8.3-4]")
            options |= (sub.no_local << 2) | (sub.retain_as_published << 3)
            options |= sub.retain_handling << 4
        elif sub.no_local or sub.retain_as_published or sub.retain_handling:
            raise EncodeError("subscription options need MQTT 5.0")
        parts.append(wire.string(sub.topic_filter))
        parts.append(bytes((options,)))
    return _frame(0x82, b"".join(parts))


def _suback(packet: SubAck, level: ProtocolLevel) -> bytes:
    if not packet.return_codes:
        raise EncodeError("SUBACK needs a return code")
    for code in packet.return_codes:
        if level is _V5:
            _reason(PacketType.SUBACK, code, level)
        elif code not in (0, 1, 2, 0x80):
            raise EncodeError(f"SUBACK return code 0x{code:02X}")
    body = (wire.u16(_check_packet_id(packet.packet_id))
            + _props(packet, PacketType.SUBACK, level) + bytes(packet.return_codes))
    return _frame(0x90, body)


def _unsubscribe(packet: Unsubscribe, level: ProtocolLevel) -> bytes:
    if not packet.topic_filters:
        raise EncodeError("UNSUBSCRIBE needs a topic filter [MQTT-3.10.3-2]")
    parts = [wire.u16(_check_packet_id(packet.packet_id)),
             _props(packet, PacketType.UNSUBSCRIBE, level)]
    for topic_filter in packet.topic_filters:
        _valid_filter(topic_filter, level)
        parts.append(wire.string(topic_filter))
    return _frame(0xA2, b"".join(parts))


def _unsuback(packet: UnsubAck, level: ProtocolLevel) -> bytes:
    body = wire.u16(_check_packet_id(packet.packet_id))
    if level is _V5:
        if not packet.reason_codes:
            raise EncodeError("a 5.0 UNSUBACK needs a reason code per filter")
        for code in packet.reason_codes:
            _reason(PacketType.UNSUBACK, code, level)
        body += encode_properties(packet.properties, PacketType.UNSUBACK)
        body += bytes(packet.reason_codes)
    elif packet.reason_codes:
        raise EncodeError("UNSUBACK reason codes need MQTT 5.0")
    else:
        _no_props_below_5(packet, level)
    return _frame(0xB0, body)


def _reason_only(first: int, kind: PacketType) -> Callable[[Any, ProtocolLevel], bytes]:
    def encode(packet: Disconnect | Auth, level: ProtocolLevel) -> bytes:
        if level is not _V5:
            if kind is PacketType.AUTH:
                raise EncodeError("AUTH needs MQTT 5.0")
            _reason(kind, packet.reason_code, level)
            _no_props_below_5(packet, level)
            return bytes((first, 0))
        code = _reason(kind, packet.reason_code, level)
        if not code and packet.properties.is_empty():
            return bytes((first, 0))
        body = bytes((code,))
        if not packet.properties.is_empty():
            body += encode_properties(packet.properties, kind)
        return _frame(first, body)

    return encode


_ENCODERS: dict[type, Callable[[Any, ProtocolLevel], bytes]] = {
    Connect: _connect,
    ConnAck: _connack,
    Publish: encode_publish,
    PubAck: _ack(0x40, PacketType.PUBACK),
    PubRec: _ack(0x50, PacketType.PUBREC),
    PubRel: _ack(0x62, PacketType.PUBREL),
    PubComp: _ack(0x70, PacketType.PUBCOMP),
    Subscribe: _subscribe,
    SubAck: _suback,
    Unsubscribe: _unsubscribe,
    UnsubAck: _unsuback,
    PingReq: lambda packet, level: b"\xc0\x00",
    PingResp: lambda packet, level: b"\xd0\x00",
    Disconnect: _reason_only(0xE0, PacketType.DISCONNECT),
    Auth: _reason_only(0xF0, PacketType.AUTH),
}


def encode(packet: Packet, protocol_level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1) -> bytes:
    """The bytes of ``packet`` at ``protocol_level`` (CONNECT carries its own level)."""
    if type(protocol_level) is not ProtocolLevel:  # a plain 5 would fail every `is` test
        protocol_level = ProtocolLevel(protocol_level)
    return _ENCODERS[type(packet)](packet, protocol_level)


__all__ = ["encode", "encode_publish"]
