"""The MQTT 5.0 fault corpus that measures the oracle's power at ``--protocol 5``.

Like ``oracle_faults.ORACLE_FAULTS`` for 3.1.1, each entry breaks the in-process
mqttref broker in one known way, and declares the ids of
``oracle/statements-5.0.json`` it breaks (``breaks``: ``mqttref check --protocol 5``
must FAIL each and PASS none) and those it breaks as a consequence (``cascades``,
each with its reason: a FAIL there is right, not required). A FAIL on any other
statement is a false alarm of the oracle.

The entries come from four places, so that every 5.0 statement a check cites has
a fault that breaks it:

- the level-5 faults of ``faults5`` (the state machine's hunts), as declared there;
- the 3.1.1 monkeypatches of ``faults`` and ``patch_faults`` that break the broker
  at every level (a PINGRESP never sent, a takeover that leaves the old connection
  open), declared again in 5.0's numbering;
- the 3.1.1 wire faults of ``wire_faults`` whose rewrite touches only what both
  levels share (fixed header, packet id, topic name, CONNECT flags), likewise;
- 5.0 faults of their own, below: rewrites of the frames the broker sends (a
  reason code no table has, a property the client did not ask for, a Topic Alias
  of 0) and monkeypatches of its 5.0 handling (an unsupported authentication
  method accepted, inbound aliases kept past the connection).

``config`` holds the broker settings a fault needs to be observable at all (the
broker sends Topic Aliases only with ``send_topic_aliases``; the statements about
a Maximum QoS below 2 need ``max_qos`` 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from mqttref.impl.auth import Continue, Step, Success
from mqttref.impl.broker.connection_base import ConnectionBase
from mqttref.impl.broker.handshake import Handshake
from mqttref.impl.broker.inbound_publish import InboundPublish
from mqttref.impl.broker.packet_size import fit
from mqttref.impl.broker.protocol import Connection
from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.session import Session
from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.broker.shared import SharedGroups, _message_of
from mqttref.impl.codec import wire
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ProtocolError, ReasonCode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Packet,
    PacketType,
    ProtocolLevel,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    UnsubAck,
)
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message
from mqttref.oracle import raw
from tests.stateful import faults as hunted
from tests.stateful import faults5, patch_faults, wire_faults
from tests.stateful.fault_proxy import CLOSE, KEEP_CLIENT_OPEN, Direction, Link, Rewrite
from tests.stateful.faults import Patcher

Inject = Callable[[Patcher], None]

CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 2, 3, 4, 5, 6, 7
SUBACK, UNSUBACK, PINGRESP, DISCONNECT, AUTH = 9, 11, 13, 14, 15


@attrs.frozen
class OracleFault5:
    name: str
    part: str
    breaks: tuple[str, ...]
    inject: Inject | None = None
    rewrite: Rewrite | None = None
    cascades: Mapping[str, str] = attrs.field(factory=dict)
    """Statement -> why the fault breaks it too."""
    config: Mapping[str, Any] = attrs.field(factory=dict)
    """Broker settings (``Config`` fields) the run against this fault uses."""


# Frames the broker sends ------------------------------------------------------------

FrameChange = Callable[[ConnectionBase, bytes], list[bytes]]


def _split(frame: bytes) -> tuple[int, bytes]:
    index = 1
    while frame[index] & 0x80:
        index += 1
    return frame[0], frame[index + 1:]


def _varint(data: bytes, index: int) -> tuple[int, int]:
    """(value, index after it) of the Variable Byte Integer at ``index``."""
    value, shift = 0, 0
    while True:
        byte = data[index]
        value |= (byte & 0x7F) << shift
        index += 1
        if not byte & 0x80:
            return value, index
        shift += 7


def _sent(kind: int, change: Callable[[bytes], list[bytes]]) -> Inject:
    """Apply ``change`` to every frame of packet type ``kind`` a 5.0 connection sends."""
    return _sent_by(lambda _connection, frame: change(frame) if frame[0] >> 4 == kind
                    else [frame])


def _sent_by(change: FrameChange) -> Inject:
    def inject(mp: Patcher) -> None:
        original = ConnectionBase.send_frame

        def send_frame(self: ConnectionBase, frame: bytes) -> None:
            if self.protocol_level is not ProtocolLevel.MQTT_5:
                original(self, frame)
                return
            for changed in change(self, frame):
                original(self, changed)

        mp.setattr(ConnectionBase, "send_frame", send_frame)

    return inject


def _ack_codes(frame: bytes) -> tuple[int, bytes, bytes]:
    """(first byte, packet id and properties, reason codes) of a SUBACK or UNSUBACK."""
    first, body = _split(frame)
    length, end = _varint(body, 2)
    return first, body[:end + length], body[end + length:]


def _codes_reversed(frame: bytes) -> list[bytes]:
    first, head, codes = _ack_codes(frame)
    return [raw.frame(first, head + codes[::-1])]


def _codes_reserved(frame: bytes) -> list[bytes]:
    """Every success code of a SUBACK or UNSUBACK becomes 0x03, in no table of either."""
    first, head, codes = _ack_codes(frame)
    return [raw.frame(first, head + bytes(0x03 if c < 0x80 else c for c in codes))]


def _codes_short(frame: bytes) -> list[bytes]:
    first, head, codes = _ack_codes(frame)
    return [raw.frame(first, head + codes[:-1])] if len(codes) > 1 else [frame]


def _no_property_length(frame: bytes) -> list[bytes]:
    """A SUBACK without properties sent without the Property Length of zero."""
    first, body = _split(frame)
    if len(body) > 2 and body[2] == 0:
        return [raw.frame(first, body[:2] + body[3:])]
    return [frame]


def _connack_reserved_flag(frame: bytes) -> list[bytes]:
    first, body = _split(frame)
    return [raw.frame(first, bytes((body[0] | 0x02,)) + body[1:])]


def _dup_on_first_sending(qos: int) -> Callable[[bytes], list[bytes]]:
    """DUP 1 on every PUBLISH of ``qos`` (one QoS per fault: a check stops at its first
    deviation, so one fault for both would show only the QoS 1 one)."""
    def change(frame: bytes) -> list[bytes]:
        return [bytes((frame[0] | 0x08,)) + frame[1:]] if (frame[0] >> 1) & 3 == qos else [frame]

    return change


def _disconnect_reserved_code(frame: bytes) -> list[bytes]:
    first, body = _split(frame)
    return [raw.frame(first, b"\x03" + body[1:] if body else b"\x03\x00")]


def _disconnect_then_pingresp(frame: bytes) -> list[bytes]:
    return [frame, b"\xd0\x00"]


def _refusal_as_disconnect(frame: bytes) -> list[bytes]:
    """A refusing CONNACK sent as a DISCONNECT with the same reason code instead."""
    _first, body = _split(frame)
    if body[1] < 0x80:
        return [frame]
    return [raw.frame(0xE0, bytes((body[1],)) + body[2:])]


def _long_remaining_length(frame: bytes) -> list[bytes]:
    """The Remaining Length of a short packet in two bytes (0x80 0x00 style), not one."""
    if frame[1] & 0x80:
        return [frame]
    return [bytes((frame[0], frame[1] | 0x80, 0x00)) + frame[2:]]


def _publish_properties(frame: bytes) -> tuple[int, int, int]:
    """(first byte, start, end) of the properties block of a PUBLISH frame's body."""
    first, body = _split(frame)
    topic_length = int.from_bytes(body[:2], "big")
    index = 2 + topic_length + (2 if (first >> 1) & 3 else 0)
    length, start = _varint(body, index)
    return first, start, start + length


_FIXED = {0x01: 1, 0x02: 4, 0x23: 2}
_PREFIXED = {0x03, 0x08, 0x09}


def _alias_changed(value: Callable[[int], int]) -> Callable[[bytes], list[bytes]]:
    """The Topic Alias (0x23) of a PUBLISH the broker sends replaced by ``value(alias)``."""

    def change(frame: bytes) -> list[bytes]:
        first, body = _split(frame)
        _first, start, end = _publish_properties(frame)
        index = start
        while index < end:
            ident = body[index]
            if ident == 0x23:
                alias = int.from_bytes(body[index + 1:index + 3], "big")
                changed = body[:index + 1] + value(alias).to_bytes(2, "big") + body[index + 3:]
                return [raw.frame(first, changed)]
            index += 1
            if ident in _FIXED:
                index += _FIXED[ident]
            elif ident in _PREFIXED:
                index += 2 + int.from_bytes(body[index:index + 2], "big")
            elif ident == 0x26:
                for _ in range(2):
                    index += 2 + int.from_bytes(body[index:index + 2], "big")
            else:  # 0x0B, the Subscription Identifier: a Variable Byte Integer
                _value, index = _varint(body, index)
        return [frame]

    return change


def _property_corrupted(ident: int, bad: bytes) -> Callable[[bytes], list[bytes]]:
    """The string property ``ident`` of a PUBLISH the broker sends (the first string of a
    User Property) with ``bad`` appended inside its length: ill-formed or holding U+0000."""

    def change(frame: bytes) -> list[bytes]:
        first, body = _split(frame)
        _first, start, end = _publish_properties(frame)
        head_end = start - len(_varint_bytes(end - start))  # where the Property Length is
        index = start
        while index < end:
            current = body[index]
            index += 1
            if current == ident:
                length = int.from_bytes(body[index:index + 2], "big")
                value = body[index + 2:index + 2 + length] + bad
                block = (body[start:index] + len(value).to_bytes(2, "big") + value
                         + body[index + 2 + length:end])
                return [raw.frame(first, body[:head_end] + _varint_bytes(len(block)) + block
                                  + body[end:])]
            if current in _FIXED:
                index += _FIXED[current]
            elif current in _PREFIXED:
                index += 2 + int.from_bytes(body[index:index + 2], "big")
            elif current == 0x26:
                for _ in range(2):
                    index += 2 + int.from_bytes(body[index:index + 2], "big")
            else:
                _value, index = _varint(body, index)
        return [frame]

    return change


