"""The load generator's clients: raw loopback sockets, pre-encoded packets, one role per process.

Each role is built in the parent, then runs in its own process (``workers.run_roles`` forks one per
role): ``setup()`` connects and subscribes before the clock starts, ``run(ctx)`` is the measured
part, and returns a dict of counts. Sockets are plain blocking or selector-driven sockets with
large buffers; writes are batched (hundreds of packets per ``sendall``) and reads are split by
fixed header only, so a generator process spends a few hundred nanoseconds per message and the
broker, not the generator, sets the pace. Every loop is bounded by a message count and by a
deadline, so a broker that loses messages or stops answering ends the run with a loss figure
instead of a hang.
"""

from __future__ import annotations

import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import frames

from mqttref.impl.codec.codec import Decoder
from mqttref.impl.codec.packets import ConnAck, ProtocolLevel, PubAck, PubComp, PubRec, PubRel

HOST = "127.0.0.1"
RECV_SIZE = 1 << 20
SOCKET_BUFFER = 1 << 21


class Context(Protocol):
    """What a running role may use: the shared stop flag and a line to the parent."""

    def stopped(self) -> bool: ...

    def wait_stop(self, timeout: float) -> bool: ...

    def report(self, kind: str, value: Any) -> None: ...


class BrokerRefused(RuntimeError):
    """The broker closed or refused a connection during set-up: the scenario cannot start."""


def open_client(
    port: int,
    client_id: str,
    clean_session: bool = True,
    timeout: float = 10.0,
    *,
    level: int = 4,
    in_flight: int = 0,
) -> socket.socket:
    """Connect one client: TCP connect, CONNECT, and a CONNACK that accepts it.

    ``in_flight``: how many QoS 1/2 PUBLISH the client will keep unacknowledged. A 5.0 broker
    states its Receive Maximum in CONNACK and may close a client that sends more [MQTT-3.3.4-9];
    a broker that allows fewer than the scenario's window cannot run it, so it is refused here.
    """
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    sock.sendall(frames.connect_frame(client_id, clean_session=clean_session, level=level))
    connack = read_frame(sock)
    if not frames.connack_accepted(connack):
        raise BrokerRefused(f"{client_id}: CONNACK {connack.hex()} does not accept it")
    if level == 5 and in_flight:
        [packet] = Decoder(protocol_level=ProtocolLevel.MQTT_5).feed(connack)
        assert isinstance(packet, ConnAck)  # connack_accepted read its type
        receive_maximum = packet.properties.receive_maximum or 65_535
        if receive_maximum < in_flight:
            raise BrokerRefused(
                f"{client_id}: the broker's Receive Maximum {receive_maximum} is below the "
                f"scenario's {in_flight} in flight"
            )
    return sock


def subscribe(sock: socket.socket, topic_filter: str, qos: int, level: int = 4) -> None:
    """Subscribe and wait for the SUBACK granting exactly ``qos`` (its last byte at either level:
    5.0 puts an empty property block before the reason codes [MQTT-3.9.2.1])."""
    sock.sendall(frames.subscribe_frame(topic_filter, qos, level=level))
    suback = read_frame(sock)
    if suback[0] >> 4 != frames.SUBACK or suback[-1] != qos:
        raise BrokerRefused(f"SUBSCRIBE {topic_filter} at QoS {qos} answered by {suback.hex()}")


def read_frame(sock: socket.socket) -> bytes:
    """One whole frame, read by its fixed header: set-up and the storm only, never a hot loop."""
    data = _read_exactly(sock, 2)
    while data[-1] & 0x80 and len(data) < 5:
        data += _read_exactly(sock, 1)
    length = 0
    for shift, byte in enumerate(data[1:]):
        length |= (byte & 0x7F) << (7 * shift)
    return data + _read_exactly(sock, length)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise BrokerRefused("the broker closed the connection during set-up")
        data += chunk
    return data


def close_quietly(sock: socket.socket, disconnect: bool = True) -> None:
    try:
        if disconnect:
            sock.setblocking(True)
            sock.settimeout(1.0)
            sock.sendall(frames.DISCONNECT)
    except OSError:
        pass
    sock.close()


