"""A raw MQTT client connection for the oracle: send anything, observe everything.

A ``Probe`` owns one connection to the broker under test (over TCP, TLS or a
WebSocket: ``connection.open_stream``). It sends packets
built with the shared codec or raw bytes (for malformed input), and a reader
task turns whatever comes back into ``Event``s: a decoded packet, the close of
the connection (FIN and RST alike, since a close is a close [ORACLE D12]), or
bytes the codec refuses (a server that sends a malformed packet is judged by
the codec's strict rules, which cite their statement).

Waiting never uses a blind sleep: a probe waits for an event with a generous
bound, or for *quiescence* (nothing arrives for a window), and every bound is
scaled by ``Timing.multiplier`` so a loaded machine can be given more room.
Every send and every arrival is written to the shared ``Trace``, which is what a
failing verdict prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import TypeVar

import attrs

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import MQTTError
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
)
from mqttref.oracle import raw
from mqttref.oracle.connection import (
    Connection,
    current,
    open_stream,
    with_credentials,
    with_credentials_raw,
)
from mqttref.oracle.evidence import Deviation, Inconclusive, NotApplicable, observe
from mqttref.oracle.nodes import clustered

P = TypeVar("P", bound=Packet)

__all__ = ["Closed", "Deviation", "Event", "Garbled", "Inconclusive", "NotApplicable", "Probe",
           "Received", "Timing", "Trace", "describe"]


@attrs.frozen
class Timing:
    """How long the oracle waits; every figure is multiplied by ``multiplier``."""

    quiet: float = 0.3
    """Quiescence window: this long without an arrival means nothing more is coming."""
    reply: float = 5.0
    """Upper bound for a reply the specification requires (CONNACK, SUBACK, a close)."""
    multiplier: float = 1.0
    margin: float = 0.5
    """The one measurement margin added to a deadline the specification itself
    states (one and a half times the keep alive [MQTT-3.1.2-24]): network and
    scheduling delay between the broker's act and our observation of it."""
    obligation: float = 3.0
    """How long the oracle waits for something owed with no deadline in the spec
    (a re-send on reconnect, a queued message): absence is reported as "not
    within N s", never judged after a bare quiescence window."""

    close_lag: float = 1.0
    """How long the close may lag behind the server's own DISCONNECT. Sending it, the
    server has read, decided and acted (a code of 0x80 or above announces the close
    [MQTT-4.13.2-1]); the close is the rest of that act, so only network and scheduling
    delay remain, twice the margin. The reply bound is for a server still to decide."""

    @property
    def close_lag_bound(self) -> float:
        return self.close_lag * self.multiplier

    def spec_deadline(self, seconds: float) -> float:
        """A deadline the specification states, plus the measurement margin."""
        return seconds + self.margin * self.multiplier

    @property
    def obligation_bound(self) -> float:
        return self.obligation * self.multiplier

    @property
    def window(self) -> float:
        return self.quiet * self.multiplier

    @property
    def reply_bound(self) -> float:
        return self.reply * self.multiplier

    def bound(self, seconds: float) -> float:
        return seconds * self.multiplier


@attrs.frozen
class Received:
    packet: Packet


@attrs.frozen
class Closed:
    how: str
    """``FIN`` or ``RST``: reported, never judged."""


@attrs.frozen
class Garbled:
    """Bytes from the server that the strict codec refused."""

    error: str


Event = Received | Closed | Garbled


def describe(packet: Packet) -> str:
    """A short readable form of a packet for traces, with its 5.0 properties when it has any."""
    text = _describe(packet)
    properties = getattr(packet, "properties", None)
    if properties is None or not attrs.asdict(properties, recurse=False):
        return text
    shown = {key: value for key, value in attrs.asdict(properties, recurse=False).items()
             if value not in (None, ())}
    if not shown:
        return text
    return text + " {" + ", ".join(f"{key}={value!r}" for key, value in shown.items()) + "}"


