"""The wire form of an MQTT 5.0 packet: what makes one the server sends malformed, and
what the server owes when a client's is (1.5, 2.1.3, 2.2, 3.x.1, 4.13.1).

Theory of operation: the model judges decoded packets everywhere else, and a decoder
forgets exactly what these statements are about: the reserved bits of a fixed header,
the length of a Variable Byte Integer, whether a string was well-formed UTF-8 before it
became a ``str``, whether a Property Length was there at all. So this module reads the
bytes of one frame itself -- with its own small reader, never the codec's, which is
what is under test -- and lists each ``Problem`` with the statement it breaks.

Two uses, one per direction:

- ``server_frame_problems(frame)``: a packet the server sent. Any problem is the
  server's violation (``check_server_frame`` raises it).
- ``client_frame_problem(frame)``: a packet a client sent. A problem here is one the
  text tells the server to treat as a Malformed Packet (or, for the protocol name, to
  refuse); ``MalformedInput5`` then judges what the server does about it: before
  CONNACK a refusing CONNACK (0x81, or 0x84 for the protocol name) and the close, or
  the close alone [MQTT-3.1.4-1]; after it, a DISCONNECT whose code describes a
  Malformed Packet and the close, or the close alone [MQTT-4.13.1-1]; nothing else,
  since the packet must not be processed.

Only what the bytes of one frame can show is judged here: that a Packet Identifier is
currently unused [MQTT-2.2.1-4] needs the flows, and is theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum, StrEnum

import attrs

from mqttref.model.errors import UsageError, Violation
from mqttref.model.obligations import Obligation
from mqttref.model.v5 import disconnect

# ------------------------------------------------------------------ the tables


class PacketType5(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


T = PacketType5

RESERVED_FLAGS: dict[PacketType5, tuple[int, str]] = {
    T.CONNECT: (0b0000, "MQTT-2.1.3-1"),
    T.CONNACK: (0b0000, "MQTT-2.1.3-1"),
    T.PUBACK: (0b0000, "MQTT-2.1.3-1"),
    T.PUBREC: (0b0000, "MQTT-2.1.3-1"),
    T.PUBREL: (0b0010, "MQTT-3.6.1-1"),
    T.PUBCOMP: (0b0000, "MQTT-2.1.3-1"),
    T.SUBSCRIBE: (0b0010, "MQTT-3.8.1-1"),
    T.SUBACK: (0b0000, "MQTT-2.1.3-1"),
    T.UNSUBSCRIBE: (0b0010, "MQTT-3.10.1-1"),
    T.UNSUBACK: (0b0000, "MQTT-2.1.3-1"),
    T.PINGREQ: (0b0000, "MQTT-2.1.3-1"),
    T.PINGRESP: (0b0000, "MQTT-2.1.3-1"),
    T.DISCONNECT: (0b0000, "MQTT-3.14.1-1"),
    T.AUTH: (0b0000, "MQTT-3.15.1-1"),
}
"""Table 2-2: the value every packet but PUBLISH must carry in bits 3-0 of its fixed
header [MQTT-2.1.3-1], and the statement that names it (PUBREL, SUBSCRIBE,
UNSUBSCRIBE, DISCONNECT and AUTH have their own)."""


class PropertyType(StrEnum):
    BYTE = "byte"
    TWO = "two byte integer"
    FOUR = "four byte integer"
    VARIABLE = "variable byte integer"
    STRING = "utf-8 string"
    BINARY = "binary data"
    PAIR = "utf-8 string pair"


P = PropertyType

PROPERTIES: dict[int, tuple[str, PropertyType]] = {
    0x01: ("Payload Format Indicator", P.BYTE),
    0x02: ("Message Expiry Interval", P.FOUR),
    0x03: ("Content Type", P.STRING),
    0x08: ("Response Topic", P.STRING),
    0x09: ("Correlation Data", P.BINARY),
    0x0B: ("Subscription Identifier", P.VARIABLE),
    0x11: ("Session Expiry Interval", P.FOUR),
    0x12: ("Assigned Client Identifier", P.STRING),
    0x13: ("Server Keep Alive", P.TWO),
    0x15: ("Authentication Method", P.STRING),
    0x16: ("Authentication Data", P.BINARY),
    0x17: ("Request Problem Information", P.BYTE),
    0x18: ("Will Delay Interval", P.FOUR),
    0x19: ("Request Response Information", P.BYTE),
    0x1A: ("Response Information", P.STRING),
    0x1C: ("Server Reference", P.STRING),
    0x1F: ("Reason String", P.STRING),
    0x21: ("Receive Maximum", P.TWO),
    0x22: ("Topic Alias Maximum", P.TWO),
    0x23: ("Topic Alias", P.TWO),
    0x24: ("Maximum QoS", P.BYTE),
    0x25: ("Retain Available", P.BYTE),
    0x26: ("User Property", P.PAIR),
    0x27: ("Maximum Packet Size", P.FOUR),
    0x28: ("Wildcard Subscription Available", P.BYTE),
    0x29: ("Subscription Identifier Available", P.BYTE),
    0x2A: ("Shared Subscription Available", P.BYTE),
}
"""Table 2-4 (2.2.2.2): each property's identifier, name and data type."""