@dataclass
class Role:
    """One process of the generator. ``ends_scenario``: the scenario is over when it returns."""

    port: int
    deadline_s: float
    ends_scenario: bool = True
    clean_session: bool = True
    """False: a persistent session (clean session 0), which a disk store must write through."""
    level: int = 4
    """The protocol level every packet of the role is encoded at: 4 (3.1.1) or 5 (5.0)."""
    sockets: list[socket.socket] = field(default_factory=list, repr=False)

    def setup(self) -> None:
        raise NotImplementedError

    def run(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        for sock in self.sockets:
            close_quietly(sock)
        self.sockets = []


@dataclass
class Qos0Publisher(Role):
    """Writes ``count`` identical QoS 0 PUBLISH frames in batches, then stays until told to stop.

    Staying connected means the broker never sees an early close while it still holds the
    publisher's data; blocking ``sendall`` is the back-pressure a publisher should feel.
    """

    client_id: str = "pub"
    topic: str = "bench/0"
    payload_size: int = 64
    count: int = 0
    batch: int = 500

    def setup(self) -> None:
        self.sockets = [open_client(self.port, self.client_id, level=self.level)]
        self.frame = frames.publish_frame(self.topic, b"x" * self.payload_size, level=self.level)

    def run(self, ctx: Context) -> dict[str, Any]:
        sock = self.sockets[0]
        sock.settimeout(self.deadline_s)
        batch = self.frame * self.batch
        sent = 0
        try:
            while sent + self.batch <= self.count:
                sock.sendall(batch)
                sent += self.batch
            if sent < self.count:
                sock.sendall(self.frame * (self.count - sent))
                sent = self.count
        except TimeoutError:
            pass
        ctx.wait_stop(self.deadline_s)
        return {"sent": sent}


@dataclass
class CountingSubscriber(Role):
    """``clients`` QoS 0 subscribers in one process, counting PUBLISH frames by fixed header."""

    client_prefix: str = "sub"
    clients: int = 1
    topic_filter: str = "bench/#"
    expected_each: int = 0
    idle_s: float = 5.0

    def setup(self) -> None:
        for index in range(self.clients):
            sock = open_client(self.port, f"{self.client_prefix}-{index}", level=self.level)
            subscribe(sock, self.topic_filter, 0, self.level)
            sock.setblocking(False)
            self.sockets.append(sock)

    def run(self, ctx: Context) -> dict[str, Any]:
        selector = selectors.DefaultSelector()
        counts = dict.fromkeys(range(len(self.sockets)), 0)
        rests = dict.fromkeys(range(len(self.sockets)), b"")
        for index, sock in enumerate(self.sockets):
            selector.register(sock, selectors.EVENT_READ, index)
        start = last = time.monotonic()
        open_count = len(self.sockets)
        while open_count and time.monotonic() - start < self.deadline_s:
            events = selector.select(timeout=0.5)
            if not events and (time.monotonic() - last > self.idle_s or ctx.stopped()):
                break
            for key, _ in events:
                index = key.data
                data = key.fileobj.recv(RECV_SIZE)  # type: ignore[union-attr]
                if not data:
                    selector.unregister(key.fileobj)
                    open_count -= 1
                    continue
                buf = rests[index] + data if rests[index] else data
                count, pos = frames.count_publishes(buf, 0)
                rests[index] = buf[pos:]
                counts[index] += count
                if counts[index] >= self.expected_each:
                    selector.unregister(key.fileobj)
                    open_count -= 1
                last = time.monotonic()
        selector.close()
        return {
            "delivered": sum(counts.values()),
            "expected": self.expected_each * len(self.sockets),
            "t_last": last,
        }


@dataclass
class WindowPublisher(Role):
    """Publishes ``count`` QoS 1 or 2 messages keeping ``window`` unacknowledged at all times.

    QoS 1: a PUBACK frees a slot. QoS 2: PUBREC is answered with PUBREL, PUBCOMP frees the slot
    [MQTT-4.3.3]. New PUBLISH frames for every freed slot go out in one write per read.
    """

    client_id: str = "pub"
    topic: str = "bench/q"
    payload_size: int = 64
    qos: int = 1
    count: int = 0
    window: int = 100
    idle_s: float = 5.0

    def setup(self) -> None:
        self.sockets = [
            open_client(
                self.port,
                self.client_id,
                self.clean_session,
                level=self.level,
                in_flight=self.window,
            )
        ]
        payload = b"x" * self.payload_size
        self.table = frames.publish_table(self.topic, payload, self.qos, self.level)
        self.pubrel = frames.ack_table(PubRel, self.level)

    def run(self, ctx: Context) -> dict[str, Any]:
        sock = self.sockets[0]
        sock.settimeout(1.0)
        table, pubrel, window, count = self.table, self.pubrel, self.window, self.count
        done_type = frames.PUBACK if self.qos == 1 else frames.PUBCOMP
        in_flight: set[int] = set()
        next_pid = 0
        sent = completed = 0
        out: list[bytes] = []
        rest = b""
        start = last = time.monotonic()
        while completed < count and time.monotonic() - start < self.deadline_s:
            while len(in_flight) < window and sent < count:
                next_pid = next_pid % frames.MAX_PACKET_ID + 1
                if next_pid in in_flight:
                    continue
                in_flight.add(next_pid)
                out.append(table[next_pid])
                sent += 1
            if out:
                sock.sendall(b"".join(out))
                out = []
            try:
                data = sock.recv(RECV_SIZE)
            except TimeoutError:
                if time.monotonic() - last > self.idle_s:
                    break  # the broker stopped acknowledging: report what completed
                continue
            last = time.monotonic()
            if not data:
                break
            buf = rest + data if rest else data
            received, pos = frames.split(buf, 0)
            rest = buf[pos:]
            for first, body, _ in received:
                kind = first >> 4
                if kind == done_type:
                    in_flight.discard(frames.packet_id_at(buf, body))
                    completed += 1
                elif kind == frames.PUBREC:
                    out.append(pubrel[frames.packet_id_at(buf, body)])
        return {"sent": sent, "completed": completed}


@dataclass
class AckingSubscriber(Role):
    """One subscriber at QoS 1 or 2 that acknowledges every delivery as a client must.

    QoS 1: PUBACK per PUBLISH. QoS 2: PUBREC per PUBLISH, PUBCOMP per PUBREL; it finishes when
    every expected delivery has also been completed, so no handshake is left half-way.
    """

    client_id: str = "sub"
    topic_filter: str = "bench/#"
    qos: int = 1
    expected: int = 0
    idle_s: float = 5.0

    def setup(self) -> None:
        sock = open_client(self.port, self.client_id, self.clean_session, level=self.level)
        subscribe(sock, self.topic_filter, self.qos, self.level)
        self.sockets = [sock]
        self.puback = frames.ack_table(PubAck, self.level)
        self.pubrec = frames.ack_table(PubRec, self.level)
        self.pubcomp = frames.ack_table(PubComp, self.level)

    def run(self, ctx: Context) -> dict[str, Any]:
        sock = self.sockets[0]
        sock.settimeout(0.5)
        puback, pubrec, pubcomp = self.puback, self.pubrec, self.pubcomp
        delivered = released = 0
        needs_release = self.qos == 2
        rest = b""
        start = last = time.monotonic()
        while time.monotonic() - start < self.deadline_s:
            if delivered >= self.expected and (not needs_release or released >= delivered):
                break
            try:
                data = sock.recv(RECV_SIZE)
            except TimeoutError:
                if time.monotonic() - last > self.idle_s or ctx.stopped():
                    break
                continue
            if not data:
                break
            buf = rest + data if rest else data
            received, pos = frames.split(buf, 0)
            rest = buf[pos:]
            out = []
            for first, body, _ in received:
                kind = first >> 4
                if kind == frames.PUBLISH:
                    delivered += 1
                    qos = (first >> 1) & 3
                    if qos == 1:
                        out.append(puback[frames.publish_packet_id(buf, body)])
                    elif qos == 2:
                        out.append(pubrec[frames.publish_packet_id(buf, body)])
                elif kind == frames.PUBREL:
                    released += 1
                    out.append(pubcomp[frames.packet_id_at(buf, body)])
            if out:
                sock.sendall(b"".join(out))
            last = time.monotonic()
        return {"delivered": delivered, "expected": self.expected, "t_last": last}


@dataclass
class ConnectionStorm(Role):
    """``total`` connections, each connecting, getting its CONNACK and disconnecting at once,
    ``concurrency`` at a time; client ids repeat every ``clients`` connections (rounds)."""

    client_prefix: str = "storm"
    clients: int = 0
    total: int = 0
    concurrency: int = 50

    def setup(self) -> None:
        ids = range(self.clients or self.total)
        per_client = [
            frames.connect_frame(f"{self.client_prefix}-{i}", level=self.level) for i in ids
        ]
        self.connects = [per_client[i % len(per_client)] for i in range(self.total)]

    def run(self, ctx: Context) -> dict[str, Any]:
        accepted = failed = 0
        start = time.monotonic()
        for first in range(0, self.total, self.concurrency):
            if time.monotonic() - start > self.deadline_s:
                break
            batch = []
            for connect in self.connects[first : first + self.concurrency]:
                try:
                    sock = socket.create_connection((HOST, self.port), timeout=10.0)
                    sock.sendall(connect)
                    batch.append(sock)
                except OSError:
                    failed += 1
            for sock in batch:
                try:
                    if frames.connack_accepted(read_frame(sock)):
                        accepted += 1
                        sock.sendall(frames.DISCONNECT)
                    else:
                        failed += 1
                except (OSError, BrokerRefused):
                    failed += 1
                sock.close()
        return {"delivered": accepted, "expected": self.total, "failed": failed}


@dataclass
class IdleHolder(Role):
    """Opens ``total`` connections, reports ``held``, and keeps them idle until told to stop."""

    client_prefix: str = "idle"
    total: int = 0

    def setup(self) -> None:
        self.connects = [
            frames.connect_frame(f"{self.client_prefix}-{i}", level=self.level)
            for i in range(self.total)
        ]

    def run(self, ctx: Context) -> dict[str, Any]:
        held = 0
        step = 100
        for first in range(0, self.total, step):
            batch = []
            for connect in self.connects[first : first + step]:
                try:
                    sock = socket.create_connection((HOST, self.port), timeout=10.0)
                    sock.sendall(connect)
                    batch.append(sock)
                except OSError:
                    pass
            for sock in batch:
                try:
                    if frames.connack_accepted(read_frame(sock)):
                        self.sockets.append(sock)
                        held += 1
                        continue
                except (OSError, BrokerRefused):
                    pass
                sock.close()
        opened = time.monotonic()
        ctx.report("held", held)
        ctx.wait_stop(self.deadline_s)
        return {"delivered": held, "expected": self.total, "t_last": opened}