def _options(sub: Subscription) -> str:
    """A subscription's 5.0 options, when any is set (3.8.3.1)."""
    parts = [f"nl={int(sub.no_local)}" if sub.no_local else "",
             f"rap={int(sub.retain_as_published)}" if sub.retain_as_published else "",
             f"rh={sub.retain_handling}" if sub.retain_handling else ""]
    return "".join(f" {part}" for part in parts if part)


def _describe(packet: Packet) -> str:
    if isinstance(packet, Publish):
        payload = packet.payload if len(packet.payload) <= 24 else packet.payload[:24] + b"..."
        pid = f" id={packet.packet_id}" if packet.packet_id is not None else ""
        return (
            f"PUBLISH {packet.topic!r} qos={int(packet.qos)} retain={int(packet.retain)}"
            f" dup={int(packet.dup)}{pid} payload={payload!r}"
        )
    if isinstance(packet, Connect):
        will = ""
        if packet.will is not None:
            w = packet.will
            will = f" will={w.topic!r}/qos={int(w.qos)}/retain={int(w.retain)}"
        user = f" user={packet.username!r}" if packet.username is not None else ""
        return (
            f"CONNECT id={packet.client_id!r} clean={int(packet.clean_session)}"
            f" keepalive={packet.keep_alive}{will}{user}"
        )
    if isinstance(packet, Subscribe):
        pairs = ", ".join(f"{sub.topic_filter!r} qos={int(sub.qos)}{_options(sub)}"
                          for sub in packet.subscriptions)
        return f"SUBSCRIBE id={packet.packet_id} [{pairs}]"
    if isinstance(packet, ConnAck):
        present = int(packet.session_present)
        return f"CONNACK rc=0x{packet.return_code:02X} session_present={present}"
    fields = attrs.asdict(packet, recurse=False)
    fields.pop("properties", None)
    if not fields.get("reason_codes", True):
        fields.pop("reason_codes")
    if fields.get("reason_code") == 0:
        fields.pop("reason_code")
    inner = " ".join(f"{key}={value!r}" for key, value in fields.items())
    return f"{packet.packet_type.name} {inner}".rstrip()


class _Framer:
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


def _echoed_zero_id(frame: bytes) -> Packet | None:
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


def _payloads_in(data: bytes, level: ProtocolLevel) -> list[bytes]:
    """The payloads of the PUBLISH packets in raw bytes a check sends (those the strict
    codec reads before anything malformed)."""
    try:
        packets = Decoder(role=Role.SERVER, protocol_level=level).feed(data)
    except MQTTError as exc:
        packets = list(getattr(exc, "packets", []))
    return [p.payload for p in packets if isinstance(p, Publish)]


def _carries_a_packet_id(packet: Packet, published: set[bytes],
                         level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1) -> str | None:
    """Why a QoS 0 PUBLISH is malformed, when its payload is a published one after two
    more bytes: a packet identifier the sender must not put in a QoS 0 PUBLISH
    [MQTT-2.3.1-5], which a receiver can only read as payload. Blamed on that rule,
    not on the rule of whatever check was waiting for the message."""
    if not isinstance(packet, Publish) or packet.qos != 0:
        return None
    payload = packet.payload
    if payload in published or len(payload) <= 2 or payload[2:] not in published:
        return None
    rule = "[MQTT-2.2.1-2]" if level is ProtocolLevel.MQTT_5 else "[MQTT-2.3.1-5]"
    return (f"a QoS 0 PUBLISH on {packet.topic!r} carries two bytes {payload[:2].hex()} before"
            " a payload this check published: a packet identifier, which a QoS 0 PUBLISH must"
            f" not contain {rule}")