def _qos_bits_both_set(frame: bytes) -> list[bytes]:
    return [bytes((frame[0] | 0x06,)) + frame[1:]] if (frame[0] >> 1) & 3 == 1 else [frame]


def _subscribe_reserved_bits_cleared(direction: Direction, frame: bytes,
                                     _link: Link) -> list[bytes]:
    """The client's SUBSCRIBE with its options' reserved bits cleared before the broker
    sees it: a broker that ignores them."""
    if direction is not Direction.UP or frame[0] >> 4 != 8:
        return [frame]
    first, body = _split(frame)
    length, start = _varint(body, 2)
    out, index = bytearray(body[:start + length]), start + length
    while index + 2 < len(body):
        size = int.from_bytes(body[index:index + 2], "big")
        out += body[index:index + 2 + size] + bytes((body[index + 2 + size] & 0x3F,))
        index += 3 + size
    return [raw.frame(first, bytes(out))]


def _other_name_refused_open(direction: Direction, frame: bytes, link: Link) -> list[bytes]:
    """A CONNECT whose protocol name is not MQTT is refused with CONNACK 0x84 (as for an
    unsupported version), and the connection is left open."""
    if direction is Direction.UP and frame[0] >> 4 == 1:
        first, body = _split(frame)
        if body[:2] == b"\x00\x04" and body[2:6] != b"MQTT":
            link.state[KEEP_CLIENT_OPEN] = True
            return [raw.frame(first, b"\x00\x04MQTT\x06" + body[7:])]  # refused as level 6
    return [frame]


def _refuse_23_byte_ids5(direction: Direction, frame: bytes, link: Link) -> list[bytes]:
    """A 5.0 CONNECT whose client id has 23 bytes is refused with 0x85."""
    if direction is Direction.UP and frame[0] >> 4 == 1:
        _first, body = _split(frame)
        if body[6:7] == b"\x05":
            length, start = _varint(body, 10)
            at = start + length
            link.state["id23"] = body[at:at + 2] == b"\x00\x17"
    elif direction is Direction.DOWN and frame[0] >> 4 == CONNACK and link.state.get("id23"):
        return [raw.frame(CONNACK << 4, b"\x00\x85\x00"), CLOSE]
    return [frame]


def _bom_stripped5(direction: Direction, frame: bytes, link: Link) -> list[bytes]:
    """A BOM in the Topic Name of a client's PUBLISH removed before the broker sees it."""
    if frame[0] >> 4 != PUBLISH:
        return [frame]
    return list(wire_faults.SENDING["BOM stripped from topics"][1](direction, frame, link))


def _quota_blocks_others(connection: ConnectionBase, frame: bytes) -> list[bytes]:
    """While the client's Receive Maximum is used up, the packets that are no PUBLISH
    (PINGRESP, SUBACK, UNSUBACK, PUBACK, ...) are not sent."""
    session = getattr(connection, "session", None)
    if (session is not None and frame[0] >> 4 != PUBLISH and frame[0] >> 4 != CONNACK
            and session.inflight and len(session.inflight) >= session.window):
        return []
    return [frame]


REASON = (b"\x1f" + raw.string("mqttref fault: a Reason String whatever the Maximum Packet Size")
          + b"\x26" + raw.string("mqttref-fault") + raw.string("a User Property as well"))
"""A Reason String and a User Property: the two properties each ``MUST NOT send ... beyond
the Maximum Packet Size`` statement pair names."""


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _with_reason_string(frame: bytes) -> list[bytes]:
    """A Reason String and a User Property added to a CONNACK, an acknowledgement, a
    DISCONNECT or an AUTH,
    whatever the client's Maximum Packet Size (the broker's trimming bypassed)."""
    kind = frame[0] >> 4
    first, body = _split(frame)
    if kind == CONNACK:
        head, rest = body[:2], body[2:]
    elif kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        head, rest = body[:3] if len(body) > 2 else body[:2] + b"\x00", body[3:]
    elif kind in (SUBACK, UNSUBACK):
        head, rest = body[:2], body[2:]
    elif kind in (DISCONNECT, AUTH):
        head, rest = body[:1] or b"\x00", body[1:]
    else:
        return [frame]
    length, start = _varint(rest, 0) if rest else (0, 0)
    properties, after = rest[start:start + length], rest[start + length:]
    block = REASON + properties
    return [raw.frame(first, head + _varint_bytes(len(block)) + block + after)]


def _strings_unchecked(mp: Patcher) -> None:
    """UTF-8 strings decoded leniently: ill-formed bytes and U+0000 are let through."""

    def string(self: wire.Reader, what: str = "a UTF-8 string") -> str:
        return self.binary(what).decode("utf-8", "replace").replace("\x00", "\ufffd")

    mp.setattr(wire.Reader, "string", string)


def _capabilities_not_enforced(mp: Patcher) -> None:
    """A Will QoS above the Maximum QoS, or a Will Retain where Retain Available is 0,
    accepted: the will is published within what the broker supports."""
    original = Handshake._on_connect_v5

    def on_connect_v5(self: Handshake, packet: Connect, now: float) -> None:
        will = packet.will
        if will is not None:
            packet = attrs.evolve(packet, will=attrs.evolve(
                will, qos=QoS(min(int(will.qos), self.config.max_qos)),
                retain=will.retain and self.config.retain_available))
        original(self, packet, now)

    mp.setattr(Handshake, "_on_connect_v5", on_connect_v5)


def _first_identifier_only(mp: Patcher) -> None:
    original = Session.deliver

    def deliver(self: Session, message: Message, qos: QoS, now: float, *,
                identifiers: tuple[int, ...] = (), **options: Any) -> None:
        original(self, message, qos, now, identifiers=identifiers[:1], **options)

    mp.setattr(Session, "deliver", deliver)


def _qos1_duplicates_dropped(mp: Patcher) -> None:
    """QoS 1 packet ids remembered after PUBACK: a new message reusing one is dropped."""
    original = Session.on_publish
    seen: dict[int, set[int]] = {}

    def on_publish(self: Session, packet: Publish, now: float, *, defer_ack: bool = False
                   ) -> Message | None:
        message = original(self, packet, now, defer_ack=defer_ack)
        if packet.qos is QoS.AT_LEAST_ONCE and packet.packet_id is not None:
            ids = seen.setdefault(id(self), set())
            if packet.packet_id in ids and message is not None:
                if defer_ack:
                    assert self.connection is not None
                    self.connection.send_frame(raw.frame(0x40, packet.packet_id.to_bytes(
                        2, "big") + b"\x00"))
                return None
            ids.add(packet.packet_id)
        return message

    mp.setattr(Session, "on_publish", on_publish)


def _pubrel_keeps_the_id(mp: Patcher) -> None:
    """After PUBCOMP the packet id stays taken: a new QoS 2 PUBLISH with it is a duplicate."""
    original = Session.on_pubrel

    def on_pubrel(self: Session, packet_id: int, now: float) -> None:
        known = packet_id in self.awaiting_rel
        original(self, packet_id, now)
        if known:
            self.awaiting_rel.add(packet_id)

    mp.setattr(Session, "on_pubrel", on_pubrel)


def _publish_resent_after_pubrel(mp: Patcher) -> None:
    """On resume the PUBLISH is sent again where the PUBREL was due."""
    original = Session.resend

    def resend(self: Session, entry: Any, now: float) -> None:
        if entry.state is OutboundState.AWAITING_PUBCOMP:
            frame = self.publish_frame(entry.message, now, dup=True)
            if frame is not None and self.connection is not None:
                self.connection.send_frame(frame)
                return
        original(self, entry, now)

    mp.setattr(Session, "resend", resend)


def _pubrel_forgotten(mp: Patcher) -> None:
    """Once PUBREL is sent the flow is taken as complete: no PUBREL again on resume."""
    original = Session.on_ack

    def on_ack(self: Session, kind: Any, packet_id: int, now: float,
               reason_code: int = 0) -> None:
        original(self, kind, packet_id, now, reason_code)
        entry = self.inflight.get(packet_id)
        if entry is not None and entry.state is OutboundState.AWAITING_PUBCOMP:
            del self.inflight[packet_id]
            if self.persistent:
                self.store.inflight_remove(self.client_id, packet_id)

    mp.setattr(Session, "on_ack", on_ack)


def _expiry_applied_in_flight(mp: Patcher) -> None:
    """A message in flight whose expiry passed is dropped: not re-sent on resume, and a
    late PUBREC for it gets no PUBREL."""
    original = Session.resend

    def resend(self: Session, entry: Any, now: float) -> None:
        expires = entry.message.expires_at
        if (expires is not None and expires <= now
                and entry.state is not OutboundState.AWAITING_PUBCOMP):
            self.inflight.pop(entry.message.packet_id, None)
            if self.persistent:
                self.store.inflight_remove(self.client_id, entry.message.packet_id)
            return
        original(self, entry, now)

    on_ack = Session.on_ack

    def ack(self: Session, kind: Any, packet_id: int, now: float, reason_code: int = 0) -> None:
        entry = self.inflight.get(packet_id)
        expires = entry.message.expires_at if entry is not None else None
        if (entry is not None and expires is not None and expires <= now
                and entry.state is OutboundState.AWAITING_PUBREC):
            del self.inflight[packet_id]  # expired in flight: no PUBREL after the PUBREC
            if self.persistent:
                self.store.inflight_remove(self.client_id, packet_id)
            return
        on_ack(self, kind, packet_id, now, reason_code)

    mp.setattr(Session, "resend", resend)
    mp.setattr(Session, "on_ack", ack)


