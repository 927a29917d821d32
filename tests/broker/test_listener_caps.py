"""Sockets that never become clients cannot lock clients out (issue 20, BAD-INPUTS.md).

A socket counts against ``max_connections`` only once its CONNECT is accepted;
before that it counts against the pending caps, whose overflow closes the
oldest pending socket, and the CONNECT timeout closes it whatever it trickles.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    ConnectReturnCode,
    ProtocolLevel,
    PubAck,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import CLOSED, RawClient

CONNECT = encode(Connect(ProtocolLevel.MQTT_3_1_1, "trickler"))


@contextmanager
def silent_sockets(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` TCP connections that never send a byte."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(socket.create_connection(("127.0.0.1", port)))
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def still_open(sock: socket.socket) -> bool:
    """Whether the broker has not closed ``sock`` (a closed one reads EOF at once)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def test_two_thousand_silent_sockets_leave_room_for_a_good_client(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(max_connections=5, connect_timeout=30.0)
    with silent_sockets(broker.port, 2_000):
        deadline = time.monotonic() + 10
        while broker.call(lambda b: len(b.connections.pending)) < 2_000:
            assert time.monotonic() < deadline, "the broker did not accept 2,000 sockets"
            time.sleep(0.05)
        # (A raw client: paho's select() cannot watch a descriptor above 1024.)
        with RawClient(broker.port) as good:
            good.send_bytes(encode(Connect(ProtocolLevel.MQTT_3_1_1, "good")))
            # Silent sockets do not count against max_connections.
            assert good.receive() == ConnAck(False, ConnectReturnCode.ACCEPTED)
            good.send(Subscribe(1, (Subscription("t", QoS.AT_LEAST_ONCE),)))
            assert good.receive() == SubAck(1, (1,))
            good.send(Publish("t", b"through", QoS.AT_LEAST_ONCE, packet_id=2))
            answers = [good.receive(), good.receive()]
            assert PubAck(2) in answers
            assert any(isinstance(a, Publish) and a.payload == b"through" for a in answers)
            assert broker.call(lambda b: b.connections.connected) == 1


def test_beyond_the_pending_cap_the_oldest_silent_socket_makes_room(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(max_pending_connections=50, connect_timeout=30.0)
    with silent_sockets(broker.port, 80) as sockets:
        with RawClient(broker.port) as good:
            good.send_bytes(encode(Connect(ProtocolLevel.MQTT_3_1_1, "good")))
            assert good.receive() == ConnAck(False, ConnectReturnCode.ACCEPTED)
        deadline = time.monotonic() + 5
        while any(still_open(sock) for sock in sockets[:30]):
            assert time.monotonic() < deadline, "the oldest silent sockets stayed open"
            time.sleep(0.05)
        assert all(still_open(sock) for sock in sockets[31:])
        assert broker.call(lambda b: b.connections.evicted) >= 30


def test_max_connections_still_refuses_one_connected_client_too_many(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(max_connections=2)
    with RawClient(broker.port) as a, RawClient(broker.port) as b, \
            RawClient(broker.port) as c:
        for client, client_id in ((a, "a"), (b, "b")):
            client.send_bytes(encode(Connect(ProtocolLevel.MQTT_3_1_1, client_id)))
            assert client.receive() == ConnAck(False, ConnectReturnCode.ACCEPTED)
        c.send_bytes(encode(Connect(ProtocolLevel.MQTT_3_1_1, "c")))
        assert c.receive() == ConnAck(False, ConnectReturnCode.SERVER_UNAVAILABLE)
        assert c.receive() == CLOSED


def test_trickling_a_connect_byte_by_byte_does_not_extend_the_connect_timeout(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(connect_timeout=1.0)
    sock = socket.create_connection(("127.0.0.1", broker.port))
    started = time.monotonic()
    closed_after = None
    for byte in CONNECT[:-1] * 4:  # a byte every 0.1 s, never a whole CONNECT
        try:
            sock.send(bytes([byte]))
        except OSError:
            closed_after = time.monotonic() - started
            break
        if not still_open(sock):
            closed_after = time.monotonic() - started
            break
        time.sleep(0.1)
    sock.close()
    assert closed_after is not None, "the trickling socket was never closed"
    assert 0.9 <= closed_after < 2.5
