"""Pre-encoded MQTT packets and a fixed-header scanner: the load generator's only wire code.

The generator must not be the bottleneck, so nothing is encoded in its hot loops. Every packet it
sends is encoded once, up front, with ``mqttref.impl.codec.codec.encode`` (the project's codec, so
the bytes are what the specification says); packets that differ only in their packet identifier come
from a table built by patching the two identifier bytes of one encoded template, and the table is
checked against ``encode`` so a patching mistake fails at start-up rather than skewing figures.

Every builder takes the protocol ``level``: 4 (MQTT 3.1.1, the default) or 5 (MQTT 5.0, with empty
property blocks). At 5.0 a PUBLISH carries one more byte, its property length (0), between the
packet identifier and the payload [MQTT-3.3.2.3]; acknowledgements with reason code 0x00 and no
properties keep their 3.1.1 shape [MQTT-3.4.2.1], and so does DISCONNECT [MQTT-3.14.2.1].

What the generator receives is split into frames by reading only the fixed header (type byte and
remaining length, [MQTT-2.2]); bodies are looked into only where an acknowledgement needs the
packet identifier or the latency scenario needs the timestamp in the payload.
"""

from __future__ import annotations

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    Connect,
    Disconnect,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Subscribe,
    Subscription,
)

PUBLISH = 3
CONNACK = 2
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBACK = 9

MAX_PACKET_ID = 0xFFFF
DISCONNECT = encode(Disconnect())
"""The same two bytes at both levels: reason 0x00 and no properties may be left out at 5.0."""
LEVELS = (4, 5)
NEVER_EXPIRES = 0xFFFFFFFF

Frame = tuple[int, int, int]
"""(first byte, offset of the variable header, offset just past the frame) in a buffer."""


def connect_frame(
    client_id: str, keep_alive: int = 0, clean_session: bool = True, level: int = 4
) -> bytes:
    """A CONNECT; keep alive 0 turns the broker's timer off [MQTT-3.1.2-24].

    At 5.0 ``clean_session`` is Clean Start, and with no properties the Session Expiry Interval
    is 0: the session ends with the connection [MQTT-3.1.2-23], as 3.1.1's clean session 1 does.
    A 3.1.1 persistent session (clean session 0) outlives the connection forever, so at 5.0 it
    takes the one property that says so, Session Expiry Interval 0xFFFFFFFF (5.0, 3.1.2.11.2):
    without it a broker could forget the persistent scenarios' sessions and store nothing.
    """
    properties = NO_PROPERTIES
    if level == 5 and not clean_session:
        properties = Properties(session_expiry_interval=NEVER_EXPIRES)
    return encode(
        Connect(
            protocol_level=ProtocolLevel(level),
            client_id=client_id,
            clean_session=clean_session,
            keep_alive=keep_alive,
            properties=properties,
        ),
        ProtocolLevel(level),
    )


def subscribe_frame(topic_filter: str, qos: int, packet_id: int = 1, level: int = 4) -> bytes:
    return encode(
        Subscribe(packet_id=packet_id, subscriptions=(Subscription(topic_filter, QoS(qos)),)),
        ProtocolLevel(level),
    )


def publish_frame(
    topic: str, payload: bytes, qos: int = 0, packet_id: int | None = None, level: int = 4
) -> bytes:
    return encode(
        Publish(topic=topic, payload=payload, qos=QoS(qos), packet_id=packet_id),
        ProtocolLevel(level),
    )


def publish_table(topic: str, payload: bytes, qos: int, level: int = 4) -> list[bytes]:
    """PUBLISH frames indexed by packet identifier (index 0 unused): ``table[pid]``."""
    template = publish_frame(topic, payload, qos, packet_id=0x0102, level=level)
    properties = 1 if level == 5 else 0  # the empty property block's length byte
    at = template.index(b"\x01\x02", len(template) - len(payload) - properties - 2)
    head, tail = template[:at], template[at + 2 :]
    table = [b""] + [head + pid.to_bytes(2, "big") + tail for pid in range(1, MAX_PACKET_ID + 1)]
    for pid in (1, 255, 256, 4660, MAX_PACKET_ID):
        if table[pid] != publish_frame(topic, payload, qos, packet_id=pid, level=level):
            raise AssertionError(f"patched PUBLISH for packet id {pid} differs from encode()")
    return table