def _stays_open_after_disconnect(frame: bytes, link: Link) -> list[bytes]:
    link.state[KEEP_CLIENT_OPEN] = True
    return [frame]


def _connack_without_maximum_qos(_connection: ConnectionBase, packet: Packet) -> Packet:
    if isinstance(packet, ConnAck):
        return attrs.evolve(packet, properties=attrs.evolve(packet.properties,
                                                            maximum_qos=None))
    return packet



# Packets the broker sends -------------------------------------------------------------


def _sent_packet(change: Callable[[ConnectionBase, Packet], Packet]) -> Inject:
    """Rewrite the packets a 5.0 connection encodes with ``send`` (not PUBLISH frames)."""

    def inject(mp: Patcher) -> None:
        original = ConnectionBase.send

        def send(self: ConnectionBase, packet: Packet) -> None:
            if self.terms is not None:
                packet = change(self, packet)
            original(self, packet)

        mp.setattr(ConnectionBase, "send", send)

    return inject


def _connack_properties(**changes: Any) -> Inject:
    def change(_connection: ConnectionBase, packet: Packet) -> Packet:
        if isinstance(packet, ConnAck):
            return attrs.evolve(packet, properties=attrs.evolve(packet.properties, **changes))
        return packet

    return _sent_packet(change)


def _reason_string_on_acks(_connection: ConnectionBase, packet: Packet) -> Packet:
    """A Reason String on every SUBACK and UNSUBACK, whatever the client asked."""
    if isinstance(packet, SubAck | UnsubAck):
        return attrs.evolve(packet, properties=attrs.evolve(
            packet.properties, reason_string="acknowledged"))
    return packet


def _receive_maximum_understated(_connection: ConnectionBase, packet: Packet) -> Packet:
    """CONNACK declares a Receive Maximum of 2 while the broker takes far more."""
    if isinstance(packet, ConnAck):
        return attrs.evolve(packet, properties=attrs.evolve(packet.properties,
                                                            receive_maximum=2))
    return packet


# Monkeypatches of the 5.0 handling --------------------------------------------------


def _message_properties_dropped(mp: Patcher) -> None:
    original = Session.on_publish

    def on_publish(self: Session, packet: Publish, now: float, *, defer_ack: bool = False
                   ) -> Message | None:
        packet = attrs.evolve(packet, properties=attrs.evolve(
            packet.properties, payload_format_indicator=None, response_topic=None,
            correlation_data=None, content_type=None))
        return original(self, packet, now, defer_ack=defer_ack)

    mp.setattr(Session, "on_publish", on_publish)


def _user_properties_dropped(mp: Patcher) -> None:
    original = Session.on_publish

    def on_publish(self: Session, packet: Publish, now: float, *, defer_ack: bool = False
                   ) -> Message | None:
        packet = attrs.evolve(packet, properties=attrs.evolve(packet.properties,
                                                              user_properties=()))
        return original(self, packet, now, defer_ack=defer_ack)

    mp.setattr(Session, "on_publish", on_publish)


def _will_user_properties_reversed(mp: Patcher) -> None:
    original = Connection.publish_will

    def publish_will(self: Connection, now: float) -> None:
        will = self.will
        if will is not None and len(will.properties.user_properties) > 1:
            self.will = attrs.evolve(will, properties=attrs.evolve(
                will.properties, user_properties=will.properties.user_properties[::-1]))
        original(self, now)

    mp.setattr(Connection, "publish_will", publish_will)


def _unsupported_method_accepted(mp: Patcher) -> None:
    original = Handshake._on_connect_v5

    def on_connect_v5(self: Handshake, packet: Connect, now: float) -> None:
        # Accepted as if it named no method: its successful CONNACK lacks the method too.
        if packet.properties.authentication_method is not None:
            packet = attrs.evolve(packet, properties=attrs.evolve(
                packet.properties, authentication_method=None, authentication_data=None))
        original(self, packet, now)

    mp.setattr(Handshake, "_on_connect_v5", on_connect_v5)


def _auth_without_method_ignored(mp: Patcher) -> None:
    original = Handshake.on_auth

    def on_auth(self: Handshake, packet: Any, now: float) -> None:
        if self._auth is None:
            return  # an AUTH the CONNECT gave no method for: ignored, not a protocol error
        original(self, packet, now)

    mp.setattr(Handshake, "on_auth", on_auth)


def _aliases_outlive_the_connection(mp: Patcher) -> None:
    """Inbound Topic Aliases kept by client id, so a new connection may use old ones."""
    original = InboundPublish._resolve_alias
    kept: dict[str, dict[int, str]] = {}

    def resolve_alias(self: InboundPublish, packet: Publish, alias: int) -> Publish:
        aliases = kept.setdefault(self.client_id or "", {})
        if packet.topic:
            aliases[alias] = packet.topic
            return original(self, packet, alias)
        known = aliases.get(alias)
        if known is not None and (self._aliases is None or alias not in self._aliases):
            return attrs.evolve(packet, topic=known)
        return original(self, packet, alias)

    mp.setattr(InboundPublish, "_resolve_alias", resolve_alias)


def _keep_alive_shortened(mp: Patcher) -> None:
    """The broker enforces a third of the client's Keep Alive (without saying so in a
    Server Keep Alive)."""
    original = Handshake._accept_v5

    def accept_v5(self: Handshake, packet: Connect, now: float, *,
                  auth: Any = None) -> None:
        original(self, packet, now, auth=auth)
        self.keep_alive_limit /= 4.5  # 1.5 x Keep Alive -> a third of it

    mp.setattr(Handshake, "_accept_v5", accept_v5)


def _qos2_subscribe_refused(mp: Patcher) -> None:
    """A SUBSCRIBE asking QoS 2 of a broker with Maximum QoS 1 is a protocol error."""
    original = Connection.on_subscribe

    def on_subscribe(self: Connection, packet: Subscribe, now: float) -> None:
        if any(s.qos > self.config.max_qos for s in packet.subscriptions):
            raise ProtocolError("a Requested QoS above the Maximum QoS",
                                ref="§3.2.2.3.4", reason_code=ReasonCode.QOS_NOT_SUPPORTED)
        original(self, packet, now)

    mp.setattr(Connection, "on_subscribe", on_subscribe)


def _identifiers_when_unavailable(mp: Patcher) -> None:
    """Subscription Identifier Available 0 declared, a SUBSCRIBE with one taken anyway."""
    original = Connection.on_subscribe

    def on_subscribe(self: Connection, packet: Subscribe, now: float) -> None:
        if packet.properties.subscription_identifiers:
            packet = attrs.evolve(packet, properties=attrs.evolve(
                packet.properties, subscription_identifiers=()))
        original(self, packet, now)

    mp.setattr(Connection, "on_subscribe", on_subscribe)


def _granted_qos_ignored(mp: Patcher) -> None:
    """Messages go at their own QoS, whatever the subscription's Maximum QoS."""
    original = Session.deliver

    def deliver(self: Session, message: Message, qos: QoS, now: float, **options: Any) -> None:
        original(self, message, QoS(max(int(qos), int(message.qos))), now, **options)

    mp.setattr(Session, "deliver", deliver)


def _retain_handling(change: Mapping[int, int]) -> Inject:
    def inject(mp: Patcher) -> None:
        original = Registry.on_subscribe

        def on_subscribe(self: Registry, session: Session, packet: Subscribe,
                         now: float) -> None:
            every = tuple(attrs.evolve(s, retain_handling=change.get(s.retain_handling,
                                                                     s.retain_handling))
                          for s in packet.subscriptions)
            original(self, session, attrs.evolve(packet, subscriptions=every), now)

        mp.setattr(Registry, "on_subscribe", on_subscribe)

    return inject


def _refused_puback_resent(mp: Patcher) -> None:
    """A PUBACK with a Reason Code of 0x80 or more leaves the message unacknowledged."""
    original = Session.on_ack

    def on_ack(self: Session, kind: Any, packet_id: int, now: float,
               reason_code: int = 0) -> None:
        if self.v5 and reason_code >= 0x80:
            return
        original(self, kind, packet_id, now, reason_code)

    mp.setattr(Session, "on_ack", on_ack)


def _ack_reason(code: int) -> Callable[[bytes], list[bytes]]:
    """Every PUBACK/PUBREC/PUBCOMP/PUBREL carrying ``code``, whatever it had (0x00, 0x10,
    a refusal): a check may observe any of them."""

    def change(frame: bytes) -> list[bytes]:
        first, body = _split(frame)
        return [raw.frame(first, body[:2] + bytes((code,)) + body[3:])]

    return change


def _connack_success_code(code: int) -> Callable[[bytes], list[bytes]]:
    """A CONNACK of success carrying ``code`` instead (a code of no CONNACK)."""

    def change(frame: bytes) -> list[bytes]:
        first, body = _split(frame)
        if body[1] == 0:
            return [raw.frame(first, body[:1] + bytes((code,)) + body[2:])]
        return [frame]

    return change


