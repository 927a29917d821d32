"""The storage interface: what the broker persists, as plain calls.

The broker's live state is plain Python data in sessions, topic servers and
the registry; the store is told every change that must survive the thing
that holds it (a topic server that crashes, a connection that ends, and with
the SQLite store a broker that is killed). Rules the implementations follow:

- Subscriptions of every session are stored while the session exists (a
  crashed topic server is rebuilt from them); a clean session's are deleted
  when it ends, so a clean session leaves nothing behind.
- Sessions, queues and in-flight state are stored for persistent sessions
  (clean session = 0) only.
- Each persistent session remembers when its connection last left it
  (``session_disconnected``, wall-clock time so that it means the same after a
  restart) and, once 5.0 sessions exist, its own expiry interval; the session
  table decides from these when it expires.
- At MQTT 5.0 a queued or in-flight message keeps its properties and its expiry,
  and a subscription its options (``SubscriptionOptions``). Expiry instants
  cross the interface as the broker holds them, on its monotonic loop clock
  (``OutboundMessage.expires_at``); a store that outlives the process keeps
  them as wall-clock deadlines and converts at its own boundary, so a message
  whose interval ended while the broker was down is expired when it returns.
  A queued or in-flight message also keeps the shared subscription it came
  through (``OutboundMessage.share``), so that after a restart it can still go
  to another member of the group should its session end unacknowledged (4.8.2).
- A 5.0 will waiting for its Will Delay Interval belongs to its persistent
  session's state (4.1), so it is stored with the session (``will_set``) and
  goes with it (``delete_session``). Its due instant crosses the interface on
  the loop clock, like ``expires_at``; a will due while the broker was down
  comes back due.
- Calls only record; ``commit()`` makes everything recorded so far durable.
  The broker calls it before acknowledgements (PUBACK, PUBREC, SUBACK...)
  leave for the network, once per batch of packets, so a disk store can
  group-commit one transaction per batch.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Final

import attrs

from mqttref.impl.codec.packets import QoS
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage


@attrs.frozen
class StoredInflight:
    """One outbound QoS 1/2 message not yet fully acknowledged."""

    packet_id: int
    state: OutboundState
    message: OutboundMessage


@attrs.frozen
class SubscriptionOptions:
    """What a 5.0 subscription keeps beyond its granted QoS (3.8.3.1, 3.8.2.1.2).

    Retain Handling is not kept: it only decides what a SUBSCRIBE sends at once."""

    no_local: bool = False
    """Not the client's own messages [MQTT-3.8.3-3]."""
    retain_as_published: bool = False
    """Forwarded messages keep their RETAIN flag [MQTT-3.3.1-12]."""
    identifier: int | None = None
    """The Subscription Identifier sent with matching messages [MQTT-3.3.4-3]; None: none."""


NO_OPTIONS: Final = SubscriptionOptions()
"""Every 3.x subscription, and a 5.0 one that asked for nothing."""


@attrs.frozen
class SessionExpiry:
    """What decides when a persistent session expires (issue 20; mosquitto's
    ``persistent_client_expiration``, MQTT 5.0's Session Expiry Interval)."""

    disconnected_at: float | None = None
    """Wall-clock time (``time.time()``) its connection last left it; None while a
    connection holds it, or when no disconnection was recorded (a broker killed
    while the client was connected)."""
    expiry_interval: float | None = None
    """Seconds it may stay disconnected; None takes the broker's
    ``persistent_client_expiration`` (every 3.1.1 session). A number is the
    session's own interval, as 5.0 clients give it (``math.inf``: never)."""


NEVER_DISCONNECTED: Final = SessionExpiry()


@attrs.frozen
class StoredWill:
    """A 5.0 will held for its Will Delay Interval by a disconnected persistent session
    (3.1.3.2.2): published at ``due_at`` or when the session ends, whichever comes first,
    and never if a connection resumes the session before [MQTT-3.1.3-9]."""

    client_id: str
    due_at: float
    """When its delay ends, on the broker's loop clock (as ``Message.expires_at``)."""
    message: Message
    """The will as it will be published (no Will Delay Interval among its properties)."""


@attrs.frozen
class SessionRecord:
    """Everything stored about one persistent session, as a reconnect needs it."""

    client_id: str
    subscriptions: dict[str, QoS] = attrs.field(factory=dict)
    queue: list[tuple[int, OutboundMessage]] = attrs.field(factory=list)
    """Waiting messages in delivery order, each with its sequence number."""
    inflight: list[StoredInflight] = attrs.field(factory=list)
    """In the order they were first sent."""
    awaiting_rel: frozenset[int] = frozenset()
    """Inbound QoS 2 packet ids delivered and awaiting PUBREL."""
    expiry: SessionExpiry = NEVER_DISCONNECTED
    options: dict[str, SubscriptionOptions] = attrs.field(factory=dict)
    """The 5.0 options of those subscriptions that have any (not ``NO_OPTIONS``)."""


