"""How a broker becomes a cluster node: the one place ``broker.py`` reaches into.

``Broker`` imports this module only when its configuration has a ``cluster``
table, so a single node never loads ``nats``. The broker stays as it is; the
attachment swaps in the cluster's implementations of its narrow ports:

* the router (``BrokerPorts.router`` and ``SessionTable.router``, through which
  connections and wills publish) becomes a ``ClusterRouter`` over the node's
  own registry (``routing.py``);
* the node's registry mirrors the cluster's retained messages (``retained.py``).

``start`` runs after the store is loaded and before the broker listens, so no
client connects to a node that is not in its cluster yet; ``stop`` runs after the
connections are closed, so what they published last still goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Protocol

import attrs
from nats.errors import NoRespondersError
from nats.js.errors import ServiceUnavailableError

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.outbox import Outbox
from mqttref.impl.broker.ports import BrokerPorts
from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.cluster.durable import ensure_stream
from mqttref.impl.cluster.node import ClusterNode
from mqttref.impl.cluster.replay import Replayer
from mqttref.impl.cluster.retained import RetainedMirror
from mqttref.impl.cluster.routing import ClusterRouter
from mqttref.impl.cluster.sessions import SessionsHandle, attach_sessions
from mqttref.impl.cluster.sessions import wrap_store as sessions_store
from mqttref.impl.codec.errors import ConfigError
from mqttref.impl.store.base import Store


class ClusterHost(Protocol):
    """What the attachment needs of the broker (``Broker`` has it)."""

    config: Config
    table: SessionTable
    ports: BrokerPorts
    outbox: Outbox


def wrap_store(config: Config, store: Store) -> Store:
    """The store a cluster node's session table uses: persistent sessions in JetStream
    (``sessions.wrap_store``), retained messages in ``store`` as before."""
    return sessions_store(config, store)


class ClusterAttachment:
    """A broker's node in the cluster: NATS connection, router, retained mirror."""

    def __init__(self, host: ClusterHost) -> None:
        settings = host.config.cluster
        assert settings is not None, "a cluster attachment needs a [cluster] configuration"
        self.host = host
        table = host.table
        self.node = ClusterNode(settings)
        self.retained = RetainedMirror(self.node, table.registry)
        self.router = ClusterRouter(self.node, table.registry, self._held_filters,
                                    self.retained)
        host.ports = attrs.evolve(host.ports, router=self.router)
        table.router = self.router
        self.sessions: SessionsHandle | None = None
        """Sessions across nodes, once ``start`` attached them."""

    def _held_filters(self) -> Iterator[str]:
        for session in self.host.table.sessions.values():
            yield from session.subscriptions

    async def start(self) -> None:
        """Join: wait for NATS, copy the retained messages, subscribe for local sessions."""
        await self.node.connect()
        try:
            await self.retained.start()
            await ensure_stream(self.node.js)
        except (ServiceUnavailableError, NoRespondersError) as exc:
            await self.node.close()
            servers = ", ".join(self.node.settings.servers)
            raise ConfigError(f"cluster.servers: the NATS server at {servers} has no "
                              f"JetStream (start nats-server with -js): {exc}") from None
        self.router.start()
        # Sessions, ownership and wills across nodes (impl/cluster/sessions.py).
        self.sessions = await attach_sessions(self.host,
                                              interest_changed=self.router.sync_interest)
        # QoS 1/2 messages through the stream, sessions replayed from it (durable.py).
        store = self.sessions.sessions.store
        store.positions = lambda: self.router.positions
        store.origins = lambda: self.router.origins
        store.sent = self.router.sent
        store.fallback = self.router.requeue
        self.router.sink = store
        loop = asyncio.get_running_loop()
        outbox = self.host.outbox
        asked = False

        def commit_now() -> None:
            nonlocal asked
            asked = False
            outbox.commit()

        def commit_soon() -> None:  # once per loop turn, however many messages ask
            nonlocal asked
            if not asked:
                asked = True
                loop.call_soon(commit_now)

        self.router.commit_soon = commit_soon
        link_js = self.sessions.link.js
        assert link_js is not None
        self.sessions.sessions.replayer = Replayer(self.router, store, self.sessions.nats,
                                                   link_js)

    async def stop(self) -> None:
        """Leave: send what waits (a few seconds at most), then close the connection."""
        if self.sessions is not None:
            sessions, self.sessions = self.sessions, None
            with contextlib.suppress(Exception):  # NATS gone: the lease runs out by itself
                await sessions.close()
        with contextlib.suppress(Exception):  # NATS gone: what waits is lost, as documented
            await self.router.flush()
        await self.router.stop()
        await self.retained.stop()
        await self.node.close()
