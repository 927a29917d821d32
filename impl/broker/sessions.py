"""The session table: every session by client id, and the decisions that span connections.

Which session a CONNECT gets (new, resumed, or taken over from another
connection [MQTT-3.1.4-2]) and what happens to it when its connection ends (a
clean session ends too [MQTT-3.1.2-6]; a persistent one waits) are the two
choices no single connection can make. They are plain logic over the sessions,
the registry and the store, so the table is the ``SessionPort`` of every
connection's core, with no event loop. The third is when a persistent session
nobody comes back for expires (``persistent_client_expiration``; see
``impl/broker/expiry.py``): at start-up for what expired while the broker was
down, on the tick for the rest, and at a CONNECT that arrives after the deadline
but before the tick.

A 5.0 will with a Will Delay Interval waits here too, and in the store beside
its persistent session (it is session state, 4.1), so that a restart neither
loses it nor publishes it early: it goes out when its delay ends or its session
does, whichever comes first [MQTT-3.1.2-8], at start-up if that moment passed
while the broker was down, and never if a connection resumes the session before
[MQTT-3.1.3-9].
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from mqttref.impl.broker.admission import NEVER_EXPIRES
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.expiry import Deadlines, expiry_deadline
from mqttref.impl.broker.ports import RouterPort
from mqttref.impl.broker.pressure import Memory
from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.session import PacketSink, Session
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import Connect, ProtocolLevel
from mqttref.impl.logtext import broker_log, clip
from mqttref.impl.message import Message
from mqttref.impl.store.base import SessionExpiry, Store

log = logging.getLogger("mqttref.broker")

EXPIRIES_PER_TICK = 1000
"""Sessions expired per tick at most: a burst of deadlines (a storm of clients that
left together) is spread over ticks instead of stalling the loop in store writes."""


def published_early(due_at: float, will: Message, now: float) -> Message:
    """A delayed will published before its delay ended (its session ended first).

    Its Message Expiry Interval is its lifetime from publication (3.1.3.2.4), so the
    deadline the will was given for publication at ``due_at`` moves back with it."""
    if will.expires_at is not None and now < due_at:
        will.expires_at -= due_at - now
    return will


class SessionTable:
    """The broker's sessions, its registry of subscriptions, and their store."""

    def __init__(
        self, config: Config, store: Store, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        """Wall-clock time, for session expiry only: the store keeps the time a session
        was left, which must mean the same after a restart (the loop's clock does not)."""
        self.sessions: dict[str, Session] = {}
        self.deadlines = Deadlines()
        """When each disconnected persistent session expires (those that do)."""
        self.expiry_intervals: dict[str, float] = {}
        """A session's own expiry interval, where it has one (MQTT 5.0's Session Expiry
        Interval); the others take ``persistent_client_expiration``."""
        self.delayed_wills: dict[str, tuple[float, Message]] = {}
        """5.0 wills waiting for their Will Delay Interval, by client id (3.1.3.2.2)."""
        self._now = 0.0
        """The loop time last seen (a will published when its session ends needs one)."""
        self.memory = Memory(config.memory_high_water)
        """The bytes queued in all sessions together, against ``memory_high_water``."""
        self.registry = Registry(config, store, self.sessions.get)
        self.router: RouterPort = self.registry
        """Where the table publishes wills: the registry, or a cluster node's router
        (``impl/cluster/wiring.py``), so that a will reaches every node."""

    def restore(self, now: float | None = None) -> None:
        """Load the persistent sessions, their delayed wills and the retained messages
        the store holds. ``now`` is the loop clock, in which the store gives back the
        wills' due times (``time.monotonic()``, asyncio's, when not given).

        One the store thinks connected (the broker was killed) counts as left now. A
        session that expired while the broker was down ends at start-up
        (``_end_expired``), and a will that fell due meanwhile is published then.
        """
        self._now = time.monotonic() if now is None else now
        wall = self.clock()
        expired: list[tuple[str, SessionExpiry]] = []
        for client_id in self.store.session_ids():
            expiry = self.store.session_expiry(client_id)
            if expiry is None:
                continue
            if expiry.disconnected_at is None:
                expiry = SessionExpiry(wall, expiry.expiry_interval)
                self.store.session_disconnected(client_id, wall, expiry.expiry_interval)
            deadline = expiry_deadline(expiry, self.config.persistent_client_expiration)
            if deadline is not None and deadline <= wall:
                expired.append((client_id, expiry))
                continue
            record = self.store.load_session(client_id)
            if record is None:
                continue
            if expiry.expiry_interval is not None:
                self.expiry_intervals[client_id] = expiry.expiry_interval
            if deadline is not None:
                self.deadlines.set(client_id, deadline)
            session = Session.restore(record, config=self.config, store=self.store,
                                      memory=self.memory)
            self.sessions[client_id] = session
            self.registry.add_stored_subscriptions(session, record.options)
        self.registry.load()
        gone = {client_id for client_id, _expiry in expired}
        for will in self.store.wills():
            if will.client_id in self.sessions or will.client_id in gone:
                self.delayed_wills[will.client_id] = (will.due_at, will.message)
        for client_id, expiry in expired:
            self._end_expired(client_id, expiry, wall)
        self._publish_due_wills(self._now)

    def _end_expired(self, client_id: str, expiry: SessionExpiry, wall: float) -> None:
        """End at start-up a session that expired while the broker was down: its will
        goes out now, the session having ended first (3.1.3.2.2).

        It is deleted unread, unless shared subscription groups exist: then it is
        loaded and ended like any other, so that the group messages it held
        unacknowledged go to other members (4.8.2) instead of being lost with it."""
        self._log_expired(client_id, expiry, wall)
        record = self.store.load_session(client_id) if self.registry.shared else None
        if record is None:
            self.store.delete_session(client_id)
            pending = self.delayed_wills.pop(client_id, None)
            if pending is not None:
                self.router.publish(published_early(*pending, self._now), self._now)
            return
        session = Session.restore(record, config=self.config, store=self.store,
                                  memory=self.memory)
        self.sessions[client_id] = session
        self.registry.add_stored_subscriptions(session, record.options)
        self.end_session(session)

    def open_session(
        self, connection: PacketSink, client_id: str, connect: Connect, now: float
    ) -> tuple[Session, bool]:
        """The session for an accepted CONNECT, and whether it was already there.

        Another connection with the same client id is closed first, will and all,
        as mosquitto does [MQTT-3.1.4-2] (a 5.0 one with DISCONNECT 0x8E). Clean
        session 1 discards any previous session [MQTT-3.1.2-6]; clean session 0
        resumes it [MQTT-3.1.2-4]. At 5.0 the flag is Clean Start [MQTT-3.1.2-4],
        and the session outlives the connection only with a Session Expiry Interval
        above 0 [MQTT-3.1.2-23], as long as it says.
        """
        self._now = now
        existing = self.sessions.get(client_id)
        if existing is not None and existing.connection is not None:
            existing.connection.close(
                "taken over by a new connection with the same client id", publish_will=True,
                now=now, reason_code=ReasonCode.SESSION_TAKEN_OVER,
            )
            existing = self.sessions.get(client_id)
        interval = None
        if connect.protocol_level is ProtocolLevel.MQTT_5:
            requested = connect.properties.session_expiry_interval or 0
            granted = min(requested, self.config.max_session_expiry_interval)
            interval = math.inf if granted == NEVER_EXPIRES else float(granted)
            persistent = interval > 0
        else:
            persistent = not connect.clean_session
        if existing is not None and (
            connect.clean_session or not existing.persistent or self._expired(existing)
        ):
            self.end_session(existing)
            existing = None
        if existing is not None:
            self.deadlines.clear(client_id)
            # Back before the delay ended: the will is not sent [MQTT-3.1.3-9].
            if self.delayed_wills.pop(client_id, None) is not None:
                self.store.will_remove(client_id)
            if persistent:
                self.store.session_connected(client_id)
                self._set_interval(client_id, interval)
            else:  # resumed, but now to end with this connection: nothing more is stored
                self.store.delete_session(client_id)
                existing.persistent = False
            return existing, True
        session = Session(
            client_id, persistent=persistent, config=self.config, store=self.store,
            memory=self.memory,
        )
        self.sessions[client_id] = session
        if persistent:
            self._set_interval(client_id, interval)
        return session, False

    def _set_interval(self, client_id: str, interval: float | None) -> None:
        """A 5.0 session's own expiry interval; a 3.x one takes the configured one."""
        if interval is None:
            self.expiry_intervals.pop(client_id, None)
        else:
            self.expiry_intervals[client_id] = interval

    def set_expiry(self, session: Session, seconds: float) -> None:
        """A 5.0 DISCONNECT's new Session Expiry Interval: 0 ends the session with this
        connection (3.14.2.2.2), more keeps it that long."""
        if session.persistent:
            if seconds > 0:
                self._set_interval(session.client_id, seconds)
            else:
                self.store.delete_session(session.client_id)
                session.persistent = False

    def connection_closed(self, connection: PacketSink, session: Session, now: float) -> None:
        """A connection ended: its clean session ends with it, a persistent one waits."""
        self._now = now
        if session.connection is not connection:
            return  # already taken over by another connection
        if session.persistent:
            session.detach()
            self._disconnected(session.client_id, self.clock())
        else:
            self.end_session(session)

    def _disconnected(self, client_id: str, at: float) -> None:
        """Record when a persistent session was left, and when it expires then."""
        expiry = SessionExpiry(at, self.expiry_intervals.get(client_id))
        self.store.session_disconnected(client_id, at, expiry.expiry_interval)
        deadline = expiry_deadline(expiry, self.config.persistent_client_expiration)
        if deadline is not None:
            self.deadlines.set(client_id, deadline)

    def _expired(self, session: Session) -> bool:
        """Past its deadline, though the tick has not come round to it yet."""
        deadline = self.deadlines.get(session.client_id)
        if deadline is None or deadline > self.clock():
            return False
        self._log_expired(session.client_id, self.store.session_expiry(session.client_id),
                          self.clock())
        return True

    def end_session(self, session: Session) -> None:
        """Forget a session: its subscriptions, queue and stored state. A will waiting
        for its delay goes out now: the session ended first (3.1.3.2.2)."""
        self.registry.remove_session(session, self._now)
        session.discard()
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            self.deadlines.clear(session.client_id)
            self.expiry_intervals.pop(session.client_id, None)
            pending = self.delayed_wills.pop(session.client_id, None)
            if pending is not None:
                self.router.publish(published_early(*pending, self._now), self._now)

    def delay_will(self, client_id: str, will: Message, at: float, now: float) -> None:
        """Hold a 5.0 will until ``at`` (its Will Delay Interval), or until its session
        ends; a session already gone publishes it at once. The store keeps it with the
        session, so that a restart in between still publishes it [MQTT-3.1.2-8]."""
        self._now = now
        if client_id not in self.sessions:
            self.router.publish(published_early(at, will, now), now)
        else:
            self.delayed_wills[client_id] = (at, will)
            self.store.will_set(client_id, will, at)

    def _publish_due_wills(self, now: float) -> None:
        due = [cid for cid, (at, _will) in self.delayed_wills.items() if at <= now]
        for client_id in due:
            _at, will = self.delayed_wills.pop(client_id)
            self.store.will_remove(client_id)
            self.router.publish(will, now)

    def tick(self, now: float) -> None:
        """The broker's periodic work over all sessions."""
        self._now = now
        if self.delayed_wills:
            self._publish_due_wills(now)
        if self.deadlines:
            self.expire(self.clock())
        self.retry(now)

    def expire(self, wall_now: float) -> None:
        """End the disconnected persistent sessions whose deadline has passed."""
        for client_id in self.deadlines.due(wall_now, EXPIRIES_PER_TICK):
            session = self.sessions.get(client_id)
            if session is None or not session.persistent or session.connection is not None:
                continue  # the deadline went stale without being cleared (defensive)
            self._log_expired(client_id, self.store.session_expiry(client_id), wall_now)
            self.end_session(session)

    def _log_expired(self, client_id: str, expiry: SessionExpiry | None, now: float) -> None:
        """One line per expiry, rate-limited like every repeated line: clients that
        connect once and leave would otherwise log more than they ever sent."""
        left = expiry.disconnected_at if expiry is not None else None
        broker_log.info("session expired", "session %s expired after %.1f s disconnected",
                        clip(client_id), now - left if left is not None else float("nan"))

    def retry(self, now: float) -> None:
        """Resend unacknowledged messages whose retry time has come (the broker's tick)."""
        for session in list(self.sessions.values()):
            if session.inflight and session.connection is not None:
                try:
                    session.handle_timer(now)
                except Exception:
                    broker_log.error("session crash", "session %s crashed in its retry timer",
                                     clip(session.client_id), exc_info=True)

    @property
    def dropped(self) -> int:
        """Messages dropped by every session's limits since start."""
        return sum(session.dropped for session in self.sessions.values())
