"""A raw MQTT 5.0 client for tests of the broker's statements: it sends any bytes and reads
the broker's packets as whole frames, kept as written (flags, lengths and property blocks
can be checked byte for byte) and decoded by the strict client-side codec, which refuses
reserved bits, reason codes a packet may not carry and ill-formed strings.

``session``, ``subscriber``, ``Peer.subscribe``, ``Peer.publish`` (and ``publish``, its
shorthand for a new message) do the usual steps.
Two ways show that something did NOT come: ``mark`` publishes a marker message after
whatever a test watches, so ``Peer.until(marker)`` observes an absence up to a point that
must come; ``Peer.before_pingresp`` relies on the protocol core handling one connection's
packets in order and routing a message to every subscriber before acknowledging it, so
what precedes the PINGRESP is all there will be. Neither waits out a quiet time.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Self, TypeVar

from mqttref.impl.auth import SCRAM_SHA_256, ScramSha256Client
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    Auth,
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
"""What ``Peer.next`` returns once the broker closed."""
CLOSED_FRAME = b""
"""What ``Peer.frame`` returns once the broker closed."""
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


def frame_size(buffer: bytes) -> int | None:
    """The size of the whole frame at the start of ``buffer``, None if not all there (a
    Remaining Length of at most four bytes, 2.1.4)."""
    length = shift = 0
    for index, byte in enumerate(buffer[1:5], start=1):
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            size = 1 + index + length
            return size if len(buffer) >= size else None
    return None


def decode(raw: bytes) -> Packet:
    """One whole frame the broker sent, decoded as a 5.0 client decodes it (each frame on
    its own: a Topic Alias stays as written, its topic empty where the alias stands alone)."""
    [packet] = Decoder(role=Role.CLIENT, protocol_level=V5).feed(raw)
    return packet


class Peer:
    """One TCP connection speaking MQTT 5.0 byte by byte: sends anything, and reads the
    broker's packets as whole frames, kept as written and decoded by the strict client-side
    codec (which refuses reserved bits, reason codes a packet may not carry, ill-formed
    strings, so every decoded packet was well-formed)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), WAIT)
        self.buffer = b""
        self.frames: list[bytes] = []
        """Every frame read so far, in order."""
        self.eof = False

    def __enter__(self) -> Self:
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

    # --- reading ---------------------------------------------------------------------------

    def frame(self, timeout: float = WAIT) -> bytes:
        """The next whole packet as the broker wrote it; ``CLOSED_FRAME`` (b"") once the
        broker closed, which it may do only between frames."""
        deadline = time.monotonic() + timeout
        while (size := frame_size(self.buffer)) is None:
            if self.eof:
                assert not self.buffer, f"closed inside a frame: {self.buffer.hex(' ')}"
                return CLOSED_FRAME
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
        raw, self.buffer = self.buffer[:size], self.buffer[size:]
        self.frames.append(raw)
        return raw

    def frames_until_closed(self) -> list[bytes]:
        """Every frame up to the close (a TimeoutError if the broker never closes)."""
        frames = []
        while (raw := self.frame()) != CLOSED_FRAME:
            frames.append(raw)
        return frames

    def next(self, timeout: float = WAIT) -> Packet | str:
        """The next packet, decoded, or ``CLOSED``."""
        raw = self.frame(timeout)
        return CLOSED if raw == CLOSED_FRAME else decode(raw)

    def expect(self, kind: type[T], timeout: float = WAIT) -> T:
        packet = self.next(timeout)
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet}"
        return packet

    def rest(self) -> list[Packet | str]:
        """Everything up to and including the broker's close."""
        return [*map(decode, self.frames_until_closed()), CLOSED]

    def _up_to_pingresp(self) -> tuple[list[Packet], bool]:
        """Send PINGREQ; the packets before its PINGRESP, and whether it came (or the
        broker closed first)."""
        self.send(PingReq())
        seen: list[Packet] = []
        while not isinstance(packet := self.next(), str):
            if isinstance(packet, PingResp):
                return seen, True
            seen.append(packet)
        return seen, False

    def pinged(self) -> bool:
        """Whether the connection still serves: PINGREQ answered by PINGRESP, every
        packet before it skipped."""
        return self._up_to_pingresp()[1]

    def before_pingresp(self) -> list[Packet]:
        """Everything the broker sends before answering a PINGREQ sent now."""
        seen, answered = self._up_to_pingresp()
        assert answered, f"closed before PINGRESP, after {seen}"
        return seen

    def publishes(self) -> list[Publish]:
        """The PUBLISH packets sent so far (up to a PINGRESP), asserting nothing else came."""
        seen = self.before_pingresp()
        assert all(isinstance(packet, Publish) for packet in seen), seen
        return [packet for packet in seen if isinstance(packet, Publish)]

    def publish_frames(self, count: int) -> list[bytes]:
        """The next ``count`` frames, each of them a PUBLISH."""
        frames = [self.frame() for _ in range(count)]
        assert all(raw[:1] and raw[0] >> 4 == 3 for raw in frames), [f.hex(" ") for f in frames]
        return frames

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

    # --- the usual steps -------------------------------------------------------------------

    def connack(self, connect: Connect) -> tuple[bytes, ConnAck]:
        """Send ``connect``; the raw CONNACK and its decoding (asserting one came)."""
        self.send(connect)
        raw = self.frame()
        assert raw, "closed without CONNACK"
        connack = decode(raw)
        assert isinstance(connack, ConnAck), connack
        return raw, connack

    def open_session(self, client_id: str, *, clean_start: bool = True,
                     properties: Properties = NO_PROPERTIES, will: Will | None = None,
                     keep_alive: int = 60, username: str | None = None,
                     password: bytes | None = None) -> ConnAck:
        """CONNECT at 5.0; the CONNACK, which must say Success."""
        _raw, connack = self.connack(Connect(
            V5, client_id, clean_session=clean_start, keep_alive=keep_alive, will=will,
            username=username, password=password, properties=properties))
        assert connack.return_code == R.SUCCESS, connack
        return connack

    def subscribe(self, *subs: Subscription, packet_id: int = 1,
                  properties: Properties = NO_PROPERTIES) -> SubAck:
        """SUBSCRIBE; its SUBACK, which must carry its Packet Identifier."""
        self.send(Subscribe(packet_id, subs, properties))
        suback = self.expect(SubAck)
        assert suback.packet_id == packet_id
        return suback

    def publish(self, message: Publish, *, routed: bool = True) -> int | None:
        """Publish and finish the QoS flow, so the message has been routed on return:
        PUBACK, or PUBREC, PUBREL and PUBCOMP, each with the PUBLISH's Packet Identifier;
        at QoS 0 a PINGREQ answered with nothing before it (not waited for where
        ``routed`` is False: a round trip per message adds up). The reason code of
        PUBACK or PUBREC (None at QoS 0)."""
        self.send(message)
        if message.qos is Q0:
            if routed:
                assert self.before_pingresp() == []
            return None
        if message.qos is Q1:
            puback = self.expect(PubAck)
            assert puback.packet_id == message.packet_id
            return puback.reason_code
        pubrec = self.expect(PubRec)
        assert pubrec.packet_id == message.packet_id
        self.send(PubRel(message.packet_id or 0))
        self.expect(PubComp)
        return pubrec.reason_code


