"""Faults made on the wire: the unbroken broker behind a proxy that breaks one rule.

Two kinds. A *sending* fault rewrites what the broker sends (a SUBACK with
another packet id, a QoS 0 PUBLISH with DUP=1), which is what a broker with
that bug would send. A *swallowing* fault drops a bad packet of the client
before the broker sees it, so that the connection stays open as it would with
a broker that ignores the violation instead of closing [MQTT-4.8.0-1]. Each
fault names the statements it breaks (``oracle_faults.OracleFault.breaks``).
"""

from __future__ import annotations

from collections.abc import Callable

from mqttref.oracle import raw
from tests.stateful.fault_proxy import (
    HELD_DOWN,
    KEEP_CLIENT_OPEN,
    Direction,
    Link,
    Rewrite,
    packet_type,
)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

Frames = list[bytes]


def split(frame: bytes) -> tuple[int, bytes]:
    """(first byte, body) of a whole frame."""
    index = 1
    while frame[index] & 0x80:
        index += 1
    return frame[0], frame[index + 1:]


def join(first: int, body: bytes) -> bytes:
    return raw.frame(first, body)


def publish_parts(frame: bytes) -> tuple[int, bytes, int | None, bytes]:
    """(first byte, topic bytes, packet id, payload) of a PUBLISH frame."""
    first, body = split(frame)
    length = int.from_bytes(body[:2], "big")
    topic, rest = body[2:2 + length], body[2 + length:]
    if (first >> 1) & 3:
        return first, topic, int.from_bytes(rest[:2], "big"), rest[2:]
    return first, topic, None, rest


def publish_frame(first: int, topic: bytes, packet_id: int | None, payload: bytes) -> bytes:
    pid = b"" if packet_id is None else packet_id.to_bytes(2, "big")
    return join(first, raw.string(topic) + pid + payload)


def down(kind: int, change: Callable[[bytes, Link], Frames]) -> Rewrite:
    """Apply ``change`` to every frame of packet type ``kind`` the broker sends."""

    def rewrite(direction: Direction, frame: bytes, link: Link) -> Frames:
        if direction is Direction.DOWN and packet_type(frame) == kind:
            return change(frame, link)
        return [frame]

    return rewrite


def swallow_up(bad: Callable[[bytes], bool]) -> Rewrite:
    """Drop every client frame that ``bad`` picks: the broker never sees the violation."""

    def rewrite(direction: Direction, frame: bytes, _link: Link) -> Frames:
        if direction is Direction.UP and bad(frame):
            return []
        return [frame]

    return rewrite


def _other_id(frame: bytes, _link: Link) -> Frames:
    first, body = split(frame)
    packet_id = int.from_bytes(body[:2], "big")
    other = packet_id % 65535 + 1
    return [join(first, other.to_bytes(2, "big") + body[2:])]


def _suback_reserved_code(frame: bytes, _link: Link) -> Frames:
    first, body = split(frame)
    return [join(first, body[:2] + body[2:-1] + b"\x03")]


def _suback_reversed(frame: bytes, _link: Link) -> Frames:
    first, body = split(frame)
    codes = body[2:]
    if len(codes) < 2 or codes == codes[::-1]:
        return [frame]
    return [join(first, body[:2] + codes[::-1])]


def _suback_short(frame: bytes, _link: Link) -> Frames:
    first, body = split(frame)
    if len(body) < 4:
        return [frame]
    return [join(first, body[:-1])]


def _drop(_frame: bytes, _link: Link) -> Frames:
    return []


def _puback_as_pubrec(frame: bytes, _link: Link) -> Frames:
    _first, body = split(frame)
    return [join(PUBREC << 4, body)]


def _qos0_with_dup(frame: bytes, _link: Link) -> Frames:
    first, topic, packet_id, payload = publish_parts(frame)
    if packet_id is not None:
        return [frame]
    return [publish_frame(first | 0x08, topic, None, payload)]


def _qos0_with_packet_id(frame: bytes, _link: Link) -> Frames:
    first, topic, packet_id, payload = publish_parts(frame)
    if packet_id is not None:
        return [frame]
    return [publish_frame(first, topic, None, b"\x00\x07" + payload)]


def _topic_altered(frame: bytes, _link: Link) -> Frames:
    first, topic, packet_id, payload = publish_parts(frame)
    return [publish_frame(first, topic + b"/x", packet_id, payload)]


