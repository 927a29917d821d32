"""The session table: every session by client id, and the decisions that span connections.

Which session a CONNECT gets (new, resumed, or taken over from another
connection [MQTT-3.1.4-2]) and what happens to it when its connection ends (a
clean session ends too [MQTT-3.1.2-6]; a persistent one waits) are the two
choices no single connection can make. They are plain logic over the sessions,
the registry and the store, so the table is the ``SessionPort`` of every
connection's core, with no event loop.
"""

from __future__ import annotations

import logging

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.pressure import Memory
from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.session import PacketSink, Session
from mqttref.impl.codec.packets import Connect
from mqttref.impl.store.base import Store

log = logging.getLogger("mqttref.broker")


class SessionTable:
    """The broker's sessions, its registry of subscriptions, and their store."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.sessions: dict[str, Session] = {}
        self.memory = Memory(config.memory_high_water)
        """The bytes queued in all sessions together, against ``memory_high_water``."""
        self.registry = Registry(config, store, self.sessions.get)

    def restore(self) -> None:
        """Load the persistent sessions and retained messages the store holds."""
        for client_id in self.store.session_ids():
            record = self.store.load_session(client_id)
            if record is None:
                continue
            session = Session.restore(record, config=self.config, store=self.store,
                                      memory=self.memory)
            self.sessions[client_id] = session
            self.registry.add_stored_subscriptions(session)
        self.registry.load()

    def open_session(
        self, connection: PacketSink, client_id: str, connect: Connect, now: float
    ) -> tuple[Session, bool]:
        """The session for an accepted CONNECT, and whether it was already there.

        Another connection with the same client id is closed first, will and all,
        as mosquitto does [MQTT-3.1.4-2]. Clean session 1 discards any previous
        session [MQTT-3.1.2-6]; clean session 0 resumes it [MQTT-3.1.2-4].
        """
        existing = self.sessions.get(client_id)
        if existing is not None and existing.connection is not None:
            existing.connection.close(
                "taken over by a new connection with the same client id", publish_will=True,
                now=now,
            )
            existing = self.sessions.get(client_id)
        if existing is not None and (connect.clean_session or not existing.persistent):
            self.end_session(existing)
            existing = None
        if existing is not None:
            return existing, True
        session = Session(
            client_id, persistent=not connect.clean_session, config=self.config, store=self.store,
            memory=self.memory,
        )
        self.sessions[client_id] = session
        return session, False

    def connection_closed(self, connection: PacketSink, session: Session, now: float) -> None:
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

    def tick(self, now: float) -> None:
        """The broker's periodic work over all sessions."""
        self.retry(now)

    def retry(self, now: float) -> None:
        """Resend unacknowledged messages whose retry time has come (the broker's tick)."""
        for session in list(self.sessions.values()):
            if session.inflight and session.connection is not None:
                try:
                    session.handle_timer(now)
                except Exception:
                    log.exception("session %r crashed in its retry timer", session.client_id)

    @property
    def dropped(self) -> int:
        """Messages dropped by every session's limits since start."""
        return sum(session.dropped for session in self.sessions.values())
