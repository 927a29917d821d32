"""Reading the raw bytes a probe's connection carries, before the strict codec judges them.

``Framer`` cuts the server's bytes into whole frames (each kept for the checks of the
encoding itself); ``echoed_zero_id`` lets through the one malformed acknowledgement that
is the client's fault, not the server's; ``payloads_in`` and ``connect_in`` read what a
check sends as raw bytes (the payloads a delivery may carry, the CONNECT that places a
cluster connection).
"""

from __future__ import annotations

from collections.abc import Callable

from mqttref.impl.codec.codec import Decoder, Role
from mqttref.impl.codec.errors import MQTTError
from mqttref.impl.codec.packets import (
    Connect,
    Packet,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    UnsubAck,
)


class Framer:
    """Splits the server's bytes into whole frames (fixed header and Remaining Length).

    A frame whose Remaining Length is malformed is handed on whole, for the
    decoder to refuse.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        while len(self._buffer) >= 2:
            index, length, shift = 1, 0, 0
            while index < len(self._buffer) and index <= 4:
                byte = self._buffer[index]
                length |= (byte & 0x7F) << shift
                shift += 7
                index += 1
                if not byte & 0x80:
                    break
            else:
                if index > 4:  # no end within four bytes: let the decoder say so
                    out.append(bytes(self._buffer))
                    self._buffer.clear()
                return out
            if self._buffer[index - 1] & 0x80 or len(self._buffer) < index + length:
                return out
            out.append(bytes(self._buffer[: index + length]))
            del self._buffer[: index + length]
        return out


_ECHOES: dict[int, Callable[[int], Packet]] = {
    0x40: PubAck, 0x50: PubRec, 0x62: PubRel, 0x70: PubComp, 0xB0: UnsubAck,
}


def echoed_zero_id(frame: bytes) -> Packet | None:
    """An acknowledgement echoing packet id 0, decoded as it is.

    Packet id 0 breaks the rule of the client that sent it [MQTT-2.3.1-1];
    the server that echoes it obeys its own rule of answering with the same id
    [MQTT-2.3.1-6] [MQTT-3.8.4-2]. The strict codec refuses id 0 on any packet,
    which would report the echo as malformed bytes and hide what the check is
    about: whether the server closed on the client's violation.
    """
    if len(frame) < 4 or frame[2:4] != b"\x00\x00":
        return None
    if frame[0] == 0x90 and len(frame) > 4:
        return SubAck(0, tuple(frame[4:]))
    kind = _ECHOES.get(frame[0])
    if kind is None or frame[1] != 2:
        return None
    return kind(0)


def payloads_in(data: bytes, level: ProtocolLevel) -> list[bytes]:
    """The payloads of the PUBLISH packets in raw bytes a check sends (those the strict
    codec reads before anything malformed)."""
    try:
        packets = Decoder(role=Role.SERVER, protocol_level=level).feed(data)
    except MQTTError as exc:
        packets = list(getattr(exc, "packets", []))
    return [p.payload for p in packets if isinstance(p, Publish)]


def connect_in(data: bytes, level: ProtocolLevel) -> Connect | None:
    """The CONNECT that ``data`` (a connection's first bytes) starts with, if the codec
    reads one."""
    if not data or data[0] != 0x10:
        return None
    try:
        packets = Decoder(role=Role.SERVER, protocol_level=level).feed(data)
    except MQTTError as exc:
        packets = list(getattr(exc, "packets", []))
    return packets[0] if packets and isinstance(packets[0], Connect) else None