def _topic_with_wildcard(frame: bytes, _link: Link) -> Frames:
    """The last character of the topic name becomes "+" (a character, not a byte: the
    name stays well-formed UTF-8, so the fault breaks the wildcard rule alone)."""
    first, topic, packet_id, payload = publish_parts(frame)
    name = topic.decode("utf-8", errors="surrogateescape")
    altered = (name[:-1] + "+").encode("utf-8", errors="surrogateescape")
    return [publish_frame(first, altered, packet_id, payload)]


def _retain_on_live(frame: bytes, _link: Link) -> Frames:
    return [bytes((frame[0] | 0x01,)) + frame[1:]]


def _retain_cleared(frame: bytes, _link: Link) -> Frames:
    return [bytes((frame[0] & ~0x01,)) + frame[1:]]


def _session_present(value: bool) -> Callable[[bytes, Link], Frames]:
    def change(frame: bytes, _link: Link) -> Frames:
        first, body = split(frame)
        if body[1] != 0:  # refusals keep session present 0: another fault
            return [frame]
        return [join(first, bytes((int(value),)) + body[1:])]

    return change


def _refusal_with_session_present(frame: bytes, _link: Link) -> Frames:
    first, body = split(frame)
    if body[1] == 0:
        return [frame]
    return [join(first, b"\x01" + body[1:])]


def _open_after_refusal(frame: bytes, link: Link) -> Frames:
    _first, body = split(frame)
    if body[1] != 0:
        link.state[KEEP_CLIENT_OPEN] = True
    return [frame]


def _swap_publishes(direction: Direction, frame: bytes, link: Link) -> Frames:
    """Deliver every second PUBLISH to a client before the one sent ahead of it.

    A PUBLISH held back goes out after the next one, with the next frame to the
    client, or on its own after the proxy's short hold: late, not lost.
    """
    if direction is not Direction.DOWN:
        return [frame]
    held: list[bytes] = link.state.get(HELD_DOWN, [])
    link.state[HELD_DOWN] = []
    if packet_type(frame) == PUBLISH and not frame[0] & 0x08:
        if not held:
            link.state[HELD_DOWN] = [frame]
            return []
        return [frame, *held]
    return [*held, frame]


def _drop_resends(frame: bytes, _link: Link) -> Frames:
    return [] if frame[0] & 0x08 else [frame]


def _resend_other_id(frame: bytes, _link: Link) -> Frames:
    if not frame[0] & 0x08:
        return [frame]
    first, topic, packet_id, payload = publish_parts(frame)
    assert packet_id is not None
    return [publish_frame(first, topic, packet_id ^ 0x4000 or 1, payload)]


def _reverse_resends(direction: Direction, frame: bytes, link: Link) -> Frames:
    """Re-sends (DUP=1) reach the client in the reverse of their original order."""
    if direction is not Direction.DOWN:
        return [frame]
    held: list[bytes] = link.state.get(HELD_DOWN, [])
    if packet_type(frame) == PUBLISH and frame[0] & 0x08:
        link.state[HELD_DOWN] = [frame, *held]
        return []
    link.state[HELD_DOWN] = []
    return [*held, frame]


def _reused_packet_id(frame: bytes, _link: Link) -> Frames:
    first, topic, packet_id, payload = publish_parts(frame)
    if packet_id is None or (first >> 1) & 3 != 1:
        return [frame]
    return [publish_frame(first, topic, 7, payload)]


def _connect_field(change: Callable[[bytes], bytes | None]) -> Rewrite:
    """Rewrite the client's CONNECT body with ``change`` (None: leave it)."""

    def rewrite(direction: Direction, frame: bytes, _link: Link) -> Frames:
        if direction is Direction.UP and packet_type(frame) == CONNECT:
            first, body = split(frame)
            changed = change(body)
            if changed is not None:
                return [join(first, changed)]
        return [frame]

    return rewrite


def _name_mqtt(body: bytes) -> bytes | None:
    return b"\x00\x04MQTT" + body[6:] if body[:6] == b"\x00\x04MQTX" else None


def _level_4(body: bytes) -> bytes | None:
    return body[:6] + b"\x04" + body[7:] if body[:6] == b"\x00\x04MQTT" and body[6] != 4 else None


