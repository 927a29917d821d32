"""Hand-built MQTT bytes for the malformed-input tests.

These helpers are written independently of ``mqttref.impl.codec.wire`` so that a
test that builds a deliberately broken packet does not go through the code
under test.
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.codec import Decoder, Role
from mqttref.impl.codec.errors import ProtocolError, ReasonCode
from mqttref.impl.codec.packets import Packet, ProtocolLevel


def vbi(value: int) -> bytes:
    """Variable Byte Integer, minimal (1.5.5)."""
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def frame(first: int, body: bytes) -> bytes:
    return bytes([first]) + vbi(len(body)) + body


def raw_string(raw: bytes) -> bytes:
    """A length-prefixed field holding exactly ``raw`` (possibly not UTF-8)."""
    return len(raw).to_bytes(2, "big") + raw


def string(text: str) -> bytes:
    return raw_string(text.encode("utf-8"))


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def props(*items: bytes) -> bytes:
    """A property block from already-encoded ``identifier + value`` items."""
    body = b"".join(items)
    return vbi(len(body)) + body


def connect_body(
    *,
    name: bytes = b"MQTT",
    level: int = 4,
    flags: int = 0x02,
    keep_alive: int = 60,
    properties: bytes | None = None,
    payload: bytes | None = None,
) -> bytes:
    """A CONNECT variable header and payload; the payload defaults to client id "c"."""
    if properties is None:
        properties = b"\x00" if level == 5 else b""
    if payload is None:
        payload = string("c")
    return raw_string(name) + bytes([level, flags]) + u16(keep_alive) + properties + payload


def connect(**fields: object) -> bytes:
    return frame(0x10, connect_body(**fields))  # type: ignore[arg-type]


def rejects(
    data: bytes,
    error: type[ProtocolError],
    reason: ReasonCode,
    ref: str,
    *,
    level: ProtocolLevel | None = None,
    role: Role | None = None,
) -> ProtocolError:
    """Feed ``data`` whole; assert the exact error class, reason code and statement id."""
    decoder = Decoder(role=role, protocol_level=level)
    with pytest.raises(ProtocolError) as info:
        decoder.feed(data)
    exc = info.value
    assert type(exc) is error, f"{type(exc).__name__}: {exc}"
    assert exc.reason_code is reason, str(exc)
    assert exc.ref == ref, str(exc)
    return exc


def accepts(data: bytes, *, level: ProtocolLevel | None = None) -> list[Packet]:
    decoder = Decoder(protocol_level=level)
    packets = decoder.feed(data)
    assert decoder.buffered == 0
    return packets
