"""The broker: wires listener, supervisors, sessions, registry and store together.

In-process use (tests, embedding)::

    broker = Broker(Config(port=0, retry_interval=0.5))
    await broker.start()          # listening; broker.port is the real port
    ...
    await broker.stop()           # connections closed, store flushed

or ``async with Broker(config) as broker: ...``. ``mqttref broker`` runs the
same object until SIGINT or SIGTERM.

The broker is the asyncio shell around sans-IO parts: the session table
(sessions by client id, the registry, the store: ``sessions.py``), one
protocol core per connection (``protocol.py``) behind its socket edge
(``transport.py``), the outbox that commits the store before anything is
written (``outbox.py``), and the supervisors. It listens, starts and stops,
and ticks the sessions' retry timers.

Every ``sys_interval`` seconds it publishes its status under ``$SYS/broker/...``
(``sys_topics.py``) as retained messages of its own, through the registry like
any message, so each subscriber's read access is checked at delivery.

It listens on every configured listener (``Config.listeners``: TCP, TLS,
WebSocket, WebSocket over TLS), or on ``host``/``port`` over TCP when none is
configured. Each transport is an edge of its own: plain TCP accepts straight
into ``SocketEdge``, TLS is a layer under the edge (``tls.py``), WebSocket
unwraps frames (``websocket.py``); all feed the same protocol core, session
table and supervisor, so a message crosses from one listener to another as
between two TCP clients.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from mqttref import __version__
from mqttref.impl.broker.authentication import authenticators_for
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.listeners import Listener, server_context
from mqttref.impl.broker.outbox import Outbox
from mqttref.impl.broker.ports import BrokerPorts
from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.broker.supervisor import ConnectionSupervisor
from mqttref.impl.broker.sys_topics import ClientsMaximum, SysTopics, status_of
from mqttref.impl.broker.tls import TLSLayer
from mqttref.impl.broker.transport import IdentifiedEdge, Shared, SocketEdge, shared
from mqttref.impl.broker.websocket import WebSocketEdge
from mqttref.impl.codec.packets import QoS
from mqttref.impl.logtext import LoopHandler, broker_log, install_loop_handler
from mqttref.impl.message import Message
from mqttref.impl.store import Store, StoreError, open_store

if TYPE_CHECKING:  # loaded only with a [cluster] configuration: a single node never imports nats
    from mqttref.impl.cluster.wiring import ClusterAttachment

log = logging.getLogger("mqttref.broker")


class Broker:
    """An MQTT 3.1/3.1.1/5.0 broker on its listeners."""

    def __init__(self, config: Config | None = None, *, store: Store | None = None) -> None:
        self.config = config if config is not None else Config()
        self.store = (
            store if store is not None
            else open_store(self.config.store, self.config.data_dir, self.config.store_sync)
        )
        if self.config.cluster is not None:
            from mqttref.impl.cluster.wiring import wrap_store  # noqa: PLC0415 (lazy: nats)
            self.store = wrap_store(self.config, self.store)
        self.table = SessionTable(self.config, self.store)
        self.sessions = self.table.sessions
        """Client id -> session (the table's own dict)."""
        self.registry = self.table.registry
        self.connections = ConnectionSupervisor(self.config)
        self.outbox = Outbox(self.store, self.store_failed)
        self.ports = BrokerPorts(
            config=self.config, sessions=self.table, router=self.registry,
            memory=self.table.memory, connections=self.connections,
            authenticators=authenticators_for(self.config),
        )
        self.cluster: ClusterAttachment | None = None
        """This node's part in a NATS JetStream cluster (``[cluster]``, docs/cluster.md):
        it replaces the router in ``ports`` with one that reaches the other nodes."""
        if self.config.cluster is not None:
            from mqttref.impl.cluster.wiring import ClusterAttachment  # noqa: PLC0415
            self.cluster = ClusterAttachment(self)
        self._servers: list[asyncio.Server] | None = None
        self._stopping = False
        """Set as ``stop`` begins: handshakes still running hand nothing over."""
        self._ticker: asyncio.Task[None] | None = None
        self._sys_updates: asyncio.Task[None] | None = None
        self._sys_topics = SysTopics(__version__)
        """What was last published under ``$SYS`` (only changes are published)."""
        self._clients_maximum = ClientsMaximum()
        self._started_at = 0.0
        self.traffic: Shared | None = None
        """The connections' shared part, which counts their bytes and packets (``$SYS``);
        kept from ``start()`` on, so the counts live as long as the broker."""
        self._loop_handler: tuple[
            asyncio.AbstractEventLoop, LoopHandler | None, LoopHandler
        ] | None = None
        """The loop, its exception handler before ours (restored by ``stop``), ours."""
        self.port: int = self.config.port
        """The listening port (of the first listener); the real one after ``start()``
        when configured as 0."""
        self.listening: tuple[tuple[Listener, int], ...] = ()
        """Each listener served and its real port, after ``start()``."""
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
        return self.table.dropped

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
        (nothing on disk changed), OSError if a port cannot be bound (then no listener
        stays open), ConfigError if a TLS listener's files cannot be loaded.

        What the restore did before anyone connects (wills published and sessions
        ended because their time passed while the broker was down, shared messages
        handed over) is committed before listening, so a second crash does not do it
        again."""
        self.store.open()
        try:
            now = asyncio.get_running_loop().time()
            self.table.restore(now)
            self._start_sys_topics(now)
            self.store.commit()
            if self.cluster is not None:
                await self.cluster.start()  # in the cluster before any client connects
            self._servers = await self._listen()
        except BaseException:
            self.store.close()  # release the data directory for the next try
            raise
        self.port = self.listening[0][1]
        loop = asyncio.get_running_loop()
        # The loop's own errors (out of descriptors on accept, each retry) are rate-limited.
        previous = loop.get_exception_handler()
        self._loop_handler = (loop, previous, install_loop_handler(loop, broker_log))
        self._ticker = loop.create_task(self._tick())
        if self.config.sys_interval > 0:
            self._sys_updates = loop.create_task(self._publish_sys_topics())
        for listener, port in self.listening:
            log.info("mqttref broker listening on %s:%d (%s)", listener.host, port,
                     listener.transport)

    async def _listen(self) -> list[asyncio.Server]:
        """A server per listener (``host``/``port`` over TCP when none is configured);
        if one cannot be bound, those already open are closed."""
        loop = asyncio.get_running_loop()
        listeners = self.config.listeners or (
            Listener(port=self.config.port, host=self.config.host),
        )
        servers: list[asyncio.Server] = []
        listening: list[tuple[Listener, int]] = []
        try:
            for listener in listeners:
                server = await loop.create_server(
                    self._protocol_factory(listener), listener.host, listener.port,
                    backlog=1024,
                )
                servers.append(server)
                listening.append((listener, server.sockets[0].getsockname()[1]))
        except BaseException:
            for server in servers:
                server.close()
            raise
        self.listening = tuple(listening)
        return servers

    def _protocol_factory(self, listener: Listener) -> Callable[[], asyncio.BaseProtocol]:
        """What the loop calls on each accept of ``listener``. Plain TCP gets
        ``_accept`` itself: nothing of the other transports is on its path."""
        make_edge: Callable[[], SocketEdge] = self._accept
        if listener.websocket:
            make_edge = functools.partial(
                WebSocketEdge, self.ports, self.connections, self.outbox,
                max_frame_size=listener.max_frame_size,
            )
        elif listener.use_identity_as_username:
            make_edge = functools.partial(
                IdentifiedEdge, self.ports, self.connections, self.outbox
            )
        if not listener.secure:
            return make_edge
        return functools.partial(
            TLSLayer, server_context(listener), make_edge,
            buffer=self.connections.read_buffer, timeout=self.config.connect_timeout,
            use_identity=listener.use_identity_as_username, serving=self._serving,
        )

    def _serving(self) -> bool:
        """Listening, not stopping (a TLS handshake that ends after ``stop`` is dropped)."""
        return not self._stopping

    async def stop(self) -> None:
        """Stop listening, close every connection, flush and close the store."""
        if self._servers is None:
            return
        servers, self._servers = self._servers, None
        self._stopping = True
        for server in servers:
            server.close()
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._sys_updates is not None:
            self._sys_updates.cancel()
            self._sys_updates = None
        await self.connections.stop_all()
        for server in servers:
            await server.wait_closed()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.failure is None:
            self.store.commit()
        self.store.close()
        broker_log.flush(everything=True)  # what was suppressed is counted in the log
        if self._loop_handler is not None:
            loop, previous, handler = self._loop_handler
            self._loop_handler = None
            if loop.get_exception_handler() is handler:
                loop.set_exception_handler(previous)
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

    def _accept(self) -> SocketEdge:
        """The protocol object of one accepted socket (the event loop calls it)."""
        return SocketEdge(self.ports, self.connections, self.outbox)

    async def _tick(self) -> None:
        """The session table's periodic work: retries, and what expires. What it changed
        (and what connections that closed left, such as a delayed will) is committed
        at each tick even when no acknowledgement goes out to commit it, so a broker
        killed later keeps it."""
        loop = asyncio.get_running_loop()
        tick = self.config.timer_tick
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            self.table.tick(now)
            self.connections.sweep(now)
            if not self.outbox.commit():
                return  # the store cannot write: the broker is stopping
            broker_log.flush()  # the counts of bursts that ended

    # $SYS topics ------------------------------------------------------------------------

    def _start_sys_topics(self, now: float) -> None:
        """Before anyone connects: this run's first ``$SYS`` values, unless
        ``sys_interval`` is 0."""
        self.traffic = shared(self.connections, self.outbox)
        self._started_at = now
        if self.config.sys_interval > 0:
            self.publish_sys_topics(now)

    def publish_sys_topics(self, now: float) -> int:
        """Publish the ``$SYS/broker/...`` values that changed since the last time, as
        retained QoS 0 messages from the broker itself; how many were published.

        They go through the registry like a client's message, so each subscriber's
        read access is checked at delivery, and a ``#`` or ``+`` subscriber gets none
        [MQTT-4.7.2-1]. Each is its topic server's retained message, for the clients
        that subscribe later [MQTT-3.3.1-6], but is not written to the store: it is
        this run's status (an uptime from before a restart would be wrong), and it
        costs no disk write per interval. Those subscribed now get it with RETAIN 0,
        as any message that matches an established subscription [MQTT-3.3.1-9]."""
        traffic = self.traffic
        if traffic is None:
            return 0
        table = self.table
        status = status_of(
            table.sessions.values(), uptime=now - self._started_at,
            maximum=self._clients_maximum,
            retained=[len(server.retained.payload) for server in self.registry.topics.values()
                      if server.retained is not None],
            queued_bytes=table.memory.queued_bytes, bytes_received=traffic.bytes_received,
            bytes_sent=traffic.bytes_sent, messages_sent=traffic.messages_sent,
            messages_received=traffic.messages_received,
        )
        due = self._sys_topics.due(status)
        registry = self.registry
        for topic, payload in due:
            registry.topic_server(topic).retained = Message(topic, payload, QoS.AT_MOST_ONCE,
                                                            True)
            registry.publish(Message(topic, payload), now)
        return len(due)

    async def _publish_sys_topics(self) -> None:
        """Every ``sys_interval`` seconds, the ``$SYS`` values that changed. A failure is
        logged and the next interval tries again: status must not take the broker down."""
        loop = asyncio.get_running_loop()
        interval = self.config.sys_interval
        while True:
            await asyncio.sleep(interval)
            try:
                self.publish_sys_topics(loop.time())
            except Exception:
                broker_log.error("sys topics", "publishing the $SYS topics failed",
                                 exc_info=True)
