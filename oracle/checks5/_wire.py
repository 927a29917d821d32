"""The server's bytes as they came, for the 5.0 checks of the encoding itself.

The probe decodes with a strict codec, which is right for judging what a packet means
but hides how it was written: whether a Variable Byte Integer took more bytes than it
needed (1.5.5), whether reserved flag bits held the value Table 2-2 lists (2.1.3),
whether a Property Length was written when there were no properties (2.2.2.1). These
helpers read the frames ``Probe.frames`` keeps, and talk to a server whose answer no
5.0 decoder may read (a CONNECT of another protocol version).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import attrs

from mqttref.impl.codec.packets import ProtocolLevel
from mqttref.oracle import raw
from mqttref.oracle.connection import current, open_stream, with_credentials_raw
from mqttref.oracle.scenario import Context

FIXED_FLAGS = {2: 0x0, 4: 0x0, 5: 0x0, 6: 0x2, 7: 0x0, 9: 0x0, 11: 0x0, 13: 0x0, 14: 0x0,
               15: 0x0}
"""The reserved flag bits Table 2-2 lists for each packet a server sends, by packet type
(CONNACK, PUBACK, PUBREC, PUBREL 0010, PUBCOMP, SUBACK, UNSUBACK, PINGRESP, DISCONNECT,
AUTH); PUBLISH's bits are DUP, QoS and RETAIN."""

NAMES = {2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
         9: "SUBACK", 11: "UNSUBACK", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}


@attrs.frozen
class Frame:
    """One packet as written: its first byte, its Remaining Length and the bytes used for
    it, and its body."""

    first: int
    length: int
    length_bytes: int
    body: bytes

    @property
    def kind(self) -> int:
        return self.first >> 4

    @property
    def flags(self) -> int:
        return self.first & 0x0F

    @property
    def name(self) -> str:
        return NAMES.get(self.kind, f"type {self.kind}")

    @property
    def size(self) -> int:
        return 1 + self.length_bytes + self.length


def varint_at(data: bytes, pos: int) -> tuple[int, int] | None:
    """The Variable Byte Integer at ``pos``: (value, bytes used), or None when it does not
    end within four bytes or the data."""
    value = 0
    for count in range(4):
        if pos + count >= len(data):
            return None
        byte = data[pos + count]
        value |= (byte & 0x7F) << (7 * count)
        if not byte & 0x80:
            return value, count + 1
    return None


def minimal(value: int, used: int) -> bool:
    """Whether ``used`` bytes is the fewest that encode ``value`` (1.5.5)."""
    return used == len(raw.varint(value))


def parse(frame: bytes) -> Frame | None:
    """The frame's parts, or None when its fixed header cannot be read."""
    if len(frame) < 2:
        return None
    got = varint_at(frame, 1)
    if got is None:
        return None
    length, used = got
    return Frame(frame[0], length, used, frame[1 + used:1 + used + length])


@attrs.frozen
class Exchange:
    """What a raw connection saw: the frames, and whether the server closed it."""

    frames: tuple[bytes, ...]
    closed: bool


async def exchange(ctx: Context, name: str, data: bytes, note: str, *,
                   bound: float | None = None) -> Exchange:
    """Send ``data`` on a fresh connection and read until the server closes it or ``bound``
    (the reply bound) passes; the frames come back undecoded.

    For packets whose answer no 5.0 decoder reads: a server refusing a CONNECT of another
    protocol version may answer in that version's format.
    """
    limit = ctx.timing.reply_bound if bound is None else bound
    settings = current()
    reader, writer = await open_stream(ctx.host, ctx.port, ctx.timing.reply_bound, settings)
    ctx.trace.add(name, "..", f"{settings.describe_transport()} connected (raw)")
    sent = with_credentials_raw(data, ProtocolLevel.MQTT_5)
    ctx.trace.add(name, "->", note)
    buffer = b""
    closed = False
    try:
        writer.write(sent)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        deadline = time.monotonic() + limit
        while (left := deadline - time.monotonic()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                break
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            buffer += chunk
    finally:
        writer.transport.abort()
    frames = split(buffer)
    for frame in frames:
        ctx.trace.add(name, "<-", f"raw {frame[:24].hex(' ')}")
    ctx.trace.add(name, "<-", "connection closed by server" if closed
                  else f"still open after {limit:.1f}s")
    return Exchange(tuple(frames), closed)


def split(data: bytes) -> list[bytes]:
    """Whole frames in ``data``; a tail that is not a whole frame is returned as one."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        got = varint_at(data, pos + 1)
        if got is None or pos + 1 + got[1] + got[0] > len(data):
            out.append(data[pos:])
            break
        end = pos + 1 + got[1] + got[0]
        out.append(data[pos:end])
        pos = end
    return out


_PROPERTY_SIZES = {0x01: 1, 0x02: 4, 0x11: 4, 0x13: 2, 0x17: 1, 0x18: 4, 0x19: 1, 0x21: 2,
                   0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1}
"""Fixed-size property values by identifier (2.2.2.2)."""
_PROPERTY_STRINGS = {0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F}
"""Properties whose value is a length-prefixed string or binary data."""


@attrs.frozen
class Block:
    """A property block as written: where its Property Length started, whether that took
    the fewest bytes, and each Variable Byte Integer value in it with the same verdict."""

    length: int
    length_minimal: bool
    end: int
    varints: tuple[tuple[int, int, bool], ...]
    """(identifier, value, minimal) for each Variable Byte Integer property."""


def properties_at(body: bytes, pos: int) -> Block | None:
    """The property block starting at ``pos``, or None when it cannot be walked."""
    got = varint_at(body, pos)
    if got is None:
        return None
    length, used = got
    end = pos + used + length
    if end > len(body):
        return None
    at = pos + used
    varints: list[tuple[int, int, bool]] = []
    while at < end:
        ident = body[at]
        at += 1
        if ident in _PROPERTY_SIZES:
            at += _PROPERTY_SIZES[ident]
        elif ident in _PROPERTY_STRINGS:
            at += 2 + int.from_bytes(body[at:at + 2], "big")
        elif ident == 0x26:
            for _ in range(2):
                at += 2 + int.from_bytes(body[at:at + 2], "big")
        elif ident == 0x0B:
            value = varint_at(body, at)
            if value is None:
                return None
            varints.append((ident, value[0], minimal(*value)))
            at += value[1]
        else:
            return None
    if at != end:
        return None
    return Block(length, minimal(length, used), end, tuple(varints))