def _auth_code(old: int | None, new: int) -> Callable[[bytes], list[bytes]]:
    """The server's AUTH with ``new`` as its reason code where it had ``old`` (any: None)."""

    def change(frame: bytes) -> list[bytes]:
        first, body = _split(frame)
        if body and (old is None or body[0] == old):
            return [raw.frame(first, bytes((new,)) + body[1:])]
        return [frame]

    return change


def _authentication_refusal_left_open(mp: Patcher) -> None:
    """A CONNECT whose enhanced authentication fails (a wrong proof) gets its refusing
    CONNACK and the connection stays open (a method the broker does not hold is still
    refused and closed)."""
    original = Handshake._auth_step

    def auth_step(self: Handshake, step: Step, now: float) -> None:
        pending = self._auth[1] if self._auth is not None else None
        if (pending is not None and not isinstance(step, Continue | Success)
                and step.reason_code != ReasonCode.BAD_AUTHENTICATION_METHOD):
            frame = fit(ConnAck(False, step.reason_code),
                        pending.properties.maximum_packet_size)
            if frame is not None:
                self.send_frame(frame)
            return
        original(self, step, now)

    mp.setattr(Handshake, "_auth_step", auth_step)


def _reauthentication_failure_left_open(mp: Patcher) -> None:
    """A failed re-authentication sends nothing and leaves the connection open."""
    original = Handshake.close

    def close(self: Handshake, reason: str, **options: Any) -> None:
        if not reason.startswith("re-authentication failed"):
            original(self, reason, **options)

    mp.setattr(Handshake, "close", close)


def _auth_flags_swallowed(direction: Direction, frame: bytes, _link: Link) -> list[bytes]:
    """An AUTH from the client with reserved flags set never reaches the broker: a broker
    that ignores it instead of closing."""
    if direction is Direction.UP and frame[0] >> 4 == AUTH and frame[0] & 0x0F:
        return []
    return [frame]


def _refused_method_data_processed(direction: Direction, frame: bytes,
                                   link: Link) -> list[bytes]:
    """A CONNECT naming an Authentication Method goes to the broker without it (accepted),
    the client gets CONNACK 0x8C (Bad authentication method) all the same, and a PUBLISH
    it sent after its CONNECT is processed: routed, then a malformed PINGREQ makes the
    broker close. A server that refuses the CONNECT and still processes what follows."""
    kind = frame[0] >> 4
    if direction is Direction.UP and kind == 1:
        packets = Decoder(role=Role.SERVER).feed(frame)
        connect = packets[0] if packets else None
        if (isinstance(connect, Connect) and connect.protocol_level is ProtocolLevel.MQTT_5
                and connect.properties.authentication_method is not None):
            link.state["refusing"] = True
            return [encode(attrs.evolve(connect, properties=attrs.evolve(
                connect.properties, authentication_method=None, authentication_data=None)),
                ProtocolLevel.MQTT_5)]
    elif direction is Direction.UP and kind == PUBLISH and link.state.get("refusing"):
        link.state["published"] = True
        return [frame, b"\xc1\x00"]  # PINGREQ with flags 0001: the broker closes after it
    elif direction is Direction.DOWN and link.state.get("refusing"):
        if kind == CONNACK:
            refusal = raw.frame(CONNACK << 4, b"\x00\x8c\x00")
            return [refusal] if link.state.get("published") else [refusal, CLOSE]
        return []  # the broker's DISCONNECT for the malformed PINGREQ: not the client's
    return [frame]


def _no_session_for_clean_start_0(mp: Patcher) -> None:
    """A 5.0 CONNECT with Clean Start 0 that finds no session gets one that ends with the
    connection, whatever its Session Expiry Interval: no session is created for the client
    id."""
    original = SessionTable.open_session

    def open_session(self: SessionTable, connection: Any, client_id: str, connect: Connect,
                     now: float) -> tuple[Session, bool]:
        if (connect.protocol_level is ProtocolLevel.MQTT_5 and not connect.clean_session
                and client_id not in self.sessions):
            connect = attrs.evolve(connect, properties=attrs.evolve(
                connect.properties, session_expiry_interval=0))
        return original(self, connection, client_id, connect, now)

    mp.setattr(SessionTable, "open_session", open_session)


def _one_identifier_on_every_copy(mp: Patcher) -> None:
    """Overlapping subscriptions with identifiers get one copy each, every copy carrying
    the first identifier."""
    original = Session.deliver

    def deliver(self: Session, message: Message, qos: QoS, now: float, *,
                identifiers: tuple[int, ...] = (), **options: Any) -> None:
        for _copy in identifiers[1:]:
            original(self, message, qos, now, identifiers=identifiers[:1], **options)
        original(self, message, qos, now, identifiers=identifiers[:1], **options)

    mp.setattr(Session, "deliver", deliver)


def _session_expires_while_connected(mp: Patcher) -> None:
    """A 5.0 session's Session Expiry Interval counts from the CONNECT: once it has run,
    the session's messages are discarded though the connection is still open."""
    open_session, deliver = SessionTable.open_session, Session.deliver
    deadlines: dict[int, float] = {}

    def opened(self: SessionTable, connection: Any, client_id: str, connect: Connect,
               now: float) -> tuple[Session, bool]:
        session, present = open_session(self, connection, client_id, connect, now)
        interval = connect.properties.session_expiry_interval
        if connect.protocol_level is ProtocolLevel.MQTT_5 and interval and interval < 60:
            deadlines[id(session)] = now + interval
        return session, present

    def delivered(self: Session, message: Message, qos: QoS, now: float,
                  **options: Any) -> None:
        deadline = deadlines.get(id(self))
        if deadline is not None and deadline <= now and self.connection is not None:
            return  # the session state is gone, the connection open
        deliver(self, message, qos, now, **options)

    mp.setattr(SessionTable, "open_session", opened)
    mp.setattr(Session, "deliver", delivered)


def _refused_shared_message_handed_over(mp: Patcher) -> None:
    """A shared subscription's message its member refuses with PUBACK 0x80 or more goes
    to another member of the group."""
    send, on_ack = SharedGroups.send, Session.on_ack
    known: list[SharedGroups] = []

    def sent(self: SharedGroups, *args: Any) -> None:
        if self not in known:
            known.append(self)
        send(self, *args)

    def acked(self: Session, kind: Any, packet_id: int, now: float,
              reason_code: int = 0) -> None:
        entry = self.inflight.get(packet_id)
        on_ack(self, kind, packet_id, now, reason_code)
        if (entry is None or kind is not PacketType.PUBACK or reason_code < 0x80
                or entry.message.share is None):
            return
        for groups in known:
            group = groups.groups.get(entry.message.share)
            member = None if group is None else group.pick(leaving=self.client_id)
            if group is not None and member is not None:
                groups.send(group, member, _message_of(entry.message), now)

    mp.setattr(SharedGroups, "send", sent)
    mp.setattr(Session, "on_ack", acked)


# The corpus -------------------------------------------------------------------------


LEVEL5_BREAKS: dict[str, tuple[str, ...]] = {
    # The 5.0 check observes the send quota itself: 4.9.0-2 is broken as much as 3.3.4-9.
    # Its send quota starts at the broker's window, above the client's Receive Maximum.
    "receive_maximum_exceeded": ("MQTT-3.3.4-9", "MQTT-4.9.0-2", "MQTT-4.9.0-1"),
    # faults5 also names 3.2.2-3 ("whether its session was kept or ended"), but a client
    # id in the session table has a session: Session Present 1 after Clean Start 0 is right.
    "present_despite_clean_start": ("MQTT-3.2.2-2", "MQTT-3.1.4-4"),
    # The broker's codec refuses to encode a CONNACK with code 0x01, so what goes on the
    # wire is a DISCONNECT where the CONNACK was due: a first packet other than CONNACK.
    # No CONNACK with a code of no table is ever sent; "CONNACK with a reason code of no
    # CONNACK" below breaks 3.2.2-8 on the wire.
    "connack_code_not_connack": ("MQTT-3.2.0-1",),
}
"""Where the oracle's declaration differs from the hunt's, and why."""

LEVEL5_CASCADES: dict[str, dict[str, str]] = {
    "inbound_alias_forgotten": {
        "MQTT-4.13.1-1": "a PUBLISH with a topic name returns before the alias is checked:"
                         " an alias above the maximum is taken without the close it is owed"},
    "retain_as_published_ignored": {
        "MQTT-3.1.2-15": "the retained will reaches a Retain As Published subscriber with"
                         " RETAIN 0: nothing shows it was published retained"},
    "present_despite_clean_start": {
        "MQTT-3.1.4-4": "Session Present 1 after Clean Start 1 says the old session goes on:"
                        " Clean Start was not processed as far as the client can tell"},
    "session_dropped_before_expiry": {
        "MQTT-3.1.2-8": "the session ends as the connection closes, so the delayed will goes"
                        " at once",
        "MQTT-3.1.3-9": "the session ends as the connection closes, so the will goes before"
                        " the client can come back",
        "MQTT-3.1.2-6": "Clean Start 0 finds no session where one must be"},
    "present_zero_on_resume": {
        "MQTT-3.1.2-23": "Session Present 0 says the session was not stored",
        "MQTT-3.1.2-6": "Session Present 0 on a resumed session reads as a new session made"},
    "higher_qos_granted5": {
        "MQTT-3.8.4-5": "each filter of a SUBSCRIBE gets a code above its request, unlike"
                        " separate SUBSCRIBEs at a conforming server",
        "MQTT-3.9.3-1": "a code above its own request is read as another filter's code"},
    "suback_codes_reversed": {
        "MQTT-3.8.4-5": "the codes of one SUBSCRIBE differ from those of separate SUBSCRIBEs"},
    "will_on_normal_disconnect": {
        "MQTT-3.1.2-10": "the will is not removed on a DISCONNECT with 0x00: it is published"},
}
"""5.0 cascades the oracle observes beyond those ``faults5`` declares, each with why."""

