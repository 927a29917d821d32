"""The network edge of one connection: an asyncio protocol around the sans-IO core.

``SocketEdge`` is the ``asyncio.BufferedProtocol`` of one accepted socket and
does nothing but I/O: it feeds each read to the core (``protocol.Connection``)
under the connection supervisor's containment, hands the core's bytes to the
outbox, arms the core's ``get_timer`` on the loop's timer wheel
(``timers.py``), and carries out what the core asks of the network (pause or
resume reading, close).

Why a protocol and not a task per socket (as the seed's design has it): a
task per connection needs asyncio's stream objects (a ``StreamReader`` that
copies every read, a ``StreamWriter``, their protocol) and a coroutine
stack; for a client that connects, sends three packets and goes, they cost
more CPU than the MQTT work, and about 3 KB of memory per idle connection.
The loop calling the protocol does the same job directly.

The timer is re-armed only when it fires (or when the core's deadline moves
earlier, as after a CONNECT with a short keep alive), not on every packet: a
keep-alive deadline that moved later makes the timer fire early, the core
finds nothing to do, and the edge arms it again. No connection has a loop
timer of its own (under uvloop one costs about 600 bytes, a fifth of an idle
connection): the wheel keeps each deadline as one reference in a shared
bucket, met at most about 3% late.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any, Final, cast

from mqttref.impl.broker.outbox import Outbox
from mqttref.impl.broker.ports import BrokerPorts
from mqttref.impl.broker.protocol import Connection
from mqttref.impl.broker.supervisor import ConnectionSupervisor
from mqttref.impl.broker.timers import Bucket, TimerWheel, wheel_of
from mqttref.impl.flow import ConnectionState
from mqttref.impl.logtext import clip

log = logging.getLogger("mqttref.broker")

CLOSE_GRACE: Final = 2.0
"""Seconds a closed connection's unwritten bytes may take to leave before we abort."""


class Shared:
    """What all the connections of one broker on one loop share: its supervisor, its
    outbox, the loop's timer wheel, and the read buffer (this object is every
    connection's ``get_buffer``). One reference per connection, not four.

    It also counts the MQTT traffic of all of them for ``$SYS`` (``sys_topics``): a
    plain integer addition per read and per write, nothing per packet. The broker
    keeps its ``Shared`` for its whole life, so the counts outlive the connections."""

    __slots__ = ("__weakref__", "bytes_received", "bytes_sent", "messages_received",
                 "messages_sent", "outbox", "supervisor", "wheel")

    def __init__(self, supervisor: ConnectionSupervisor, outbox: Outbox,
                 wheel: TimerWheel) -> None:
        self.supervisor = supervisor
        self.outbox = outbox
        self.wheel = wheel
        self.bytes_received = 0
        """MQTT bytes read (after TLS or WebSocket unwrapping) since start."""
        self.bytes_sent = 0
        """MQTT bytes written since start."""
        self.messages_sent = 0
        """MQTT packets written since start."""
        self.messages_received = 0
        """Well-formed MQTT packets read since start."""

    def __call__(self, sizehint: int) -> memoryview:
        """``get_buffer``: the supervisor's one ``READ_SIZE`` buffer, for every
        connection (reads are one at a time, and copied out at once)."""
        return self.supervisor.read_buffer


_SHARED: weakref.WeakValueDictionary[int, Shared] = weakref.WeakValueDictionary()
"""By ``id`` of the supervisor: an entry lives as long as connections use it (and
with it the supervisor, so the id cannot be reused meanwhile)."""


def shared(supervisor: ConnectionSupervisor, outbox: Outbox) -> Shared:
    """The ``Shared`` of this supervisor and outbox on the running loop."""
    wheel = wheel_of(asyncio.get_running_loop())
    found = _SHARED.get(id(supervisor))
    if (
        found is None
        or found.supervisor is not supervisor
        or found.outbox is not outbox
        or found.wheel is not wheel
    ):
        found = _SHARED[id(supervisor)] = Shared(supervisor, outbox, wheel)
    return found