def _reserved_flag_cleared(body: bytes) -> bytes | None:
    if body[:6] == b"\x00\x04MQTT" and body[7] & 0x01:
        return body[:7] + bytes((body[7] & 0xFE,)) + body[8:]
    return None


def _empty_id_clean(body: bytes) -> bytes | None:
    """A zero-byte client id with clean session 0 is taken as clean session 1."""
    if body[:6] == b"\x00\x04MQTT" and not body[7] & 0x02 and body[10:12] == b"\x00\x00":
        return body[:7] + bytes((body[7] | 0x02,)) + body[8:]
    return None


def _refuse_23_byte_ids(direction: Direction, frame: bytes, link: Link) -> Frames:
    if direction is Direction.UP and packet_type(frame) == CONNECT:
        _first, body = split(frame)
        link.state["id23"] = body[10:12] == b"\x00\x17"
    elif direction is Direction.DOWN and packet_type(frame) == CONNACK and link.state.get("id23"):
        return [join(CONNACK << 4, b"\x00\x02")]
    return [frame]


def _strip_bom(direction: Direction, frame: bytes, _link: Link) -> Frames:
    if direction is Direction.UP and packet_type(frame) in (PUBLISH, SUBSCRIBE) \
            and b"\xef\xbb\xbf" in frame:
        first, body = split(frame)
        if packet_type(frame) == PUBLISH:
            _f, topic, packet_id, payload = publish_parts(frame)
            return [publish_frame(first, topic.replace(b"\xef\xbb\xbf", b""), packet_id, payload)]
        pid, rest = body[:2], body[2:]
        out = b""
        while rest:
            length = int.from_bytes(rest[:2], "big")
            name, options, rest = rest[2:2 + length], rest[2 + length:3 + length], rest[3 + length:]
            out += raw.string(name.replace(b"\xef\xbb\xbf", b"")) + options
        return [join(first, pid + out)]
    return [frame]


def _bad_flags(kind: int, expected: int) -> Callable[[bytes], bool]:
    return lambda frame: packet_type(frame) == kind and frame[0] & 0x0F != expected


def _publish_qos3(frame: bytes) -> bool:
    return packet_type(frame) == PUBLISH and (frame[0] >> 1) & 3 == 3


def _subscribe_bad_options(frame: bytes) -> bool:
    if packet_type(frame) != SUBSCRIBE:
        return False
    _first, body = split(frame)
    rest = body[2:]
    while len(rest) >= 3:
        length = int.from_bytes(rest[:2], "big")
        options = rest[2 + length] if len(rest) > 2 + length else 0
        if options > 2:
            return True
        rest = rest[3 + length:]
    return False


def _topics(frame: bytes) -> list[bytes]:
    """The topic names or filters a PUBLISH, SUBSCRIBE or UNSUBSCRIBE carries (best effort)."""
    kind = packet_type(frame)
    _first, body = split(frame)
    if kind == PUBLISH:
        return [body[2:2 + int.from_bytes(body[:2], "big")]]
    if kind not in (SUBSCRIBE, UNSUBSCRIBE):
        return []
    rest, out = body[2:], []
    while len(rest) >= 2:
        length = int.from_bytes(rest[:2], "big")
        out.append(rest[2:2 + length])
        rest = rest[2 + length + (1 if kind == SUBSCRIBE else 0):]
    return out


def _ill_formed(topic: bytes) -> bool:
    try:
        topic.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _any_topic(test: Callable[[bytes], bool]) -> Callable[[bytes], bool]:
    return lambda frame: any(test(t) for t in _topics(frame))


def _wildcard_in_name(frame: bytes) -> bool:
    return packet_type(frame) == PUBLISH and any(c in t for t in _topics(frame) for c in b"+#")


def _empty_topic(frame: bytes) -> bool:
    return packet_type(frame) in (PUBLISH, SUBSCRIBE, UNSUBSCRIBE) and b"" in _topics(frame)


def _before_connect(direction: Direction, frame: bytes, link: Link) -> Frames:
    if direction is Direction.UP and not link.state.get("connected"):
        if packet_type(frame) != CONNECT:
            return []
        link.state["connected"] = True
    return [frame]


