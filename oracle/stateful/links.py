"""One client slot's TCP connection: its bytes out, and what the server sent back.

A slot's connection speaks the Protocol Level of its CONNECT both ways: the client's
packets are encoded at it (``encode_at``), the server's bytes decoded at it
(``LevelStream``; a server answers a level-5 CONNECT in 5.0's encoding, 3.1.2.2).
``Link`` is the connection itself, with what the driver remembers of it: the Topic
Aliases the server set, and for a cluster the node it went to and the changes on it
other nodes must learn (``propagation``).
"""

from __future__ import annotations

import socket

import attrs

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ProtocolError
from mqttref.impl.codec.packets import Connect, Packet, ProtocolLevel, Publish
from mqttref.model import Observation, describe
from mqttref.model.v5.frames import FrameSplitter
from mqttref.oracle.stateful.adapters import ServerSentGarbage, encode_client_packet


def encode_at(packet: Packet, level: ProtocolLevel) -> bytes:
    """The bytes of a well-formed client packet on a link of Protocol Level ``level``
    (a CONNECT carries its own). Level 4 goes through ``encode_client_packet``,
    which also writes what the 3.1.1 machine's violations need."""
    if level == ProtocolLevel.MQTT_5 and not isinstance(packet, Connect):
        return encode(packet, level)
    return encode_client_packet(packet)


@attrs.define(eq=False)
class LevelStream:
    """Bytes from the server of one connection -> observations, decoded at the
    Protocol Level the connection's CONNECT used (a server answers a level-5
    CONNECT in 5.0's encoding, 3.1.2.2). Undecodable bytes, or a packet only a
    client sends, are a verdict of their own [MQTT-4.8.0-1]. At level 5, ``frames``
    cuts the same bytes into whole frames, so that the model judges each one's bytes
    before the decoder reads it (``Driver._judge_frames``)."""

    level: ProtocolLevel
    decoder: Decoder = attrs.field(init=False)
    frames: FrameSplitter = attrs.field(factory=FrameSplitter)

    def __attrs_post_init__(self) -> None:
        self.decoder = Decoder(role=Role.CLIENT, protocol_level=self.level)

    def feed(self, data: bytes) -> list[Observation]:
        try:
            return list(self.decoder.feed(data))
        except ProtocolError as exc:
            version = "5.0" if self.level == ProtocolLevel.MQTT_5 else "3.1.1"
            raise ServerSentGarbage(
                f"the server sent bytes that are no valid {version} server packet: {exc} "
                f"(after {[describe(p) for p in getattr(exc, 'packets', [])]})"
            ) from exc


@attrs.define(eq=False)
class Link:
    """One slot's open TCP connection, at the Protocol Level of its CONNECT."""

    slot: str
    sock: socket.socket
    client_id: str | None
    level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1
    stream: LevelStream = attrs.field()
    server_aliases: dict[int, str] = attrs.field(factory=dict)
    """Topic Aliases the server set on this connection (3.3.2.3.4), read only to tell
    another client's aliased message from the example's own."""
    node: int = 0
    """Which node of a cluster the connection went to (``oracle.nodes``)."""
    shared_state: bool = False
    """Whether its session outlives it or resumed one: a change other nodes must learn."""
    retained_ids: set[int] = attrs.field(factory=set)
    """Packet ids of its retained QoS 1/2 PUBLISHes not yet acknowledged."""

    @stream.default
    def _stream(self) -> LevelStream:
        return LevelStream(self.level)

    def topic_of(self, packet: Publish) -> str:
        """The Topic Name of a PUBLISH from the server, read through its Topic Alias
        (the model reads aliases itself; the driver only needs the name)."""
        alias = packet.properties.topic_alias
        if alias is None:
            return packet.topic
        if packet.topic:
            self.server_aliases[alias] = packet.topic
            return packet.topic
        return self.server_aliases.get(alias, "")


__all__ = ["LevelStream", "Link", "encode_at"]