_SENDER_RULES_5 = (
    ("CONNACK reserved flags", "MQTT-3.2.2-1"),
    ("reserved flags 0x", "MQTT-2.1.3-1"),
    ("not well-formed UTF-8", "MQTT-1.5.4-1"),
    ("U+0000", "MQTT-1.5.4-2"),
    ("topic name is not well-formed", "MQTT-3.3.2-1"),
    ("topic name contains U+0000", "MQTT-4.7.3-2"),
    ("minimum number of bytes", "MQTT-1.5.5-1"),
    ("DUP set at QoS 0", "MQTT-3.3.1-2"),
    ("DUP set at QoS 0", "MQTT-4.3.1-1"),
    ("session present on a refused connection", "MQTT-3.2.2-6"),
    ("PUBLISH with packet identifier 0", "MQTT-2.2.1-4"),
    # A reason code outside its packet's table: the sender rule of that table.
    ("is not valid on CONNACK", "MQTT-3.2.2-8"),
    ("is not valid on PUBACK", "MQTT-3.4.2-1"),
    ("is not valid on PUBREC", "MQTT-3.5.2-1"),
    ("is not valid on PUBREL", "MQTT-3.6.2-1"),
    ("is not valid on PUBCOMP", "MQTT-3.7.2-1"),
    ("is not valid on SUBACK", "MQTT-3.9.3-2"),
    ("is not valid on UNSUBACK", "MQTT-3.11.3-2"),
    ("is not valid on DISCONNECT", "MQTT-3.14.2-1"),
    ("is not valid on AUTH", "MQTT-3.15.2-1"),
)
"""At 5.0, what the codec refuses in the server's bytes and the 5.0 sender rule it breaks:
the codec cites 3.1.1's numbering (or a section), which at 5.0 names other statements."""

_SENDER_PATTERNS_5 = (
    # A Topic Name must not hold a wildcard: said twice, in 3.3.2.1 and 4.7.0 (not the
    # codec's Response Topic refusal, 'the response topic contains a wildcard': 3.3.2-14).
    (re.compile(r"\btopic name .* contains a wildcard"), ("MQTT-3.3.2-2", "MQTT-4.7.0-1")),
)
"""At 5.0, refusals whose text ``_SENDER_RULES_5`` cannot tell by a substring alone."""

_STRING_PROPERTY_RULES_5 = {
    "response_topic": "MQTT-3.3.2-13",
    "content_type": "MQTT-3.3.2-19",
    "user_properties": "MQTT-1.5.7-1",
}
"""At 5.0, the property's own rule that a string the codec refuses in it breaks besides
1.5.4's: the Response Topic and the Content Type MUST each be a UTF-8 Encoded String
[MQTT-3.3.2-13] [MQTT-3.3.2-19], both strings of a User Property MUST comply with its
requirements [MQTT-1.5.7-1]. The codec's error names the property (``field``)."""


def _as_sent_by_server(error: str, level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1,
                       field: str | None = None) -> str:
    """The codec's refusal, with the rule the *server* broke as the sender.

    The codec cites receiver rules (invalid flags received: [MQTT-2.2.2-2]);
    bytes from the server that it refuses show the server breaking the
    matching sender rule. At 5.0 the sender rules are 5.0's (``_SENDER_RULES_5``, and
    for a string property the refusal names in ``field``, ``_STRING_PROPERTY_RULES_5``),
    and the codec's 3.1.1 ids are dropped where one of them applies.
    """
    if level is ProtocolLevel.MQTT_5:
        rules = [rule for text, rule in _SENDER_RULES_5 if text in error]
        rules += [rule for pattern, ids in _SENDER_PATTERNS_5 if pattern.search(error)
                  for rule in ids]
        if field in _STRING_PROPERTY_RULES_5 and ("UTF-8" in error or "U+0000" in error):
            rules.append(_STRING_PROPERTY_RULES_5[field])
        if not rules:
            return error
        return re.sub(r"\s*\[MQTT-[0-9.-]+\]", "", error) + "".join(f" [{r}]" for r in rules)
    if "reserved flags" in error:
        # The codec cites the receiver's duty to close (2.2.2-2, 3.6.1-1...); the
        # server as sender broke the table itself.
        error = re.sub(r"\s*\[MQTT-[0-9.-]+\]", "", error) + " [MQTT-2.2.2-1]"
    if "topic name" in error and ("UTF-8" in error or "U+0000" in error):
        error += " [MQTT-3.3.2-1]"
    if "topic name contains U+0000" in error:
        error += " [MQTT-4.7.3-2]"
    if "DUP set at QoS 0" in error:
        error += " [MQTT-4.3.1-1]"
    return error


