"""WebSocket listeners (MQTT chapter 6) with real peers: paho over WebSocket (and
over TLS), and a hand-made wsproto client that frames MQTT as it likes.

Bad input is refused with a clear answer and touches no other client: a
handshake without the ``mqtt`` subprotocol (HTTP 400), a text frame (close
1003), a frame over ``max_frame_size`` (close 1009).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from mqttref.impl.broker import websocket
from mqttref.impl.broker.listeners import Listener
from mqttref.impl.logtext import LogLimiter
from tests.broker.listener_peers import Certificates, PahoPeer, make_certificates
from tests.helpers.broker_thread import BrokerThread

CONNECT = bytes.fromhex("101000044d5154540402003c0004") + b"hand"
"""MQTT 3.1.1 CONNECT, clean session, client id "hand"."""
CONNACK = b"\x20\x02\x00\x00"
SUBSCRIBE = bytes.fromhex("8208 0001 0003 612f62 00")
"""SUBSCRIBE packet id 1 to "a/b" at QoS 0."""
SUBACK = bytes.fromhex("9003 0001 00")
PUBLISH = bytes.fromhex("3008 0003 612f62 686921")
"""PUBLISH QoS 0 to "a/b", payload "hi!"."""
PINGREQ, PINGRESP = b"\xc0\x00", b"\xd0\x00"


@pytest.fixture(autouse=True)
def limiter(monkeypatch: pytest.MonkeyPatch) -> LogLimiter:
    """A limiter of the WebSocket edge's own for each test (see test_tls)."""
    fresh = LogLimiter(logging.getLogger("mqttref.broker"))
    monkeypatch.setattr(websocket, "broker_log", fresh)
    return fresh


@pytest.fixture
def ws_broker(start_broker: Callable[..., BrokerThread]) -> BrokerThread:
    return start_broker(listeners=(Listener(port=0, transport="ws", max_frame_size=1024),))


@pytest.fixture
def peers() -> Iterator[list[PahoPeer]]:
    made: list[PahoPeer] = []
    yield made
    for peer in made:
        peer.close()


class HandMade:
    """A WebSocket client of our own framing (wsproto, the client side)."""

    def __init__(self, port: int, subprotocols: list[str] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(
            host="localhost", target="/anything",
            subprotocols=["mqtt"] if subprotocols is None else subprotocols,
        )))
        self.pending: list[Event] = []

    def event(self) -> Event:
        """The next WebSocket event from the broker (a CloseConnection at its EOF)."""
        while not self.pending:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    def frames(self, *payloads: bytes) -> None:
        """One binary frame (a whole message) per payload."""
        self.sock.sendall(b"".join(self.ws.send(BytesMessage(data=p)) for p in payloads))

    def mqtt(self, size: int) -> bytes:
        """``size`` bytes of MQTT from the broker, however they were framed."""
        data = b""
        while len(data) < size:
            event = self.event()
            assert isinstance(event, BytesMessage), event
            data += event.data
        return data

    def close(self) -> None:
        self.sock.close()


def opened(port: int) -> HandMade:
    client = HandMade(port)
    accepted = client.event()
    assert isinstance(accepted, AcceptConnection)
    assert accepted.subprotocol == "mqtt"  # [MQTT-6.0.0-4]
    return client


def test_paho_over_websocket_on_any_path(ws_broker: BrokerThread,
                                         peers: list[PahoPeer]) -> None:
    subscriber = PahoPeer(ws_broker.port, "ws-sub", transport="ws").connect()
    peers.append(subscriber)
    subscriber.subscribe("ws/#")
    publisher = PahoPeer(ws_broker.port, "ws-pub", transport="ws", path="/").connect()
    peers.append(publisher)
    publisher.publish("ws/a", b"over WebSocket")
    assert subscriber.received() == ("ws/a", b"over WebSocket")


def test_paho_over_websocket_over_tls(start_broker: Callable[..., BrokerThread],
                                      tmp_path_factory: pytest.TempPathFactory,
                                      peers: list[PahoPeer]) -> None:
    certificates: Certificates = make_certificates(tmp_path_factory.mktemp("wss"))
    running = start_broker(listeners=(Listener(port=0, transport="wss",
                                               certfile=str(certificates.server)),))
    client = PahoPeer(running.port, "wss", transport="wss", ca=certificates.ca).connect()
    peers.append(client)
    client.subscribe("s")
    client.publish("s", b"over wss")
    assert client.received() == ("s", b"over wss")


