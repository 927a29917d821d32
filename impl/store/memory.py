"""The in-memory store: dictionaries, nothing on disk (``mqttref broker --memory``)."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from mqttref.impl.codec.packets import QoS
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage
from mqttref.impl.store.base import (
    NEVER_DISCONNECTED,
    NO_OPTIONS,
    SessionExpiry,
    SessionRecord,
    Store,
    StoredInflight,
    StoredWill,
    SubscriptionOptions,
    keep_options,
)


@attrs.define
class _MemorySession:
    queue: dict[int, OutboundMessage] = attrs.field(factory=dict)
    inflight: dict[int, StoredInflight] = attrs.field(factory=dict)
    awaiting_rel: set[int] = attrs.field(factory=set)
    expiry: SessionExpiry = NEVER_DISCONNECTED
    will: StoredWill | None = None


class MemoryStore(Store):
    """Everything in dictionaries; survives topic-server crashes, not the process."""

    def __init__(self) -> None:
        self._sessions: dict[str, _MemorySession] = {}
        self._subscriptions: dict[str, dict[str, QoS]] = {}
        self._options: dict[str, dict[str, SubscriptionOptions]] = {}
        """The options of the subscriptions that have any (most have none)."""
        self._retained: dict[str, Message] = {}

    def commit(self) -> None:
        """Nothing to flush: memory is as durable as it gets."""

    def session_ids(self) -> list[str]:
        return list(self._sessions)

    def create_session(self, client_id: str) -> None:
        self._sessions.setdefault(client_id, _MemorySession())

    def load_session(self, client_id: str) -> SessionRecord | None:
        stored = self._sessions.get(client_id)
        if stored is None:
            return None
        return SessionRecord(
            client_id=client_id,
            subscriptions=dict(self._subscriptions.get(client_id, {})),
            queue=sorted(stored.queue.items()),
            inflight=list(stored.inflight.values()),
            awaiting_rel=frozenset(stored.awaiting_rel),
            expiry=stored.expiry,
            options=dict(self._options.get(client_id, {})),
        )

    def delete_session(self, client_id: str) -> None:
        self._sessions.pop(client_id, None)
        self._subscriptions.pop(client_id, None)
        self._options.pop(client_id, None)

    def session_expiry(self, client_id: str) -> SessionExpiry | None:
        stored = self._sessions.get(client_id)
        return None if stored is None else stored.expiry

    def session_disconnected(
        self, client_id: str, at: float, expiry_interval: float | None = None
    ) -> None:
        stored = self._sessions.get(client_id)
        if stored is not None:
            stored.expiry = SessionExpiry(at, expiry_interval)

    def session_connected(self, client_id: str) -> None:
        stored = self._sessions.get(client_id)
        if stored is not None and stored.expiry.disconnected_at is not None:
            stored.expiry = SessionExpiry(None, stored.expiry.expiry_interval)

    def set_subscription(
        self, client_id: str, topic_filter: str, qos: QoS,
        options: SubscriptionOptions = NO_OPTIONS,
    ) -> None:
        self._subscriptions.setdefault(client_id, {})[topic_filter] = qos
        keep_options(self._options, client_id, topic_filter, options)

    def delete_subscription(self, client_id: str, topic_filter: str) -> None:
        filters = self._subscriptions.get(client_id)
        if filters is not None:
            filters.pop(topic_filter, None)
            if not filters:
                del self._subscriptions[client_id]
        keep_options(self._options, client_id, topic_filter, NO_OPTIONS)

    def subscriptions(self) -> Iterable[tuple[str, str, QoS]]:
        for client_id, filters in self._subscriptions.items():
            for topic_filter, qos in filters.items():
                yield client_id, topic_filter, qos

    def queue_append(self, client_id: str, seq: int, message: OutboundMessage) -> None:
        self._session(client_id).queue[seq] = message

    def queue_remove(self, client_id: str, seq: int) -> None:
        self._session(client_id).queue.pop(seq, None)

    def inflight_set(
        self, client_id: str, packet_id: int, state: OutboundState, message: OutboundMessage
    ) -> None:
        # Assigning to an existing key keeps its place: the first-sent order survives.
        self._session(client_id).inflight[packet_id] = StoredInflight(packet_id, state, message)

    def inflight_remove(self, client_id: str, packet_id: int) -> None:
        self._session(client_id).inflight.pop(packet_id, None)

    def awaiting_rel_add(self, client_id: str, packet_id: int) -> None:
        self._session(client_id).awaiting_rel.add(packet_id)

    def awaiting_rel_remove(self, client_id: str, packet_id: int) -> None:
        self._session(client_id).awaiting_rel.discard(packet_id)

    def will_set(self, client_id: str, will: Message, due_at: float) -> None:
        stored = self._sessions.get(client_id)
        if stored is not None:
            stored.will = StoredWill(client_id, due_at, will)

    def will_remove(self, client_id: str) -> None:
        stored = self._sessions.get(client_id)
        if stored is not None:
            stored.will = None

    def wills(self) -> Iterable[StoredWill]:
        return [stored.will for stored in self._sessions.values() if stored.will is not None]

    def set_retained(self, topic: str, message: Message | None) -> None:
        if message is None:
            self._retained.pop(topic, None)
        else:
            self._retained[topic] = message

    def get_retained(self, topic: str) -> Message | None:
        return self._retained.get(topic)

    def retained(self) -> Iterable[Message]:
        return list(self._retained.values())

    def _session(self, client_id: str) -> _MemorySession:
        return self._sessions.setdefault(client_id, _MemorySession())

