"""Where wire bytes and impl packets become model events and observations.

This is the only module of the stateful tests that translates between the
implementation's world (``mqttref.impl.codec.codec`` bytes and packets) and the
model's (``Send``, ``SendMalformed``, ``Drop``, ``Closed``): every other
module hands it packets or bytes and gets model events back, so that the
model never sees bytes and the driver never interprets a packet.

Client actions come in two kinds:

- well-formed packets, encoded with the shared codec and told to the model as
  ``Send(slot, packet)``;
- protocol violations (``ABUSES``): bytes that no correct client sends, each
  with the model event that says what it is. Some are packets the model can
  judge itself (a second CONNECT, a topic name with a wildcard, DUP=1 at QoS 0),
  the rest are bytes the packet types cannot express (QoS 3, reserved flags),
  told to the model as ``SendMalformed``.

Server output is decoded with a client-role decoder: a packet only a client
sends, or undecodable bytes, is itself a verdict (``ServerSentGarbage``).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ProtocolError
from mqttref.impl.codec.packets import (
    Connect,
    Packet,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Subscribe,
)
from mqttref.model import ClientEvent, Closed, Observation, Send, SendMalformed, describe

LEVEL = ProtocolLevel.MQTT_3_1_1


class ServerSentGarbage(AssertionError):
    """The server sent bytes that are no valid MQTT 3.1.1 server packet [MQTT-4.8.0-1]."""


def encode_client_packet(packet: Packet) -> bytes:
    """The bytes of a well-formed client packet (what the model is told as ``Send``)."""
    if isinstance(packet, Publish) and packet.qos == 0 and packet.dup:
        return raw_publish(packet.topic, packet.payload, qos=0, dup=True, retain=packet.retain)
    return encode(packet, LEVEL)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


def raw_publish(
    topic: str,
    payload: bytes,
    *,
    qos: int = 0,
    dup: bool = False,
    retain: bool = False,
    packet_id: int | None = None,
) -> bytes:
    """A PUBLISH written byte by byte, for what the codec rightly refuses to encode."""
    body = _string(topic) + (packet_id.to_bytes(2, "big") if packet_id is not None else b"")
    body += payload
    first = 0x30 | (dup << 3) | (qos << 1) | retain
    return bytes((first,)) + _varint(len(body)) + body


@attrs.frozen
class Abuse:
    """A protocol violation a client commits: the bytes and what the model is told."""

    name: str
    data: bytes
    event: Callable[[str], ClientEvent]
    """slot -> the model event these bytes are."""

    def __repr__(self) -> str:
        return f"Abuse({self.name!r})"


def abuses(topic: str, client_id: str) -> dict[str, Abuse]:
    """The catalogue of violations, for a valid topic name and the slot's client id.

    Each is something real brokers have been seen to get wrong (ORACLE.md,
    D1-D5, D13, BAD-INPUTS.md); the model says close (or, for D13, close or
    accept).
    """
    second_connect = Connect(LEVEL, client_id, True, 0)
    wildcard_topic = topic + "/+"
    dup_qos0 = Publish(topic, b"dup", QoS.AT_MOST_ONCE, False, True, None)

    def malformed(description: str) -> Callable[[str], ClientEvent]:
        return lambda slot: SendMalformed(slot, description)

    def send(packet: Packet) -> Callable[[str], ClientEvent]:
        return lambda slot: Send(slot, packet)

    catalogue = [
        Abuse("second CONNECT", encode(second_connect, LEVEL), send(second_connect)),
        Abuse(
            "PUBLISH to a topic name with a wildcard",
            raw_publish(wildcard_topic, b"w"),
            send(Publish(wildcard_topic, b"w")),
        ),
        Abuse("QoS 0 PUBLISH with DUP=1", encode_client_packet(dup_qos0), send(dup_qos0)),
        Abuse(
            "PUBLISH with QoS bits 11",
            raw_publish(topic, b"q3", qos=3, packet_id=1),
            malformed("PUBLISH QoS 3 [MQTT-3.3.1-4]"),
        ),
        Abuse(
            "SUBSCRIBE with reserved flags 0000",
            b"\x80" + _varint(5 + len(topic.encode())) + b"\x00\x01" + _string(topic) + b"\x00",
            malformed("SUBSCRIBE flags 0000 [MQTT-3.8.1-1]"),
        ),
        Abuse(
            "SUBSCRIBE requesting QoS 3",
            b"\x82" + _varint(5 + len(topic.encode())) + b"\x00\x01" + _string(topic) + b"\x03",
            malformed("SUBSCRIBE QoS 3 [MQTT-3-8.3-4]"),
        ),
        Abuse(
            "remaining length of five bytes",
            b"\x30\xff\xff\xff\xff\x7f",
            malformed("remaining length over four bytes"),
        ),
        Abuse("CONNACK sent by a client", b"\x20\x02\x00\x00", malformed("CONNACK from a client")),
        Abuse(
            "PUBREL with flags 0000",
            b"\x60\x02\x00\x01",
            malformed("PUBREL flags [MQTT-3.6.1-1]"),
        ),
        Abuse(
            "PUBLISH topic that is not UTF-8",
            b"\x30\x05\x00\x03\xff\xfe\xfd",
            malformed("topic not UTF-8 [MQTT-1.5.3-1]"),
        ),
        Abuse(
            "UNSUBSCRIBE without a topic filter",
            b"\xa2\x02\x00\x01",
            malformed("UNSUBSCRIBE without filters [MQTT-3.10.3-2]"),
        ),
    ]
    return {abuse.name: abuse for abuse in catalogue}


ABUSE_NAMES: tuple[str, ...] = tuple(abuses("t", "c"))


def acknowledgement(kind: str, packet_id: int) -> Packet:
    """The client's acknowledgement packet named by ``kind``."""
    kinds: dict[str, type[PubAck | PubRec | PubRel | PubComp]] = {
        "PUBACK": PubAck, "PUBREC": PubRec, "PUBREL": PubRel, "PUBCOMP": PubComp,
    }
    return kinds[kind](packet_id)


