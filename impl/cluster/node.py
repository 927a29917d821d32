"""One mqttref node's connection to NATS: who it is, and whether NATS is there.

Theory of operation. A node holds one nats-py connection on the broker's event
loop, made with ``no_echo`` (NATS never hands a node a message it published
itself) and endless reconnects. At start-up the node waits for NATS, retrying
each second with a log line, because a node that served clients without its
cluster would split the cluster's state; ``Broker.start`` listens only after.
Once running, a lost connection is a pause, not a failure: ``connected`` turns
False, what the node wants to send waits (``routing.py`` bounds it), and the
callbacks registered with ``on_reconnected`` resynchronise when it comes back
(nats-py itself re-sends the node's subscriptions).

The incarnation (8 random bytes per start) names this run in every message
the node forwards, so that a node restarted under the same name is not taken
for its former self by a receiver's duplicate filter.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from mqttref.impl.cluster.settings import ClusterConfig
from mqttref.impl.codec.errors import ConfigError
from mqttref.impl.logtext import broker_log

log = logging.getLogger("mqttref.cluster")

SUBJECT_ROOT = "mqttref"
"""Every subject of mqttref's own starts with this token."""
RECONNECT_WAIT = 0.5
"""Seconds between two reconnect attempts to NATS."""
START_RETRY = 1.0
"""Seconds between two attempts to reach NATS at start-up."""
DEFAULT_MAX_PAYLOAD = 1024 * 1024
RESUME_DELAY = 1.5
"""Seconds a node waits after NATS came back before it sends what waited: the other
nodes reconnect within about one ``RECONNECT_WAIT`` of each other, and a message sent
before a node is back (with its subscriptions) would not reach it (core NATS keeps
nothing for an absent subscriber)."""