def keep_options(
    by_client: dict[str, dict[str, SubscriptionOptions]], client_id: str, topic_filter: str,
    options: SubscriptionOptions,
) -> None:
    """Keep a subscription's options where they differ from ``NO_OPTIONS``, else nowhere
    (a 3.x session costs no dictionary)."""
    if options is not NO_OPTIONS and options != NO_OPTIONS:
        by_client.setdefault(client_id, {})[topic_filter] = options
        return
    filters = by_client.get(client_id)
    if filters is not None:
        filters.pop(topic_filter, None)
        if not filters:
            del by_client[client_id]


class Store(abc.ABC):
    """Sessions, subscriptions, offline queues, in-flight state and retained messages."""

    def open(self) -> None:  # noqa: B027 - optional hook, most stores need nothing
        """Acquire the storage; called once before the broker listens."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release; called once when the broker stops."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make every change recorded so far durable (a no-op in memory)."""

    # Persistent sessions ------------------------------------------------------

    @abc.abstractmethod
    def session_ids(self) -> list[str]:
        """Client ids of the stored persistent sessions."""

    @abc.abstractmethod
    def create_session(self, client_id: str) -> None:
        """Record a new persistent session (with nothing in it)."""

    @abc.abstractmethod
    def load_session(self, client_id: str) -> SessionRecord | None:
        """A stored persistent session, or None."""

    @abc.abstractmethod
    def delete_session(self, client_id: str) -> None:
        """Forget a session with its subscriptions, queue and in-flight state."""

    @abc.abstractmethod
    def session_expiry(self, client_id: str) -> SessionExpiry | None:
        """When a stored persistent session was left, without loading its queue
        (an expired one is deleted unread when the broker starts); None if none."""

    @abc.abstractmethod
    def session_disconnected(
        self, client_id: str, at: float, expiry_interval: float | None = None
    ) -> None:
        """A persistent session's connection left it at wall-clock time ``at``;
        ``expiry_interval`` is its own interval (see ``SessionExpiry``)."""

    @abc.abstractmethod
    def session_connected(self, client_id: str) -> None:
        """A connection took a persistent session again: no deadline while it holds it."""

    # Subscriptions (every session while it exists) ----------------------------

    @abc.abstractmethod
    def set_subscription(
        self, client_id: str, topic_filter: str, qos: QoS,
        options: SubscriptionOptions = NO_OPTIONS,
    ) -> None:
        """Add or replace a subscription, with its options (replacing resets them)."""

    @abc.abstractmethod
    def delete_subscription(self, client_id: str, topic_filter: str) -> None: ...

    @abc.abstractmethod
    def subscriptions(self) -> Iterable[tuple[str, str, QoS]]:
        """Every stored subscription as ``(client_id, topic_filter, granted_qos)``."""

    # Queues and in-flight state (persistent sessions) --------------------------

    @abc.abstractmethod
    def queue_append(self, client_id: str, seq: int, message: OutboundMessage) -> None:
        """Record a waiting message, its properties and expiry included."""

    @abc.abstractmethod
    def queue_remove(self, client_id: str, seq: int) -> None: ...

    @abc.abstractmethod
    def inflight_set(
        self, client_id: str, packet_id: int, state: OutboundState, message: OutboundMessage
    ) -> None:
        """Record or update one outbound message's acknowledgement state."""

    @abc.abstractmethod
    def inflight_remove(self, client_id: str, packet_id: int) -> None: ...

    @abc.abstractmethod
    def awaiting_rel_add(self, client_id: str, packet_id: int) -> None: ...

    @abc.abstractmethod
    def awaiting_rel_remove(self, client_id: str, packet_id: int) -> None: ...

    # Delayed wills (persistent sessions) -----------------------------------------------

    @abc.abstractmethod
    def will_set(self, client_id: str, will: Message, due_at: float) -> None:
        """Keep a persistent session's will until ``due_at`` (loop clock); one per session,
        a newer replaces it. Nothing for a session the store does not hold."""

    @abc.abstractmethod
    def will_remove(self, client_id: str) -> None:
        """The will was published, or a connection resumed its session first."""

    @abc.abstractmethod
    def wills(self) -> Iterable[StoredWill]:
        """Every stored will (read when the broker starts)."""

    # Retained messages -------------------------------------------------------------

    @abc.abstractmethod
    def set_retained(self, topic: str, message: Message | None) -> None:
        """Store, replace or (None) clear the retained message of a topic."""

    @abc.abstractmethod
    def get_retained(self, topic: str) -> Message | None: ...

    @abc.abstractmethod
    def retained(self) -> Iterable[Message]:
        """Every retained message (loaded when the broker starts)."""