def test_packets_split_over_frames_and_packed_in_one_frame(ws_broker: BrokerThread) -> None:
    """[MQTT-6.0.0-2]: packets are not aligned on frame boundaries."""
    client = opened(ws_broker.port)
    try:
        client.frames(CONNECT[:3], CONNECT[3:9], CONNECT[9:])
        assert client.mqtt(4) == CONNACK
        client.frames(SUBSCRIBE + PUBLISH[:4], PUBLISH[4:] + PINGREQ)
        assert client.mqtt(len(SUBACK) + len(PUBLISH) + 2) == SUBACK + PUBLISH + PINGRESP
    finally:
        client.close()


def test_handshake_without_the_mqtt_subprotocol_is_refused(
    ws_broker: BrokerThread, peers: list[PahoPeer], caplog: pytest.LogCaptureFixture,
) -> None:
    """[MQTT-6.0.0-3]: a client MUST offer "mqtt"; the broker answers HTTP 400 saying so."""
    caplog.set_level(logging.WARNING, "mqttref.broker")
    client = HandMade(ws_broker.port, subprotocols=["chat"])
    try:
        refused = client.event()
        assert isinstance(refused, RejectConnection)
        assert refused.status_code == 400
        body = client.event()
        assert isinstance(body, RejectData)
        assert b"subprotocol mqtt" in body.data
    finally:
        client.close()
    assert ws_broker.wait_for(
        lambda _b: any("subprotocol mqtt" in r.getMessage() for r in caplog.records))
    PahoPeer(ws_broker.port, "after", transport="ws").connect().close()


def test_text_frame_closes_with_1003(ws_broker: BrokerThread, peers: list[PahoPeer]) -> None:
    """[MQTT-6.0.0-1]: MQTT travels in binary frames; any other data frame closes."""
    other = PahoPeer(ws_broker.port, "other", transport="ws").connect()
    peers.append(other)
    other.subscribe("t")
    client = opened(ws_broker.port)
    try:
        client.frames(CONNECT)
        assert client.mqtt(4) == CONNACK
        client.sock.sendall(client.ws.send(TextMessage(data="hello")))
        closed = client.event()
        assert isinstance(closed, CloseConnection)
        assert closed.code == 1003
    finally:
        client.close()
    other.publish("t", b"unaffected")
    assert other.received() == ("t", b"unaffected")


def test_frame_over_max_frame_size_closes_with_1009(ws_broker: BrokerThread,
                                                    peers: list[PahoPeer]) -> None:
    other = PahoPeer(ws_broker.port, "listener", transport="ws").connect()
    peers.append(other)
    other.subscribe("big")
    client = opened(ws_broker.port)
    try:
        client.frames(CONNECT)
        assert client.mqtt(4) == CONNACK
        payload = b"x" * 2000  # a PUBLISH of 2,008 bytes in one frame; the limit is 1,024
        client.frames(bytes([0x30, 0xD5, 0x0F]) + b"\x00\x03big" + payload)
        closed = client.event()
        assert isinstance(closed, CloseConnection)
        assert closed.code == 1009
    finally:
        client.close()
    other.publish("big", b"small")
    assert other.received() == ("big", b"small")  # and nothing of the refused frame


def test_ping_is_answered_and_a_close_frame_ends_the_connection(
    ws_broker: BrokerThread,
) -> None:
    client = opened(ws_broker.port)
    try:
        client.frames(CONNECT)
        assert client.mqtt(4) == CONNACK
        assert ws_broker.wait_for(lambda broker: len(broker.connections.connections) == 1)
        client.sock.sendall(client.ws.send(Ping(payload=b"still there?")))
        assert client.event() == Pong(payload=b"still there?")
        client.sock.sendall(client.ws.send(CloseConnection(code=1000)))
        answer = client.event()
        assert isinstance(answer, CloseConnection)
        assert answer.code == 1000
    finally:
        client.close()
    assert ws_broker.wait_for(lambda broker: len(broker.connections.connections) == 0)


def test_socket_that_never_finishes_the_websocket_handshake_meets_connect_timeout(
    start_broker: Callable[..., BrokerThread],
) -> None:
    running = start_broker(connect_timeout=0.3,
                           listeners=(Listener(port=0, transport="ws"),))
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as silent:
        silent.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")  # and no more
        assert silent.recv(100) == b""  # closed by the broker, not by our timeout
