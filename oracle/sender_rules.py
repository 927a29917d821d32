"""Which statement a server's malformed bytes break: the oracle's blame for what it cannot decode.

The strict codec refuses what a server sends that breaks the encoding, and cites the
rule it checks, which is a *receiver's* rule, and 3.1.1's numbering even at 5.0. The
server sent those bytes, so it broke the matching *sender* rule: these tables and
functions rewrite the codec's refusal into the statement the server breaks
(``as_sent_by_server``), recognise two refusals that say only what a misreading ran into
(a Property Length left out, ``without_property_length``; a packet identifier in a QoS 0
PUBLISH, ``carries_a_packet_id``), and put the whole blame for one refused frame together
(``blamed_refusal``). The probe's I/O is in ``probe.py``.
"""

from __future__ import annotations

import re

from mqttref.impl.codec.codec import Decoder, Role
from mqttref.impl.codec.errors import MQTTError
from mqttref.impl.codec.packets import Packet, ProtocolLevel, Publish
from mqttref.oracle import raw


def carries_a_packet_id(packet: Packet, published: set[bytes],
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


SENDER_RULES_5 = (
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

SENDER_PATTERNS_5 = (
    # A Topic Name must not hold a wildcard: said twice, in 3.3.2.1 and 4.7.0 (not the
    # codec's Response Topic refusal, 'the response topic contains a wildcard': 3.3.2-14).
    (re.compile(r"\btopic name .* contains a wildcard"), ("MQTT-3.3.2-2", "MQTT-4.7.0-1")),
)
"""At 5.0, refusals whose text ``SENDER_RULES_5`` cannot tell by a substring alone."""

STRING_PROPERTY_RULES_5 = {
    "response_topic": "MQTT-3.3.2-13",
    "content_type": "MQTT-3.3.2-19",
    "user_properties": "MQTT-1.5.7-1",
}
"""At 5.0, the property's own rule that a string the codec refuses in it breaks besides
1.5.4's: the Response Topic and the Content Type MUST each be a UTF-8 Encoded String
[MQTT-3.3.2-13] [MQTT-3.3.2-19], both strings of a User Property MUST comply with its
requirements [MQTT-1.5.7-1]. The codec's error names the property (``field``)."""


def as_sent_by_server(error: str, level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1,
                       field: str | None = None) -> str:
    """The codec's refusal, with the rule the *server* broke as the sender.

    The codec cites receiver rules (invalid flags received: [MQTT-2.2.2-2]);
    bytes from the server that it refuses show the server breaking the
    matching sender rule. At 5.0 the sender rules are 5.0's (``SENDER_RULES_5``, and
    for a string property the refusal names in ``field``, ``STRING_PROPERTY_RULES_5``),
    and the codec's 3.1.1 ids are dropped where one of them applies.
    """
    if level is ProtocolLevel.MQTT_5:
        rules = [rule for text, rule in SENDER_RULES_5 if text in error]
        rules += [rule for pattern, ids in SENDER_PATTERNS_5 if pattern.search(error)
                  for rule in ids]
        if field in STRING_PROPERTY_RULES_5 and ("UTF-8" in error or "U+0000" in error):
            rules.append(STRING_PROPERTY_RULES_5[field])
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


PROPERTY_LENGTH_AFTER_TWO = {0x20: "CONNACK", 0x90: "SUBACK", 0xB0: "UNSUBACK"}
"""The 5.0 packets from a server whose Property Length is always there, right after two
bytes (the Acknowledge Flags and Reason Code, or the Packet Identifier): 3.2.2.3,
3.9.2.1, 3.11.2.1. (An acknowledgement of a PUBLISH may end before it, 3.4.2.2.)"""


def without_property_length(frame: bytes) -> str | None:
    """Why a 5.0 frame the strict codec refused is malformed, when it is a well-formed
    CONNACK, SUBACK or UNSUBACK once a Property Length of 0 is put where it belongs: the
    server left it out, where no properties MUST be said by a Property Length of zero
    [MQTT-2.2.2-1]. The codec, reading the next byte as the Property Length, can only
    report what that misreading runs into."""
    name = PROPERTY_LENGTH_AFTER_TWO.get(frame[0])
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


def blamed_refusal(exc: MQTTError, frame: bytes, level: ProtocolLevel, accepted: bool) -> str:
    """What a frame from the server that the codec refused (``exc``) breaks, cited.

    ``accepted``: whether a CONNACK below 0x80 arrived on the connection before it; until
    then a DISCONNECT from the server breaks [MQTT-3.14.0-1], whatever else is wrong with it.
    """
    error = as_sent_by_server(f"{exc} [{getattr(exc, 'ref', '')}]", level,
                              getattr(exc, "field", None))
    if level is ProtocolLevel.MQTT_5:
        error = without_property_length(frame) or error
        if frame[0] >> 4 == 14 and not accepted:
            # The fixed header names a DISCONNECT whatever the codec
            # refuses after it.
            error += (" (a DISCONNECT before any CONNACK below 0x80: a server"
                      " may send DISCONNECT only after accepting the CONNECT)"
                      " [MQTT-3.14.0-1]")
    return error
