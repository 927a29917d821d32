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
from mqttref.impl.logtext import clip

log = logging.getLogger("mqttref.broker")

CLOSE_GRACE: Final = 2.0
"""Seconds a closed connection's unwritten bytes may take to leave before we abort."""


class _ReadInto:
    """``get_buffer`` of every connection of one supervisor."""

    __slots__ = ("buffer",)

    def __init__(self, buffer: memoryview) -> None:
        self.buffer = buffer

    def __call__(self, sizehint: int) -> memoryview:
        return self.buffer


_READ_INTO: weakref.WeakKeyDictionary[ConnectionSupervisor, _ReadInto] = (
    weakref.WeakKeyDictionary()
)


def _read_into(supervisor: ConnectionSupervisor) -> _ReadInto:
    read_into = _READ_INTO.get(supervisor)
    if read_into is None:  # one per supervisor: a race at worst makes a second one
        read_into = _READ_INTO[supervisor] = _ReadInto(supervisor.read_buffer)
    return read_into


class SocketEdge(asyncio.BufferedProtocol):
    """One accepted socket, feeding one protocol core."""

    transport: asyncio.Transport
    """Set by ``connection_made``, before any other call."""

    # An attribute where the base class has a method (same call, no binding): mypy
    # reads any such override as an incompatible assignment.
    get_buffer: Callable[[int], memoryview]  # type: ignore[assignment]
    """Where the loop puts the next read: the supervisor's one ``READ_SIZE`` buffer,
    shared by all connections (reads are one at a time, and copied out at once).

    An attribute holding one callable per supervisor (``_read_into``), not a
    method: the loop keeps ``protocol.get_buffer`` for the connection's life,
    and a bound method would be one more object (64 bytes) per connection."""

    __slots__ = ("_closed", "_peer", "core", "get_buffer", "outbox", "supervisor",
                 "timer_bucket", "transport", "wheel")

    def __init__(self, ports: BrokerPorts, supervisor: ConnectionSupervisor,
                 outbox: Outbox) -> None:
        self.supervisor = supervisor
        self.outbox = outbox
        self.get_buffer = _read_into(supervisor)
        self.wheel: TimerWheel = wheel_of(loop := asyncio.get_running_loop())
        self.core = Connection(ports, self, loop.time())
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
        self.supervisor.adopt(core, self)
        self._arm_timer()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("accepted a connection from %s", self.peer)

    @property
    def peer(self) -> str:
        """The client's address, looked up when first needed (logging, errors): a
        connection storm should not pay for it."""
        if self._peer is None:
            peer: Any = self.transport.get_extra_info("peername")
            self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        return self._peer

    def buffer_updated(self, nbytes: int) -> None:
        """One read (at most ``READ_SIZE``, so that a paused publisher stops after a
        bounded batch), handled by the core within the supervisor's containment."""
        core = self.core
        if core.is_closed:
            return
        supervisor = self.supervisor
        supervisor.received(core, bytes(supervisor.read_buffer[:nbytes]), self.wheel.loop.time())
        bucket = self.timer_bucket
        deadline = core.get_timer()
        if deadline is not None and (bucket is None or deadline < bucket.when):
            self.wheel.arm(self, deadline)
        if nbytes == len(supervisor.read_buffer) and not core.waiting and not self._closed:
            # A full read may leave more waiting, and the loop would read it at once
            # (libuv reads a ready socket up to 32 times in a row): yield first, so
            # that this batch's writes go out (and can congest, holding publishers
            # back) before the next read, and no busy publisher starves the others.
            self.transport.pause_reading()
            self.wheel.loop.call_soon(self._resume_after_yield)

    def _resume_after_yield(self) -> None:
        if not self.core.waiting and not self._closed:
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        self.core.connection_lost(self.wheel.loop.time())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.core.connection_lost(self.wheel.loop.time())
        self._cancel_timer()
        self.supervisor.release(self.core)

    def pause_writing(self) -> None:
        """The transport's buffer passed ``write_buffer_limit``: the reader is slow."""
        self.core.writing_paused()

    def resume_writing(self) -> None:
        self.core.writing_resumed(self.wheel.loop.time())

    # What the core asks of the network (ports.Edge) ----------------------------------

    def output_ready(self) -> None:
        self.outbox.add(self)

    def write_pending(self) -> None:
        """The outbox committed the store: write what the core has (one write)."""
        data = self.core.data_to_send()
        if data and not self._closed and not self.transport.is_closing():
            self.transport.write(data)  # may call pause_writing: the reader is slow

    def close_after_writing(self) -> None:
        """Write what waits (after a store commit), then close; a peer that never
        reads it loses it after ``CLOSE_GRACE``."""
        if self._closed:
            return
        self._cancel_timer()
        data = self.core.data_to_send()
        transport = self.transport
        if data and not transport.is_closing() and self.outbox.commit():
            transport.write(data)
        self._closed = True
        transport.close()  # after what is buffered has been written (we read no more)...
        if transport.get_write_buffer_size():
            self.wheel.loop.call_later(CLOSE_GRACE, transport.abort)

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
            self.wheel.cancel(self)
        else:
            self.wheel.arm(self, deadline)

    def _cancel_timer(self) -> None:
        self.wheel.cancel(self)

    def timer_due(self, now: float) -> None:
        """The wheel's call at (or just after) the core's deadline."""
        core = self.core
        self.supervisor.timer(core, now)
        if not core.is_closed:
            self._arm_timer()