def acknowledgement_owed(observation: Packet) -> str | None:
    """Which acknowledgement a well-behaved client owes for a packet it received."""
    if isinstance(observation, Publish):
        return {0: None, 1: "PUBACK", 2: "PUBREC"}[int(observation.qos)]
    if isinstance(observation, PubRec):
        return "PUBREL"
    if isinstance(observation, PubRel):
        return "PUBCOMP"
    return None


class ServerStream:
    """Bytes from the server of one connection -> observations for the model."""

    def __init__(self) -> None:
        self._decoder = Decoder(role=Role.CLIENT, protocol_level=LEVEL)

    def feed(self, data: bytes) -> list[Observation]:
        try:
            return list(self._decoder.feed(data))
        except ProtocolError as exc:
            raise ServerSentGarbage(
                f"the server sent bytes that are no valid 3.1.1 server packet: {exc} "
                f"(after {[describe(p) for p in getattr(exc, 'packets', [])]})"
            ) from exc

    @staticmethod
    def closed() -> Observation:
        """EOF or a reset: the same observation (ORACLE.md D12)."""
        return Closed()


def describe_packet(packet: Observation) -> str:
    """A packet as the transcript shows it: short, in MQTT's words."""
    if isinstance(packet, Connect):
        will = packet.will
        will_text = "" if will is None else (
            f", will={will.topic!r} QoS {int(will.qos)}{' retained' if will.retain else ''}"
        )
        return (
            f"CONNECT({packet.client_id!r}, clean_session={int(packet.clean_session)}, "
            f"keep_alive={packet.keep_alive}{will_text})"
        )
    if isinstance(packet, Subscribe):
        wanted = ", ".join(f"{s.topic_filter!r} QoS {int(s.qos)}" for s in packet.subscriptions)
        return f"SUBSCRIBE(packet_id={packet.packet_id}, {wanted})"
    if isinstance(packet, Publish):
        flags = f"QoS {int(packet.qos)}" + (" retain" if packet.retain else "")
        flags += " DUP" if packet.dup else ""
        flags += f" packet_id={packet.packet_id}" if packet.packet_id is not None else ""
        return f"PUBLISH({packet.topic!r}, {packet.payload!r}, {flags})"
    return describe(packet)


def describe_event(event: ClientEvent) -> str:
    """A client action as one readable transcript line."""
    if isinstance(event, Send):
        return f"{event.client} -> {describe_packet(event.packet)}"
    if isinstance(event, SendMalformed):
        return f"{event.client} -> malformed: {event.description}"
    return repr(event)
