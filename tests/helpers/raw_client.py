"""A blocking MQTT client on a raw socket: sends any bytes, reports what comes back.

For protocol-violation tests, which need to send what no real client library
would (a packet before CONNECT, a second CONNECT, a truncated PUBLISH) and
then observe exactly how the broker answers: which packets, and whether it
closed the connection.
"""

from __future__ import annotations

import socket
import time

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Packet,
    ProtocolLevel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Will,
)

CLOSED = "closed"


class RawClient:
    """One TCP connection to a broker, packets encoded and decoded with mqttref's codec."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout)
        self.decoder = Decoder(role=Role.CLIENT, protocol_level=ProtocolLevel.MQTT_3_1_1)
        self.pending: list[Packet] = []
        self.closed = False

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, packet: Packet, level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1) -> None:
        self.sock.sendall(encode(packet, level))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def connect(
        self,
        client_id: str,
        *,
        clean_session: bool = True,
        keep_alive: int = 60,
        will: Will | None = None,
    ) -> ConnAck:
        self.send(Connect(ProtocolLevel.MQTT_3_1_1, client_id, clean_session, keep_alive, will))
        packet = self.receive()
        assert isinstance(packet, ConnAck), packet
        return packet

    def subscribe(self, topic_filter: str, qos: QoS = QoS.AT_MOST_ONCE,
                  packet_id: int = 1) -> SubAck:
        self.send(Subscribe(packet_id, (Subscription(topic_filter, qos),)))
        packet = self.receive()
        assert isinstance(packet, SubAck), packet
        return packet

    def receive(self, timeout: float = 5.0) -> Packet | str:
        """The next packet, ``CLOSED`` if the broker closed, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            if self.closed:
                return CLOSED
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no packet from the broker")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise
            except OSError:  # reset by the broker: a close too (D12)
                data = b""
            if not data:
                self.closed = True
                continue
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def receive_all(self, quiet: float = 0.3) -> list[Packet | str]:
        """Everything until nothing arrives for ``quiet`` seconds (or the close)."""
        seen: list[Packet | str] = []
        while True:
            try:
                item = self.receive(quiet)
            except TimeoutError:
                return seen
            seen.append(item)
            if item == CLOSED:
                return seen

    def is_closed_by_broker(self, timeout: float = 5.0) -> bool:
        """True once the broker closes; packets before the close are skipped."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.receive(deadline - time.monotonic()) == CLOSED:
                    return True
            except TimeoutError:
                return False
        return False
