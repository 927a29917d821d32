"""The broker: wires listener, supervisors, sessions, registry and store together.

In-process use (tests, embedding)::

    broker = Broker(Config(port=0, retry_interval=0.5))
    await broker.start()          # listening; broker.port is the real port
    ...
    await broker.stop()           # connections closed, store flushed

or ``async with Broker(config) as broker: ...``. ``mqttref broker`` runs the
same object until SIGINT or SIGTERM.

The broker owns the sessions by client id and the two decisions that span
connections: which session a CONNECT gets (new, resumed, or taken over from
another connection [MQTT-3.1.4-2]), and what happens to it when its
connection ends (a clean session ends too [MQTT-3.1.2-6]; a persistent one
waits).
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.session import Session
from mqttref.impl.broker.supervisor import ConnectionSupervisor
from mqttref.impl.broker.transport import Connection
from mqttref.impl.codec.packets import Connect
from mqttref.impl.store import Store, StoreError, open_store

log = logging.getLogger("mqttref.broker")


class Broker:
    """An MQTT 3.1/3.1.1 broker on one TCP listener."""

    def __init__(self, config: Config | None = None, *, store: Store | None = None) -> None:
        self.config = config if config is not None else Config()
        self.store = (
            store if store is not None
            else open_store(self.config.store, self.config.data_dir, self.config.store_sync)
        )
        self.sessions: dict[str, Session] = {}
        self.registry = Registry(self.config, self.store, self.sessions.get)
        self.connections = ConnectionSupervisor()
        self.pressure: set[Connection] = set()
        """Congested connections the current batch of packets sent to (back-pressure)."""
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.port: int = self.config.port
        """The listening port; the real one after ``start()`` when configured as 0."""
        self.failure: StoreError | None = None
        """Why the broker stopped by itself (the store could not write), if it did."""
        self.stopped = asyncio.Event()
        """Set when ``stop()`` has finished, whoever called it."""

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def dropped(self) -> int:
        """Messages dropped by every session's limits since start."""
        return sum(session.dropped for session in self.sessions.values())

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # Lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load the store, then listen. Raises StoreError if the store cannot be opened
        (nothing on disk changed), OSError if the port cannot be bound."""
        self.store.open()
        try:
            self._restore_sessions()
            self.registry.load()
            self._server = await asyncio.get_running_loop().create_server(
                self._accept, self.config.host, self.config.port, backlog=1024
            )
        except BaseException:
            self.store.close()  # release the data directory for the next try
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        log.info("mqttref broker listening on %s:%d", self.config.host, self.port)

    async def stop(self) -> None:
        """Stop listening, close every connection, flush and close the store."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        await self.connections.stop_all()
        await server.wait_closed()
        if self.failure is None:
            self.store.commit()
        self.store.close()
        log.info("mqttref broker stopped")
        self.stopped.set()

    def store_failed(self, exc: StoreError) -> None:
        """The store cannot write (disk full, I/O error): stop at once (fail-stop).

        Nothing more is acknowledged; what was acknowledged is on disk. A broker
        restarted on the directory gives it back, and clients resend the rest.
        """
        if self.failure is not None:
            return
        self.failure = exc
        log.critical("stopping: %s", exc)
        asyncio.get_running_loop().create_task(self.stop())

    def _restore_sessions(self) -> None:
        for client_id in self.store.session_ids():
            record = self.store.load_session(client_id)
            if record is None:
                continue
            session = Session.restore(record, config=self.config, store=self.store)
            self.sessions[client_id] = session
            self.registry.add_stored_subscriptions(session)

    def _accept(self) -> Connection:
        """The protocol object of one accepted socket (the event loop calls it)."""
        return Connection(self)

    async def _tick(self) -> None:
        """Resend unacknowledged messages whose retry time has come."""
        loop = asyncio.get_running_loop()
        tick = self.config.timer_tick
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for session in list(self.sessions.values()):
                if session.inflight and session.connection is not None:
                    try:
                        session.handle_timer(now)
                    except Exception:
                        log.exception("session %r crashed in its retry timer", session.client_id)

    # Sessions -------------------------------------------------------------------------

    def open_session(
        self, connection: Connection, connect: Connect, now: float
    ) -> tuple[Session, bool]:
        """The session for an accepted CONNECT, and whether it was already there.

        Another connection with the same client id is closed first, will and all,
        as mosquitto does [MQTT-3.1.4-2]. Clean session 1 discards any previous
        session [MQTT-3.1.2-6]; clean session 0 resumes it [MQTT-3.1.2-4].
        """
        client_id = connection.client_id
        assert client_id is not None
        existing = self.sessions.get(client_id)
        if existing is not None and existing.connection is not None:
            existing.connection.close(
                "taken over by a new connection with the same client id", publish_will=True
            )
            existing = self.sessions.get(client_id)
        if existing is not None and (connect.clean_session or not existing.persistent):
            self.end_session(existing)
            existing = None
        if existing is not None:
            return existing, True
        session = Session(
            client_id, persistent=not connect.clean_session, config=self.config, store=self.store
        )
        self.sessions[client_id] = session
        return session, False

    def connection_closed(self, connection: Connection, session: Session, now: float) -> None:
        """A connection ended: its clean session ends with it, a persistent one waits."""
        if session.connection is not connection:
            return  # already taken over by another connection
        if session.persistent:
            session.detach()
        else:
            self.end_session(session)

    def end_session(self, session: Session) -> None:
        """Forget a session: its subscriptions, queue and stored state."""
        self.registry.remove_session(session)
        session.discard()
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
