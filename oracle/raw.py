"""Byte-level packet building for the inputs the codec refuses to encode.

The shared encoder validates everything it writes (a good thing for the
product); the oracle must also send what no correct client sends: wrong flags,
wildcards in topic names, ill-formed UTF-8, truncated packets. These helpers
write such bytes directly, in the layout of the specification's figures.
"""

from __future__ import annotations

import struct


def u16(value: int) -> bytes:
    return struct.pack("!H", value)


def varint(value: int) -> bytes:
    """The Remaining Length encoding (2.2.3), minimal."""
    out = bytearray()
    while True:
        digit, value = value % 128, value // 128
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def string(data: bytes | str) -> bytes:
    """A length-prefixed string, from raw bytes when they must be ill-formed."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return u16(len(raw)) + raw


def frame(first: int, body: bytes) -> bytes:
    """Fixed header (type and flags byte, Remaining Length) plus ``body``."""
    return bytes((first,)) + varint(len(body)) + body


def connect(
    client_id: bytes | str,
    *,
    flags: int = 0x02,
    keep_alive: int = 60,
    name: bytes = b"MQTT",
    level: int = 4,
    tail: bytes = b"",
) -> bytes:
    """A CONNECT with explicit connect flags; ``tail`` follows the client id."""
    body = string(name) + bytes((level, flags)) + u16(keep_alive) + string(client_id) + tail
    return frame(0x10, body)


def publish(topic: bytes | str, payload: bytes = b"", *, flags: int = 0,
            packet_id: int | None = None) -> bytes:
    """A PUBLISH with explicit flags (DUP, QoS bits, RETAIN in the low nibble)."""
    body = string(topic) + (u16(packet_id) if packet_id is not None else b"") + payload
    return frame(0x30 | flags, body)


def subscribe(packet_id: int, *pairs: tuple[bytes | str, int], flags: int = 0x02) -> bytes:
    """A SUBSCRIBE whose requested-QoS bytes are written as given."""
    body = u16(packet_id) + b"".join(string(f) + bytes((options,)) for f, options in pairs)
    return frame(0x80 | flags, body)


def unsubscribe(packet_id: int, *filters: bytes | str, flags: int = 0x02) -> bytes:
    body = u16(packet_id) + b"".join(string(f) for f in filters)
    return frame(0xA0 | flags, body)


def properties(*items: bytes) -> bytes:
    """A 5.0 property block (2.2.2): the Property Length, then the properties as written.

    Each item is an identifier byte and its value, so that a check can write what no
    encoder would: a property twice, a value the spec calls a Protocol Error, a
    property the packet type does not take.
    """
    body = b"".join(items)
    return varint(len(body)) + body


def connect5(client_id: bytes | str, props: bytes = b"\x00", *, flags: int = 0x02,
             keep_alive: int = 60) -> bytes:
    """A 5.0 CONNECT (protocol level 5) with a property block written as given."""
    body = string(b"MQTT") + bytes((5, flags)) + u16(keep_alive) + props + string(client_id)
    return frame(0x10, body)


def publish5(topic: bytes | str, payload: bytes = b"", *, qos: int = 0,
             packet_id: int | None = None, props: bytes = b"\x00") -> bytes:
    """A 5.0 PUBLISH whose property block is written as given (a Topic Alias of 0...)."""
    pid = u16(packet_id) if packet_id is not None else b""
    return frame(0x30 | (qos << 1), string(topic) + pid + props + payload)
