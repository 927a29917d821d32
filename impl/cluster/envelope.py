"""A message as it travels between nodes: the bytes of one NATS message.

Theory of operation. A node forwards each message it routes to the other nodes
as one NATS message on the subject of its topic (``subjects.py``); the topic is
the subject, so the body carries only the rest of the ``Message`` and who sent
it, in a small binary layout of our own (pure, no I/O, no ``nats``)::

    incarnation  8 bytes   the sending node's run (random at each start)
    sequence     8 bytes   that run's message counter, from 1
    flags        1 byte    QoS (bits 0-1), RETAIN (bit 2), origin (bit 3), expiry (bit 4)
    [expiry]     4 bytes   milliseconds left of its Message Expiry Interval (3.3.2.3.3)
    [origin]     string    the publisher's client id, for No Local [MQTT-3.8.3-3]
    properties   the MQTT 5.0 property block of a PUBLISH (2.2.2), as the codec writes it
    payload      the rest

(incarnation, sequence) names the message in the cluster: a node subscribed to
two overlapping filters gets it once per NATS subscription and delivers it once.
The expiry travels as time left, since each node's clock starts elsewhere.
"""

from __future__ import annotations

import math

import attrs

from mqttref.impl.codec import wire
from mqttref.impl.codec.packets import PacketType, QoS
from mqttref.impl.codec.properties import encode_properties, read_properties
from mqttref.impl.message import Message

_RETAIN = 0x04
_ORIGIN = 0x08
_EXPIRY = 0x10
_HEADER = 17
MAX_EXPIRY_MS = 0xFFFF_FFFF


class EnvelopeError(ValueError):
    """Bytes that are not an envelope (a foreign publisher on our subjects)."""


@attrs.frozen
class Envelope:
    """A forwarded message and its name in the cluster."""

    incarnation: bytes
    sequence: int
    message: Message


def seal(message: Message, incarnation: bytes, sequence: int, now: float) -> bytes:
    """The body of the NATS message that carries ``message`` to the other nodes."""
    flags = int(message.qos) | (_RETAIN if message.retain else 0)
    parts = [incarnation, sequence.to_bytes(8, "big"), b""]
    if message.expires_at is not None:
        flags |= _EXPIRY
        left = max(0, math.ceil((message.expires_at - now) * 1000))
        parts.append(min(left, MAX_EXPIRY_MS).to_bytes(4, "big"))
    if message.origin is not None:
        flags |= _ORIGIN
        parts.append(wire.string(message.origin))
    parts[2] = bytes((flags,))
    parts.append(encode_properties(message.properties, PacketType.PUBLISH))
    parts.append(message.payload)
    return b"".join(parts)


def open_envelope(topic: str, body: bytes, now: float) -> Envelope:
    """The message ``seal`` made, on this node's clock; EnvelopeError if it is not one."""
    if len(body) < _HEADER:
        raise EnvelopeError("shorter than an envelope's header")
    flags = body[16]
    qos = flags & 0x03
    if qos == 3 or flags & ~0x1F:
        raise EnvelopeError(f"bad flags 0x{flags:02X}")
    reader = wire.Reader(body, _HEADER)
    try:
        expires_at = now + reader.u32() / 1000 if flags & _EXPIRY else None
        origin = reader.string() if flags & _ORIGIN else None
        properties = read_properties(reader, PacketType.PUBLISH)
    except Exception as exc:  # the codec's MalformedPacket or ProtocolError, any of them
        raise EnvelopeError(str(exc)) from exc
    message = Message(topic, body[reader.pos:], QoS(qos), bool(flags & _RETAIN),
                      properties=properties, expires_at=expires_at, origin=origin)
    return Envelope(body[:8], int.from_bytes(body[8:16], "big"), message)
