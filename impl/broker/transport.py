"""The network edge of one connection: an asyncio protocol around the sans-IO core.

``SocketEdge`` is the ``asyncio.BufferedProtocol`` of one accepted socket and
does nothing but I/O: it feeds each read to the core (``protocol.Connection``)
under the connection supervisor's containment, hands the core's bytes to the
outbox, arms one timer at the core's ``get_timer``, and carries out what the
core asks of the network (pause or resume reading, close).

Why a protocol and not a task per socket (as the seed's design has it): a
task per connection needs asyncio's stream objects (a ``StreamReader`` that
copies every read, a ``StreamWriter``, their protocol) and a coroutine
stack; for a client that connects, sends three packets and goes, they cost
more CPU than the MQTT work, and about 3 KB of memory per idle connection.
The loop calling the protocol does the same job directly.

The timer is re-armed only when it fires (or when the core's deadline moves
earlier, as after a CONNECT with a short keep alive), not on every packet: a
keep-alive deadline that moved later makes the timer fire early, the core
finds nothing to do, and the edge arms it again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, cast

from mqttref.impl.broker.outbox import Outbox
from mqttref.impl.broker.ports import BrokerPorts
from mqttref.impl.broker.protocol import Connection
from mqttref.impl.broker.supervisor import ConnectionSupervisor
from mqttref.impl.logtext import clip

log = logging.getLogger("mqttref.broker")

CLOSE_GRACE: Final = 2.0
"""Seconds a closed connection's unwritten bytes may take to leave before we abort."""


class SocketEdge(asyncio.BufferedProtocol):
    """One accepted socket, feeding one protocol core."""

    core: Connection
    transport: asyncio.Transport
    """Both set by ``connection_made``, before any other call."""

    __slots__ = ("_closed", "_peer", "_timer", "core", "loop", "outbox", "ports", "supervisor",
                 "transport")

    def __init__(self, ports: BrokerPorts, supervisor: ConnectionSupervisor,
                 outbox: Outbox) -> None:
        self.ports = ports
        self.supervisor = supervisor
        self.outbox = outbox
        self.loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
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
        """Accepted: the core is made, the supervisor adopts it, its timer starts."""
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        limit = self.ports.config.write_buffer_limit
        transport.set_write_buffer_limits(high=limit, low=limit // 4)
        self.core = core = Connection(self.ports, self, self.loop.time())
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

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the loop puts the next read: the supervisor's one ``READ_SIZE`` buffer,
        shared by all connections (reads are one at a time, and copied out at once)."""
        return self.supervisor.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        """One read (at most ``READ_SIZE``, so that a paused publisher stops after a
        bounded batch), handled by the core within the supervisor's containment."""
        core = self.core
        if core.is_closed:
            return
        supervisor = self.supervisor
        supervisor.received(core, bytes(supervisor.read_buffer[:nbytes]), self.loop.time())
        timer = self._timer
        deadline = core.get_timer()
        if deadline is not None and (timer is None or deadline < timer.when()):
            self._arm_timer()
        if nbytes == len(supervisor.read_buffer) and not core.waiting and not self._closed:
            # A full read may leave more waiting, and the loop would read it at once
            # (libuv reads a ready socket up to 32 times in a row): yield first, so
            # that this batch's writes go out (and can congest, holding publishers
            # back) before the next read, and no busy publisher starves the others.
            self.transport.pause_reading()
            self.loop.call_soon(self._resume_after_yield)

    def _resume_after_yield(self) -> None:
        if not self.core.waiting and not self._closed:
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        self.core.connection_lost(self.loop.time())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.core.connection_lost(self.loop.time())
        self._cancel_timer()
        self.supervisor.release(self.core)

    def pause_writing(self) -> None:
        """The transport's buffer passed ``write_buffer_limit``: the reader is slow."""
        self.core.writing_paused()

    def resume_writing(self) -> None:
        self.core.writing_resumed(self.loop.time())

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
            self.loop.call_later(CLOSE_GRACE, transport.abort)

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
        self._cancel_timer()
        deadline = self.core.get_timer()
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        core = self.core
        self.supervisor.timer(core, self.loop.time())
        if not core.is_closed:
            self._arm_timer()