def connack_of(port: int, connect: Connect) -> tuple[Peer, bytes, ConnAck]:
    """A new connection that sent ``connect``; the raw CONNACK and its decoding."""
    peer = Peer(port)
    raw, connack = peer.connack(connect)
    return peer, raw, connack


def session(broker: BrokerThread, client_id: str, *, clean_start: bool = True,
            properties: Properties = NO_PROPERTIES, will: Will | None = None,
            keep_alive: int = 60, username: str | None = None,
            password: bytes | None = None) -> Peer:
    """A connected peer; its CONNACK must say Success."""
    peer = Peer(broker.port)
    peer.open_session(client_id, clean_start=clean_start, properties=properties, will=will,
                      keep_alive=keep_alive, username=username, password=password)
    return peer


def subscriber(broker: BrokerThread, client_id: str, *subscriptions: Subscription,
               clean_start: bool = True, properties: Properties = NO_PROPERTIES) -> Peer:
    """A connected peer granted ``subscriptions`` as asked."""
    peer = session(broker, client_id, clean_start=clean_start, properties=properties)
    granted = peer.subscribe(*subscriptions).return_codes
    assert granted == tuple(s.qos for s in subscriptions), granted
    return peer


def publish(peer: Peer, topic: str, payload: bytes, qos: QoS = Q0, *, packet_id: int = 1,
            retain: bool = False, properties: Properties = NO_PROPERTIES) -> int | None:
    """``Peer.publish`` of a new message (DUP 0), not waited for at QoS 0; the reason code
    of PUBACK or PUBREC."""
    return peer.publish(Publish(topic, payload, qos, retain, packet_id=packet_id if qos else None,
                                properties=properties), routed=False)