NOT_IN_CORPUS5: dict[str, str] = {
    # (and of faults.FAULTS, "drop a PUBACK": at 5.0 the connection sends the PUBACK
    # itself after routing, so that patch of Session.on_publish only drops properties;
    # "no PUBACK" below is its 5.0 counterpart. Of patch_faults, "PUBLISH after a refused
    # CONNECT routed": it patches the 3.1.1 refusal, which a 5.0 CONNECT never takes)
    "identifier_invented": "an identifier where the client gave none breaks no 5.0 MUST:"
                           " [MQTT-3.3.4-3] asks for those the client gave, and says nothing"
                           " of others",
    "dup_on_first_delivery": "it patches Session.publish_frame, which a message without"
                             " properties never reaches (send_new's fast path): 'DUP 1 on every"
                             " first QoS 1 and 2 PUBLISH' below breaks the same statements on"
                             " every path",
}
"""Level-5 hunt faults left out of the oracle's corpus, and why."""


def _one_packet_id(mp: Patcher) -> None:
    """Every PUBLISH the broker sends at QoS 1 or 2 gets packet id 1, in use or not."""
    mp.setattr(Session, "_allocate_packet_id", lambda self: 1)


def _too_large_closes(mp: Patcher) -> None:
    """A message too large for the client's Maximum Packet Size closes its connection
    instead of being discarded as if sent."""
    original = Session.drop

    def drop(self: Session, topic: str, why: str) -> None:
        original(self, topic, why)
        if "Maximum Packet Size" in why and self.connection is not None:
            self.connection.close("a message too large for the client", publish_will=False)

    mp.setattr(Session, "drop", drop)


def _present_on_a_new_session(mp: Patcher) -> None:
    """Session Present 1 to a Clean Start 0 CONNECT that found no session."""
    original = SessionTable.open_session

    def open_session(self: SessionTable, connection: Any, client_id: str, connect: Connect,
                     now: float) -> tuple[Session, bool]:
        session, present = original(self, connection, client_id, connect, now)
        if connect.protocol_level is ProtocolLevel.MQTT_5 and not connect.clean_session:
            present = True
        return session, present

    mp.setattr(SessionTable, "open_session", open_session)


def _will_never_stored(mp: Patcher) -> None:
    """The Will Message is read from CONNECT and never kept: no will is ever published."""
    mp.setattr(Connection, "publish_will", lambda self, now: None)


def _refused_id_kept(mp: Patcher) -> None:
    """After a PUBREC of 0x80 or more its packet id stays awaiting PUBREL, so a new
    PUBLISH with it is taken for the refused one again."""
    original = InboundPublish._refuse_payload

    def refuse_payload(self: InboundPublish, packet: Publish) -> None:
        original(self, packet)
        if (packet.qos is QoS.EXACTLY_ONCE and packet.packet_id is not None
                and self.session is not None):
            self.session.awaiting_rel.add(packet.packet_id)

    mp.setattr(InboundPublish, "_refuse_payload", refuse_payload)


def _no_pubcomp_once_expired(mp: Patcher) -> None:
    """A QoS 2 message whose Message Expiry Interval passed before its PUBREL gets no
    PUBCOMP: the broker applies expiry to the acknowledgement sequence too."""
    publish, pubrel = Session.on_publish, Session.on_pubrel
    deadlines: dict[tuple[int, int], float] = {}

    def on_publish(self: Session, packet: Publish, now: float, *, defer_ack: bool = False
                   ) -> Message | None:
        interval = packet.properties.message_expiry_interval
        if packet.qos is QoS.EXACTLY_ONCE and interval is not None and packet.packet_id:
            deadlines.setdefault((id(self), packet.packet_id), now + interval)
        return publish(self, packet, now, defer_ack=defer_ack)

    def on_pubrel(self: Session, packet_id: int, now: float) -> None:
        deadline = deadlines.pop((id(self), packet_id), None)
        if deadline is not None and deadline <= now:
            self.awaiting_rel.discard(packet_id)
            return
        pubrel(self, packet_id, now)

    mp.setattr(Session, "on_publish", on_publish)
    mp.setattr(Session, "on_pubrel", on_pubrel)


def _from_faults5(fault: Any) -> OracleFault5:
    breaks = fault.breaks
    declared = (breaks,) if isinstance(breaks, str) else tuple(breaks)
    return OracleFault5(fault.name, f"level 5: {fault.part}",
                        LEVEL5_BREAKS.get(fault.name, declared), inject=fault.inject,
                        cascades={**getattr(fault, "cascades", {}),
                                  **LEVEL5_CASCADES.get(fault.name, {})})


LEVEL5: tuple[OracleFault5, ...] = tuple(
    _from_faults5(f) for f in faults5.FAULTS5
    if f.name not in NOT_IN_CORPUS5)
"""The level-5 faults the state machine hunts, as ``faults5`` declares them (but for
``LEVEL5_BREAKS``), with the cascades of ``LEVEL5_CASCADES``."""


def _hunted(name: str) -> Inject:
    for fault in hunted.FAULTS:
        if fault.name == name:
            assert fault.inject is not None
            return fault.inject
    raise KeyError(name)


def _patched(name: str) -> Inject:
    return patch_faults.PATCHED[name][1]


def _wire(name: str) -> Rewrite:
    table = {**wire_faults.SENDING, **wire_faults.SWALLOWING}
    return table[name][1]



WILL_PATCHED = {
    "MQTT-3.1.2-8": "the patched will goes at once, whatever its Will Delay Interval",
    "MQTT-3.1.3-9": "the patched will goes at once, before the client can come back",
    "MQTT-3.1.3-10": "the patched will is published without its properties",
}
"""What the 3.1.1 will patches also break at 5.0: they publish a bare message at the close."""

