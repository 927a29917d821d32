"""Hand-packed frames for the broker's hot path: outbound PUBLISH and the acks.

``publish_frame`` gives the same bytes as ``codec.encode(Publish(...))`` for
protocol levels 3 and 4 (a property test holds them equal), without building a
``Publish`` value and re-validating a topic the codec already validated on the
way in; ``ack_frame`` packs the four bytes of a PUBACK, PUBREC, PUBREL or
PUBCOMP. At MQTT 5.0 a PUBLISH also carries its property block (``properties``,
already encoded, ``b"\x00"`` for none), after the packet id (3.3.2.3).
"""

from __future__ import annotations

import struct

_U16 = struct.Struct("!H")
_HEAD_1 = struct.Struct("!BBH")
_HEAD_2 = struct.Struct("!BBBH")


def publish_frame(
    topic: str, payload: bytes, qos: int, retain: bool, *, dup: bool = False, packet_id: int = 0,
    properties: bytes = b"",
) -> bytes:
    """A PUBLISH packet (3.3); ``packet_id`` is ignored at QoS 0. ``properties`` is the
    encoded property block of an MQTT 5.0 PUBLISH, empty below 5.0."""
    topic_bytes = topic.encode()
    topic_length = len(topic_bytes)
    length = 2 + topic_length + len(payload) + (2 if qos else 0) + len(properties)
    first = 0x30 | dup << 3 | qos << 1 | retain
    # Remaining Length as a Variable Byte Integer (2.2.3): one or two bytes packed
    # with the topic's length prefix, the general loop beyond.
    if length < 0x80:
        head = _HEAD_1.pack(first, length, topic_length)
    elif length < 0x4000:
        head = _HEAD_2.pack(first, length & 0x7F | 0x80, length >> 7, topic_length)
    else:
        header = bytearray((first,))
        while True:
            byte = length & 0x7F
            length >>= 7
            if length:
                header.append(byte | 0x80)
            else:
                header.append(byte)
                break
        head = bytes(header) + _U16.pack(topic_length)
    if qos:
        return b"".join((head, topic_bytes, _U16.pack(packet_id), properties, payload))
    return b"".join((head, topic_bytes, properties, payload))


_ACK = struct.Struct("!BBH")
PUBACK, PUBREC, PUBREL, PUBCOMP = 0x40, 0x50, 0x62, 0x70
"""First bytes of the acknowledgements (PUBREL's reserved flags are 0010 [MQTT-3.6.1-1])."""


def ack_frame(first: int, packet_id: int) -> bytes:
    """A PUBACK, PUBREC, PUBREL or PUBCOMP of MQTT 3.x: always four bytes, so
    packed directly (``codec.encode`` of the packet gives the same bytes)."""
    return _ACK.pack(first, 2, packet_id)
