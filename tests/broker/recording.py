"""A packet sink that records what a session sends, for the sans-IO unit tests.

Not a mock of a peer: the session's only collaborator is "where packets go",
and here they go into a list, decoded back through the real codec so frames
and packets read the same.
"""

from __future__ import annotations

import attrs

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.session import Session
from mqttref.impl.codec.codec import Decoder, Role
from mqttref.impl.codec.packets import Packet, ProtocolLevel
from mqttref.impl.store import MemoryStore, Store


@attrs.define
class RecordingSink:
    sent: list[Packet] = attrs.field(factory=list)
    congested: bool = False
    overloaded: bool = False
    closed: str | None = None
    v5: bool = False
    receive_maximum: int = 65_535
    maximum_packet_size: int = 268_435_460
    topic_alias_maximum: int = 0

    def send(self, packet: Packet) -> None:
        self.sent.append(packet)

    def send_frame(self, frame: bytes) -> None:
        level = ProtocolLevel.MQTT_5 if self.v5 else ProtocolLevel.MQTT_3_1_1
        decoder = Decoder(role=Role.CLIENT, protocol_level=level)
        self.sent.extend(decoder.feed(frame))

    def close(self, reason: str, *, publish_will: bool, now: float | None = None,
              reason_code: int | None = None) -> None:
        self.closed = reason

    def take(self) -> list[Packet]:
        sent, self.sent = self.sent, []
        return sent


def make_session(
    client_id: str = "c1",
    *,
    persistent: bool = False,
    config: Config | None = None,
    store: Store | None = None,
    connected: bool = True,
) -> tuple[Session, RecordingSink]:
    session = Session(
        client_id,
        persistent=persistent,
        config=config or Config(),
        store=store or MemoryStore(),
    )
    sink = RecordingSink()
    if connected:
        session.attach(sink, 0.0)
    return session, sink