BOTH_LEVELS: tuple[OracleFault5, ...] = (
    OracleFault5("no PINGRESP", "connection (handlers)", ("MQTT-3.12.4-1",),
                 inject=_hunted("no PINGRESP"),
                 cascades={"MQTT-3.3.4-10": "no PINGRESP while the send quota is 0 either",
                           "MQTT-4.9.0-3": "no PINGRESP while the send quota is 0 either"}),
    OracleFault5("ignore a second CONNECT", "connection (dispatch table)", ("MQTT-3.1.0-2",),
                 inject=_hunted("ignore a second CONNECT")),
    OracleFault5("UNSUBSCRIBE acknowledged but ignored", "registry (unsubscribe)",
                 ("MQTT-3.10.4-2",),
                 inject=_hunted("UNSUBSCRIBE acknowledged but ignored"),
                 cascades={"MQTT-3.10.4-1": "the subscription of an identical filter is not"
                                            " deleted",
                           "MQTT-3.10.4-6": "no filter of an UNSUBSCRIBE of several is"
                                            " processed"}),
    OracleFault5("no retained message on subscribe", "topic server (retained)",
                 ("MQTT-3.3.1-9",), inject=_hunted("no retained message on subscribe"),
                 cascades={"MQTT-3.3.1-10": "Retain Handling 1 on a new subscription sends"
                                            " nothing either",
                           "MQTT-3.1.2-15": "a retained will is seen retained only by a later"
                                            " subscriber, who gets nothing",
                           "MQTT-3.3.1-5": "the retained message cannot be seen replaced",
                           "MQTT-3.8.4-4": "a subscription made again re-sends nothing"}),
    OracleFault5("store an empty retained message", "topic server (retained)",
                 ("MQTT-3.3.1-6", "MQTT-3.3.1-7"),
                 inject=_hunted("store an empty retained message")),
    OracleFault5("PUBREL never completed", "session (QoS 2 receiver)", ("MQTT-4.3.3-11",),
                 inject=_hunted("PUBREL never completed")),
    OracleFault5("takeover leaves the old connection open", "broker (takeover)",
                 ("MQTT-3.1.4-3",), inject=_hunted("takeover leaves the old connection open")),
    OracleFault5("deliver a QoS 2 message twice", "topic server", ("MQTT-4.3.3-10",),
                 inject=_hunted("deliver a QoS 2 message twice")),
    OracleFault5("forget DUP on redelivery", "session (resend)", ("MQTT-3.3.1-1",),
                 inject=_hunted("forget DUP on redelivery")),
    OracleFault5("keep RETAIN=1 on normal forwarding", "session (deliver)",
                 ("MQTT-3.3.1-12",), inject=_hunted("keep RETAIN=1 on normal forwarding")),
    OracleFault5("skip the will on keep-alive expiry", "connection (timers)",
                 ("MQTT-3.1.2-8",), inject=_hunted("skip the will on keep-alive expiry")),
    OracleFault5("lose the offline queue on reconnect", "session (attach)",
                 ("MQTT-3.1.2-5", "MQTT-4.5.0-1"),
                 inject=_hunted("lose the offline queue on reconnect"),
                 cascades={"MQTT-4.4.0-1": "the unacknowledged messages are gone with it",
                           "MQTT-3.1.3-2": "the state the client id names is lost"}),
    OracleFault5("reorder queued messages (last in, first out)", "session (queue)",
                 ("MQTT-4.6.0-5", "MQTT-4.6.0-6"),
                 inject=_hunted("reorder queued messages (last in, first out)")),
    OracleFault5("match wildcards against $ topics", "matching tries", ("MQTT-4.7.2-1",),
                 inject=_hunted("match wildcards against $ topics")),
    OracleFault5("leave a clean session's subscriptions behind", "registry (session end)",
                 ("MQTT-3.1.2-4",),
                 inject=_hunted("leave a clean session's subscriptions behind")),
    OracleFault5("overlapping subscriptions deliver at the lowest QoS",
                 "registry (granted QoS)", ("MQTT-3.3.4-2",),
                 inject=_hunted("overlapping subscriptions deliver at the lowest QoS")),
    OracleFault5("CONNACK not first", "connection (CONNECT)", ("MQTT-3.2.0-1",),
                 inject=_hunted("CONNACK not first")),
    OracleFault5("subscriptions forgotten when a persistent session resumes",
                 "broker patch", ("MQTT-3.1.2-5",),
                 inject=_patched("subscriptions forgotten when a persistent session resumes")),
    OracleFault5("will published twice", "broker patch", ("MQTT-3.1.2-10",),
                 inject=_patched("will published twice"), cascades=WILL_PATCHED),
    OracleFault5("non-retained will published retained", "broker patch", ("MQTT-3.1.2-14",),
                 inject=_patched("non-retained will published retained"), cascades=WILL_PATCHED),
    OracleFault5("retained will published non-retained", "broker patch", ("MQTT-3.1.2-15",),
                 inject=_patched("retained will published non-retained"), cascades=WILL_PATCHED),
    OracleFault5("keep alive ignored", "broker patch", ("MQTT-3.1.2-22",),
                 inject=_patched("keep alive ignored")),
    OracleFault5("persistent sessions keyed by 12 characters of the client id",
                 "broker patch", ("MQTT-3.1.3-2",),
                 inject=_patched("persistent sessions keyed by 12 characters of the client id"),
                 cascades=dict.fromkeys(
                     ("MQTT-3.1.2-23", "MQTT-3.2.2-3", "MQTT-3.1.3-9"),
                     "the oracle's client ids of one run share their first 12 characters:"
                     " their sessions are one")),
    OracleFault5("one assigned client id for every empty client id", "broker patch",
                 ("MQTT-3.1.3-6", "MQTT-3.2.2-16"),
                 inject=_patched("one assigned client id for every empty client id")),
    OracleFault5("retained QoS 1 and 2 messages not stored", "broker patch",
                 ("MQTT-3.3.1-5",), inject=_patched("retained QoS 1 and 2 messages not stored")),
    OracleFault5("RETAIN 0 publish replaces the retained message", "broker patch",
                 ("MQTT-3.3.1-8",),
                 inject=_patched("RETAIN 0 publish replaces the retained message")),
    OracleFault5("subscribing again adds a second subscription", "broker patch",
                 ("MQTT-3.8.4-3",),
                 inject=_patched("subscribing again adds a second subscription")),
    OracleFault5("only the first filter of a SUBSCRIBE subscribed", "broker patch",
                 ("MQTT-3.8.4-5",),
                 inject=_patched("only the first filter of a SUBSCRIBE subscribed")),
    OracleFault5("UNSUBSCRIBE removes the filters its filter matches", "broker patch",
                 ("MQTT-3.10.4-1",),
                 inject=_patched("UNSUBSCRIBE removes the filters its filter matches")),
    OracleFault5("unsubscribing drops the deliveries in flight", "broker patch",
                 ("MQTT-3.10.4-3",),
                 inject=_patched("unsubscribing drops the deliveries in flight")),
    OracleFault5("only the first filter of an UNSUBSCRIBE removed", "broker patch",
                 ("MQTT-3.10.4-6",),
                 inject=_patched("only the first filter of an UNSUBSCRIBE removed")),
    OracleFault5("message delivered to the first matching subscriber only", "broker patch",
                 ("MQTT-4.5.0-1",),
                 inject=_patched("message delivered to the first matching subscriber only")),
    OracleFault5("topic matching ignores case", "broker patch", ("MQTT-4.7.3-4",),
                 inject=_patched("topic matching ignores case")),
    OracleFault5("unacknowledged messages dropped when a persistent session goes offline",
                 "broker patch",
                 ("MQTT-4.4.0-1", "MQTT-4.3.2-3", "MQTT-4.3.3-3", "MQTT-4.8.2-4"),
                 cascades={"MQTT-4.3.3-5": "a PUBREL in flight is dropped with the rest"},
                 inject=_patched("unacknowledged messages dropped when a persistent session"
                                 " goes offline")),
)
"""3.1.1 monkeypatches that break the broker at both levels, in 5.0's numbering."""

WIRE_CASCADES: dict[str, dict[str, str]] = {
    "delivered under another topic name": {
        "MQTT-4.7.3-4": "under a wildcard filter the altered name still matches: a"
                        " modification of the Topic Name"},
    "one packet id for every QoS 1 delivery": {
        "MQTT-2.2.1-4": "its 'currently unused' part: the id is non-zero"},
    "open after a refusing CONNACK": {
        "MQTT-4.12.0-1": "the refusal of an unsupported Authentication Method is left open",
        "MQTT-3.1.3-8": "the refusal of a Client Identifier is left open",
        "MQTT-3.1.2-1": "the refusal of another protocol name is left open"},
    "delivered under a topic name holding U+0000": {
        "MQTT-3.3.2-1": "a Topic Name holding U+0000 is no UTF-8 Encoded String"},
    "no UNSUBACK": {"MQTT-3.10.4-5": "its case of an UNSUBSCRIBE that deletes nothing: the"
                                     " checks' UNSUBSCRIBEs delete, so 3.10.4-4 is what fails"},
    "UNSUBACK with another packet id": {
        "MQTT-3.10.4-6": "the UNSUBACK of an UNSUBSCRIBE of several filters is not its own"},
}

WIRE: tuple[OracleFault5, ...] = tuple(
    OracleFault5(name, part, breaks, rewrite=_wire(name), cascades=WIRE_CASCADES.get(name, {}))
    for part, faults in (
        ("wire: what the broker sends", (
            ("SUBACK with another packet id", ("MQTT-3.8.4-2", "MQTT-2.2.1-6")),
            ("no SUBACK", ("MQTT-3.8.4-1",)),
            ("UNSUBACK with another packet id", ("MQTT-3.10.4-5", "MQTT-2.2.1-6")),
            ("no UNSUBACK", ("MQTT-3.10.4-4",)),
            ("PUBACK with another packet id", ("MQTT-2.2.1-5", "MQTT-4.3.2-4")),
            ("PUBREC with another packet id", ("MQTT-2.2.1-5", "MQTT-4.3.3-8")),
            ("PUBCOMP with another packet id", ("MQTT-2.2.1-5", "MQTT-4.3.3-11")),
            ("QoS 0 delivered with DUP=1", ("MQTT-3.3.1-2", "MQTT-4.3.1-1")),
            ("delivered under another topic name", ("MQTT-3.3.2-3",)),
            ("delivered under a topic name with a wildcard", ("MQTT-3.3.2-2", "MQTT-4.7.0-1")),
            ("session present always 0", ("MQTT-3.2.2-3",)),
            ("session present always 1", ("MQTT-3.2.2-2",)),
            ("session present on a refusal", ("MQTT-3.2.2-6",)),
            ("open after a refusing CONNACK", ("MQTT-3.2.2-7", "MQTT-3.1.2-2")),
            ("no CONNACK", ("MQTT-3.1.4-5",)),
            ("no re-send on reconnect", ("MQTT-4.4.0-1",)),
            ("no PUBREL as QoS 2 sender", ("MQTT-4.3.3-4",)),
            ("one packet id for every QoS 1 delivery", ("MQTT-4.3.2-1",)),
            ("PINGRESP with reserved flags set", ("MQTT-2.1.3-1",)),
            ("QoS 0 delivered with a packet id", ("MQTT-2.2.1-2",)),
            ("delivered under a topic name that is not UTF-8", ("MQTT-1.5.4-1", "MQTT-3.3.2-1")),
            ("delivered with an empty topic name", ("MQTT-4.7.3-1",)),
            ("delivered under a topic name holding U+0000", ("MQTT-1.5.4-2", "MQTT-4.7.3-2")),
            ("QoS 1 delivered with packet id 0", ("MQTT-2.2.1-4",)),
        )),
        ("wire: a violation the broker never sees", (
            ("CONNECT reserved flag ignored", ("MQTT-3.1.2-3",)),
            ("malformed CONNECT flags ignored", ("MQTT-3.1.4-1",)),
            ("second CONNECT swallowed", ("MQTT-3.1.0-2",)),
            ("SUBSCRIBE with bad flags ignored", ("MQTT-3.8.1-1",)),
            ("UNSUBSCRIBE with bad flags ignored", ("MQTT-3.10.1-1",)),
            ("PUBREL with bad flags ignored", ("MQTT-3.6.1-1",)),
            ("DISCONNECT with bad flags ignored", ("MQTT-3.14.1-1",)),
        )),
    )
    for name, breaks in faults
)
"""3.1.1 wire faults whose rewrite reads only what 5.0 frames share with 3.1.1."""

ALIASES = {"send_topic_aliases": True}