class SocketEdge(asyncio.BufferedProtocol):
    """One accepted socket, feeding one protocol core."""

    transport: asyncio.Transport
    """Set by ``connection_made``, before any other call."""

    identity: str | None = None
    """The Common Name of the client's certificate when its listener has
    ``use_identity_as_username`` (``IdentifiedEdge``), for CONNECT admission; a
    class attribute here, so a plain TCP connection carries no slot for it."""

    __slots__ = ("_closed", "_peer", "core", "shared", "timer_bucket", "transport")

    def __init__(self, ports: BrokerPorts, supervisor: ConnectionSupervisor,
                 outbox: Outbox) -> None:
        self.shared = shared(supervisor, outbox)
        self.core = Connection(ports, self, self.shared.wheel.loop.time())
        """Made with the edge (the loop makes the protocol as it accepts), so that the
        edge need not keep ``ports`` for ``connection_made``."""
        self.timer_bucket: Bucket | None = None
        """Where the wheel keeps this connection's deadline (``timers.Entry``)."""
        self._closed = False
        self._peer: str | None = None

    def __repr__(self) -> str:
        """Short, whatever the client id: asyncio's own error lines show the protocol."""
        core = getattr(self, "core", None)
        if core is None:
            return "<SocketEdge>"
        client_id = core.client_id
        named = f" {clip(client_id)}" if client_id is not None else ""
        return f"<SocketEdge {core.peer}{named} {core.state.value}>"

    # The event loop calls these ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accepted: the supervisor adopts the core, its timer starts."""
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        core = self.core
        limit = core.config.write_buffer_limit
        transport.set_write_buffer_limits(high=limit, low=limit // 4)
        self.shared.supervisor.adopt(core, self)
        self._arm_timer()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("accepted a connection from %s", self.peer)

    @property
    def get_buffer(self) -> Callable[[int], memoryview]:
        """Where the loop puts the next read (``Shared.__call__``). Not a method: the
        loop keeps ``protocol.get_buffer`` for the connection's life, and a bound
        method would be one more object (64 bytes) per connection."""
        return self.shared

    @property
    def peer(self) -> str:
        """The client's address, looked up when first needed (logging, errors): a
        connection storm should not pay for it.

        Kept only until the CONNECT is accepted (the supervisor's pending caps and
        the errors of a new socket ask for it): a connected client is looked up again
        for the few log lines that name it, and an idle one holds no string (64 bytes)."""
        peer = self._peer
        if peer is None:
            info: Any = self.transport.get_extra_info("peername")
            peer = f"{info[0]}:{info[1]}" if isinstance(info, tuple) else str(info)
            if self.core.state is not ConnectionState.CONNECTED:
                self._peer = peer
        return peer

    def buffer_updated(self, nbytes: int) -> None:
        """One read (at most ``READ_SIZE``, so that a paused publisher stops after a
        bounded batch), handled by the core within the supervisor's containment."""
        if self.core.is_closed:
            return
        read_buffer = self.shared.supervisor.read_buffer
        self.handle_read(bytes(read_buffer[:nbytes]), full=nbytes == len(read_buffer))

    def handle_read(self, data: bytes, *, full: bool) -> None:
        """Hand one read's MQTT bytes to the core (a WebSocket edge unwraps them
        first), then arm its timer; ``full``: the read filled the buffer."""
        core = self.core
        shared = self.shared
        shared.bytes_received += len(data)
        supervisor = shared.supervisor
        shared.messages_received += supervisor.received(core, data, shared.wheel.loop.time())
        if self._peer is not None and core.state is ConnectionState.CONNECTED:
            self._peer = None  # see ``peer``
        bucket = self.timer_bucket
        deadline = core.get_timer()
        if deadline is not None and (bucket is None or deadline < bucket.when):
            shared.wheel.arm(self, deadline)
        if full and not core.waiting and not self._closed:
            # A full read may leave more waiting, and the loop would read it at once
            # (libuv reads a ready socket up to 32 times in a row): yield first, so
            # that this batch's writes go out (and can congest, holding publishers
            # back) before the next read, and no busy publisher starves the others.
            self.transport.pause_reading()
            shared.wheel.loop.call_soon(self._resume_after_yield)

    def _resume_after_yield(self) -> None:
        if not self.core.waiting and not self._closed:
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        self.core.connection_lost(self.shared.wheel.loop.time())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.core.connection_lost(self.shared.wheel.loop.time())
        self._cancel_timer()
        self.shared.supervisor.release(self.core)

    def pause_writing(self) -> None:
        """The transport's buffer passed ``write_buffer_limit``: the reader is slow."""
        self.core.writing_paused()

    def resume_writing(self) -> None:
        self.core.writing_resumed(self.shared.wheel.loop.time())

    # What the core asks of the network (ports.Edge) ----------------------------------

    def output_ready(self) -> None:
        self.shared.outbox.add(self)

    def write_pending(self) -> None:
        """The outbox committed the store: write what the core has (one write)."""
        core = self.core
        frames = core.frames_waiting
        data = core.data_to_send()
        if data and not self._closed and not self.transport.is_closing():
            shared = self.shared
            shared.bytes_sent += len(data)
            shared.messages_sent += frames
            self.transport.write(data)  # may call pause_writing: the reader is slow

    def close_after_writing(self) -> None:
        """Write what waits (after a store commit), then close; a peer that never
        reads it loses it after ``CLOSE_GRACE``."""
        if self._closed:
            return
        self._cancel_timer()
        core = self.core
        frames = core.frames_waiting
        data = core.data_to_send()
        transport = self.transport
        shared = self.shared
        if data and not transport.is_closing() and shared.outbox.commit():
            shared.bytes_sent += len(data)
            shared.messages_sent += frames
            transport.write(data)
        self._closed = True
        transport.close()  # after what is buffered has been written (we read no more)...
        if transport.get_write_buffer_size():
            self.shared.wheel.loop.call_later(CLOSE_GRACE, transport.abort)

    def abort(self) -> None:
        self.transport.abort()

    def pause_reading(self) -> None:
        if not self._closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self._closed:
            self.transport.resume_reading()

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    # The one timer ----------------------------------------------------------------

    def _arm_timer(self) -> None:
        deadline = self.core.get_timer()
        if deadline is None:
            self.shared.wheel.cancel(self)
        else:
            self.shared.wheel.arm(self, deadline)

    def _cancel_timer(self) -> None:
        self.shared.wheel.cancel(self)

    def timer_due(self, now: float) -> None:
        """The wheel's call at (or just after) the core's deadline."""
        core = self.core
        self.shared.supervisor.timer(core, now)
        if not core.is_closed:
            self._arm_timer()


class IdentifiedEdge(SocketEdge):
    """The edge of a TLS listener with ``use_identity_as_username``: the TLS
    handshake (``tls.TLSLayer``) sets ``identity`` before ``connection_made``."""

    __slots__ = ("identity",)

    def __init__(self, ports: BrokerPorts, supervisor: ConnectionSupervisor,
                 outbox: Outbox) -> None:
        super().__init__(ports, supervisor, outbox)
        self.identity = None
