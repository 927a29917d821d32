"""Supervisors: a crash in one part is logged, contained and repaired.

The seed runs connections and topics as supervised processes; here they are
objects, and the supervisors are the one place that catches what nobody
expected. A ``ProtocolError`` is not a crash (the connection handles it by
closing); anything else escaping a connection or a topic server is a bug,
which is logged with its context and traceback and kept away from every
other client:

- ``ConnectionSupervisor`` runs each read of each connection (one protocol
  object per socket, no task). A crash closes that connection (its will is
  published, its persistent session kept) and nothing else.
- ``TopicSupervisor`` runs every publish. A crash throws the topic server
  away and has the registry build a new one from the store, with the same
  subscribers and retained message; the message being published when it
  crashed is lost (and logged), as with a crashed process. A session that
  crashes while receiving is not the topic's fault: the others still get
  the message and only that session's connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from mqttref.impl.broker.topic import SubscriberFailed
from mqttref.impl.codec.packets import QoS
from mqttref.impl.message import Message

if TYPE_CHECKING:
    from mqttref.impl.broker.session import Session
    from mqttref.impl.broker.topic import TopicServer
    from mqttref.impl.broker.transport import Connection

log = logging.getLogger("mqttref.broker")

READ_SIZE = 65_536
"""Bytes per read: also the most a publisher sends before back-pressure can pause it."""


class TopicSupervisor:
    """Contains topic server crashes and restarts the server from the registry."""

    def __init__(self, restart: Callable[[str], TopicServer]) -> None:
        self._restart = restart
        self.restarts = 0

    def publish(self, server: TopicServer, message: Message, now: float) -> None:
        try:
            server.publish(message, now)
        except SubscriberFailed as failed:
            self._sessions_failed(server, failed)
        except Exception:
            self._crashed(server, f"publishing {len(message.payload)} bytes at QoS {message.qos}")

    def send_retained(
        self, server: TopicServer, session: Session, granted: QoS, now: float
    ) -> None:
        try:
            server.send_retained(session, granted, now)
        except Exception:
            self._crashed(server, f"sending its retained message to {session.client_id!r}")

    def _sessions_failed(self, server: TopicServer, failed: SubscriberFailed) -> None:
        """A session that crashed on delivery loses its connection (will and all);
        the topic server and the other subscribers carry on."""
        for session, exc in failed.failures:
            log.error(
                "session %r crashed receiving a message on %r; closing its connection",
                session.client_id, server.name, exc_info=exc,
            )
            if session.connection is not None:
                session.connection.close("internal error in its session", publish_will=True)

    def _crashed(self, server: TopicServer, doing: str) -> None:
        self.restarts += 1
        log.exception(
            "topic server %r crashed %s; the message is lost, the server is rebuilt "
            "from the registry (restart %d)",
            server.name, doing, self.restarts,
        )
        self._restart(server.name)


class ConnectionSupervisor:
    """Owns every open connection; a crash while handling a read closes that one only.

    There is no task per connection to watch (each is an ``asyncio.Protocol``
    the event loop calls): the supervisor adopts a connection when it is made,
    runs each of its reads (``received``) inside its containment, and lets it
    go when the socket is gone.
    """

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.crashes = 0
        self.read_buffer = memoryview(bytearray(READ_SIZE))
        """Every connection's reads land here and are copied out at once (one at a time)."""
        self._all_gone: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self.connections)

    def adopt(self, connection: Connection) -> None:
        self.connections.add(connection)

    def release(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    def received(self, connection: Connection, data: bytes) -> None:
        """Handle one read of a connection; anything but a protocol error is a crash."""
        try:
            connection.receive(data)
        except Exception:
            self.crashes += 1
            log.exception(
                "connection %s crashed (client %r, %s); closed it, other clients unaffected",
                connection.peer, connection.client_id, connection.state.value,
            )
            connection.close("internal error", publish_will=True)

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
            for connection in list(self.connections):
                connection.transport.abort()
            await asyncio.sleep(0)
        finally:
            self._all_gone = None
