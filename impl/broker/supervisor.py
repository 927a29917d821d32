"""Supervisors: a crash in one part is logged, contained and repaired.

The seed runs connections and topics as supervised processes; here they are
objects, and the supervisors are the one place that catches what nobody
expected. A ``ProtocolError`` is not a crash (the connection handles it by
closing); anything else escaping a connection or a topic server is a bug,
which is logged with its context and traceback and kept away from every
other client:

- ``ConnectionSupervisor`` runs each read and each timer of each connection's
  protocol core (one per socket, no task). A crash closes that connection (its will is
  published, its persistent session kept) and nothing else. It also keeps the
  counts that protect the listener: sockets without a CONNECT yet are capped
  apart from connected clients (``max_pending_connections``, and
  ``max_pending_per_address`` per IP address), the oldest making room for the
  newest, so silent sockets cannot lock clients out; and with ``stall_timeout``
  it closes subscribers that take nothing.
- ``TopicSupervisor`` (in ``topic.py``, beside the topic server it
  watches) runs every publish, and has a crashed topic server rebuilt from
  the registry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Protocol

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.protocol import Connection
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.logtext import broker_log, clip

log = logging.getLogger("mqttref.broker")

READ_SIZE = 65_536
"""Bytes per read: also the most a publisher sends before back-pressure can pause it."""


class Abortable(Protocol):
    """A connection's network edge, as the supervisor sees it."""

    @property
    def peer(self) -> str:
        """``address:port`` of the client (the address keys the per-address cap)."""
        ...

    def abort(self) -> None: ...


def address_of(peer: str) -> str:
    """The IP address of ``address:port`` (IPv6 addresses hold colons too)."""
    address, _, _port = peer.rpartition(":")
    return address or peer


class ConnectionSupervisor:
    """Owns every open connection; a crash while handling a read closes that one only.

    There is no task per connection to watch (each socket is an
    ``asyncio.Protocol`` the event loop calls, feeding a sans-IO core): the
    supervisor adopts a connection's core when it is made, runs each of its
    reads and timers inside its containment, and lets it go when the socket is
    gone.
    """

    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else Config()
        self.connections: dict[Connection, Abortable] = {}
        """Each open connection's core, with its edge (aborted if it will not close)."""
        self.pending: dict[Connection, str] = {}
        """Connections without an accepted CONNECT yet, oldest first, with their address."""
        self._pending_by_address: dict[str, dict[Connection, None]] = {}
        self.evicted = 0
        """Sockets closed to make room under the pending caps, since start."""
        self.crashes = 0
        self.read_buffer = memoryview(bytearray(READ_SIZE))
        """Every connection's reads land here and are copied out at once (one at a time)."""
        self._all_gone: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self.connections)

    @property
    def connected(self) -> int:
        """Open connections whose CONNECT was accepted (``max_connections`` counts these)."""
        return len(self.connections) - len(self.pending)

    def adopt(self, connection: Connection, edge: Abortable) -> None:
        """A new socket: it waits for its CONNECT under the pending caps; beyond one,
        the oldest socket without a CONNECT (of its address, or of all) is closed."""
        self.connections[connection] = edge
        address = address_of(edge.peer)
        self.pending[connection] = address
        same = self._pending_by_address.get(address)
        if same is None:
            same = self._pending_by_address[address] = {}
        same[connection] = None
        config = self.config
        if len(same) > config.max_pending_per_address:
            self._evict(next(iter(same)), f"{address} has more than "
                        f"{config.max_pending_per_address} sockets without CONNECT "
                        "(max_pending_per_address)")
        if len(self.pending) > config.max_pending_connections:
            self._evict(next(iter(self.pending)), f"more than "
                        f"{config.max_pending_connections} sockets without CONNECT "
                        "(max_pending_connections)")

    def admit(self, connection: Hashable) -> None:
        """Its CONNECT was accepted: no longer pending."""
        address = self.pending.pop(connection, None)  # type: ignore[call-overload]
        if address is not None:
            self._unpend(connection, address)

    def _unpend(self, connection: Hashable, address: str) -> None:
        same = self._pending_by_address.get(address)
        if same is not None:
            same.pop(connection, None)  # type: ignore[call-overload]
            if not same:
                del self._pending_by_address[address]

    def _evict(self, connection: Connection, why: str) -> None:
        """Close the oldest socket without CONNECT to make room for the newest."""
        self.admit(connection)
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:
            log.warning("closed a socket of %s without CONNECT: %s; %d closed so far",
                        connection.peer, why, self.evicted)
        connection.close("evicted without CONNECT", publish_will=False)

    def release(self, connection: Connection) -> None:
        self.connections.pop(connection, None)
        self.admit(connection)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    def sweep(self, now: float) -> None:
        """Close subscribers stalled past ``stall_timeout`` (the broker's tick)."""
        if self.config.stall_timeout <= 0:
            return
        for connection in [c for c in self.connections if c.stalled(now)]:
            broker_log.warning("stalled", "closing %s: it took nothing for %.3g s while %d "
                               "messages waited for it (stall_timeout)", connection.who,
                               self.config.stall_timeout,
                        len(connection.session.queue) if connection.session else 0)
            try:
                connection.close("stalled", publish_will=True, now=now,
                                 reason_code=ReasonCode.QUOTA_EXCEEDED)
            except Exception:
                self._crashed(connection, now)

    def received(self, connection: Connection, data: bytes, now: float) -> int:
        """Handle one read of a connection; anything but a protocol error is a crash.
        Returns the packets it held (none counted from a read that crashed)."""
        try:
            return connection.receive(data, now)
        except Exception:
            self._crashed(connection, now)
            return 0

    def timer(self, connection: Connection, now: float) -> None:
        """Run a connection's timer; a crash there closes that connection only."""
        try:
            connection.timer(now)
        except Exception:
            self._crashed(connection, now)

    def _crashed(self, connection: Connection, now: float) -> None:
        self.crashes += 1
        broker_log.error(
            "connection crash",
            "connection %s crashed (client %s, %s); closed it, other clients unaffected",
            connection.peer, clip(connection.client_id), connection.state.value, exc_info=True,
        )
        connection.close("internal error", publish_will=True, now=now)

    async def stop_all(self) -> None:
        """Close every connection (no wills: the broker, not the clients, is leaving)."""
        for connection in list(self.connections):
            connection.close("the broker is stopping", publish_will=False,
                             reason_code=ReasonCode.SERVER_SHUTTING_DOWN)
        if not self.connections:
            return
        self._all_gone = asyncio.Event()
        try:
            await asyncio.wait_for(self._all_gone.wait(), timeout=2.0)
        except TimeoutError:
            for edge in list(self.connections.values()):
                edge.abort()
            await asyncio.sleep(0)
        finally:
            self._all_gone = None