class ClusterNode:
    """This broker's membership of the cluster: its name and its NATS connection."""

    def __init__(self, settings: ClusterConfig) -> None:
        self.settings = settings
        self.name = settings.node_name
        self.incarnation = os.urandom(8)
        self._nc: Client | None = None
        self._shared_nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._up = asyncio.Event()
        self._reconnected: list[Callable[[], Awaitable[None]]] = []
        self._closing = False
        self._connecting: asyncio.Future[Client] | None = None
        """The connection being made at start, cancelled if NATS refuses the login."""
        self._refused: Exception | None = None
        self._back_at = -RESUME_DELAY
        """The loop time NATS last came back (``RESUME_DELAY``)."""

    @property
    def nc(self) -> Client:
        """The NATS connection (after ``connect``)."""
        assert self._nc is not None, "the node is not connected yet"
        return self._nc

    @property
    def shared_nc(self) -> Client:
        """A second connection, with echo, for the queue groups of shared subscriptions:
        NATS must be free to pick this node for a message this node published, which
        the main connection's ``no_echo`` would forbid."""
        assert self._shared_nc is not None, "the node is not connected yet"
        return self._shared_nc

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context of the connection (after ``connect``)."""
        assert self._js is not None, "the node is not connected yet"
        return self._js

    @property
    def max_payload(self) -> int:
        """The largest NATS message the server takes (its ``max_payload``, 1 MiB by
        default), as it said when the node connected."""
        return self._nc.max_payload if self._nc is not None else DEFAULT_MAX_PAYLOAD

    @property
    def connected(self) -> bool:
        """NATS is reachable now."""
        return self._nc is not None and self._nc.is_connected

    async def wait_connected(self) -> None:
        """Return once NATS is reachable (at once if it is)."""
        while not self.connected:
            self._up.clear()
            await self._up.wait()

    async def wait_settled(self) -> None:
        """Return once NATS is reachable and has been for ``RESUME_DELAY`` seconds
        after a loss (the other nodes are back too): when forwarding may resume."""
        loop = asyncio.get_running_loop()
        while True:
            await self.wait_connected()
            left = self._back_at + RESUME_DELAY - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(left)

    def on_reconnected(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` each time the connection comes back after a loss."""
        self._reconnected.append(callback)

    def _options(self, *, shared: bool = False) -> dict[str, Any]:
        settings = self.settings
        options: dict[str, Any] = {
            "servers": list(settings.servers), "name": f"mqttref-{self.name}",
            "no_echo": True, "allow_reconnect": True, "max_reconnect_attempts": -1,
            "reconnect_time_wait": RECONNECT_WAIT, "connect_timeout": 2,
            "disconnected_cb": self._disconnected, "reconnected_cb": self._back,
            "error_cb": self._error, "closed_cb": self._closed,
        }
        if shared:
            options.update(name=f"mqttref-{self.name}-shared", no_echo=False,
                           disconnected_cb=self._quiet, reconnected_cb=self._quiet,
                           closed_cb=self._quiet)
        if settings.user is not None:
            options["user"] = settings.user
            options["password"] = settings.password
        if settings.creds is not None:
            options["user_credentials"] = settings.creds
        return options

    async def connect(self) -> None:
        """Connect to NATS, waiting as long as it takes (a node without its cluster
        does not serve)."""
        attempt = 0
        while True:
            try:
                if self._nc is None:
                    self._nc = await self._connect_one(self._options())
                self._shared_nc = await self._connect_one(self._options(shared=True))
                break
            except ConfigError:
                raise
            except Exception as exc:  # nats-py raises several kinds; all mean "not yet"
                attempt += 1
                if attempt == 1 or attempt % 30 == 0:
                    log.warning("node %s: NATS at %s not reachable (%s); waiting",
                                self.name, ", ".join(self.settings.servers), exc)
                await asyncio.sleep(START_RETRY)
        nc = self.nc
        self._js = nc.jetstream()
        self._up.set()
        url = nc.connected_url
        log.info("node %s joined the cluster at %s", self.name, url.netloc if url else "?")

    async def _connect_one(self, options: dict[str, Any]) -> Client:
        """One connection; ConfigError if NATS refuses the node's credentials at start
        (nats-py would retry them for ever: a wrong password is no outage to wait out)."""
        self._connecting = asyncio.ensure_future(nats.connect(**options))
        try:
            return await self._connecting
        except asyncio.CancelledError:
            refused = self._refused
            if refused is None:
                raise
            raise ConfigError(f"cluster.user/password/creds: NATS at "
                              f"{', '.join(self.settings.servers)} refused them: {refused}"
                              ) from None
        finally:
            self._connecting = None

    async def close(self) -> None:
        """Leave: flush what is buffered and close the connections."""
        self._closing = True
        connections = self._nc, self._shared_nc
        self._nc = self._shared_nc = None
        for nc in connections:
            if nc is not None and not nc.is_closed:
                try:
                    await asyncio.wait_for(nc.drain(), 5)
                except Exception:  # closing anyway: NATS may be gone
                    await nc.close()

    async def _quiet(self) -> None:
        """The shared connection's events: the main connection's say it all."""

    async def _disconnected(self) -> None:
        self._up.clear()
        if not self._closing:
            broker_log.warning("cluster", "node %s: lost NATS; messages for other nodes wait",
                               self.name)

    async def _back(self) -> None:
        self._back_at = asyncio.get_running_loop().time()
        self._up.set()
        log.info("node %s: NATS is back", self.name)
        for callback in self._reconnected:
            try:
                await callback()
            except Exception:
                broker_log.error("cluster", "node %s: resynchronising after NATS came back "
                                 "failed", self.name, exc_info=True)

    async def _error(self, exc: Exception) -> None:
        connecting = self._connecting
        if connecting is not None and "authorization violation" in str(exc).lower():
            self._refused = exc
            connecting.cancel()
            return
        if not self._closing:
            broker_log.warning("cluster", "node %s: NATS: %s", self.name, exc)

    async def _closed(self) -> None:
        self._up.clear()