OWN: tuple[OracleFault5, ...] = (
    *(OracleFault5(f"{what} with properties beyond the client's Maximum Packet Size",
                   "5.0 frames", ids, inject=_sent(kind, _with_reason_string),
                   cascades={"MQTT-3.1.2-24": "the packet exceeds the Maximum Packet Size",
                             "MQTT-3.1.2-29": "a Reason String also where the client asked for"
                                              " no problem information"})
      for what, kind, ids in (
          ("CONNACK", CONNACK, ("MQTT-3.2.2-19", "MQTT-3.2.2-20")),
          ("PUBACK", PUBACK, ("MQTT-3.4.2-2", "MQTT-3.4.2-3")),
          ("PUBREC", PUBREC, ("MQTT-3.5.2-2", "MQTT-3.5.2-3")),
          ("PUBREL", PUBREL, ("MQTT-3.6.2-2", "MQTT-3.6.2-3")),
          ("PUBCOMP", PUBCOMP, ("MQTT-3.7.2-2", "MQTT-3.7.2-3")),
          ("SUBACK", SUBACK, ("MQTT-3.9.2-1", "MQTT-3.9.2-2")),
          ("UNSUBACK", UNSUBACK, ("MQTT-3.11.2-1", "MQTT-3.11.2-2")),
          ("DISCONNECT", DISCONNECT, ("MQTT-3.14.2-3", "MQTT-3.14.2-4")),
      )),
    OracleFault5("another protocol name refused but left open", "5.0 wire",
                 ("MQTT-3.1.2-1",), rewrite=_other_name_refused_open),
    OracleFault5("23-byte client ids refused at 5.0", "5.0 wire", ("MQTT-3.1.3-5",),
                 rewrite=_refuse_23_byte_ids5),
    OracleFault5("BOM stripped from PUBLISH topics", "5.0 wire", ("MQTT-1.5.4-3",),
                 rewrite=_bom_stripped5),
    OracleFault5("PUBLISH sent with both QoS bits set", "5.0 frames", ("MQTT-3.3.1-4",),
                 inject=_sent(PUBLISH, _qos_bits_both_set)),
    OracleFault5("Response Topic forwarded with a wildcard", "5.0 frames", ("MQTT-3.3.2-14",),
                 inject=_sent(PUBLISH, _property_corrupted(0x08, b"/+"))),
    OracleFault5("SUBSCRIBE options' reserved bits ignored", "5.0 wire", ("MQTT-3.8.3-5",),
                 rewrite=_subscribe_reserved_bits_cleared),
    OracleFault5("packet id 1 for every PUBLISH sent", "5.0 session",
                 ("MQTT-4.3.2-1", "MQTT-4.3.3-1"), inject=_one_packet_id,
                 cascades={"MQTT-2.2.1-4": "its 'currently unused' part: the id is non-zero"}),
    OracleFault5("a message too large for the client closes its connection",
                 "5.0 session", ("MQTT-3.1.2-25",), inject=_too_large_closes),
    OracleFault5("Session Present 1 on a new session", "5.0 session table",
                 ("MQTT-3.2.2-3",), inject=_present_on_a_new_session),
    OracleFault5("will never stored", "5.0 will", ("MQTT-3.1.2-7", "MQTT-3.1.2-8"),
                 inject=_will_never_stored,
                 cascades={"MQTT-3.1.2-14": "no will is published, retained or not",
                           "MQTT-3.1.2-15": "no will is published, retained or not",
                           "MQTT-3.1.3-10": "no will is published to keep an order in"}),
    OracleFault5("packet id kept after a refusing PUBREC", "5.0 QoS 2 receiver",
                 ("MQTT-4.3.3-9",), inject=_refused_id_kept,
                 config={"validate_payload_format": True}),
    OracleFault5("no PUBCOMP once the message expired", "5.0 QoS 2 receiver",
                 ("MQTT-4.3.3-13",), inject=_no_pubcomp_once_expired,
                 cascades={"MQTT-4.3.3-11": "the PUBREL gets no PUBCOMP"}),
    OracleFault5("UTF-8 strings not validated", "5.0 codec", ("MQTT-4.13.1-1",),
                 inject=_strings_unchecked),
    OracleFault5("User Property forwarded ill-formed", "5.0 frames",
                 ("MQTT-1.5.7-1", "MQTT-1.5.4-1"),
                 inject=_sent(PUBLISH, _property_corrupted(0x26, b"\xed\xa0\x80"))),
    OracleFault5("Response Topic forwarded with U+0000", "5.0 frames",
                 ("MQTT-3.3.2-13", "MQTT-1.5.4-2"),
                 inject=_sent(PUBLISH, _property_corrupted(0x08, b"\x00"))),
    OracleFault5("Content Type forwarded ill-formed", "5.0 frames",
                 ("MQTT-3.3.2-19", "MQTT-1.5.4-1"),
                 inject=_sent(PUBLISH, _property_corrupted(0x03, b"\xff"))),
    OracleFault5("Will QoS above the Maximum QoS accepted", "5.0 handshake",
                 ("MQTT-3.2.2-12",), inject=_capabilities_not_enforced,
                 config={"max_qos": 1}),
    OracleFault5("Will Retain accepted where Retain Available is 0", "5.0 handshake",
                 ("MQTT-3.2.2-13",), inject=_capabilities_not_enforced,
                 config={"retain_available": False}),
    OracleFault5("Maximum QoS 1 left out of CONNACK", "5.0 CONNACK", ("MQTT-3.2.2-9",),
                 inject=_sent_packet(_connack_without_maximum_qos), config={"max_qos": 1},
                 cascades={"MQTT-4.3.3-8": "with no Maximum QoS declared a QoS 2 PUBLISH is"
                                           " owed a PUBREC; it gets a refusal"}),
    OracleFault5("one Subscription Identifier of several sent", "5.0 session delivery",
                 ("MQTT-3.3.4-4", "MQTT-3.3.4-3"), inject=_first_identifier_only),
    OracleFault5("QoS 1 packet id taken as a duplicate after PUBACK", "5.0 QoS 1 receiver",
                 ("MQTT-4.3.2-5",), inject=_qos1_duplicates_dropped),
    OracleFault5("packet id still taken after PUBCOMP", "5.0 QoS 2 receiver",
                 ("MQTT-4.3.3-12",), inject=_pubrel_keeps_the_id),
    OracleFault5("PUBLISH re-sent after PUBREL", "5.0 QoS 2 sender", ("MQTT-4.3.3-6",),
                 inject=_publish_resent_after_pubrel),
    OracleFault5("PUBREL forgotten before PUBCOMP", "5.0 QoS 2 sender", ("MQTT-4.3.3-5",),
                 inject=_pubrel_forgotten),
    OracleFault5("message expiry applied to a message in flight", "5.0 session resend",
                 ("MQTT-4.3.3-7",), inject=_expiry_applied_in_flight),
    OracleFault5("connection kept open after the server's DISCONNECT", "5.0 close",
                 ("MQTT-3.14.4-2", "MQTT-4.13.2-1"),
                 rewrite=wire_faults.down(DISCONNECT, _stays_open_after_disconnect)),
    OracleFault5("client id refused and the connection kept open", "5.0 CONNACK",
                 ("MQTT-3.1.3-8", "MQTT-3.2.2-7"), rewrite=_wire("open after a refusing CONNACK"),
                 config={"max_client_id_length": 23},
                 cascades={"MQTT-3.1.2-2": "every refusal is left open, an unsupported"
                                           " version's too",
                           "MQTT-4.12.0-1": "every refusal is left open, an unsupported"
                                            " Authentication Method's too"}),
    OracleFault5("UNSUBACK reason codes reversed", "5.0 frames", ("MQTT-3.11.3-1",),
                 inject=_sent(UNSUBACK, _codes_reversed)),
    OracleFault5("UNSUBACK with a reserved reason code", "5.0 frames", ("MQTT-3.11.3-2",),
                 inject=_sent(UNSUBACK, _codes_reserved)),
    OracleFault5("SUBACK with a reserved reason code", "5.0 frames", ("MQTT-3.9.3-2",),
                 inject=_sent(SUBACK, _codes_reserved),
                 cascades={"MQTT-3.8.4-7": "0x03 neither grants a QoS nor says it failed"}),
    OracleFault5("SUBACK one reason code short", "5.0 frames", ("MQTT-3.8.4-6",),
                 inject=_sent(SUBACK, _codes_short),
                 cascades={"MQTT-3.9.3-2": "a filter received gets no code"}),
    OracleFault5("SUBACK without its Property Length", "5.0 frames", ("MQTT-2.2.2-1",),
                 inject=_sent(SUBACK, _no_property_length)),
    OracleFault5("PUBACK with a reason code of no PUBACK", "5.0 frames", ("MQTT-3.4.2-1",),
                 inject=_sent(PUBACK, _ack_reason(0x01))),
    OracleFault5("PUBREC with a reason code of no PUBREC", "5.0 frames", ("MQTT-3.5.2-1",),
                 inject=_sent(PUBREC, _ack_reason(0x01))),
    OracleFault5("PUBCOMP with a reason code of no PUBCOMP", "5.0 frames", ("MQTT-3.7.2-1",),
                 inject=_sent(PUBCOMP, _ack_reason(0x10))),
    OracleFault5("PUBREL with a reason code of no PUBREL", "5.0 frames", ("MQTT-3.6.2-1",),
                 inject=_sent(PUBREL, _ack_reason(0x10))),
    OracleFault5("no PUBACK", "5.0 frames", ("MQTT-4.3.2-4", "MQTT-3.3.4-1"),
                 inject=_sent(PUBACK, lambda _frame: [])),
    *(OracleFault5(f"DUP 1 on every first QoS {qos} PUBLISH", "5.0 frames", breaks,
                   inject=_sent(PUBLISH, _dup_on_first_sending(qos)),
                   cascades={"MQTT-3.3.1-1": "DUP 1 where the PUBLISH is no re-delivery",
                             "MQTT-3.3.1-3": "DUP 1 on a QoS 2 PUBLISH that is no"
                                             " re-delivery (QoS 1 ones are right)"})
      for qos, breaks in ((1, ("MQTT-4.3.2-2", "MQTT-3.3.1-3")), (2, ("MQTT-4.3.3-2",)))),
    OracleFault5("CONNACK with a reserved flag set", "5.0 frames", ("MQTT-3.2.2-1",),
                 inject=_sent(CONNACK, _connack_reserved_flag)),
    OracleFault5("CONNACK sent twice", "5.0 frames", ("MQTT-3.2.0-2",),
                 inject=_sent(CONNACK, lambda frame: [frame, frame])),
    OracleFault5("DISCONNECT with a reason code of no DISCONNECT", "5.0 frames",
                 ("MQTT-3.14.2-1",), inject=_sent(DISCONNECT, _disconnect_reserved_code)),
    OracleFault5("PINGRESP after DISCONNECT", "5.0 frames", ("MQTT-3.14.4-1",),
                 inject=_sent(DISCONNECT, _disconnect_then_pingresp)),
    OracleFault5("refusal sent as DISCONNECT", "5.0 frames", ("MQTT-3.14.0-1",),
                 inject=_sent(CONNACK, _refusal_as_disconnect),
                 cascades={"MQTT-3.14.2-1": "the DISCONNECT carries the refusal's CONNACK code"
                                            " (0x84, 0x85, ...), of no DISCONNECT table"}),
    OracleFault5("Remaining Length in more bytes than needed", "5.0 frames",
                 ("MQTT-1.5.5-1",), inject=_sent(PINGRESP, _long_remaining_length)),
    OracleFault5("Topic Alias 0 sent", "5.0 frames", ("MQTT-3.3.2-8",),
                 inject=_sent(PUBLISH, _alias_changed(lambda _alias: 0)), config=ALIASES),
    OracleFault5("Topic Alias above the client's maximum sent", "5.0 frames",
                 ("MQTT-3.3.2-11", "MQTT-3.1.2-26"),
                 inject=_sent(PUBLISH, _alias_changed(lambda _alias: 65_535)),
                 config=ALIASES),
    OracleFault5("packets other than PUBLISH held at a send quota of 0", "5.0 frames",
                 ("MQTT-3.3.4-10", "MQTT-4.9.0-3"), inject=_sent_by(_quota_blocks_others),
                 cascades={"MQTT-3.12.4-1": "the PINGREQ sent at a quota of 0 gets no"
                                            " PINGRESP"}),
    OracleFault5("Response Information without a request", "5.0 CONNACK",
                 ("MQTT-3.1.2-28",),
                 inject=_connack_properties(response_information="mqttref/responses")),
    OracleFault5("Authentication Method on CONNACK without one in CONNECT", "5.0 CONNACK",
                 ("MQTT-4.12.0-6",),
                 inject=_connack_properties(authentication_method="SCRAM-SHA-1")),
    OracleFault5("Assigned Client Identifier left out", "5.0 CONNACK",
                 ("MQTT-3.2.2-16", "MQTT-3.1.3-7"),
                 inject=_connack_properties(assigned_client_identifier=None)),
    OracleFault5("Receive Maximum declared below the one enforced", "5.0 CONNACK",
                 ("MQTT-4.13.1-1",), inject=_sent_packet(_receive_maximum_understated)),
    OracleFault5("Reason String on acknowledgements whatever was asked", "5.0 acks",
                 ("MQTT-3.1.2-29",), inject=_sent_packet(_reason_string_on_acks)),
    OracleFault5("message properties dropped", "5.0 inbound publish",
                 ("MQTT-3.3.2-4", "MQTT-3.3.2-15", "MQTT-3.3.2-16", "MQTT-3.3.2-20"),
                 inject=_message_properties_dropped),
    OracleFault5("User Properties dropped", "5.0 inbound publish", ("MQTT-3.3.2-17",),
                 inject=_user_properties_dropped),
    OracleFault5("will User Properties reversed", "5.0 will", ("MQTT-3.1.3-10",),
                 inject=_will_user_properties_reversed),
    OracleFault5("unsupported Authentication Method accepted", "5.0 handshake",
                 ("MQTT-4.12.0-1", "MQTT-4.12.0-5"), inject=_unsupported_method_accepted),
    OracleFault5("AUTH without a method ignored", "5.0 handshake", ("MQTT-4.13.1-1",),
                 inject=_auth_without_method_ignored),
    OracleFault5("inbound Topic Aliases kept across connections", "5.0 inbound publish",
                 ("MQTT-3.3.2-7",), inject=_aliases_outlive_the_connection),
    OracleFault5("Keep Alive enforced at a third", "5.0 handshake", ("MQTT-3.2.2-22",),
                 inject=_keep_alive_shortened),
    OracleFault5("QoS 2 SUBSCRIBE refused at Maximum QoS 1", "5.0 subscribe",
                 ("MQTT-3.2.2-10",), inject=_qos2_subscribe_refused, config={"max_qos": 1}),
    OracleFault5("Subscription Identifier taken where declared unavailable", "5.0 subscribe",
                 ("MQTT-4.13.1-1",), inject=_identifiers_when_unavailable,
                 config={"subscription_identifiers": False}),
    OracleFault5("messages sent above the granted QoS", "5.0 session delivery",
                 ("MQTT-3.8.4-8", "MQTT-4.8.2-3"), inject=_granted_qos_ignored),
    OracleFault5("Retain Handling 0 treated as 1", "5.0 registry", ("MQTT-3.8.4-4",),
                 inject=_retain_handling({0: 1}),
                 cascades={"MQTT-3.3.1-9": "only for a subscription that existed: a new one"
                                           " still gets the retained messages"}),
    OracleFault5("Retain Handling 1 treated as 2", "5.0 registry", ("MQTT-3.3.1-10",),
                 inject=_retain_handling({1: 2})),
    OracleFault5("PUBACK of 0x80 or more leaves the message unacknowledged",
                 "5.0 session acks", ("MQTT-4.4.0-2",), inject=_refused_puback_resent),
    OracleFault5("CONNACK with a reason code of no CONNACK", "5.0 frames", ("MQTT-3.2.2-8",),
                 inject=_sent(CONNACK, _connack_success_code(0x03))),
    OracleFault5("data after a refused CONNECT processed", "5.0 wire", ("MQTT-3.1.4-6",),
                 rewrite=_refused_method_data_processed),
    OracleFault5("no session made for Clean Start 0", "5.0 session table",
                 ("MQTT-3.1.2-6",), inject=_no_session_for_clean_start_0),
    OracleFault5("one copy per subscription, each with the first identifier",
                 "5.0 session delivery", ("MQTT-3.3.4-5", "MQTT-3.3.4-3"),
                 inject=_one_identifier_on_every_copy),
    OracleFault5("session expired while connected", "5.0 session table", ("MQTT-4.1.0-1",),
                 inject=_session_expires_while_connected),
    OracleFault5("a shared message refused by one member sent to another",
                 "5.0 shared subscriptions", ("MQTT-4.8.2-6",),
                 inject=_refused_shared_message_handed_over),
)
"""Faults of the broker's 5.0 behaviour made here."""