def _server_only_or_reserved(frame: bytes) -> bool:
    return packet_type(frame) in (0, CONNACK, SUBACK, UNSUBACK, PINGRESP, 15)


def _second_connect(direction: Direction, frame: bytes, link: Link) -> Frames:
    if direction is Direction.UP and packet_type(frame) == CONNECT:
        if link.state.get("seen_connect"):
            return []
        link.state["seen_connect"] = True
    return [frame]


def _pingresp_bad_flags(frame: bytes, _link: Link) -> Frames:
    return [bytes((frame[0] | 0x01,)) + frame[1:]]


def _publish_id_zero(frame: bytes, _link: Link) -> Frames:
    first, topic, packet_id, payload = publish_parts(frame)
    if packet_id is None:
        return [frame]
    return [publish_frame(first, topic, 0, payload)]


def _topic_ill_formed(frame: bytes, _link: Link) -> Frames:
    first, topic, packet_id, payload = publish_parts(frame)
    return [publish_frame(first, topic + b"\xff", packet_id, payload)]


def _identifier_refused_as_unauthorized(frame: bytes, _link: Link) -> Frames:
    first, body = split(frame)
    if body[1] != 0x02:
        return [frame]
    return [join(first, body[:1] + b"\x05")]


def _topic_with_null(frame: bytes, _link: Link) -> Frames:
    first, topic, packet_id, payload = publish_parts(frame)
    return [publish_frame(first, topic + b"\x00", packet_id, payload)]


def _topic_empty(frame: bytes, _link: Link) -> Frames:
    first, _topic, packet_id, payload = publish_parts(frame)
    return [publish_frame(first, b"", packet_id, payload)]


def _drop_empty_live(frame: bytes, _link: Link) -> Frames:
    _first, _topic, _packet_id, payload = publish_parts(frame)
    return [] if not payload and not frame[0] & 0x01 else [frame]


def _dup_propagated() -> Rewrite:
    """A message published with DUP=1 reaches subscribers with DUP=1 (links share a memory)."""
    published: set[tuple[bytes, bytes]] = set()

    def rewrite(direction: Direction, frame: bytes, _link: Link) -> Frames:
        if packet_type(frame) != PUBLISH:
            return [frame]
        first, topic, packet_id, payload = publish_parts(frame)
        if direction is Direction.UP:
            if first & 0x08:
                published.add((topic, payload))
            return [frame]
        if packet_id is not None and (topic, payload) in published:
            return [publish_frame(first | 0x08, topic, packet_id, payload)]
        return [frame]

    return rewrite


def _connect_malformed(frame: bytes) -> bool:
    """A CONNECT whose flags break section 3.1.2 (reserved, will or password flags)."""
    if packet_type(frame) != CONNECT:
        return False
    _first, body = split(frame)
    if len(body) < 8 or body[:6] != b"\x00\x04MQTT":
        return False
    flags = body[7]
    will, will_qos, will_retain = flags & 0x04, (flags >> 3) & 3, flags & 0x20
    return bool(flags & 0x01 or (not will and (will_qos or will_retain)) or will_qos == 3
                or (flags & 0x40 and not flags & 0x80))


