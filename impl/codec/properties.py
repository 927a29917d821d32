"""MQTT 5.0 properties (2.2.2): one table says each property's identifier,
type, the packets it may stand on and the values it may take.

The table is the single source for decoding, encoding and validation, so a
property allowed on a packet in one direction is allowed in the other.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

import attrs

from mqttref.impl.codec import wire
from mqttref.impl.codec.errors import EncodeError, MalformedPacket, ProtocolError, ReasonCode
from mqttref.impl.codec.packets import NO_PROPERTIES, PacketType, Properties

WILL = "WILL"
"""Pseudo packet kind for the Will Properties of CONNECT (3.1.3.2)."""

Kind = PacketType | str


class PropType(Enum):
    BYTE = "byte"
    U16 = "two byte integer"
    U32 = "four byte integer"
    VARINT = "variable byte integer"
    STRING = "UTF-8 string"
    BINARY = "binary data"
    PAIR = "UTF-8 string pair"


_P = PacketType
_ALL: frozenset[Kind] = frozenset(
    {
        _P.CONNECT, _P.CONNACK, _P.PUBLISH, WILL, _P.PUBACK, _P.PUBREC, _P.PUBREL,
        _P.PUBCOMP, _P.SUBSCRIBE, _P.SUBACK, _P.UNSUBSCRIBE, _P.UNSUBACK,
        _P.DISCONNECT, _P.AUTH,
    }
)  # fmt: skip
_ACKS: frozenset[Kind] = frozenset(
    {_P.CONNACK, _P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP, _P.SUBACK, _P.UNSUBACK,
     _P.DISCONNECT, _P.AUTH}
)  # fmt: skip


def _boolean(value: int) -> bool:
    return value in (0, 1)


def _nonzero(value: int) -> bool:
    return value != 0


def _subscription_id(value: int) -> bool:
    return 1 <= value <= wire.MAX_VARINT


@attrs.frozen
class PropertySpec:
    ident: int
    name: str
    type: PropType
    allowed_on: frozenset[Kind]
    repeatable: bool = False
    valid: Callable[[int], bool] | None = None


SPECS: tuple[PropertySpec, ...] = (
    PropertySpec(0x01, "payload_format_indicator", PropType.BYTE,
                 frozenset({_P.PUBLISH, WILL}), valid=_boolean),
    PropertySpec(0x02, "message_expiry_interval", PropType.U32, frozenset({_P.PUBLISH, WILL})),
    PropertySpec(0x03, "content_type", PropType.STRING, frozenset({_P.PUBLISH, WILL})),
    PropertySpec(0x08, "response_topic", PropType.STRING, frozenset({_P.PUBLISH, WILL})),
    PropertySpec(0x09, "correlation_data", PropType.BINARY, frozenset({_P.PUBLISH, WILL})),
    PropertySpec(0x0B, "subscription_identifiers", PropType.VARINT,
                 frozenset({_P.PUBLISH, _P.SUBSCRIBE}), repeatable=True, valid=_subscription_id),
    PropertySpec(0x11, "session_expiry_interval", PropType.U32,
                 frozenset({_P.CONNECT, _P.CONNACK, _P.DISCONNECT})),
    PropertySpec(0x12, "assigned_client_identifier", PropType.STRING, frozenset({_P.CONNACK})),
    PropertySpec(0x13, "server_keep_alive", PropType.U16, frozenset({_P.CONNACK})),
    PropertySpec(0x15, "authentication_method", PropType.STRING,
                 frozenset({_P.CONNECT, _P.CONNACK, _P.AUTH})),
    PropertySpec(0x16, "authentication_data", PropType.BINARY,
                 frozenset({_P.CONNECT, _P.CONNACK, _P.AUTH})),
    PropertySpec(0x17, "request_problem_information", PropType.BYTE,
                 frozenset({_P.CONNECT}), valid=_boolean),
    PropertySpec(0x18, "will_delay_interval", PropType.U32, frozenset({WILL})),
    PropertySpec(0x19, "request_response_information", PropType.BYTE,
                 frozenset({_P.CONNECT}), valid=_boolean),
    PropertySpec(0x1A, "response_information", PropType.STRING, frozenset({_P.CONNACK})),
    PropertySpec(0x1C, "server_reference", PropType.STRING,
                 frozenset({_P.CONNACK, _P.DISCONNECT})),
    PropertySpec(0x1F, "reason_string", PropType.STRING, _ACKS),
    PropertySpec(0x21, "receive_maximum", PropType.U16,
                 frozenset({_P.CONNECT, _P.CONNACK}), valid=_nonzero),
    PropertySpec(0x22, "topic_alias_maximum", PropType.U16, frozenset({_P.CONNECT, _P.CONNACK})),
    PropertySpec(0x23, "topic_alias", PropType.U16, frozenset({_P.PUBLISH}), valid=_nonzero),
    PropertySpec(0x24, "maximum_qos", PropType.BYTE, frozenset({_P.CONNACK}), valid=_boolean),
    PropertySpec(0x25, "retain_available", PropType.BYTE, frozenset({_P.CONNACK}),
                 valid=_boolean),
    PropertySpec(0x26, "user_properties", PropType.PAIR, _ALL, repeatable=True),
    PropertySpec(0x27, "maximum_packet_size", PropType.U32,
                 frozenset({_P.CONNECT, _P.CONNACK}), valid=_nonzero),
    PropertySpec(0x28, "wildcard_subscription_available", PropType.BYTE,
                 frozenset({_P.CONNACK}), valid=_boolean),
    PropertySpec(0x29, "subscription_identifier_available", PropType.BYTE,
                 frozenset({_P.CONNACK}), valid=_boolean),
    PropertySpec(0x2A, "shared_subscription_available", PropType.BYTE,
                 frozenset({_P.CONNACK}), valid=_boolean),
)  # fmt: skip

BY_ID: dict[int, PropertySpec] = {spec.ident: spec for spec in SPECS}

def _byte(value: int) -> bytes:
    if not 0 <= value <= 0xFF:
        raise EncodeError(f"{value} does not fit a byte")
    return bytes((value,))


_READERS: dict[PropType, Callable[[wire.Reader, str], Any]] = {
    PropType.BYTE: lambda r, what: r.u8(what),
    PropType.U16: lambda r, what: r.u16(what),
    PropType.U32: lambda r, what: r.u32(what),
    PropType.VARINT: lambda r, what: r.varint(what),
    PropType.STRING: lambda r, what: r.string(what),
    PropType.BINARY: lambda r, what: r.binary(what),
    PropType.PAIR: lambda r, _what: (r.string("a user property name"),
                                     r.string("a user property value")),
}
"""Each reader takes what to call the value in an error (the property's name)."""

_WRITERS: dict[PropType, Callable[[Any], bytes]] = {
    PropType.BYTE: _byte,
    PropType.U16: wire.u16,
    PropType.U32: wire.u32,
    PropType.VARINT: wire.varint,
    PropType.STRING: wire.string,
    PropType.BINARY: wire.binary,
    PropType.PAIR: lambda v: wire.string(v[0]) + wire.string(v[1]),
}


def _kind_name(kind: Kind) -> str:
    return kind if isinstance(kind, str) else kind.name


def read_properties(reader: wire.Reader, kind: Kind) -> Properties:
    """Read a property block; refuse duplicates, strangers and bad values (2.2.2.2)."""
    length = reader.varint("the property length")
    if length == 0:
        return NO_PROPERTIES
    if length > reader.remaining():
        raise MalformedPacket("property length runs past the packet", ref="§2.2.2.1")
    end = reader.pos + length
    block = wire.Reader(reader.data, reader.pos, end)
    reader.pos = end
    values: dict[str, Any] = {}
    while block.remaining():
        ident = block.varint("a property identifier")
        spec = BY_ID.get(ident)
        if spec is None:
            raise MalformedPacket(f"unknown property identifier 0x{ident:02X}", ref="§2.2.2.2")
        if kind not in spec.allowed_on:
            # "An Identifier which is not valid for its packet type ... is a Malformed Packet"
            raise MalformedPacket(
                f"property {spec.name} is not allowed on {_kind_name(kind)}", ref="§2.2.2.2"
            )
        try:
            value = _READERS[spec.type](block, f"the {spec.name} property")
        except ProtocolError as exc:
            # The property's own rule may be broken too (the Response Topic MUST be a
            # UTF-8 Encoded String [MQTT-3.3.2-13]): the error says which property.
            raise type(exc)(exc.detail, ref=exc.ref, reason_code=exc.reason_code,
                            field=spec.name) from exc
        if spec.valid is not None and not spec.valid(value):
            if spec.name == "topic_alias":  # 0 is never an alias: Topic Alias invalid
                raise ProtocolError("a Topic Alias of 0", ref="MQTT-3.3.2-8",
                                    reason_code=ReasonCode.TOPIC_ALIAS_INVALID)
            raise ProtocolError(f"property {spec.name} has the invalid value {value}",
                                ref="§3 property definitions")
        if spec.repeatable:
            if spec.name == "subscription_identifiers" and kind is _P.SUBSCRIBE and (
                spec.name in values
            ):
                raise ProtocolError("SUBSCRIBE carries more than one subscription identifier",
                                    ref="§3.8.2.1.2")
            values.setdefault(spec.name, []).append(value)
        elif spec.name in values:
            raise ProtocolError(f"property {spec.name} appears twice", ref="§2.2.2.2")
        else:
            values[spec.name] = value
    for name in ("subscription_identifiers", "user_properties"):
        if name in values:
            values[name] = tuple(values[name])
    response_topic = values.get("response_topic")
    if response_topic is not None and ("+" in response_topic or "#" in response_topic):
        raise ProtocolError("the response topic contains a wildcard", ref="MQTT-3.3.2-14")
    return Properties(**values)


def encode_properties(props: Properties, kind: Kind) -> bytes:
    """The property block: length, then properties in identifier order."""
    if props is NO_PROPERTIES or props == NO_PROPERTIES:
        return b"\x00"
    if props.response_topic is not None and (
        "+" in props.response_topic or "#" in props.response_topic
    ):
        raise EncodeError("the response topic contains a wildcard [MQTT-3.3.2-14]")
    parts: list[bytes] = []
    for spec in SPECS:
        value = getattr(props, spec.name)
        if value is None or (spec.repeatable and not value):
            continue
        if kind not in spec.allowed_on:
            raise EncodeError(f"property {spec.name} is not allowed on {_kind_name(kind)}")
        for item in value if spec.repeatable else (value,):
            if spec.valid is not None and not spec.valid(item):
                raise EncodeError(f"property {spec.name} has the invalid value {item}")
            parts.append(wire.varint(spec.ident))
            parts.append(_WRITERS[spec.type](item))
    body = b"".join(parts)
    return wire.varint(len(body)) + body