def ack_table(kind: type[PubAck | PubRec | PubRel | PubComp], level: int = 4) -> list[bytes]:
    """Acknowledgement frames of one kind indexed by packet identifier (index 0 unused)."""
    template = encode(kind(packet_id=1), ProtocolLevel(level))
    head, tail = template[:2], template[4:]
    table = [b""] + [head + pid.to_bytes(2, "big") + tail for pid in range(1, MAX_PACKET_ID + 1)]
    for pid in (1, 300, MAX_PACKET_ID):
        if table[pid] != encode(kind(packet_id=pid), ProtocolLevel(level)):
            raise AssertionError(
                f"patched {kind.__name__} for packet id {pid} differs from encode()"
            )
    return table


def connack_accepted(frame: bytes) -> bool:
    """Whether a whole CONNACK frame accepts the connection, at either level: no session present
    and return code (3.1.1) or reason code (5.0) 0x00 [MQTT-3.2.2.3]; 5.0 properties follow."""
    found, _ = split(frame, 0)
    if len(found) != 1 or found[0][0] >> 4 != CONNACK:
        return False
    body = found[0][1]
    return frame[body : body + 2] == b"\x00\x00"


def count_publishes(buf: bytes, pos: int) -> tuple[int, int]:
    """Count the whole PUBLISH frames in ``buf[pos:]``; return (count, offset of the rest).

    The fast path of the QoS 0 counters: one byte of type and, for frames under 128 bytes of
    body, one byte of remaining length per message.
    """
    count = 0
    end = len(buf)
    while pos + 2 <= end:
        length = buf[pos + 1]
        if length < 0x80:
            nxt = pos + 2 + length
        else:
            header = _long_header(buf, pos, end)
            if header is None:
                break
            nxt = header[1] + header[0]
        if nxt > end:
            break
        if buf[pos] >> 4 == PUBLISH:
            count += 1
        pos = nxt
    return count, pos


def split(buf: bytes, pos: int) -> tuple[list[Frame], int]:
    """Split ``buf[pos:]`` into whole frames; return them and the offset of the incomplete rest."""
    frames: list[Frame] = []
    end = len(buf)
    while pos + 2 <= end:
        length = buf[pos + 1]
        if length < 0x80:
            body = pos + 2
        else:
            header = _long_header(buf, pos, end)
            if header is None:
                break
            length, body = header
        nxt = body + length
        if nxt > end:
            break
        frames.append((buf[pos], body, nxt))
        pos = nxt
    return frames, pos


def _long_header(buf: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """Decode a multi-byte remaining length [MQTT-2.2.3]: (length, body offset) or None if cut."""
    length = 0
    shift = 0
    at = pos + 1
    while at < end:
        byte = buf[at]
        length |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return length, at
        shift += 7
        if shift > 21:
            raise ValueError("remaining length longer than four bytes [MQTT-2.2.3]")
    return None


def packet_id_at(buf: bytes, body: int) -> int:
    """The packet identifier that opens the variable header of an acknowledgement."""
    return (buf[body] << 8) | buf[body + 1]


def publish_packet_id(buf: bytes, body: int) -> int:
    """The packet identifier of a QoS 1/2 PUBLISH: right after the topic name [MQTT-3.3.2]."""
    at = body + 2 + ((buf[body] << 8) | buf[body + 1])
    return (buf[at] << 8) | buf[at + 1]


def publish_payload_offset(buf: bytes, first: int, body: int, level: int = 4) -> int:
    """Where the payload of a PUBLISH starts: after the topic, at QoS > 0 the packet id, and at
    5.0 the property block, a variable byte integer length and that many bytes [MQTT-3.3.2.3]."""
    at = body + 2 + ((buf[body] << 8) | buf[body + 1])
    if first & 0x06:
        at += 2
    if level == 5:
        length = shift = 0
        while True:
            byte = buf[at]
            at += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        at += length
    return at
