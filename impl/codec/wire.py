"""MQTT's data representations (section 1.5): integers, strings, binary data.

``Reader`` walks one packet body and raises ``MalformedPacket`` the moment a
field runs past the end, so a truncated packet can never read into the next
one. The writers return ``bytes`` for the encoder to join.
"""

from __future__ import annotations

import struct

from mqttref.impl.codec.errors import EncodeError, MalformedPacket

MAX_VARINT = 268_435_455
"""The largest Variable Byte Integer / Remaining Length (1.5.5, 2.2.3)."""

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def check_string(value: str, what: str = "string") -> None:
    """Reject what a UTF-8 encoded string may not hold.

    Python's strict UTF-8 codec already refuses ill-formed bytes and encoded
    surrogates [MQTT-1.5.3-1]; U+0000 is refused here [MQTT-1.5.3-2]. ``what`` names
    the string in the error, as ``Reader.string`` names an ill-formed one.
    """
    if "\x00" in value:
        raise MalformedPacket(f"{what} contains U+0000", ref="MQTT-1.5.3-2")


class Reader:
    """A cursor over one packet body: ``data[pos:end]``."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def _need(self, n: int, what: str) -> int:
        pos = self.pos
        if pos + n > self.end:
            raise MalformedPacket(f"packet ends inside {what}", ref="§2.2.3")
        self.pos = pos + n
        return pos

    def u8(self, what: str = "a byte") -> int:
        pos = self._need(1, what)
        return self.data[pos]

    def u16(self, what: str = "a two byte integer") -> int:
        pos = self._need(2, what)
        value: int = _U16.unpack_from(self.data, pos)[0]
        return value

    def u32(self, what: str = "a four byte integer") -> int:
        pos = self._need(4, what)
        value: int = _U32.unpack_from(self.data, pos)[0]
        return value

    def varint(self, what: str = "a variable byte integer") -> int:
        value = 0
        shift = 0
        for count in range(4):
            byte = self.u8(what)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if count and byte == 0:
                    raise MalformedPacket(
                        f"{what} not encoded in the minimum number of bytes", ref="MQTT-1.5.5-1"
                    )
                return value
            shift += 7
        raise MalformedPacket(f"{what} longer than four bytes", ref="§1.5.5")

    def binary(self, what: str = "binary data") -> bytes:
        length = self.u16(what)
        pos = self._need(length, what)
        return self.data[pos : pos + length]

    def string(self, what: str = "a UTF-8 string") -> str:
        raw = self.binary(what)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPacket(f"{what} is not well-formed UTF-8", ref="MQTT-1.5.3-1") from exc
        check_string(value, what)
        return value

    def rest(self) -> bytes:
        pos, self.pos = self.pos, self.end
        return self.data[pos : self.end]

    def done(self, what: str) -> None:
        """Refuse bytes after the last field: the Remaining Length lied."""
        if self.pos != self.end:
            raise MalformedPacket(
                f"{self.end - self.pos} unexpected bytes after the fields of {what}", ref="§2.2.3"
            )


def varint(value: int) -> bytes:
    if not 0 <= value <= MAX_VARINT:
        raise EncodeError(f"{value} does not fit a variable byte integer")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def u16(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise EncodeError(f"{value} does not fit a two byte integer")
    return _U16.pack(value)


def u32(value: int) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise EncodeError(f"{value} does not fit a four byte integer")
    return _U32.pack(value)


def binary(value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise EncodeError(f"binary data of {len(value)} bytes is longer than 65535")
    return _U16.pack(len(value)) + value


def string(value: str) -> bytes:
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise EncodeError(f"{value!r} is not encodable as UTF-8") from exc
    if "\x00" in value:
        raise EncodeError("a UTF-8 string may not contain U+0000 [MQTT-1.5.3-2]")
    if len(raw) > 0xFFFF:
        raise EncodeError(f"string of {len(raw)} bytes is longer than 65535")
    return _U16.pack(len(raw)) + raw
