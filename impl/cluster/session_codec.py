"""How a persistent session is written into the sessions bucket's keys, and read back.

One key per thing a session holds, so that a change writes only what changed and
another node can load the session when its client comes back there:

    c<id>.meta              when its connection left it, its expiry interval
    c<id>.sub.<filter>      a subscription: granted QoS and 5.0 options
    c<id>.q.<seq>           a queued message, in sequence order
    c<id>.f.<packet id>     an outbound QoS 1/2 message in flight, with its state
    c<id>.r.<packet id>     an inbound QoS 2 packet id awaiting PUBREL
    c<id>.will              a 5.0 will waiting for its Will Delay Interval
    c<id>.lastwill          the will of the connected client (``impl/cluster/wills.py``)
    c<id>.mark              subject -> the stream sequence up to which the session has
                            taken its QoS 1/2 messages (``stream_marks.py``)

(``<id>`` and ``<filter>`` in unpadded base64url, which keys can hold.) Values are
compact JSON; instants are wall-clock ones (``Clocks``), since the bucket outlives the
node whose loop clock they were counted on. No NATS here: ``session_store.py`` reads and
writes the bucket.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import attrs

from mqttref.impl.codec import wire
from mqttref.impl.codec.packets import NO_PROPERTIES, PacketType, Properties, QoS, Will
from mqttref.impl.codec.properties import encode_properties, read_properties
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage
from mqttref.impl.store.base import (
    NO_OPTIONS,
    SessionExpiry,
    SessionRecord,
    StoredInflight,
    StoredWill,
    SubscriptionOptions,
)

SESSIONS_BUCKET: Final = "mqttref_sessions"

Value = dict[str, Any]


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def session_prefix(client_id: str) -> str:
    """The keys of one client id's session begin with this (and a dot)."""
    return "c" + b64(client_id)


def properties_block(properties: Properties) -> str | None:
    if properties is NO_PROPERTIES:
        return None
    return b64(encode_properties(properties, PacketType.PUBLISH))


def read_properties_block(block: str | None) -> Properties:
    if not block:
        return NO_PROPERTIES
    return read_properties(wire.Reader(unb64(block)), PacketType.PUBLISH)


class Clocks:
    """Loop-clock instants to wall-clock ones and back: the bucket outlives the node
    whose loop clock an expiry was counted on."""

    def __init__(self, loop_clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.loop_clock = loop_clock
        self.wall_clock = wall_clock

    def to_wall(self, at: float | None) -> float | None:
        return None if at is None else at - self.loop_clock() + self.wall_clock()

    def to_loop(self, at: float | None) -> float | None:
        return None if at is None else at - self.wall_clock() + self.loop_clock()


def encode_outbound(message: OutboundMessage, clocks: Clocks) -> Value:
    return {"topic": message.topic, "qos": int(message.qos),
            "payload": b64(message.payload), "retain": message.retain,
            "properties": properties_block(message.properties),
            "expires_at": clocks.to_wall(message.expires_at), "share": message.share}


def decode_outbound(value: Value, packet_id: int, clocks: Clocks) -> OutboundMessage:
    return OutboundMessage(
        value["topic"], packet_id, QoS(value["qos"]), unb64(value["payload"]),
        bool(value["retain"]), read_properties_block(value["properties"]),
        clocks.to_loop(value["expires_at"]), value["share"],
    )


def encode_message(message: Message, clocks: Clocks) -> Value:
    return {"topic": message.topic, "qos": int(message.qos),
            "payload": b64(message.payload), "retain": message.retain,
            "properties": properties_block(message.properties),
            "expires_at": clocks.to_wall(message.expires_at), "origin": message.origin}


def decode_message(value: Value, clocks: Clocks) -> Message:
    return Message(value["topic"], unb64(value["payload"]), QoS(value["qos"]),
                   bool(value["retain"]), properties=read_properties_block(value["properties"]),
                   expires_at=clocks.to_loop(value["expires_at"]), origin=value["origin"])


def options_value(qos: QoS, options: SubscriptionOptions) -> Value:
    return {"qos": int(qos), "no_local": options.no_local,
            "retain_as_published": options.retain_as_published,
            "identifier": options.identifier, "at": time.time()}


def record_from_entries(client_id: str, entries: Iterable[tuple[str, bytes]],
                        clocks: Clocks) -> tuple[SessionRecord | None, StoredWill | None]:
    """A session as its keys hold it (``fetch``), and its delayed will if any;
    (None, None) without a ``meta`` key (no persistent session)."""
    prefix = session_prefix(client_id) + "."
    expiry: SessionExpiry | None = None
    subscriptions: dict[str, QoS] = {}
    options: dict[str, SubscriptionOptions] = {}
    queue: list[tuple[int, OutboundMessage]] = []
    inflight: list[tuple[int, StoredInflight]] = []
    awaiting: set[int] = set()
    will: StoredWill | None = None
    for key, data in entries:
        kind, _dot, rest = key.removeprefix(prefix).partition(".")
        value: Value = json.loads(data)
        if kind == "meta":
            expiry = SessionExpiry(value["disconnected_at"], value["expiry_interval"])
        elif kind == "sub":
            topic_filter = unb64(rest).decode()
            subscriptions[topic_filter] = QoS(value["qos"])
            option = SubscriptionOptions(value["no_local"], value["retain_as_published"],
                                         value["identifier"])
            if option != NO_OPTIONS:
                options[topic_filter] = option
        elif kind == "q":
            queue.append((int(rest), decode_outbound(value["message"], 0, clocks)))
        elif kind == "f":
            packet_id = int(rest)
            inflight.append((value["order"], StoredInflight(
                packet_id, OutboundState[value["state"]],
                decode_outbound(value["message"], packet_id, clocks))))
        elif kind == "r":
            awaiting.add(int(rest))
        elif kind == "will":
            due = clocks.to_loop(value["due_at"])
            will = StoredWill(client_id, due if due is not None else 0.0,
                              decode_message(value["message"], clocks))
    if expiry is None:
        return None, None
    record = SessionRecord(
        client_id, subscriptions, sorted(queue, key=lambda item: item[0]),
        [stored for _order, stored in sorted(inflight, key=lambda item: item[0])],
        frozenset(awaiting), expiry, options,
    )
    return record, will


def encode_live_will(will: Will) -> bytes:
    """The will of a connected client as its ``lastwill`` key holds it: the message, and
    its Will Delay Interval apart (``decode_live_will``)."""
    delay = will.properties.will_delay_interval or 0
    properties = will.properties
    if properties is not NO_PROPERTIES:
        properties = attrs.evolve(properties, will_delay_interval=None)
    return json.dumps({
        "topic": will.topic, "payload": b64(will.payload), "qos": int(will.qos),
        "retain": will.retain, "properties": properties_block(properties),
        "delay": delay,
    }, separators=(",", ":")).encode()


def decode_live_will(data: bytes) -> tuple[Message, int]:
    """A stored live will as the message to publish, and its Will Delay Interval: its
    Message Expiry Interval runs from publication (3.1.3.2.4), so it has no deadline
    yet (the publisher sets ``expires_at``)."""
    value: Value = json.loads(data)
    message = Message(value["topic"], unb64(value["payload"]), QoS(value["qos"]),
                      bool(value["retain"]), properties=read_properties_block(value["properties"]))
    return message, int(value["delay"])