SENDING: dict[str, tuple[tuple[str, ...], Rewrite]] = {
    "SUBACK with another packet id": (("MQTT-3.8.4-2", "MQTT-2.3.1-7"), down(SUBACK, _other_id)),
    "SUBACK with a reserved return code": (("MQTT-3.9.3-2",), down(SUBACK, _suback_reserved_code)),
    "SUBACK return codes out of order": (("MQTT-3.9.3-1",), down(SUBACK, _suback_reversed)),
    "SUBACK one return code short": (("MQTT-3.8.4-5",), down(SUBACK, _suback_short)),
    "no SUBACK": (("MQTT-3.8.4-1",), down(SUBACK, _drop)),
    "UNSUBACK with another packet id": (("MQTT-3.10.4-4", "MQTT-2.3.1-7"),
                                        down(UNSUBACK, _other_id)),
    "no UNSUBACK": (("MQTT-3.10.4-4", "MQTT-3.10.4-5"), down(UNSUBACK, _drop)),
    "PUBACK with another packet id": (("MQTT-2.3.1-6", "MQTT-4.3.2-2"), down(PUBACK, _other_id)),
    "PUBREC with another packet id": (("MQTT-2.3.1-6", "MQTT-4.3.3-2"), down(PUBREC, _other_id)),
    "PUBCOMP with another packet id": (("MQTT-4.3.3-2",), down(PUBCOMP, _other_id)),
    "QoS 1 PUBLISH answered with PUBREC": (("MQTT-3.3.4-1", "MQTT-4.3.2-2"),
                                           down(PUBACK, _puback_as_pubrec)),
    "QoS 0 delivered with DUP=1": (("MQTT-3.3.1-2", "MQTT-4.3.1-1"), down(PUBLISH, _qos0_with_dup)),
    "QoS 0 delivered with a packet id": (("MQTT-2.3.1-5",), down(PUBLISH, _qos0_with_packet_id)),
    # "/x" after the name: no exact filter matches it, and under a wildcard filter it is
    # still a modification of the topic name the server must not make.
    "delivered under another topic name": (("MQTT-3.3.2-3", "MQTT-4.7.3-4"),
                                           down(PUBLISH, _topic_altered)),
    "delivered under a topic name with a wildcard": (("MQTT-4.7.1-1", "MQTT-3.3.2-2"),
                                                     down(PUBLISH, _topic_with_wildcard)),
    "RETAIN 1 on a live delivery": (("MQTT-3.3.1-9",), down(PUBLISH, _retain_on_live)),
    "RETAIN 0 on a retained delivery": (("MQTT-3.3.1-8",), down(PUBLISH, _retain_cleared)),
    "session present always 0": (("MQTT-3.2.2-2",), down(CONNACK, _session_present(False))),
    "session present always 1": (("MQTT-3.2.2-1", "MQTT-3.2.2-3"),
                                 down(CONNACK, _session_present(True))),
    "session present on a refusal": (("MQTT-3.2.2-4",),
                                     down(CONNACK, _refusal_with_session_present)),
    "open after a refusing CONNACK": (("MQTT-3.2.2-5",), down(CONNACK, _open_after_refusal)),
    "no CONNACK": (("MQTT-3.1.4-4",), down(CONNACK, _drop)),
    "deliveries swapped in pairs": (("MQTT-4.6.0-5", "MQTT-4.6.0-6"), _swap_publishes),
    "no re-send on reconnect": (("MQTT-4.4.0-1",), down(PUBLISH, _drop_resends)),
    "re-send under another packet id": (("MQTT-2.3.1-4",), down(PUBLISH, _resend_other_id)),
    "re-sends in reverse order": (("MQTT-4.6.0-1",), _reverse_resends),
    "no PUBREL as QoS 2 sender": (("MQTT-4.3.3-1",), down(PUBREL, _drop)),
    "one packet id for every QoS 1 delivery": (("MQTT-4.3.2-1",),
                                               down(PUBLISH, _reused_packet_id)),
    "protocol name MQTX accepted": (("MQTT-3.1.2-1",), _connect_field(_name_mqtt)),
    "protocol level 7 accepted": (("MQTT-3.1.2-2",), _connect_field(_level_4)),
    "CONNECT reserved flag ignored": (("MQTT-3.1.2-3",), _connect_field(_reserved_flag_cleared)),
    "empty client id with clean session 0 accepted": (("MQTT-3.1.3-8",),
                                                      _connect_field(_empty_id_clean)),
    "23-byte client ids refused": (("MQTT-3.1.3-5",), _refuse_23_byte_ids),
    "BOM stripped from topics": (("MQTT-1.5.3-3",), _strip_bom),
    "PINGRESP with reserved flags set": (("MQTT-2.2.2-1",), down(PINGRESP, _pingresp_bad_flags)),
    "QoS 1 delivered with packet id 0": (("MQTT-2.3.1-1",), down(PUBLISH, _publish_id_zero)),
    "delivered under a topic name that is not UTF-8": (("MQTT-3.3.2-1",),
                                                       down(PUBLISH, _topic_ill_formed)),
    "client id refused with 0x05, not 0x02": (("MQTT-3.1.3-8", "MQTT-3.1.3-9"),
                                              down(CONNACK, _identifier_refused_as_unauthorized)),
    "empty message not forwarded to live subscribers": (("MQTT-3.3.1-10",),
                                                        down(PUBLISH, _drop_empty_live)),
    "DUP propagated to subscribers": (("MQTT-3.3.1-3",), _dup_propagated()),
    "delivered under a topic name holding U+0000": (("MQTT-4.7.3-2", "MQTT-1.5.3-2",
                                                     "MQTT-3.3.2-1"),
                                                    down(PUBLISH, _topic_with_null)),
    "delivered with an empty topic name": (("MQTT-4.7.3-1",), down(PUBLISH, _topic_empty)),
}
"""Faults in what the broker sends or accepts: name -> (statements broken, rewrite)."""