def watching(broker: BrokerThread) -> Peer:
    """A subscriber to everything under ``w/`` (QoS 2, Retain As Published, so a forwarded
    message keeps its RETAIN flag), for what others publish."""
    peer = session(broker, "watcher")
    peer.subscribe(Subscription("w/#", Q2, retain_as_published=True))
    return peer


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


# --- the client's Maximum Packet Size -------------------------------------------------------


def connack_size(broker: BrokerThread, client_id: str) -> int:
    """The size of the CONNACK a plain CONNECT of ``client_id`` is accepted with."""
    with Peer(broker.port) as probe:
        probe.open_session(client_id)
        return len(probe.frames[-1])


def tightest(broker: BrokerThread, client_id: str) -> tuple[Peer, int]:
    """A peer whose Maximum Packet Size is the size of its own CONNACK, and that size: the
    smallest that still lets it connect, so that any Reason String or User Property the
    broker added to a packet would risk going beyond it."""
    size = connack_size(broker, client_id)
    peer = Peer(broker.port)
    peer.open_session(client_id, properties=Properties(maximum_packet_size=size))
    assert len(peer.frames[-1]) == size
    return peer, size


def within(raw: bytes, maximum: int) -> Packet:
    """The packet of a frame that is within ``maximum`` and carries neither a Reason String
    nor User Properties."""
    assert len(raw) <= maximum, raw.hex(" ")
    packet = decode(raw)
    properties: Properties = getattr(packet, "properties", NO_PROPERTIES)
    assert (properties.reason_string, properties.user_properties) == (None, ()), packet
    return packet


# --- enhanced authentication: SCRAM-SHA-256 as alice ----------------------------------------


def connect_with_scram(scram: ScramSha256Client,
                       maximum_packet_size: int | None = None) -> Connect:
    """CONNECT as alice starting a SCRAM-SHA-256 exchange with ``scram``'s first message."""
    return Connect(V5, "c", username="alice", properties=Properties(
        maximum_packet_size=maximum_packet_size, authentication_method=SCRAM_SHA_256,
        authentication_data=scram.initial_data()))


def scram_reauthenticate(scram: ScramSha256Client) -> Auth:
    """AUTH 0x19 starting a re-authentication with ``scram``'s first message (4.12.1)."""
    return Auth(R.REAUTHENTICATE, Properties(
        authentication_method=SCRAM_SHA_256, authentication_data=scram.initial_data()))


def scram_answer(scram: ScramSha256Client, challenge: Auth) -> Auth:
    """AUTH 0x18: ``scram``'s answer to the server's ``challenge``."""
    return Auth(R.CONTINUE_AUTHENTICATION, Properties(
        authentication_method=SCRAM_SHA_256,
        authentication_data=scram.challenge(challenge.properties.authentication_data)))
