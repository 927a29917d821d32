"""A raw MQTT client connection for the oracle: send anything, observe everything.

A ``Probe`` owns one connection to the broker under test (over TCP, TLS or a
WebSocket: ``connection.open_stream``). It sends packets
built with the shared codec or raw bytes (for malformed input), and a reader
task turns whatever comes back into ``Event``s: a decoded packet, the close of
the connection (FIN and RST alike, since a close is a close [ORACLE D12]), or
bytes the codec refuses (a server that sends a malformed packet is judged by
the codec's strict rules, which cite their statement).

Waiting never uses a blind sleep: a probe waits for an event with a generous
bound, or for *quiescence* (nothing arrives for a window), and every bound is
scaled by ``Timing.multiplier`` so a loaded machine can be given more room.
Every send and every arrival is written to the shared ``Trace``, which is what a
failing verdict prints.

Around it: ``timing.py`` (how long it waits), ``trace.py`` (the ``Trace`` and
``describe``), ``framing.py`` (the server's bytes cut into frames, and what a check's own
raw bytes hold) and ``sender_rules.py`` (which statement malformed bytes from the server
break). Their public names are importable from here too, as the checks always did.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import TypeVar

import attrs

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import MQTTError
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    SubAck,
)
from mqttref.oracle.connection import (
    Connection,
    current,
    open_stream,
    with_credentials,
    with_credentials_raw,
)
from mqttref.oracle.evidence import Deviation, Inconclusive, NotApplicable, observe
from mqttref.oracle.framing import Framer, connect_in, echoed_zero_id, payloads_in
from mqttref.oracle.nodes import clustered
from mqttref.oracle.sender_rules import blamed_refusal, carries_a_packet_id
from mqttref.oracle.timing import Timing
from mqttref.oracle.trace import Trace, describe

P = TypeVar("P", bound=Packet)

__all__ = ["Closed", "Deviation", "Event", "Garbled", "Inconclusive", "NotApplicable", "Probe",
           "Received", "Timing", "Trace", "describe"]


@attrs.frozen
class Received:
    packet: Packet


@attrs.frozen
class Closed:
    how: str
    """``FIN`` or ``RST``: reported, never judged."""


@attrs.frozen
class Garbled:
    """Bytes from the server that the strict codec refused."""

    error: str


Event = Received | Closed | Garbled


def _acknowledges_shared_change(packet: Packet, persistent: bool,
                                retained_ids: set[int]) -> bool:
    """Whether ``packet`` acknowledges a change other nodes of a cluster must learn: a
    subscription (SUBACK), a retained message stored (PUBACK, or PUBREC and PUBCOMP, of a
    retained PUBLISH), a session that outlives its connection taken up (CONNACK)."""
    if isinstance(packet, SubAck):
        return True
    if isinstance(packet, (PubAck, PubRec, PubComp)) and packet.packet_id in retained_ids:
        if not isinstance(packet, PubRec):
            retained_ids.discard(packet.packet_id)
        return True
    return isinstance(packet, ConnAck) and persistent


class Probe:
    """One client connection to the broker under test."""

    def __init__(
        self,
        name: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        trace: Trace,
        timing: Timing,
        *,
        level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1,
    ) -> None:
        self.name = name
        self.level = level
        """The protocol level this connection speaks: what the codec encodes and decodes at."""
        self._reader = reader
        self._writer = writer
        self.trace = trace
        self.timing = timing
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self.closed: Closed | None = None
        self.pending: list[Packet] = []
        """Packets received while waiting for something else, oldest first."""
        self._aborted = False
        self._accepted = False
        """Whether a CONNACK below 0x80 arrived: before it a DISCONNECT from the server breaks
        [MQTT-3.14.0-1], whatever else is wrong with it."""
        self.given_up: str | None = None
        """The malformed bytes after which the oracle dropped this connection: what was
        awaited on it afterwards cannot come, which is no observation of the server."""
        self._last_packet_id = 0
        self.frames: list[bytes] = []
        """Every frame from the server as its bytes arrived, before decoding: for the checks
        of the encoding itself (flags, Variable Byte Integers, Property Length)."""
        self._sent = False
        self.server_maximum_qos = 2
        """The Maximum QoS this connection's CONNACK declared (3.2.2.3.4; 2 when absent): a
        conforming client sends no PUBLISH above it [MQTT-3.2.2-11], so neither do the checks
        unless provoking the server on purpose."""
        self.node = 0
        """Which node of a cluster (``nodes``) this connection went to."""
        self._shared_state = False
        """Whether this connection's session outlives it or resumed one (``nodes``)."""
        self._retained_ids: set[int] = set()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, name: str, host: str, port: int, trace: Trace, timing: Timing, *,
                   level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1,
                   connection: Connection | None = None) -> Probe:
        """Connect over the run's transport (``connection.current()`` unless given)."""
        settings = connection if connection is not None else current()
        nodes = clustered()
        node = 0
        if nodes is not None:
            node = nodes.take_turn()
            host, port = nodes.addresses[node]
        reader, writer = await open_stream(host, port, timing.reply_bound, settings,
                                           route=False)
        where = f" to node {node + 1} ({host}:{port})" if nodes is not None else ""
        trace.add(name, "..", f"{settings.describe_transport()} connected{where}")
        probe = cls(name, reader, writer, trace, timing, level=level)
        probe.node = node
        return probe

    async def _place(self, first: Packet | bytes) -> None:
        """Before the first bytes of a cluster connection: a CONNECT with a client id that
        connected before goes to another node than that id's last connection (the
        connection is opened again there; the server has seen nothing on it yet)."""
        nodes = clustered()
        if nodes is None:
            return
        connect = connect_in(first, self.level) if isinstance(first, bytes) else first
        if not isinstance(connect, Connect):
            return
        self._shared_state = (not connect.clean_session
                              or bool(connect.properties.session_expiry_interval))
        node = nodes.for_client(connect.client_id, self.node)
        if node == self.node:
            return
        host, port = nodes.addresses[node]
        reader, writer = await open_stream(host, port, self.timing.reply_bound, route=False)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._writer.transport.abort()
        self.trace.add(self.name, "..", f"moved to node {node + 1} ({host}:{port}): client id"
                       f" {connect.client_id!r} connected last on node {self.node + 1}")
        self._reader, self._writer, self.node = reader, writer, node
        self._task = asyncio.create_task(self._read())

    def _changed(self) -> None:
        """This connection's node acknowledged a change the cluster shares (``nodes``)."""
        nodes = clustered()
        if nodes is not None:
            nodes.changed(self.node)
            self.trace.add(self.name, "::", "a change other nodes may learn up to"
                           f" {nodes.propagation:.2f}s later")

    async def _read(self) -> None:
        decoder = Decoder(role=Role.CLIENT, protocol_level=self.level)
        frames = Framer()
        while True:
            try:
                data = await self._reader.read(65536)
            except (ConnectionResetError, BrokenPipeError):
                self._finish(Closed("RST"))
                return
            if not data:
                self._finish(Closed("FIN"))
                return
            for frame in frames.feed(data):
                self.frames.append(frame)
                echo = echoed_zero_id(frame)
                if echo is not None:
                    self._arrive(echo)
                    continue
                try:
                    packets = decoder.feed(frame)
                except MQTTError as exc:
                    for packet in getattr(exc, "packets", []):
                        self._arrive(packet)
                    error = blamed_refusal(exc, frame, self.level, self._accepted)
                    self.trace.add(self.name, "<-", f"MALFORMED from server: {error}")
                    self._events.put_nowait(Garbled(error))
                    self.given_up = error
                    self._drop()
                    return
                for packet in packets:
                    carried = carries_a_packet_id(packet, self.trace.published,
                                                  self.level)
                    if carried is not None:
                        self.trace.add(self.name, "<-", f"MALFORMED from server: {carried}")
                        self._events.put_nowait(Garbled(carried))
                        self.given_up = carried
                        self._drop()
                        return
                    self._arrive(packet)

    def _arrive(self, packet: Packet) -> None:
        if isinstance(packet, ConnAck) and packet.return_code < 0x80:
            self._accepted = True
        self.trace.add(self.name, "<-", describe(packet))
        self._events.put_nowait(Received(packet))
        if clustered() is not None and _acknowledges_shared_change(
                packet, self._shared_state, self._retained_ids):
            self._changed()

    def _retained_sent(self, packet: Publish) -> None:
        """A retained PUBLISH changes what every node holds once acknowledged (at QoS 0,
        once sent)."""
        if not packet.retain or clustered() is None:
            return
        if packet.qos == 0 or packet.packet_id is None:
            self._changed()
        else:
            self._retained_ids.add(packet.packet_id)

    def _finish(self, closed: Closed) -> None:
        self.closed = closed
        if self._aborted:
            return
        self.trace.add(self.name, "<-", f"connection closed by server ({closed.how})")
        self._events.put_nowait(closed)

    def new_packet_id(self) -> int:
        """A packet id not used before on this connection (wraps after 65535)."""
        self._last_packet_id = self._last_packet_id % 65535 + 1
        return self._last_packet_id

    async def send(self, packet: Packet | bytes, note: str | None = None) -> None:
        """Send a packet (encoded with the codec) or raw bytes, described by ``note``.

        A CONNECT naming no user gets the run's user and password
        (``connection.with_credentials``), so that no check needs to know
        whether the broker asks for them; a check about user names sends its own.
        """
        first, self._sent = not self._sent, True
        nodes = clustered()
        if nodes is not None:
            if first:
                await self._place(packet)
            await nodes.propagated(self.node)
        if isinstance(packet, bytes):
            data = with_credentials_raw(packet, self.level) if first else packet
            if data != packet:
                note = (note or f"raw bytes {packet[:32].hex(' ')}") + " (the run's user added)"
            text = note or f"raw bytes {packet[:32].hex(' ')}"
            self.trace.published.update(payloads_in(data, self.level))
        else:
            if isinstance(packet, Connect):
                packet = with_credentials(packet)
            data = encode(packet, self.level)
            text = describe(packet) + (f"  ({note})" if note else "")
            if isinstance(packet, Publish):
                self.trace.published.add(packet.payload)
                self._retained_sent(packet)
            elif isinstance(packet, Connect) and packet.will is not None:
                self.trace.published.add(packet.will.payload)
        self.trace.add(self.name, "->", text)
        if self._writer.is_closing():
            return
        if isinstance(packet, Disconnect) and self._shared_state:
            self._changed()  # the session the client leaves is the cluster's to keep
        self._writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    async def next_event(self, timeout: float) -> Event | None:
        """The next event, or None when nothing arrives within ``timeout`` seconds."""
        if self.closed is not None and self._events.empty():
            return self.closed
        try:
            return await asyncio.wait_for(self._events.get(), timeout)
        except TimeoutError:
            return None

    def inconclusive_if_given_up(self, awaited: str) -> None:
        """Raise ``Inconclusive`` when nothing can come because the oracle dropped the
        connection after malformed bytes (those are judged where they came): waiting on it
        would blame the server for the oracle's own close."""
        if self.given_up is not None:
            uncited = re.sub(r"\s*\[MQTT-[0-9.-]+\]", "", awaited)
            raise Inconclusive(f"{self.name}: no {uncited}: the oracle dropped the connection"
                               f" after malformed bytes from the server ({self.given_up})")

    async def expect(self, kind: type[P], why: str = "") -> P:
        """The oldest pending packet of ``kind``, or wait for one; others stay pending.

        ``why`` says which statement requires the packet (``"PUBACK for a QoS 1
        PUBLISH [MQTT-3.3.4-1]"``): its arrival is evidence for that statement,
        and its absence is a deviation blamed on it. Without a citation the wait
        is a step of the scenario whose failure no statement can be blamed for.
        """
        for index, packet in enumerate(self.pending):
            if isinstance(packet, kind):
                del self.pending[index]
                observe(f"{self.name}: {why}" if why else "")
                return packet
        deadline = time.monotonic() + self.timing.reply_bound
        label = why or kind.__name__.upper()
        others: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            event = await self.next_event(max(remaining, 0.0))
            if event is None:
                self.inconclusive_if_given_up(label)
                instead = f"; only {', '.join(others)} arrived" if others else ", nothing arrived"
                raise Deviation(f"{self.name}: expected {label} within "
                                f"{self.timing.reply_bound:.1f}s{instead}")
            if isinstance(event, Received):
                if isinstance(event.packet, kind):
                    observe(f"{self.name}: {why}" if why else "")
                    return event.packet
                self.pending.append(event.packet)
                others.append(describe(event.packet))
                if isinstance(event.packet, Disconnect):
                    # Nothing may follow the server's DISCONNECT [MQTT-3.14.4-1]: the packet
                    # awaited can no longer come, so waiting out the bound (for a server that
                    # does not close after it) would only spend the run's time.
                    raise Deviation(f"{self.name}: expected {label}; the server sent"
                                    f" {describe(event.packet)} instead")
                continue
            if isinstance(event, Closed):
                raise Deviation(f"{self.name}: expected {label}, the server closed the connection")
            # Blame what the malformed bytes break, not the packet we were waiting for.
            uncited = re.sub(r"\s*\[MQTT-[0-9.-]+\]", "", label)
            raise Deviation(f"{self.name}: expected {uncited}, got malformed bytes: {event.error}")

    async def quiet(self) -> list[Packet]:
        """Everything that arrives until nothing has arrived for a quiescence window.

        Returns ``pending`` packets first. A close or malformed bytes end the wait.
        """
        out, self.pending = self.pending, []
        while True:
            event = await self.next_event(self.timing.window)
            if event is None:
                return out
            if isinstance(event, Received):
                out.append(event.packet)
                continue
            if isinstance(event, Garbled):
                raise Deviation(f"{self.name}: server sent malformed bytes: {event.error}")
            return out

    async def settle(self) -> list[Packet]:
        """A PINGREQ round trip, then quiescence: the broker has caught up with us."""
        await self.send(PingReq())
        await self.expect(PingResp)
        return await self.quiet()

    async def wait_close(self, bound: float | None = None, why: str = "") -> list[Packet]:
        """Wait for the server to close; return the packets that came first.

        Raises ``Deviation`` when the connection is still open after ``bound``
        seconds (default: the reply bound). ``why`` cites the statement that
        requires the close: the close is evidence for it, its absence a
        deviation from it.
        """
        limit = self.timing.reply_bound if bound is None else bound
        start = time.monotonic()
        deadline = start + limit
        seen, self.pending = self.pending, []
        if any(isinstance(p, Disconnect) for p in seen):
            deadline = min(deadline, start + self.timing.close_lag_bound)
        while True:
            remaining = deadline - time.monotonic()
            event = await self.next_event(max(remaining, 0.0))
            if event is None:
                self.inconclusive_if_given_up("the close")
                got = ", ".join(describe(p) for p in seen) or "nothing"
                reason = f" ({why})" if why else ""
                raise Deviation(
                    f"{self.name}: the server must close the connection{reason}; it is still"
                    f" open after {time.monotonic() - start:.1f}s (received: {got})"
                )
            if isinstance(event, Received):
                seen.append(event.packet)
                if isinstance(event.packet, Disconnect):  # the close is owed at once
                    deadline = min(deadline, time.monotonic() + self.timing.close_lag_bound)
            elif isinstance(event, Closed):
                if why:
                    observe(f"{self.name}: closed: {why}")
                return seen
            else:
                raise Deviation(f"{self.name}: server sent malformed bytes: {event.error}")

    async def is_open(self) -> bool:
        """Whether the connection still answers a PINGREQ (packets meanwhile go to pending)."""
        if self.closed is not None:
            return False
        await self.send(PingReq(), note="is the connection still open?")
        deadline = time.monotonic() + self.timing.reply_bound
        while True:
            event = await self.next_event(max(deadline - time.monotonic(), 0.0))
            if event is None:
                raise Deviation(f"{self.name}: PINGREQ not answered within the reply bound")
            if isinstance(event, Received):
                if isinstance(event.packet, PingResp):
                    return True
                self.pending.append(event.packet)
                continue
            return False

    async def disconnect(self, packet: Disconnect | None = None) -> list[Packet]:
        """End the connection normally, as a client must: DISCONNECT, then close.

        After a DISCONNECT it sent, the *client* must close the Network Connection
        ([MQTT-3.14.4-2] in 5.0, [MQTT-3.14.4-1] in 3.1.1); the server only SHOULD close
        one the client left open. So a server that waits for the client's close deviates
        from nothing: the probe waits one quiescence window for the server's close (which
        also tells that the server has taken the DISCONNECT in), then closes its own side.
        Returns the packets that came before the close.
        """
        await self.send(packet if packet is not None else Disconnect())
        deadline = time.monotonic() + self.timing.window
        seen: list[Packet] = []
        while (remaining := deadline - time.monotonic()) > 0:
            event = await self.next_event(remaining)
            if event is None:
                break
            if isinstance(event, Closed):
                return seen
            if isinstance(event, Received):
                seen.append(event.packet)
        if not self._writer.is_closing():
            self.trace.add(self.name, "..", "closes the TCP connection after its DISCONNECT")
            self._writer.close()
        return seen

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT (an abrupt close for wills).

        On a cluster the drop waits out the propagation allowance like a send
        (``nodes``). ``abort`` is synchronous (the checks call it without ``await``),
        so that wait blocks the loop: what arrives meanwhile waits in the socket and is
        read right after, nothing is lost."""
        nodes = clustered()
        delay = 0.0 if nodes is None or self.closed is not None else nodes.wait_before(self.node)
        if delay > 0:
            time.sleep(delay)
        if not self._writer.is_closing():
            self.trace.add(self.name, "->", "drops the TCP connection (no DISCONNECT)")
        self._drop()

    def _drop(self) -> None:
        self._aborted = True
        if not self._writer.is_closing():
            if self._shared_state and self.closed is None:
                self._changed()  # the session the client leaves is the cluster's to keep
            self._writer.transport.abort()

    async def close(self) -> None:
        """Release the connection at the end of a check (silently)."""
        self._drop()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
