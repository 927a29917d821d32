"""The fault proxy forwards whole frames, rewrites them as told, and closes both sides."""

from __future__ import annotations

import socket

import pytest

from mqttref.impl.broker.config import Config
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Packet,
    PingReq,
    PingResp,
    ProtocolLevel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from tests.helpers.broker_thread import BrokerThread
from tests.stateful.fault_proxy import (
    CLOSE,
    KEEP_CLIENT_OPEN,
    Direction,
    FaultProxy,
    Link,
    forward,
    packet_type,
)

V311 = ProtocolLevel.MQTT_3_1_1


def _exchange(port: int, *packets: Packet, want: int) -> list[Packet] | None:
    """Send ``packets``, read ``want`` packets back; None when the connection closes first."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for packet in packets:
            sock.sendall(encode(packet, V311))
        decoder = Decoder(role=Role.CLIENT, protocol_level=V311)
        got: list[Packet] = []
        while len(got) < want:
            data = sock.recv(65536)
            if not data:
                return None
            got += decoder.feed(data)
        return got


def test_the_identity_proxy_carries_a_whole_exchange_unchanged() -> None:
    with BrokerThread(Config(port=0)) as running, FaultProxy(running.port, forward) as proxy:
        got = _exchange(proxy.port, Connect(V311, "p1", True, 60),
                        Subscribe(7, (Subscription("a/+", QoS.AT_LEAST_ONCE),)), PingReq(), want=3)
    assert got is not None
    assert [type(p) for p in got] == [ConnAck, SubAck, PingResp]
    assert isinstance(got[1], SubAck)
    assert got[1].packet_id == 7


def test_a_rewrite_replaces_frames_of_one_direction() -> None:
    def reserved_code(direction: Direction, frame: bytes, _link: Link) -> list[bytes]:
        if direction is Direction.DOWN and packet_type(frame) == 9:
            return [frame[:-1] + b"\x03"]
        return [frame]

    with BrokerThread(Config(port=0)) as running, \
            FaultProxy(running.port, reserved_code) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(encode(Connect(V311, "p2", True, 60), V311))
        sock.sendall(encode(Subscribe(9, (Subscription("a", QoS.AT_LEAST_ONCE),)), V311))
        data = b""
        while len(data) < 4 + 5:
            data += sock.recv(65536)
    assert data[4:] == bytes((0x90, 3, 0, 9, 3))


def test_close_ends_both_sides_of_the_connection() -> None:
    def close_on_pingreq(direction: Direction, frame: bytes, _link: Link) -> list[bytes]:
        return [CLOSE] if packet_type(frame) == 12 else [frame]

    with BrokerThread(Config(port=0)) as running, \
            FaultProxy(running.port, close_on_pingreq) as proxy:
        assert _exchange(proxy.port, Connect(V311, "p3", True, 60), PingReq(), want=2) is None
        assert running.wait_for(lambda broker: not broker.connections, timeout=5)


def test_a_link_kept_open_hides_the_brokers_close_from_the_client() -> None:
    def keep_open(_direction: Direction, frame: bytes, link: Link) -> list[bytes]:
        link.state[KEEP_CLIENT_OPEN] = True
        return [frame]

    with BrokerThread(Config(port=0)) as running, FaultProxy(running.port, keep_open) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1) as sock:
        sock.sendall(encode(Connect(V311, "p4", True, 60), V311))
        sock.sendall(bytes((0xC1, 0)))  # PINGREQ with bad flags: the broker closes
        assert sock.recv(4)[:1] == b"\x20"
        with pytest.raises(TimeoutError):
            sock.recv(1)
