"""The connection: one protocol object per socket, bytes in and bytes out.

Theory of operation. A ``Connection`` is the ``asyncio.BufferedProtocol`` of
one accepted socket, and does network I/O and encode/decode, nothing else: the
event loop hands it each read (``buffer_updated``), which it feeds to the
sans-IO decoder, and every whole packet of that read goes to
``handle_packet``, which looks up the handler for the packet in the table of
the connection's state (``HANDLERS``): a packet with no entry there is a
protocol error that closes the connection (CONNECT first [MQTT-3.1.0-1],
never twice [MQTT-3.1.0-2]). Handlers pass the packet on to the session or
the registry; they never wait.

Why a protocol and not a task per socket (as the seed's design has it): a
task per connection needs asyncio's stream objects (a ``StreamReader`` that
copies every read, a ``StreamWriter``, their protocol) and a coroutine
stack; for a client that connects, sends three packets and goes, they cost
more CPU than the MQTT work, and about 3 KB of memory per idle connection.
The loop calling the protocol does the same job directly. The supervisor
still owns every connection and contains its crashes (it runs each read).

Everything sent during one event-loop iteration is collected and written as
one ``transport.write`` (after a store commit, so nothing is acknowledged
before it is stored). Back-pressure, in three steps:

- A client that reads slowly shows up as a write buffer above
  ``write_buffer_limit`` (the connection is *congested*), a client that
  acknowledges slowly as a session queue as long as the in-flight window
  (*backlogged*). Either way its session holds QoS 1/2 messages in its
  (bounded) queue, and a publisher that sent to it pauses after its current
  batch, not reading its own socket, until the slow client catches up: the
  publisher is slowed, nothing is lost.
- A publisher waits at most ``backpressure_timeout``; a reader that did not
  drain by then is *stalled* and slows nobody until it drains.
- Beyond ``write_buffer_max`` the connection is *overloaded*: QoS 0
  messages to it are dropped and counted, so memory stays bounded.

A paused publisher stops reading its socket (``pause_reading``), so TCP
slows the client down. The transport tells us about a slow reader
(``pause_writing`` / ``resume_writing``). Timers (CONNECT timeout, keep
alive) are one ``call_later`` handle per connection, re-armed only when it
fires, not on every packet.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, cast

from mqttref.impl.broker.admission import connect_return_code, generate_client_id
from mqttref.impl.broker.limits import strings_problem, topic_problem
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import LimitExceeded, ProtocolError, ReasonCode, UnsupportedProtocol
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    ConnectReturnCode,
    Packet,
    PacketType,
    PingResp,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Subscribe,
    Unsubscribe,
    Will,
)
from mqttref.impl.message import Message
from mqttref.impl.store import StoreError

if TYPE_CHECKING:
    from mqttref.impl.broker.broker import Broker
    from mqttref.impl.broker.session import Session

log = logging.getLogger("mqttref.broker")

CLOSE_GRACE: Final = 2.0
"""Seconds a closed connection's unwritten bytes may take to leave before we abort."""


_CONNACK_ACCEPTED: Final = {
    present: encode(ConnAck(present, ConnectReturnCode.ACCEPTED)) for present in (False, True)
}
"""CONNACK accepting a connection, by session present: the same four bytes every time."""


class ConnectionState(Enum):
    AWAITING_CONNECT = "awaiting CONNECT"
    CONNECTED = "connected"
    CLOSED = "closed"

    # Members are singletons: hash by identity in C, not Enum's Python-level
    # hash of the name (HANDLERS is looked up with the state for every packet).
    __hash__ = object.__hash__


_C = ConnectionState
HANDLERS: Final[dict[tuple[ConnectionState, PacketType], str]] = {
    (_C.AWAITING_CONNECT, PacketType.CONNECT): "on_connect",
    (_C.CONNECTED, PacketType.PUBLISH): "on_publish",
    (_C.CONNECTED, PacketType.PUBACK): "on_puback",
    (_C.CONNECTED, PacketType.PUBREC): "on_pubrec",
    (_C.CONNECTED, PacketType.PUBREL): "on_pubrel",
    (_C.CONNECTED, PacketType.PUBCOMP): "on_pubcomp",
    (_C.CONNECTED, PacketType.SUBSCRIBE): "on_subscribe",
    (_C.CONNECTED, PacketType.UNSUBSCRIBE): "on_unsubscribe",
    (_C.CONNECTED, PacketType.PINGREQ): "on_pingreq",
    (_C.CONNECTED, PacketType.DISCONNECT): "on_disconnect",
}
"""(state, packet type) -> handler method. A missing pair closes the connection."""


