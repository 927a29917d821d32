"""A raw MQTT 5.0 client for tests of the broker's statements: it sends any bytes and reads
the broker's packets as whole frames, kept as written (flags, lengths and property blocks
can be checked byte for byte) and decoded by the strict client-side codec, which refuses
reserved bits, reason codes a packet may not carry and ill-formed strings.

``session``, ``subscribe`` and ``publish`` do the usual steps; ``mark`` publishes a marker
message after whatever a test watches, so ``Peer.until(marker)`` observes an absence up to
a point that must come, rather than waiting out a quiet time.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import TypeVar

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    ConnAck,
    Connect,
    Packet,
    PingReq,
    PingResp,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Will,
)
from tests.helpers.broker_thread import BrokerThread

V5 = ProtocolLevel.MQTT_5
Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
R = ReasonCode
WAIT = 5.0
"""How long a packet the broker owes may take: far above any loopback delay, and only
ever waited out when the test fails."""
CLOSED = "closed"
KEEP = Properties(session_expiry_interval=600)
T = TypeVar("T", bound=Packet)


def string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def frame(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """A Variable Byte Integer at ``pos``, read as written: its value and where it ends."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fewest_bytes(value: int) -> int:
    """The minimum number of bytes a Variable Byte Integer of ``value`` takes (1.5.5)."""
    return next(n for n, limit in enumerate((128, 16_384, 2_097_152, 268_435_456), 1)
                if value < limit)


def body_of(raw: bytes) -> bytes:
    """A whole packet's bytes after its fixed header."""
    _length, start = read_varint(raw, 1)
    return raw[start:]


class Peer:
    """One TCP connection speaking MQTT 5.0 byte by byte: sends anything, and reads the
    broker's packets as whole frames, kept as written and decoded by the strict client-side
    codec (which refuses reserved bits, reason codes a packet may not carry, ill-formed
    strings, so every decoded packet was well-formed)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), WAIT)
        self.decoder = Decoder(role=Role.CLIENT, protocol_level=V5)
        self.buffer = b""
        self.frames: list[bytes] = []
        """Every frame read so far, in order."""
        self.eof = False

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, *packets: Packet) -> None:
        self.sock.sendall(b"".join(encode(p, V5) for p in packets))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def drop(self) -> None:
        """The network fails: the socket closes with no DISCONNECT."""
        self.sock.close()

    def _whole(self) -> bytes | None:
        if len(self.buffer) < 2:
            return None
        length = shift = 0
        for index in range(1, min(len(self.buffer), 5)):
            byte = self.buffer[index]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                end = index + 1 + length
                if len(self.buffer) < end:
                    return None
                raw, self.buffer = self.buffer[:end], self.buffer[end:]
                return raw
        return None

    def frame(self, timeout: float = WAIT) -> bytes | None:
        """The next whole packet as the broker wrote it; None once the broker closed."""
        deadline = time.monotonic() + timeout
        while (raw := self._whole()) is None:
            if self.eof:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"nothing from the broker within {timeout} s")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise
            except OSError:  # reset by the broker: a close too
                data = b""
            self.eof = not data
            self.buffer += data
        self.frames.append(raw)
        return raw

    def next(self, timeout: float = WAIT) -> Packet | str:
        """The next packet, decoded, or ``CLOSED``."""
        raw = self.frame(timeout)
        if raw is None:
            return CLOSED
        [packet] = self.decoder.feed(raw)
        return packet

    def expect(self, kind: type[T], timeout: float = WAIT) -> T:
        packet = self.next(timeout)
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet}"
        return packet

    def rest(self) -> list[Packet | str]:
        """Everything up to and including the broker's close."""
        seen: list[Packet | str] = []
        while (packet := self.next()) != CLOSED:
            seen.append(packet)
        return [*seen, CLOSED]

    def pinged(self) -> bool:
        """Whether the connection still serves: PINGREQ answered by PINGRESP, every
        packet before it skipped."""
        self.send(PingReq())
        while (packet := self.next()) != CLOSED:
            if isinstance(packet, PingResp):
                return True
        return False

    def until(self, marker: bytes) -> list[Publish]:
        """The PUBLISH packets before the one whose payload is ``marker`` (published
        after everything the test watches, so anything owed would have come first); a
        QoS 1 or 2 one is acknowledged."""
        got: list[Publish] = []
        while True:
            packet = self.next()
            assert packet != CLOSED, f"closed before the marker {marker!r}"
            if isinstance(packet, Publish):
                self.acknowledge(packet)
                if packet.payload == marker:
                    return got
                got.append(packet)
            elif isinstance(packet, PubRel):
                self.send(PubComp(packet.packet_id))

    def acknowledge(self, publish: Publish) -> None:
        if publish.qos is Q1 and publish.packet_id is not None:
            self.send(PubAck(publish.packet_id))
        elif publish.qos is Q2 and publish.packet_id is not None:
            self.send(PubRec(publish.packet_id))


def connack_of(port: int, connect: Connect) -> tuple[Peer, bytes, ConnAck]:
    """Send ``connect``; the raw CONNACK and its decoding (asserting one came)."""
    peer = Peer(port)
    peer.send(connect)
    raw = peer.frame()
    assert raw is not None, "closed without CONNACK"
    [connack] = peer.decoder.feed(raw)
    assert isinstance(connack, ConnAck), connack
    return peer, raw, connack


def session(broker: BrokerThread, client_id: str, *, clean_start: bool = True,
            properties: Properties = NO_PROPERTIES, will: Will | None = None,
            keep_alive: int = 60) -> Peer:
    """A connected peer; its CONNACK must say Success."""
    peer, _raw, connack = connack_of(broker.port, Connect(
        V5, client_id, clean_start, keep_alive, will, properties=properties))
    assert connack.return_code == R.SUCCESS, connack
    return peer


def subscribe(peer: Peer, *subs: Subscription, packet_id: int = 1,
              properties: Properties = NO_PROPERTIES) -> SubAck:
    peer.send(Subscribe(packet_id, subs, properties))
    suback = peer.expect(SubAck)
    assert suback.packet_id == packet_id
    return suback


def publish(peer: Peer, topic: str, payload: bytes, qos: QoS = Q0, *, packet_id: int = 1,
            retain: bool = False, properties: Properties = NO_PROPERTIES) -> int | None:
    """Publish and finish the flow; the reason code of PUBACK or PUBREC (None at QoS 0)."""
    peer.send(Publish(topic, payload, qos, retain, packet_id=packet_id if qos else None,
                      properties=properties))
    if qos is Q0:
        return None
    if qos is Q1:
        return peer.expect(PubAck).reason_code
    code = peer.expect(PubRec).reason_code
    peer.send(PubRel(packet_id))
    peer.expect(PubComp)
    return code


def closes_after(peer: Peer, kind: type[T]) -> T:
    """The next packet is ``kind``, and the broker closes right after it."""
    packet = peer.expect(kind)
    assert peer.next() == CLOSED, "not closed"
    return packet


def mark(broker: BrokerThread, marker: bytes = b"marker") -> bytes:
    """Publish ``marker`` on ``w/marker`` from a client of its own (QoS 1: the broker has
    routed it when PUBACK comes), after whatever the test watches."""
    with session(broker, "marker") as peer:
        publish(peer, "w/marker", marker, Q1)
    return marker