SWALLOWING: dict[str, tuple[tuple[str, ...], Rewrite]] = {
    "PINGREQ with bad flags ignored": (("MQTT-2.2.2-2",), swallow_up(_bad_flags(PINGREQ, 0))),
    "SUBSCRIBE with bad flags ignored": (("MQTT-3.8.1-1",),
                                         swallow_up(_bad_flags(SUBSCRIBE, 2))),
    "UNSUBSCRIBE with bad flags ignored": (("MQTT-3.10.1-1",),
                                           swallow_up(_bad_flags(UNSUBSCRIBE, 2))),
    "PUBREL with bad flags ignored": (("MQTT-3.6.1-1",), swallow_up(_bad_flags(PUBREL, 2))),
    "DISCONNECT with bad flags ignored": (("MQTT-3.14.1-1",),
                                          swallow_up(_bad_flags(DISCONNECT, 0))),
    "PUBLISH with QoS 3 ignored": (("MQTT-3.3.1-4",), swallow_up(_publish_qos3)),
    "SUBSCRIBE with bad requested QoS ignored": (("MQTT-3.8.3-4",),
                                                 swallow_up(_subscribe_bad_options)),
    "ill-formed UTF-8 in a topic ignored": (("MQTT-1.5.3-1",),
                                            swallow_up(_any_topic(_ill_formed))),
    "U+0000 in a topic ignored": (("MQTT-1.5.3-2",),
                                  swallow_up(_any_topic(lambda t: b"\x00" in t))),
    "empty topic ignored": (("MQTT-4.8.0-1",), swallow_up(_empty_topic)),
    "wildcard in a topic name ignored": (("MQTT-4.8.0-1",), swallow_up(_wildcard_in_name)),
    "packets before CONNECT ignored": (("MQTT-4.8.0-1",), _before_connect),
    "server-only and reserved packet types ignored": (("MQTT-4.8.0-1",),
                                                      swallow_up(_server_only_or_reserved)),
    "second CONNECT swallowed": (("MQTT-3.1.0-2",), _second_connect),
    "malformed CONNECT flags ignored": (("MQTT-3.1.4-1",), swallow_up(_connect_malformed)),
}
"""Faults where the broker never sees (so never closes on) a violation: name -> (broken,
rewrite)."""

CASCADES: dict[str, dict[str, str]] = {
    "one packet id for every QoS 1 delivery": {
        "MQTT-2.3.1-4": "a server's new PUBLISH needs an unused id by the conditions of"
                        " 2.3.1-2/-3 that 2.3.1-4 applies to it"},
    "no re-send on reconnect": {
        "MQTT-4.1.0-1": "the unacknowledged messages are session state; one not re-sent on"
                        " resume cannot be told from one the session lost"},
    "re-send under another packet id": {
        "MQTT-4.4.0-1": "4.4.0-1 requires the re-send to use the original packet id"},
    "open after a refusing CONNACK": {
        "MQTT-3.1.2-2": "its refusal is 0x01 'and then disconnect the Client'",
        "MQTT-3.1.3-8": "its refusal is 0x02 'and then close the Network Connection'",
        "MQTT-3.1.3-9": "its refusal is 0x02 'and then close the Network Connection'"},
    "SUBACK return codes out of order": {
        "MQTT-3.8.4-6": "the codes are read by position [MQTT-3.9.3-1]: reversed, a filter's"
                        " code is another filter's grant, which can exceed what it asked"},
    "deliveries swapped in pairs": {
        "MQTT-4.6.0-1": "the swap applies to re-sent PUBLISHes too, which then go in another"
                        " order than first sent"},
    "malformed CONNECT flags ignored": {
        "MQTT-3.1.2-3": "a reserved flag set must be validated and the client disconnected"},
}
"""Fault name -> statements it breaks as a consequence, each with the reason."""