SCRAM_USER = {"users": {"alice": "pencil"}}
"""A user who can log in with SCRAM-SHA-256: the run is then that of ``-u alice -P
pencil``, and the enhanced-authentication check judges whole exchanges (4.12)."""

ENHANCED_AUTH: tuple[OracleFault5, ...] = (
    OracleFault5("AUTH with a reason code of no AUTH", "5.0 enhanced authentication",
                 ("MQTT-3.15.2-1",), inject=_sent(AUTH, _auth_code(None, 0x03)),
                 config=SCRAM_USER),
    OracleFault5("AUTH 0x19 where the exchange goes on", "5.0 enhanced authentication",
                 ("MQTT-4.12.0-2",), inject=_sent(AUTH, _auth_code(0x18, 0x19)),
                 config=SCRAM_USER),
    OracleFault5("AUTH with properties beyond the client's Maximum Packet Size",
                 "5.0 enhanced authentication", ("MQTT-3.15.2-2", "MQTT-3.15.2-3"),
                 inject=_sent(AUTH, _with_reason_string), config=SCRAM_USER),
    OracleFault5("failed authentication left open", "5.0 enhanced authentication",
                 ("MQTT-4.12.0-4",), inject=_authentication_refusal_left_open,
                 config=SCRAM_USER),
    OracleFault5("failed re-authentication left open", "5.0 enhanced authentication",
                 ("MQTT-4.12.1-2",), inject=_reauthentication_failure_left_open,
                 config=SCRAM_USER),
    OracleFault5("AUTH with reserved flags ignored", "5.0 enhanced authentication",
                 ("MQTT-3.15.1-1",), rewrite=_auth_flags_swallowed, config=SCRAM_USER),
)
"""Faults of the SCRAM-SHA-256 exchange, against a broker with a SCRAM user."""

ORACLE_FAULTS5: tuple[OracleFault5, ...] = LEVEL5 + BOTH_LEVELS + WIRE + OWN + ENHANCED_AUTH


def by_name5(name: str) -> OracleFault5:
    for fault in ORACLE_FAULTS5:
        if fault.name == name:
            return fault
    raise KeyError(name)