CONTENT_TYPE, RESPONSE_TOPIC, USER_PROPERTY = 0x03, 0x08, 0x26

STRING_REFS: dict[int, tuple[str, ...]] = {
    CONTENT_TYPE: ("MQTT-3.3.2-19",),
    RESPONSE_TOPIC: ("MQTT-3.3.2-13",),
    USER_PROPERTY: ("MQTT-1.5.7-1",),
}
"""Properties whose own statement says they are UTF-8 (Encoded Strings, or a pair of
them): a broken one breaks that statement beside 1.5.4's."""


@attrs.frozen
class Problem:
    """What is wrong with a frame: the statements it breaks and where."""

    refs: tuple[str, ...]
    what: str


class Malformed(Exception):
    """The reader stopped: the frame cannot be read on."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.what)
        self.problem = problem


# ------------------------------------------------------------------ the reader


def string_problem(raw: bytes) -> tuple[tuple[str, ...], str] | None:
    """Why ``raw`` is no UTF-8 Encoded String's character data, or None.

    Ill-formed UTF-8, surrogates included, breaks [MQTT-1.5.4-1]; U+0000 breaks
    [MQTT-1.5.4-2]. (Python's strict decoder refuses overlong forms and encoded
    surrogates, as RFC 3629 does.)
    """
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as error:
        return ("MQTT-1.5.4-1",), f"ill-formed UTF-8 at byte {error.start}"
    if "\x00" in text:
        return ("MQTT-1.5.4-2",), "U+0000 in a UTF-8 Encoded String"
    return None


@attrs.define
class _Reader:
    data: bytes
    at: int = 0
    problems: list[Problem] = attrs.field(factory=list)

    def left(self) -> int:
        return len(self.data) - self.at

    def take(self, count: int, what: str) -> bytes:
        """``count`` bytes of ``what``; a frame ending where a Property Length belongs
        left it out, which a packet without properties may not do [MQTT-2.2.2-1]."""
        if self.left() < count:
            raise Malformed(Problem(("MQTT-2.2.2-1",) if "Property Length" in what else (),
                                    f"the frame ends inside the {what}"))
        chunk = self.data[self.at:self.at + count]
        self.at += count
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def two(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def variable(self, what: str) -> int:
        """A Variable Byte Integer, which must use as few bytes as its value needs
        [MQTT-1.5.5-1]."""
        value, shift, used = 0, 0, []
        while True:
            byte = self.byte(what)
            used.append(byte)
            value += (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if len(used) == 4:  # a Malformed Packet (1.5.5), not a longer encoding of a value
                raise Malformed(Problem((), f"the {what} runs past 4 bytes"))
        if len(used) > 1 and used[-1] == 0:
            self.problems.append(Problem(
                ("MQTT-1.5.5-1",),
                f"the {what} {value} takes {len(used)} bytes, more than it needs"))
        return value

    def string(self, what: str, refs: tuple[str, ...] = ()) -> str:
        raw = self.take(self.two(what), what)
        problem = string_problem(raw)
        if problem is not None:
            self.problems.append(Problem((*refs, *problem[0]), f"the {what}: {problem[1]}"))
        return raw.decode("utf-8", errors="replace")

    def binary(self, what: str) -> bytes:
        return self.take(self.two(what), what)


def _properties(reader: _Reader, where: str) -> dict[int, list[object]]:
    """The properties of ``where``, after their Property Length [MQTT-2.2.2-1]."""
    length = reader.variable(f"{where} Property Length")
    end = reader.at + length
    if end > len(reader.data):
        raise Malformed(Problem(("MQTT-2.2.2-1",),
                                f"the {where} Property Length {length} runs past the frame"))
    found: dict[int, list[object]] = {}
    while reader.at < end:
        identifier = reader.variable(f"{where} property identifier")
        if identifier not in PROPERTIES:
            raise Malformed(Problem((), f"no property has the identifier 0x{identifier:02X}"))
        name, kind = PROPERTIES[identifier]
        refs = STRING_REFS.get(identifier, ())
        value: object
        if kind == P.BYTE:
            value = reader.byte(name)
        elif kind == P.TWO:
            value = reader.two(name)
        elif kind == P.FOUR:
            value = int.from_bytes(reader.take(4, name), "big")
        elif kind == P.VARIABLE:
            value = reader.variable(name)
        elif kind == P.STRING:
            value = reader.string(name, refs)
        elif kind == P.BINARY:
            value = reader.binary(name)
        else:
            value = (reader.string(f"{name} name", refs), reader.string(f"{name} value", refs))
        found.setdefault(identifier, []).append(value)
    if reader.at != end:
        raise Malformed(Problem(("MQTT-2.2.2-1",),
                                f"a {where} property runs past its Property Length"))
    return found


def _topic_name(reader: _Reader, name: str) -> None:
    """A PUBLISH Topic Name: no wildcards [MQTT-3.3.2-2] [MQTT-4.7.0-1], no U+0000
    [MQTT-4.7.3-2]."""
    if "+" in name or "#" in name:
        reader.problems.append(Problem(("MQTT-3.3.2-2", "MQTT-4.7.0-1"),
                                       f"the Topic Name {name!r} contains a wildcard"))
    if "\x00" in name:
        reader.problems.append(Problem(("MQTT-4.7.3-2",), "the Topic Name contains U+0000"))


def _response_topic(reader: _Reader, properties: dict[int, list[object]]) -> None:
    for value in properties.get(RESPONSE_TOPIC, []):
        if isinstance(value, str) and ("+" in value or "#" in value):
            reader.problems.append(Problem(("MQTT-3.3.2-14",),
                                           f"the Response Topic {value!r} contains a wildcard"))


# ------------------------------------------------------------ the packets


def _publish(reader: _Reader, flags: int) -> None:
    dup, qos = bool(flags & 0b1000), (flags >> 1) & 0b11
    if qos == 3:
        raise Malformed(Problem(("MQTT-3.3.1-4",), "a PUBLISH with both QoS bits set"))
    if dup and qos == 0:
        reader.problems.append(Problem(("MQTT-3.3.1-2", "MQTT-4.3.1-1"),
                                       "DUP 1 on a QoS 0 PUBLISH"))
    name = reader.string("Topic Name")
    _topic_name(reader, name)
    if qos > 0 and reader.two("Packet Identifier") == 0:
        reader.problems.append(Problem(("MQTT-2.2.1-4",),
                                       "Packet Identifier 0 on a QoS > 0 PUBLISH"))
    _response_topic(reader, _properties(reader, "PUBLISH"))
    reader.at = len(reader.data)  # the payload: any bytes


def _connack(reader: _Reader, flags: int) -> None:
    acknowledge = reader.byte("Connect Acknowledge Flags")
    if acknowledge & 0xFE:
        reader.problems.append(Problem(
            ("MQTT-3.2.2-1",), f"Connect Acknowledge Flags bits 7-1 are {acknowledge >> 1:07b}"))
    reader.byte("Connect Reason Code")
    _properties(reader, "CONNACK")


def _publish_ack(reader: _Reader, flags: int) -> None:
    """PUBACK, PUBREC, PUBREL, PUBCOMP: the Reason Code and the Property Length may be
    left out, the Reason Code alone (Remaining Length 3) or both (2) (3.4.2.2.1)."""
    reader.two("Packet Identifier")
    if reader.left() >= 1:
        reader.byte("Reason Code")
    if reader.left() >= 1:
        _properties(reader, "acknowledgement")


def _sub_ack(reader: _Reader, flags: int) -> None:
    """SUBACK, UNSUBACK: the Property Length is never left out [MQTT-2.2.2-1], then one
    Reason Code per Topic Filter."""
    reader.two("Packet Identifier")
    _properties(reader, "SUBACK or UNSUBACK")
    reader.at = len(reader.data)


def _disconnect_or_auth(reader: _Reader, flags: int) -> None:
    """DISCONNECT, AUTH: Remaining Length 0 means Reason Code 0x00 and no properties;
    after a Reason Code the Property Length may be left out (3.14.2.2.1, 3.15.2.2.1)."""
    if reader.left() >= 1:
        reader.byte("Reason Code")
    if reader.left() >= 1:
        _properties(reader, "DISCONNECT or AUTH")


def _connect(reader: _Reader, flags: int) -> None:
    name = reader.string("Protocol Name")
    if name != "MQTT":
        raise Malformed(Problem(("MQTT-3.1.2-1",), f"the Protocol Name is {name!r}"))
    level = reader.byte("Protocol Version")
    if level != 5:
        raise UsageError(f"a CONNECT of Protocol Version {level} is no 5.0 packet")
    connect_flags = reader.byte("Connect Flags")
    if connect_flags & 0x01:
        raise Malformed(Problem(("MQTT-3.1.2-3",), "the CONNECT's reserved flag is 1"))
    reader.two("Keep Alive")
    _properties(reader, "CONNECT")
    reader.string("Client Identifier")
    if connect_flags & 0x04:
        _properties(reader, "Will")
        _topic_name(reader, reader.string("Will Topic"))
        reader.binary("Will Payload")
    if connect_flags & 0x80:
        reader.string("User Name")
    if connect_flags & 0x40:
        reader.binary("Password")


def _subscribe(reader: _Reader, flags: int) -> None:
    reader.two("Packet Identifier")
    _properties(reader, "SUBSCRIBE")
    while reader.left():
        reader.string("Topic Filter")
        options = reader.byte("Subscription Options")
        if options & 0xC0:
            raise Malformed(Problem(("MQTT-3.8.3-5",),
                                    f"Subscription Options reserved bits 7-6 are "
                                    f"{options >> 6:02b}"))


def _unsubscribe(reader: _Reader, flags: int) -> None:
    reader.two("Packet Identifier")
    _properties(reader, "UNSUBSCRIBE")
    while reader.left():
        reader.string("Topic Filter")


def _empty(reader: _Reader, flags: int) -> None:
    if reader.left():
        raise Malformed(Problem((), f"{reader.left()} bytes after a packet that has none"))


_BODIES: dict[PacketType5, Callable[[_Reader, int], None]] = {
    T.CONNECT: _connect,
    T.CONNACK: _connack,
    T.PUBLISH: _publish,
    T.PUBACK: _publish_ack,
    T.PUBREC: _publish_ack,
    T.PUBREL: _publish_ack,
    T.PUBCOMP: _publish_ack,
    T.SUBSCRIBE: _subscribe,
    T.SUBACK: _sub_ack,
    T.UNSUBSCRIBE: _unsubscribe,
    T.UNSUBACK: _sub_ack,
    T.PINGREQ: _empty,
    T.PINGRESP: _empty,
    T.DISCONNECT: _disconnect_or_auth,
    T.AUTH: _disconnect_or_auth,
}

SERVER_SENDS = frozenset({T.CONNACK, T.PUBLISH, T.PUBACK, T.PUBREC, T.PUBREL, T.PUBCOMP,
                          T.SUBACK, T.UNSUBACK, T.PINGRESP, T.DISCONNECT, T.AUTH})
CLIENT_SENDS = frozenset({T.CONNECT, T.PUBLISH, T.PUBACK, T.PUBREC, T.PUBREL, T.PUBCOMP,
                          T.SUBSCRIBE, T.UNSUBSCRIBE, T.PINGREQ, T.DISCONNECT, T.AUTH})


def packet_type(frame: bytes) -> PacketType5:
    if not frame or not 1 <= frame[0] >> 4 <= 15:
        raise UsageError("a frame starts with a packet type from 1 to 15")
    return PacketType5(frame[0] >> 4)


@attrs.define
class FrameSplitter:
    """Bytes of one direction of a connection -> whole frames, by the fixed header
    alone (2.1.1, 2.1.4), so that each frame can be judged before any decoder reads it.

    A Remaining Length running past four bytes cannot be read past: the splitter stops
    there for good (``stuck``) and leaves those bytes to whoever decodes the stream,
    which must refuse them too."""

    buffer: bytes = b""
    stuck: bool = False

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames: list[bytes] = []
        while not self.stuck and len(self.buffer) >= 2:
            remaining, shift, at = 0, 0, 1
            while True:
                if at >= len(self.buffer):
                    return frames  # the Remaining Length is not all here yet
                byte = self.buffer[at]
                remaining += (byte & 0x7F) << shift
                at += 1
                if not byte & 0x80:
                    break
                shift += 7
                if at == 5:
                    self.stuck = True
                    return frames
            if len(self.buffer) < at + remaining:
                return frames
            frames.append(self.buffer[:at + remaining])
            self.buffer = self.buffer[at + remaining:]
        return frames


def frame_problems(frame: bytes) -> tuple[Problem, ...]:
    """Everything wrong with one whole frame of either direction, in reading order; a
    problem the reader cannot read past is the last."""
    kind = packet_type(frame)
    flags = frame[0] & 0x0F
    reader = _Reader(frame, 1)
    try:
        if kind != T.PUBLISH:
            expected, ref = RESERVED_FLAGS[kind]
            if flags != expected:
                reader.problems.append(Problem(
                    (ref,), f"{kind.name} fixed header flags {flags:04b}, not {expected:04b}"))
        remaining = reader.variable("Remaining Length")
        if remaining != reader.left():
            raise UsageError(f"the Remaining Length says {remaining} bytes, the frame has "
                             f"{reader.left()}: give the harness's frame whole")
        _BODIES[kind](reader, flags)
        if reader.left():
            raise Malformed(Problem((), f"{reader.left()} bytes after the {kind.name}"))
    except Malformed as stop:
        reader.problems.append(stop.problem)
    return tuple(reader.problems)


def server_frame_problems(frame: bytes) -> tuple[Problem, ...]:
    """What a frame the server sent breaks (empty: a well-formed 5.0 packet)."""
    kind = packet_type(frame)
    if kind not in SERVER_SENDS:
        return (Problem((), f"a {kind.name} is the Client's to send"),)
    return frame_problems(frame)


def check_server_frame(client: str, frame: bytes) -> None:
    """Raise ``Violation`` for the first problem of a frame the server sent ``client``
    that names a statement."""
    for problem in server_frame_problems(frame):
        if problem.refs:
            raise Violation(client, f"the server's {packet_type(frame).name}: {problem.what}",
                            refs=problem.refs, allowed=("a well-formed MQTT 5.0 packet",),
                            arrived=frame.hex(" "))


def client_frame_problem(frame: bytes) -> Problem | None:
    """The first problem of a frame a client sent that the text makes the server's
    business: a Malformed Packet it must close for (or the protocol name)."""
    kind = packet_type(frame)
    if kind not in CLIENT_SENDS:
        raise UsageError(f"a {kind.name} is the Server's to send")
    return next(iter(frame_problems(frame)), None)


# ------------------------------------------------- the server's reaction


class Reaction(StrEnum):
    """What the server may do about a client's malformed packet."""

    CONNACK = "connack"
    DISCONNECT = "disconnect"
    CLOSE = "close"