_PROPERTY_LENGTH_AFTER_TWO = {0x20: "CONNACK", 0x90: "SUBACK", 0xB0: "UNSUBACK"}
"""The 5.0 packets from a server whose Property Length is always there, right after two
bytes (the Acknowledge Flags and Reason Code, or the Packet Identifier): 3.2.2.3,
3.9.2.1, 3.11.2.1. (An acknowledgement of a PUBLISH may end before it, 3.4.2.2.)"""


def _without_property_length(frame: bytes) -> str | None:
    """Why a 5.0 frame the strict codec refused is malformed, when it is a well-formed
    CONNACK, SUBACK or UNSUBACK once a Property Length of 0 is put where it belongs: the
    server left it out, where no properties MUST be said by a Property Length of zero
    [MQTT-2.2.2-1]. The codec, reading the next byte as the Property Length, can only
    report what that misreading runs into."""
    name = _PROPERTY_LENGTH_AFTER_TWO.get(frame[0])
    index = 1
    while index < len(frame) and index < 4 and frame[index] & 0x80:
        index += 1
    body = frame[index + 1:]
    if name is None or len(body) < 2 or body[2:3] == b"\x00":
        # A 0 where the Property Length goes reads as one: then it is the codes that are
        # wrong (none at all), or the Property Length is missing, and the bytes cannot
        # tell which.
        return None
    repaired = bytes((frame[0],)) + raw.varint(len(body) + 1) + body[:2] + b"\x00" + body[2:]
    try:
        Decoder(role=Role.CLIENT, protocol_level=ProtocolLevel.MQTT_5).feed(repaired)
    except MQTTError:
        return None
    return (f"{name} {body[:12].hex(' ')} has no Property Length: with a Property Length of"
            f" 0 after its first two bytes it is a well-formed {name}; with no properties it"
            " must hold a Property Length of 0 [MQTT-2.2.2-1]")


def _connect_in(data: bytes, level: ProtocolLevel) -> Connect | None:
    """The CONNECT that ``data`` (a connection's first bytes) starts with, if the codec
    reads one."""
    if not data or data[0] != 0x10:
        return None
    try:
        packets = Decoder(role=Role.SERVER, protocol_level=level).feed(data)
    except MQTTError as exc:
        packets = list(getattr(exc, "packets", []))
    return packets[0] if packets and isinstance(packets[0], Connect) else None


def _acknowledges_shared_change(packet: Packet, persistent: bool,
                                retained_ids: set[int]) -> bool:
    """Whether ``packet`` acknowledges a change other nodes of a cluster must learn: a
    subscription (SUBACK), a retained message stored (PUBACK, or PUBREC and PUBCOMP, of a
    retained PUBLISH), a session that outlives its connection taken up (CONNACK)."""
    if isinstance(packet, SubAck):
        return True
    if isinstance(packet, (PubAck, PubRec, PubComp)) and packet.packet_id in retained_ids:
        if not isinstance(packet, PubRec):
            retained_ids.discard(packet.packet_id)
        return True
    return isinstance(packet, ConnAck) and persistent