def _unexpected(state: ConnectionState, packet_type: PacketType) -> ProtocolError:
    if state is ConnectionState.AWAITING_CONNECT:
        return ProtocolError(
            f"{packet_type.name} before CONNECT", ref="MQTT-3.1.0-1"
        )
    if packet_type is PacketType.CONNECT:
        return ProtocolError("a second CONNECT", ref="MQTT-3.1.0-2")
    return ProtocolError(f"{packet_type.name} is not a packet of this protocol level",
                         ref="MQTT-4.8.0-1")


class Connection(asyncio.BufferedProtocol):
    """One client's network connection, from accept to close (one object per socket)."""

    transport: asyncio.Transport
    """Set by ``connection_made``, before any other call."""

    __slots__ = (
        "_checked_topic",
        "_congested",
        "_flush_scheduled",
        "_held",
        "_holding",
        "_out",
        "_out_bytes",
        "_peer",
        "_stalled",
        "_timer",
        "_verbose",
        "_wait_timer",
        "_waiting_on",
        "accepted_at",
        "broker",
        "client_id",
        "close_reason",
        "config",
        "decoder",
        "keep_alive_limit",
        "last_activity",
        "loop",
        "protocol_level",
        "session",
        "state",
        "transport",
        "will",
    )

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.config = broker.config
        self.loop = asyncio.get_running_loop()
        self._peer: str | None = None
        self.state = ConnectionState.AWAITING_CONNECT
        self.decoder = Decoder(role=Role.SERVER, max_packet_size=self.config.max_packet_size)
        self.protocol_level = ProtocolLevel.MQTT_3_1_1
        self.client_id: str | None = None
        self.session: Session | None = None
        self.will: Will | None = None
        self.keep_alive_limit = 0.0
        self.close_reason: str | None = None
        self.accepted_at = self.last_activity = 0.0
        self._verbose = log.isEnabledFor(logging.DEBUG)
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False
        self._congested = False
        self._stalled = False
        self._holding = False
        """True while publishers sending here should pause (until ``release_publishers``)."""
        self._held: list[Connection] | None = None
        """Publishers paused until this connection catches up."""
        self._waiting_on: set[Connection] | None = None
        """The slow connections this one (a publisher) is paused for."""
        self._wait_timer: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._checked_topic = ""
        """The last PUBLISH topic found within the broker's limits (``topic_problem``)."""

    def __repr__(self) -> str:
        return f"<Connection {self.peer} {self.client_id!r} {self.state.value}>"

    @property
    def peer(self) -> str:
        """The client's address, looked up when first needed (logging, errors)."""
        if self._peer is None:
            peer: Any = self.transport.get_extra_info("peername")
            self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        return self._peer

    @property
    def who(self) -> str:
        """How log lines name this connection."""
        if self.client_id is None:
            return self.peer
        return f"client {self.client_id!r} ({self.peer})"

    # The protocol: the event loop calls these -------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accepted: the supervisor adopts it; the CONNECT timer starts."""
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.accepted_at = self.last_activity = now = self.loop.time()
        limit = self.config.write_buffer_limit
        transport.set_write_buffer_limits(high=limit, low=limit // 4)
        self._timer = self.loop.call_at(now + self.config.connect_timeout, self._on_timer)
        self.broker.connections.adopt(self)
        if self._verbose:
            log.debug("accepted a connection from %s", self.peer)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the loop puts the next read: the supervisor's one ``READ_SIZE`` buffer,
        shared by all connections (reads are one at a time, and copied out at once)."""
        return self.broker.connections.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        """One read (at most ``READ_SIZE``, so that a paused publisher stops after a
        bounded batch): decoded and handled within the supervisor's containment."""
        if self.state is ConnectionState.CLOSED:
            return
        supervisor = self.broker.connections
        data = bytes(supervisor.read_buffer[:nbytes])
        self.last_activity = self.loop.time()
        supervisor.received(self, data)
        if self.broker.pressure:
            self._wait_for_slow_readers()
        if (
            nbytes == len(supervisor.read_buffer)
            and self._waiting_on is None
            and not self.transport.is_closing()  # not closed while handling the read
        ):
            # A full read may leave more waiting, and the loop would read it at once
            # (libuv reads a ready socket up to 32 times in a row): yield first, so
            # that this batch's writes go out (and can congest, holding publishers
            # back) before the next read, and no busy publisher starves the others.
            self.transport.pause_reading()
            self.loop.call_soon(self._resume_after_yield)

    def _resume_after_yield(self) -> None:
        if self._waiting_on is None and self.state is not ConnectionState.CLOSED:
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        self.close("the network connection was lost", publish_will=True)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.close("the network connection was lost", publish_will=True)
        self.broker.connections.release(self)

    def pause_writing(self) -> None:
        """The transport's buffer passed ``write_buffer_limit``: the reader is slow."""
        if self.state is ConnectionState.CONNECTED:
            self._congested = True
            self.hold_publishers()

    def resume_writing(self) -> None:
        """The reader caught up: send what waited, then let publishers go."""
        if not self._congested:
            return
        self._congested = False
        session = self.session
        if session is not None and self.state is ConnectionState.CONNECTED:
            session.pump(self.loop.time())
            if session.backlogged:
                return
        self.release_publishers()

    def receive(self, data: bytes) -> None:
        """Decode one read and handle its packets in order; a bad one closes."""
        now = self.last_activity
        self.broker.pressure.clear()
        try:
            packets = self.decoder.feed(data)
        except ProtocolError as exc:
            self._handle_batch(list(getattr(exc, "packets", [])), now)
            if self.state is not ConnectionState.CLOSED:
                self.protocol_violation(exc)
            return
        self._handle_batch(packets, now)

    def _handle_batch(self, packets: list[Any], now: float) -> None:
        for packet in packets:
            if self.state is ConnectionState.CLOSED:
                return
            try:
                self.handle_packet(packet, now)
            except ProtocolError as exc:
                self.protocol_violation(exc)
                return

    def handle_packet(self, packet: Packet, now: float) -> None:
        """Dispatch one packet by (state, type); a missing pair is a protocol error."""
        name = HANDLERS.get((self.state, packet.packet_type))
        if self._verbose:
            log.debug("%s -> %s", self.who, packet.packet_type.name)
        if name is None:
            raise _unexpected(self.state, packet.packet_type)
        getattr(self, name)(packet, now)

    def protocol_violation(self, exc: ProtocolError) -> None:
        """Close for a broken rule: one log line, will published [MQTT-4.8.0-1]."""
        if isinstance(exc, UnsupportedProtocol) and self.state is ConnectionState.AWAITING_CONNECT:
            # An unknown protocol level is answered with 0x01, then closed [MQTT-3.1.2-2].
            self.send(ConnAck(False, ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION))
        kind = "refused" if isinstance(exc, LimitExceeded) else "protocol violation"
        log.warning("closing %s: %s: %s", self.who, kind, exc)
        self.close(f"{kind}: {exc.detail}", publish_will=True)

    # Handlers -------------------------------------------------------------------------

    def on_connect(self, packet: Connect, now: float) -> None:
        """Accept or refuse a CONNECT; on accept, attach the session after CONNACK.

        With ``reject_control_characters``, a string 1.5.3 discourages closes the
        connection first, without CONNACK (the MAY of 1.5.3)."""
        if self.config.reject_control_characters and (problem := strings_problem(packet)):
            raise LimitExceeded(f"CONNECT {problem}", ref="§1.5.3")
        code = connect_return_code(
            packet, self.config, open_connections=len(self.broker.connections)
        )
        if code is not ConnectReturnCode.ACCEPTED:
            log.debug("refusing CONNECT from %s (client id %r): %s",
                     self.peer, packet.client_id, code.name)
            # A refused CONNECT has session present 0 [MQTT-3.2.2-4] and closes [MQTT-3.2.2-5].
            self.send(ConnAck(False, code))
            self.close(f"CONNECT refused with {code.name}", publish_will=False)
            return
        if packet.will is not None and (problem := topic_problem(packet.will.topic, self.config)):
            raise LimitExceeded(f"will topic with {problem}", ref="§4.7",
                                reason_code=ReasonCode.TOPIC_NAME_INVALID)
        self.protocol_level = packet.protocol_level
        self.client_id = packet.client_id or generate_client_id()
        self.will = packet.will
        self.state = ConnectionState.CONNECTED
        self.keep_alive_limit = packet.keep_alive * self.config.keep_alive_factor
        session, present = self.broker.open_session(self, packet, now)
        self.session = session
        if self.protocol_level is ProtocolLevel.MQTT_3_1:
            present = False  # 3.1 has no session present flag
        self.send_frame(_CONNACK_ACCEPTED[present])  # the first packet [MQTT-3.2.0-1]
        if self._verbose:
            log.debug("%s connected (clean session %d, keep alive %d, session present %d)",
                      self.who, packet.clean_session, packet.keep_alive, present)
        self._keep_alive_timer(now)
        session.attach(self, now)

    def on_publish(self, packet: Publish, now: float) -> None:
        """Route an inbound PUBLISH; a topic beyond the broker's limits closes (3.1.1
        has no other way to refuse a PUBLISH). Any QoS is accepted, whatever
        ``max_qos``: that bounds only what SUBACK grants."""
        topic = packet.topic
        if topic != self._checked_topic:  # a publisher tends to repeat its topic
            problem = topic_problem(topic, self.config)
            if problem is not None:
                raise LimitExceeded(f"PUBLISH topic with {problem}", ref="§4.7",
                                    reason_code=ReasonCode.TOPIC_NAME_INVALID)
            self._checked_topic = topic
        assert self.session is not None
        message = self.session.on_publish(packet, now)
        if message is not None:
            self.broker.registry.publish(message, now)

    def on_puback(self, packet: PubAck, now: float) -> None:
        assert self.session is not None
        self.session.on_puback(packet.packet_id, now)

    def on_pubrec(self, packet: PubRec, now: float) -> None:
        assert self.session is not None
        self.session.on_pubrec(packet.packet_id, now)

    def on_pubrel(self, packet: PubRel, now: float) -> None:
        assert self.session is not None
        self.session.on_pubrel(packet.packet_id, now)

    def on_pubcomp(self, packet: PubComp, now: float) -> None:
        assert self.session is not None
        self.session.on_pubcomp(packet.packet_id, now)

    def on_subscribe(self, packet: Subscribe, now: float) -> None:
        """Subscribe through the registry, which refuses filters beyond the limits with
        0x80; with ``reject_control_characters`` a discouraged code point closes (1.5.3)."""
        if self.config.reject_control_characters and (problem := strings_problem(packet)):
            raise LimitExceeded(f"SUBSCRIBE {problem}", ref="§1.5.3")
        assert self.session is not None
        self.broker.registry.on_subscribe(self.session, packet, now)

    def on_unsubscribe(self, packet: Unsubscribe, now: float) -> None:
        if self.config.reject_control_characters and (problem := strings_problem(packet)):
            raise LimitExceeded(f"UNSUBSCRIBE {problem}", ref="§1.5.3")
        assert self.session is not None
        self.broker.registry.on_unsubscribe(self.session, packet, now)

    def on_pingreq(self, packet: Packet, now: float) -> None:
        self.send(PingResp())  # [MQTT-3.12.4-1]

    def on_disconnect(self, packet: Packet, now: float) -> None:
        """A clean close: the will is discarded [MQTT-3.14.4-3]."""
        self.close("the client disconnected", publish_will=False)

    # Closing --------------------------------------------------------------------------

    def close(self, reason: str, *, publish_will: bool) -> None:
        """Close once: release the session, publish the will if asked, flush, close."""
        if self.state is ConnectionState.CLOSED:
            return
        self.state = ConnectionState.CLOSED
        self.close_reason = reason
        self._cancel_timer()
        now = self.loop.time()
        if self._verbose:
            log.debug("closed %s: %s", self.who, reason)
        if self.session is not None:
            self.broker.connection_closed(self, self.session, now)
        # The will goes out once the connection is closed [MQTT-3.1.2-8], so after the
        # session let go of it: never on this connection, even to its own subscription.
        if publish_will and self.will is not None:
            self.publish_will(now)
        self.will = None
        self._flush()
        self._stop_waiting_for_slow_readers()
        transport = self.transport
        transport.close()  # after what is buffered has been written (we read no more)...
        if transport.get_write_buffer_size():
            # ...unless the peer never reads it: then drop it after a grace period.
            self.loop.call_later(CLOSE_GRACE, transport.abort)
        self._congested = False
        self.release_publishers()

    def publish_will(self, now: float) -> None:
        """Publish the will message, with its QoS and retain flag (3.1.2.5)."""
        will = self.will
        assert will is not None
        log.debug("publishing the will of %s on %r", self.who, will.topic)
        self.broker.registry.publish(Message(will.topic, will.payload, will.qos, will.retain), now)

    # Writing --------------------------------------------------------------------------

    @property
    def congested(self) -> bool:
        return self._congested

    @property
    def overloaded(self) -> bool:
        return (
            self._congested
            and self.transport.get_write_buffer_size() + self._out_bytes
            > self.config.write_buffer_max
        )

    def hold_publishers(self) -> None:
        """Ask publishers sending here to pause: the socket or the session is behind."""
        if self._stalled:
            return
        self._holding = True
        self.broker.pressure.add(self)

    def release_publishers(self) -> None:
        """Let held publishers go, once the socket has drained (the session asks
        only when its queue is short again)."""
        if self._congested:
            return
        self._stalled = False
        if self._holding:
            self._holding = False
            held, self._held = self._held, None
            for publisher in held or ():
                publisher._relieved(self)

    def _wait_for_slow_readers(self) -> None:
        """Pause this publisher (stop reading its socket) until the readers it held
        back have caught up, or ``backpressure_timeout`` has passed."""
        pressure = self.broker.pressure
        slow = {c for c in pressure if c is not self and c._holding}
        pressure.clear()
        if not slow or self.state is ConnectionState.CLOSED or self._waiting_on is not None:
            return
        self._waiting_on = slow
        for connection in slow:
            if connection._held is None:
                connection._held = []
            connection._held.append(self)
        self.transport.pause_reading()
        self._wait_timer = self.loop.call_later(
            self.config.backpressure_timeout, self._slow_readers_timed_out
        )

    def _relieved(self, slow: Connection) -> None:
        """A reader this publisher waited for caught up; go on when all have."""
        waiting = self._waiting_on
        if waiting is None:
            return
        waiting.discard(slow)
        if not waiting:
            self._stop_waiting_for_slow_readers()
            if self.state is not ConnectionState.CLOSED:
                self.transport.resume_reading()

    def _slow_readers_timed_out(self) -> None:
        """Readers that did not drain in time are *stalled*: they slow nobody now."""
        self._wait_timer = None
        for connection in self._waiting_on or ():
            if connection._holding and not connection._stalled:
                connection._stalled = True
                log.warning("%s is stalled: publishers no longer wait for it", connection.who)
        self._stop_waiting_for_slow_readers()
        if self.state is not ConnectionState.CLOSED:
            self.transport.resume_reading()

    def _stop_waiting_for_slow_readers(self) -> None:
        self._waiting_on = None
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None

    def send(self, packet: Packet) -> None:
        self.send_frame(encode(packet, self.protocol_level))

    def send_frame(self, frame: bytes) -> None:
        if self.transport.is_closing():
            return
        self._out.append(frame)
        self._out_bytes += len(frame)
        if self._holding and not self._stalled:
            self.broker.pressure.add(self)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write everything of this loop iteration at once, after the store commits."""
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_bytes = 0
        if self.transport.is_closing():
            return
        try:
            self.broker.store.commit()
        except StoreError as exc:  # not on disk: acknowledge nothing, stop the broker
            self.broker.store_failed(exc)
            return
        self.transport.write(data)  # may call pause_writing: the reader is slow

    # Timers ---------------------------------------------------------------------------

    def _arm_timer(self, delay: float) -> None:
        self._timer = self.loop.call_later(delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _keep_alive_timer(self, now: float) -> None:
        """After CONNECT, one timer serves keep alive: the CONNECT timer is kept when
        it fires first anyway (it re-arms for what is left), replaced otherwise."""
        limit = self.keep_alive_limit
        timer = self._timer
        if timer is not None and (limit <= 0 or timer.when() <= now + limit):
            return
        self._cancel_timer()
        if limit > 0:
            self._arm_timer(limit)

    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time()
        if self.state is ConnectionState.AWAITING_CONNECT:
            remaining = self.accepted_at + self.config.connect_timeout - now
            if remaining <= 0:
                self.keep_alive_expired(now, connect=True)
                return
        elif self.state is ConnectionState.CONNECTED and self.keep_alive_limit > 0:
            remaining = self.last_activity + self.keep_alive_limit - now
            if remaining <= 0:
                self.keep_alive_expired(now, connect=False)
                return
        else:
            return
        self._arm_timer(remaining)

    def keep_alive_expired(self, now: float, *, connect: bool) -> None:
        """Silence for too long: close, with the will after CONNECT [MQTT-3.1.2-24]."""
        if connect:
            log.warning("closing %s: no CONNECT within %.3g s", self.who,
                        self.config.connect_timeout)
            self.close("CONNECT timeout", publish_will=False)
        else:
            log.warning("closing %s: keep alive expired (%.3g s without a packet)",
                        self.who, self.keep_alive_limit)
            self.close("keep alive expired", publish_will=True)
