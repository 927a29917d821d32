"""The narrow ports between a connection's protocol core and the rest of the broker.

The core (``protocol.py``) never sees the ``Broker``: it reaches the session
table, the router and its own network edge through these small interfaces,
the way a ``Session`` reaches its connection through ``PacketSink``. Each is
what one collaborator must offer, no more, so a test can drive the core with
the real session table and registry and a recording edge, and no event loop.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

import attrs

from mqttref.impl.auth import AuthenticatorRegistry
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.pressure import Memory, ReadControl
from mqttref.impl.broker.security import Security
from mqttref.impl.broker.session import PacketSink, Session
from mqttref.impl.codec.packets import Connect, Subscribe, Unsubscribe
from mqttref.impl.message import Message


class SessionPort(Protocol):
    """Which session a connection gets, and what its end means (``sessions.py``)."""

    def open_session(
        self, connection: PacketSink, client_id: str, connect: Connect, now: float
    ) -> tuple[Session, bool]:
        """The session for an accepted CONNECT, and whether it was already there."""
        ...

    def connection_closed(self, connection: PacketSink, session: Session, now: float) -> None:
        """The connection of ``session`` ended."""
        ...

    def delay_will(self, client_id: str, will: Message, at: float, now: float) -> None:
        """Publish ``will`` at ``at``, or when the session of ``client_id`` ends if that
        comes first; not at all if a connection resumes the session before."""
        ...

    def set_expiry(self, session: Session, seconds: float) -> None:
        """A 5.0 client changed its Session Expiry Interval on DISCONNECT (3.14.2.2.2)."""
        ...


class RouterPort(Protocol):
    """Where messages and subscriptions go (the registry)."""

    def publish(self, message: Message, now: float) -> int:
        """Route a message; how many sessions it went to (0: nobody subscribed)."""
        ...

    def on_subscribe(self, session: Session, packet: Subscribe, now: float) -> None: ...

    def on_unsubscribe(self, session: Session, packet: Unsubscribe, now: float) -> None: ...


class Edge(ReadControl, Protocol):
    """What the core asks of its network edge (``transport.py``, or a test's recorder)."""

    @property
    def peer(self) -> str:
        """The client's address, for log lines."""
        ...

    @property
    def identity(self) -> str | None:
        """The Common Name of the client's certificate on a listener with
        ``use_identity_as_username``; None elsewhere."""
        ...

    def output_ready(self) -> None:
        """Bytes wait in the core's ``data_to_send``: write them soon, after the store
        has committed what they acknowledge."""
        ...

    def close_after_writing(self) -> None:
        """Write what waits (store committed first), then close the network connection."""
        ...


class ConnectionsPort(Protocol):
    """The broker's count of connections (the connection supervisor)."""

    @property
    def connected(self) -> int:
        """Connections whose CONNECT was accepted, counted for ``max_connections``."""
        ...

    def admit(self, connection: Hashable) -> None:
        """``connection`` sent an accepted CONNECT: it counts against
        ``max_connections`` from now on, no longer against the pending caps."""
        ...


@attrs.frozen
class BrokerPorts:
    """Everything of the broker that a connection's core may use."""

    config: Config
    sessions: SessionPort
    router: RouterPort
    memory: Memory
    """The bytes queued in all sessions, against ``memory_high_water``."""
    connections: ConnectionsPort
    """The connections, counted for ``max_connections`` (3.2.2.3, 0x03)."""
    authenticators: AuthenticatorRegistry = attrs.field(factory=AuthenticatorRegistry)
    """The enhanced authentication methods offered (4.12); none by default."""
    security: Security = attrs.field(
        default=attrs.Factory(lambda ports: Security.from_config(ports.config), takes_self=True))
    """The password file and ACL in force (``security.py``), read from ``config`` when
    not given: ``mqttref broker`` reloads them on SIGHUP through ``Broker.ports``."""