MALFORMED_CONNACK_CODES = frozenset({0x80, 0x81})
"""A CONNACK refusing a malformed CONNECT: Malformed Packet, or Unspecified error for a
server that does not say why (3.2.2.2)."""

UNSUPPORTED_PROTOCOL_VERSION = 0x84


@attrs.define
class MalformedInput5:
    """One connection whose client sent a frame with ``problem``: the server must not
    process it and must close the Network Connection [MQTT-4.13.1-1]; before its CONNACK
    it MAY refuse the CONNECT first [MQTT-3.1.4-1], after it it SHOULD send a DISCONNECT
    with a Malformed Packet's code (4.13.1). The protocol name is no Malformed Packet:
    the server MAY answer CONNACK 0x84 and MUST close [MQTT-3.1.2-1]."""

    problem: Problem
    connected: bool
    """Whether the server had accepted the connection (sent CONNACK) before the frame."""
    client: str = "client"
    answered: Reaction | None = None
    closed: bool = False

    @property
    def refs(self) -> tuple[str, ...]:
        return (*self.problem.refs, "MQTT-4.13.1-1" if self.connected else "MQTT-3.1.4-1")

    def allowed(self) -> tuple[str, ...]:
        if self.closed:
            return ()
        if self.answered is not None:
            return ("the close",)
        if not self.connected:
            codes = ({UNSUPPORTED_PROTOCOL_VERSION} if self.problem.refs == ("MQTT-3.1.2-1",)
                     else MALFORMED_CONNACK_CODES)
            return (f"CONNACK {' or '.join(f'0x{c:02X}' for c in sorted(codes))}", "the close")
        codes = disconnect.allowed_codes(disconnect.Situation.MALFORMED_PACKET)
        return (f"DISCONNECT {' or '.join(f'0x{c:02X}' for c in sorted(codes))}", "the close")

    def obligations(self) -> list[Obligation]:
        if self.closed:
            return []
        return [Obligation(self.client, f"close after a malformed packet ({self.problem.what})",
                           self.refs)]

    def connack(self, code: int) -> None:
        """The server answered the CONNECT with ``code``."""
        codes = ({UNSUPPORTED_PROTOCOL_VERSION} if self.problem.refs == ("MQTT-3.1.2-1",)
                 else MALFORMED_CONNACK_CODES)
        if self.connected or self.answered is not None or self.closed or code not in codes:
            self._reject(f"CONNACK 0x{code:02X}")
        self.answered = Reaction.CONNACK

    def disconnect(self, code: int) -> None:
        """The server sent DISCONNECT with ``code``."""
        if not self.connected or self.answered is not None or self.closed:
            self._reject(f"DISCONNECT 0x{code:02X}")
        try:
            disconnect.check_code(code, disconnect.Situation.MALFORMED_PACKET, self.client)
        except Violation as error:
            raise Violation(self.client, error.detail, refs=(*self.refs, *error.refs),
                            allowed=self.allowed(), arrived=error.arrived) from None
        self.answered = Reaction.DISCONNECT

    def other_packet(self, name: str) -> None:
        """The server sent anything else: it processed what it had to refuse (before
        CONNACK: data after the CONNECT it must reject [MQTT-3.1.4-6])."""
        self._reject(name, () if self.connected else ("MQTT-3.1.4-6",))

    def close(self) -> None:
        if self.closed:
            raise UsageError("the connection is closed already")
        self.closed = True

    def _reject(self, arrived: str, also: tuple[str, ...] = ()) -> None:
        raise Violation(self.client, f"{arrived} after a malformed packet ({self.problem.what})",
                        refs=(*self.refs, *also), allowed=self.allowed(), arrived=arrived)
