"""Supervisors: a crash in one part is logged, contained and repaired.

The seed runs connections and topics as supervised processes; here they are
objects, and the supervisors are the one place that catches what nobody
expected. A ``ProtocolError`` is not a crash (the connection handles it by
closing); anything else escaping a connection or a topic server is a bug,
which is logged with its context and traceback and kept away from every
other client:

- ``ConnectionSupervisor`` runs each read and each timer of each connection's
  protocol core (one per socket, no task). A crash closes that connection (its will is
  published, its persistent session kept) and nothing else.
- ``TopicSupervisor`` (in ``topic.py``, beside the topic server it
  watches) runs every publish, and has a crashed topic server rebuilt from
  the registry.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from mqttref.impl.broker.protocol import Connection

log = logging.getLogger("mqttref.broker")

READ_SIZE = 65_536
"""Bytes per read: also the most a publisher sends before back-pressure can pause it."""


class Abortable(Protocol):
    """A connection's network edge, as the supervisor sees it at shutdown."""

    def abort(self) -> None: ...


class ConnectionSupervisor:
    """Owns every open connection; a crash while handling a read closes that one only.

    There is no task per connection to watch (each socket is an
    ``asyncio.Protocol`` the event loop calls, feeding a sans-IO core): the
    supervisor adopts a connection's core when it is made, runs each of its
    reads and timers inside its containment, and lets it go when the socket is
    gone.
    """

    def __init__(self) -> None:
        self.connections: dict[Connection, Abortable] = {}
        """Each open connection's core, with its edge (aborted if it will not close)."""
        self.crashes = 0
        self.read_buffer = memoryview(bytearray(READ_SIZE))
        """Every connection's reads land here and are copied out at once (one at a time)."""
        self._all_gone: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self.connections)

    def adopt(self, connection: Connection, edge: Abortable) -> None:
        self.connections[connection] = edge

    def release(self, connection: Connection) -> None:
        self.connections.pop(connection, None)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    def received(self, connection: Connection, data: bytes, now: float) -> None:
        """Handle one read of a connection; anything but a protocol error is a crash."""
        try:
            connection.receive(data, now)
        except Exception:
            self._crashed(connection, now)

    def timer(self, connection: Connection, now: float) -> None:
        """Run a connection's timer; a crash there closes that connection only."""
        try:
            connection.timer(now)
        except Exception:
            self._crashed(connection, now)

    def _crashed(self, connection: Connection, now: float) -> None:
        self.crashes += 1
        log.exception(
            "connection %s crashed (client %r, %s); closed it, other clients unaffected",
            connection.peer, connection.client_id, connection.state.value,
        )
        connection.close("internal error", publish_will=True, now=now)

    async def stop_all(self) -> None:
        """Close every connection (no wills: the broker, not the clients, is leaving)."""
        for connection in list(self.connections):
            connection.close("the broker is stopping", publish_will=False)
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