class Trace:
    """What every client of one check sent and received, with times."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self.lines: list[str] = []
        self.published: set[bytes] = set()
        """Every payload the check's clients published or gave as a will: what a
        delivery may carry, so that one carrying two more bytes is recognised."""

    def add(self, actor: str, arrow: str, text: str) -> None:
        elapsed = time.monotonic() - self._start
        self.lines.append(f"{elapsed:7.3f}s {actor:>6} {arrow} {text}")

    def note(self, text: str) -> None:
        self.add("oracle", "::", text)


class Probe:
    """One client connection to the broker under test."""

    def __init__(
        self,
        name: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        trace: Trace,
        timing: Timing,
        *,
        level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1,
    ) -> None:
        self.name = name
        self.level = level
        """The protocol level this connection speaks: what the codec encodes and decodes at."""
        self._reader = reader
        self._writer = writer
        self.trace = trace
        self.timing = timing
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self.closed: Closed | None = None
        self.pending: list[Packet] = []
        """Packets received while waiting for something else, oldest first."""
        self._aborted = False
        self._accepted = False
        """Whether a CONNACK below 0x80 arrived: before it a DISCONNECT from the server breaks
        [MQTT-3.14.0-1], whatever else is wrong with it."""
        self.given_up: str | None = None
        """The malformed bytes after which the oracle dropped this connection: what was
        awaited on it afterwards cannot come, which is no observation of the server."""
        self._last_packet_id = 0
        self.frames: list[bytes] = []
        """Every frame from the server as its bytes arrived, before decoding: for the checks
        of the encoding itself (flags, Variable Byte Integers, Property Length)."""
        self._sent = False
        self.server_maximum_qos = 2
        """The Maximum QoS this connection's CONNACK declared (3.2.2.3.4; 2 when absent): a
        conforming client sends no PUBLISH above it [MQTT-3.2.2-11], so neither do the checks
        unless provoking the server on purpose."""
        self.node = 0
        """Which node of a cluster (``nodes``) this connection went to."""
        self._shared_state = False
        """Whether this connection's session outlives it or resumed one (``nodes``)."""
        self._retained_ids: set[int] = set()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, name: str, host: str, port: int, trace: Trace, timing: Timing, *,
                   level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1,
                   connection: Connection | None = None) -> Probe:
        """Connect over the run's transport (``connection.current()`` unless given)."""
        settings = connection if connection is not None else current()
        nodes = clustered()
        node = 0
        if nodes is not None:
            node = nodes.take_turn()
            host, port = nodes.addresses[node]
        reader, writer = await open_stream(host, port, timing.reply_bound, settings,
                                           route=False)
        where = f" to node {node + 1} ({host}:{port})" if nodes is not None else ""
        trace.add(name, "..", f"{settings.describe_transport()} connected{where}")
        probe = cls(name, reader, writer, trace, timing, level=level)
        probe.node = node
        return probe

    async def _place(self, first: Packet | bytes) -> None:
        """Before the first bytes of a cluster connection: a CONNECT with a client id that
        connected before goes to another node than that id's last connection (the
        connection is opened again there; the server has seen nothing on it yet)."""
        nodes = clustered()
        if nodes is None:
            return
        connect = _connect_in(first, self.level) if isinstance(first, bytes) else first
        if not isinstance(connect, Connect):
            return
        self._shared_state = (not connect.clean_session
                              or bool(connect.properties.session_expiry_interval))
        node = nodes.for_client(connect.client_id, self.node)
        if node == self.node:
            return
        host, port = nodes.addresses[node]
        reader, writer = await open_stream(host, port, self.timing.reply_bound, route=False)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._writer.transport.abort()
        self.trace.add(self.name, "..", f"moved to node {node + 1} ({host}:{port}): client id"
                       f" {connect.client_id!r} connected last on node {self.node + 1}")
        self._reader, self._writer, self.node = reader, writer, node
        self._task = asyncio.create_task(self._read())

    def _changed(self) -> None:
        """This connection's node acknowledged a change the cluster shares (``nodes``)."""
        nodes = clustered()
        if nodes is not None:
            nodes.changed(self.node)
            self.trace.add(self.name, "::", "a change other nodes may learn up to"
                           f" {nodes.propagation:.2f}s later")

    async def _read(self) -> None:
        decoder = Decoder(role=Role.CLIENT, protocol_level=self.level)
        frames = _Framer()
        while True:
            try:
                data = await self._reader.read(65536)
            except (ConnectionResetError, BrokenPipeError):
                self._finish(Closed("RST"))
                return
            if not data:
                self._finish(Closed("FIN"))
                return
            for frame in frames.feed(data):
                self.frames.append(frame)
                echo = _echoed_zero_id(frame)
                if echo is not None:
                    self._arrive(echo)
                    continue
                try:
                    packets = decoder.feed(frame)
                except MQTTError as exc:
                    for packet in getattr(exc, "packets", []):
                        self._arrive(packet)
                    error = _as_sent_by_server(f"{exc} [{getattr(exc, 'ref', '')}]",
                                               self.level, getattr(exc, "field", None))
                    if self.level is ProtocolLevel.MQTT_5:
                        error = _without_property_length(frame) or error
                        if frame[0] >> 4 == 14 and not self._accepted:
                            # The fixed header names a DISCONNECT whatever the codec
                            # refuses after it.
                            error += (" (a DISCONNECT before any CONNACK below 0x80: a server"
                                      " may send DISCONNECT only after accepting the CONNECT)"
                                      " [MQTT-3.14.0-1]")
                    self.trace.add(self.name, "<-", f"MALFORMED from server: {error}")
                    self._events.put_nowait(Garbled(error))
                    self.given_up = error
                    self._drop()
                    return
                for packet in packets:
                    carried = _carries_a_packet_id(packet, self.trace.published,
                                                   self.level)
                    if carried is not None:
                        self.trace.add(self.name, "<-", f"MALFORMED from server: {carried}")
                        self._events.put_nowait(Garbled(carried))
                        self.given_up = carried
                        self._drop()
                        return
                    self._arrive(packet)

    def _arrive(self, packet: Packet) -> None:
        if isinstance(packet, ConnAck) and packet.return_code < 0x80:
            self._accepted = True
        self.trace.add(self.name, "<-", describe(packet))
        self._events.put_nowait(Received(packet))
        if clustered() is not None and _acknowledges_shared_change(
                packet, self._shared_state, self._retained_ids):
            self._changed()

    def _retained_sent(self, packet: Publish) -> None:
        """A retained PUBLISH changes what every node holds once acknowledged (at QoS 0,
        once sent)."""
        if not packet.retain or clustered() is None:
            return
        if packet.qos == 0 or packet.packet_id is None:
            self._changed()
        else:
            self._retained_ids.add(packet.packet_id)

    def _finish(self, closed: Closed) -> None:
        self.closed = closed
        if self._aborted:
            return
        self.trace.add(self.name, "<-", f"connection closed by server ({closed.how})")
        self._events.put_nowait(closed)

    def new_packet_id(self) -> int:
        """A packet id not used before on this connection (wraps after 65535)."""
        self._last_packet_id = self._last_packet_id % 65535 + 1
        return self._last_packet_id

    async def send(self, packet: Packet | bytes, note: str | None = None) -> None:
        """Send a packet (encoded with the codec) or raw bytes, described by ``note``.

        A CONNECT naming no user gets the run's user and password
        (``connection.with_credentials``), so that no check needs to know
        whether the broker asks for them; a check about user names sends its own.
        """
        first, self._sent = not self._sent, True
        nodes = clustered()
        if nodes is not None:
            if first:
                await self._place(packet)
            await nodes.propagated(self.node)
        if isinstance(packet, bytes):
            data = with_credentials_raw(packet, self.level) if first else packet
            if data != packet:
                note = (note or f"raw bytes {packet[:32].hex(' ')}") + " (the run's user added)"
            text = note or f"raw bytes {packet[:32].hex(' ')}"
            self.trace.published.update(_payloads_in(data, self.level))
        else:
            if isinstance(packet, Connect):
                packet = with_credentials(packet)
            data = encode(packet, self.level)
            text = describe(packet) + (f"  ({note})" if note else "")
            if isinstance(packet, Publish):
                self.trace.published.add(packet.payload)
                self._retained_sent(packet)
            elif isinstance(packet, Connect) and packet.will is not None:
                self.trace.published.add(packet.will.payload)
        self.trace.add(self.name, "->", text)
        if self._writer.is_closing():
            return
        if isinstance(packet, Disconnect) and self._shared_state:
            self._changed()  # the session the client leaves is the cluster's to keep
        self._writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    async def next_event(self, timeout: float) -> Event | None:
        """The next event, or None when nothing arrives within ``timeout`` seconds."""
        if self.closed is not None and self._events.empty():
            return self.closed
        try:
            return await asyncio.wait_for(self._events.get(), timeout)
        except TimeoutError:
            return None

    def inconclusive_if_given_up(self, awaited: str) -> None:
        """Raise ``Inconclusive`` when nothing can come because the oracle dropped the
        connection after malformed bytes (those are judged where they came): waiting on it
        would blame the server for the oracle's own close."""
        if self.given_up is not None:
            uncited = re.sub(r"\s*\[MQTT-[0-9.-]+\]", "", awaited)
            raise Inconclusive(f"{self.name}: no {uncited}: the oracle dropped the connection"
                               f" after malformed bytes from the server ({self.given_up})")

    async def expect(self, kind: type[P], why: str = "") -> P:
        """The oldest pending packet of ``kind``, or wait for one; others stay pending.

        ``why`` says which statement requires the packet (``"PUBACK for a QoS 1
        PUBLISH [MQTT-3.3.4-1]"``): its arrival is evidence for that statement,
        and its absence is a deviation blamed on it. Without a citation the wait
        is a step of the scenario whose failure no statement can be blamed for.
        """
        for index, packet in enumerate(self.pending):
            if isinstance(packet, kind):
                del self.pending[index]
                observe(f"{self.name}: {why}" if why else "")
                return packet
        deadline = time.monotonic() + self.timing.reply_bound
        label = why or kind.__name__.upper()
        others: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            event = await self.next_event(max(remaining, 0.0))
            if event is None:
                self.inconclusive_if_given_up(label)
                instead = f"; only {', '.join(others)} arrived" if others else ", nothing arrived"
                raise Deviation(f"{self.name}: expected {label} within "
                                f"{self.timing.reply_bound:.1f}s{instead}")
            if isinstance(event, Received):
                if isinstance(event.packet, kind):
                    observe(f"{self.name}: {why}" if why else "")
                    return event.packet
                self.pending.append(event.packet)
                others.append(describe(event.packet))
                if isinstance(event.packet, Disconnect):
                    # Nothing may follow the server's DISCONNECT [MQTT-3.14.4-1]: the packet
                    # awaited can no longer come, so waiting out the bound (for a server that
                    # does not close after it) would only spend the run's time.
                    raise Deviation(f"{self.name}: expected {label}; the server sent"
                                    f" {describe(event.packet)} instead")
                continue
            if isinstance(event, Closed):
                raise Deviation(f"{self.name}: expected {label}, the server closed the connection")
            # Blame what the malformed bytes break, not the packet we were waiting for.
            uncited = re.sub(r"\s*\[MQTT-[0-9.-]+\]", "", label)
            raise Deviation(f"{self.name}: expected {uncited}, got malformed bytes: {event.error}")

    async def quiet(self) -> list[Packet]:
        """Everything that arrives until nothing has arrived for a quiescence window.

        Returns ``pending`` packets first. A close or malformed bytes end the wait.
        """
        out, self.pending = self.pending, []
        while True:
            event = await self.next_event(self.timing.window)
            if event is None:
                return out
            if isinstance(event, Received):
                out.append(event.packet)
                continue
            if isinstance(event, Garbled):
                raise Deviation(f"{self.name}: server sent malformed bytes: {event.error}")
            return out

    async def settle(self) -> list[Packet]:
        """A PINGREQ round trip, then quiescence: the broker has caught up with us."""
        await self.send(PingReq())
        await self.expect(PingResp)
        return await self.quiet()

    async def wait_close(self, bound: float | None = None, why: str = "") -> list[Packet]:
        """Wait for the server to close; return the packets that came first.

        Raises ``Deviation`` when the connection is still open after ``bound``
        seconds (default: the reply bound). ``why`` cites the statement that
        requires the close: the close is evidence for it, its absence a
        deviation from it.
        """
        limit = self.timing.reply_bound if bound is None else bound
        start = time.monotonic()
        deadline = start + limit
        seen, self.pending = self.pending, []
        if any(isinstance(p, Disconnect) for p in seen):
            deadline = min(deadline, start + self.timing.close_lag_bound)
        while True:
            remaining = deadline - time.monotonic()
            event = await self.next_event(max(remaining, 0.0))
            if event is None:
                self.inconclusive_if_given_up("the close")
                got = ", ".join(describe(p) for p in seen) or "nothing"
                reason = f" ({why})" if why else ""
                raise Deviation(
                    f"{self.name}: the server must close the connection{reason}; it is still"
                    f" open after {time.monotonic() - start:.1f}s (received: {got})"
                )
            if isinstance(event, Received):
                seen.append(event.packet)
                if isinstance(event.packet, Disconnect):  # the close is owed at once
                    deadline = min(deadline, time.monotonic() + self.timing.close_lag_bound)
            elif isinstance(event, Closed):
                if why:
                    observe(f"{self.name}: closed: {why}")
                return seen
            else:
                raise Deviation(f"{self.name}: server sent malformed bytes: {event.error}")

    async def is_open(self) -> bool:
        """Whether the connection still answers a PINGREQ (packets meanwhile go to pending)."""
        if self.closed is not None:
            return False
        await self.send(PingReq(), note="is the connection still open?")
        deadline = time.monotonic() + self.timing.reply_bound
        while True:
            event = await self.next_event(max(deadline - time.monotonic(), 0.0))
            if event is None:
                raise Deviation(f"{self.name}: PINGREQ not answered within the reply bound")
            if isinstance(event, Received):
                if isinstance(event.packet, PingResp):
                    return True
                self.pending.append(event.packet)
                continue
            return False

    async def disconnect(self, packet: Disconnect | None = None) -> list[Packet]:
        """End the connection normally, as a client must: DISCONNECT, then close.

        After a DISCONNECT it sent, the *client* must close the Network Connection
        ([MQTT-3.14.4-2] in 5.0, [MQTT-3.14.4-1] in 3.1.1); the server only SHOULD close
        one the client left open. So a server that waits for the client's close deviates
        from nothing: the probe waits one quiescence window for the server's close (which
        also tells that the server has taken the DISCONNECT in), then closes its own side.
        Returns the packets that came before the close.
        """
        await self.send(packet if packet is not None else Disconnect())
        deadline = time.monotonic() + self.timing.window
        seen: list[Packet] = []
        while (remaining := deadline - time.monotonic()) > 0:
            event = await self.next_event(remaining)
            if event is None:
                break
            if isinstance(event, Closed):
                return seen
            if isinstance(event, Received):
                seen.append(event.packet)
        if not self._writer.is_closing():
            self.trace.add(self.name, "..", "closes the TCP connection after its DISCONNECT")
            self._writer.close()
        return seen

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT (an abrupt close for wills).

        On a cluster the drop waits out the propagation allowance like a send
        (``nodes``). ``abort`` is synchronous (the checks call it without ``await``),
        so that wait blocks the loop: what arrives meanwhile waits in the socket and is
        read right after, nothing is lost."""
        nodes = clustered()
        delay = 0.0 if nodes is None or self.closed is not None else nodes.wait_before(self.node)
        if delay > 0:
            time.sleep(delay)
        if not self._writer.is_closing():
            self.trace.add(self.name, "->", "drops the TCP connection (no DISCONNECT)")
        self._drop()

    def _drop(self) -> None:
        self._aborted = True
        if not self._writer.is_closing():
            if self._shared_state and self.closed is None:
                self._changed()  # the session the client leaves is the cluster's to keep
            self._writer.transport.abort()

    async def close(self) -> None:
        """Release the connection at the end of a check (silently)."""
        self._drop()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
