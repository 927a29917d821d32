"""The cluster's session port: the node's session table, with ownership across nodes.

Theory of operation. A node's ``SessionTable`` decides everything about the
sessions it holds, as on a single broker; ``ClusterSessions`` stands in front of
it as the ``SessionPort`` of every connection, and adds what spans nodes:

- ``open_session`` first makes this node the owner of the client id
  (``claims.ClusterLink.claim``: compare-and-set on the owner record, after the
  previous owner, if live, closed the client's connection there [MQTT-3.1.4-2],
  DISCONNECT 0x8E at 5.0, and wrote and let go of its session). A persistent session
  not held here is then loaded from JetStream (``JetStreamSessionStore.fetch``)
  and indexed in the registry, so that the table resumes it [MQTT-3.1.2-4] with its
  subscriptions, queue and in-flight messages, as if it had always been here.
  The client's will is written down beside the session, for ``wills.py``.
- ``release`` is the other side: what this node does when another asks for a
  client id. The table forgets the session without ending it; the store, muted
  for it, writes nothing of that.
- ``adopt`` takes the session of a node that died (``wills.py`` found it): a
  persistent session is loaded and waits here for its client, subscribed as
  before; the will of a client that was connected there is published (or delayed
  by its Will Delay Interval, for a session that goes on).

The NATS calls run on the node's NATS thread; the broker's loop waits for them
(``bridge.NatsThread.call``), which is what lets CONNACK follow ownership.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import attrs

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.expiry import expiry_deadline
from mqttref.impl.broker.ports import BrokerPorts, RouterPort
from mqttref.impl.broker.session import PacketSink, Session
from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.broker.sys_topics import is_sys_topic
from mqttref.impl.cluster.bridge import Inbox, NatsThread
from mqttref.impl.cluster.claims import ClusterLink
from mqttref.impl.cluster.durable import StreamPublisher
from mqttref.impl.cluster.ownership import NodeId
from mqttref.impl.cluster.replay import Replayer
from mqttref.impl.cluster.session_store import (
    Fetched,
    JetStreamSessionStore,
    decode_live_will,
    subjects_of_filters,
)
from mqttref.impl.cluster.wills import find_orphans
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import NO_PROPERTIES, Connect, ProtocolLevel
from mqttref.impl.logtext import clip
from mqttref.impl.message import Message
from mqttref.impl.store.base import SessionExpiry, SessionRecord, Store, StoredWill
from mqttref.impl.store.datadir import StoreError

log = logging.getLogger("mqttref.cluster")

CALL_MARGIN = 5.0
"""Seconds beyond a lease that a claim may take before the CONNECT fails: the claim
itself gives up on a silent owner after one lease."""


class SessionsHost(Protocol):
    """What ``attach_sessions`` needs of the broker (``Broker`` has it; ``broker.py`` is
    not imported here: it loads the cluster, not the other way round)."""

    config: Config
    table: SessionTable
    ports: BrokerPorts


class ClusterSessions:
    """The ``SessionPort`` of a cluster node (see the module's docstring)."""

    def __init__(self, table: SessionTable, store: JetStreamSessionStore, link: ClusterLink,
                 nats: NatsThread, *, interest_changed: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.store = store
        self.link = link
        self.nats = nats
        self.interest_changed = interest_changed
        """Tell the node's router that the registry's filters changed (NATS interest)."""
        self.clock = clock
        self._releasing: str | None = None
        self.replayer: Replayer | None = None
        """Replays the stream into sessions taken over here (set by the wiring)."""

    @property
    def router(self) -> RouterPort:
        return self.table.router

    # SessionPort -------------------------------------------------------------------------

    def open_session(
        self, connection: PacketSink, client_id: str, connect: Connect, now: float
    ) -> tuple[Session, bool]:
        """Own the client id in the cluster, load its session if another node left it,
        then let the table decide (new, resumed, or taken over here).

        Taken from a node that was gone (no release), the client's last connection
        there ended without DISCONNECT: its will goes out now, as at a takeover on
        one node [MQTT-3.1.4-2], unless the session resumes within its Will Delay
        Interval [MQTT-3.1.3-9].

        While NATS is away a clean session that ends with its connection is opened
        here without owning the client id (another node cannot be asked to close its
        connection then); a session meant to outlive the connection cannot be
        written, so the CONNECT fails (ConnectionError: closed without CONNACK)."""
        if not self.link.connected and not _outlives_connection(connect):
            log.warning("NATS is away: %s connects with a clean session, not owned in "
                        "the cluster", clip(client_id))
            return self.table.open_session(connection, client_id, connect, now)
        claimed = self.nats.call(self.link.claim(client_id),
                                 self.link.lease_seconds * 2 + CALL_MARGIN)
        if client_id not in self.table.sessions and not claimed.created:
            fetched = self.store.fetch(client_id)
            if fetched.record is not None:
                self._restore(fetched.record, fetched.will, fetched)
            if fetched.live_will is not None:
                self.store.forget_live_will(client_id)  # that connection is over
                message, delay = decode_live_will(fetched.live_will)
                if claimed.gone is not None and not is_sys_topic(message.topic) and (
                        delay == 0 or connect.clean_session):
                    self._publish_will(client_id, message, 0, now)
        session, present = self.table.open_session(connection, client_id, connect, now)
        self.store.live_will_set(client_id, connect.will)
        return session, present

    def connection_closed(self, connection: PacketSink, session: Session, now: float) -> None:
        current = session.connection is connection
        self.table.connection_closed(connection, session, now)
        if not current:
            return  # taken over here by another connection: that one's will is kept
        client_id = session.client_id
        self.store.live_will_set(client_id, None)
        if client_id not in self.table.sessions and self._releasing != client_id:
            self._disown(client_id)

    def _disown(self, client_id: str) -> None:
        """The session of ``client_id`` ended here: write that (its keys deleted), then
        give up the owner record, so that a node creating the record afresh finds no
        key of the old session, and none of its own is deleted by a late commit here."""
        if self.store.connected():
            try:
                self.store.commit()
            except StoreError:
                return  # the broker stops; the record goes with this node's lease
        self.nats.submit(self.link.disown(client_id))

    def delay_will(self, client_id: str, will: Message, at: float, now: float) -> None:
        self.table.delay_will(client_id, will, at, now)

    def set_expiry(self, session: Session, seconds: float) -> None:
        self.table.set_expiry(session, seconds)

    # Sessions moving between nodes -------------------------------------------------------

    def _restore(self, record: SessionRecord, will: StoredWill | None,
                 fetched: Fetched | None = None) -> None:
        """Hold a session loaded from JetStream as the table holds its own: indexed in the
        registry, with its expiry and delayed will (as ``SessionTable.restore`` does);
        then given, from the stream, the QoS 1/2 messages its last node took after its
        mark and did not write (``replay.py``)."""
        table = self.table
        client_id = record.client_id
        if client_id in table.sessions:
            # Loaded meanwhile: ``adopt`` ran while this node waited for NATS (or the
            # other way round). One session object only, or the registry delivers twice.
            return
        replayer = self.replayer
        subjects = subjects_of_filters(record.subscriptions)
        if replayer is not None and fetched is not None:
            replayer.catch_up(fetched, subjects)
        session = Session.restore(record, config=table.config, store=self.store,
                                  memory=table.memory)
        table.sessions[client_id] = session
        table.registry.add_stored_subscriptions(session, record.options)
        expiry = record.expiry
        if expiry.expiry_interval is not None:
            table.expiry_intervals[client_id] = expiry.expiry_interval
        if expiry.disconnected_at is None:  # its node died while its client was connected
            expiry = SessionExpiry(self.clock(), expiry.expiry_interval)
            self.store.session_disconnected(client_id, expiry.disconnected_at or 0.0,
                                            expiry.expiry_interval)
        deadline = expiry_deadline(expiry, table.config.persistent_client_expiration)
        if deadline is not None:
            table.deadlines.set(client_id, deadline)
        if will is not None:
            table.delayed_wills[client_id] = (will.due_at, will.message)
        self.interest_changed()
        if replayer is not None and fetched is not None:
            try:
                replayer.replay(session, table.registry, fetched, subjects,
                                asyncio.get_running_loop().time())
            except Exception:  # JetStream not ready (nats-server just restarted): logged
                log.exception("replaying the stream to %s failed: QoS 1/2 messages its "
                              "last node took after its mark may be missing", clip(client_id))

    def release(self, client_id: str, now: float) -> None:
        """Another node takes ``client_id``: close its connection here (DISCONNECT 0x8E at
        5.0, the will published [MQTT-3.1.4-2]), write what the session holds, and forget
        it without ending it: it lives on in JetStream, for the new owner."""
        table = self.table
        session = table.sessions.get(client_id)
        if session is None:
            return
        self._releasing = client_id
        try:
            if session.connection is not None:
                session.connection.close(
                    "taken over by a connection on another node", publish_will=True, now=now,
                    reason_code=ReasonCode.SESSION_TAKEN_OVER,
                )
            self.store.commit()
            session = table.sessions.get(client_id)
            if session is None:
                return  # a clean session: it ended with its connection
            self.store.final_mark(client_id)  # all it took is written: its mark as of now
            self.store.commit()
            self.store.mute(client_id)
            table.delayed_wills.pop(client_id, None)  # session state: the new owner has it
            table.registry.remove_session(session, now)
            session.detach()
            del table.sessions[client_id]
            table.deadlines.clear(client_id)
            table.expiry_intervals.pop(client_id, None)
            self.store.local.delete_session(client_id)
        finally:
            self._releasing = None
        self.interest_changed()
        log.debug("released %s to another node", clip(client_id))

    def adopt(self, client_id: str, live_will: bytes | None, now: float) -> None:
        """This node won the client id of a node whose lease ran out: keep its persistent
        session here, and publish the will of its client, which was connected there."""
        table = self.table
        if client_id not in table.sessions:
            fetched = self.store.fetch(client_id)
            if fetched.record is not None:
                self._restore(fetched.record, fetched.will, fetched)
        if live_will is not None:
            message, delay = decode_live_will(live_will)
            if not is_sys_topic(message.topic):
                self._publish_will(client_id, message, delay, now)
        self.store.forget_live_will(client_id)
        self.store.commit()
        if client_id not in table.sessions:
            self._disown(client_id)
        log.info("took over %s from a node whose lease ran out", clip(client_id))

    def verify_ownership(self, now: float) -> None:
        """NATS is back after being away: let go of the sessions other nodes took
        meanwhile (their clients came back there), writing nothing of them."""
        try:
            records = dict(self.nats.call(self.link.owner_records(), CALL_MARGIN))
        except Exception:
            log.warning("could not read the owners after NATS came back", exc_info=True)
            return
        for client_id in list(self.table.sessions):
            record = records.get(client_id)
            if record is not None and record.owner != self.link.me:
                self.store.mute(client_id)
                self.release(client_id, now)

    def _publish_will(self, client_id: str, message: Message, delay: int, now: float) -> None:
        """The will of a client whose node died, counted from now: its Will Delay Interval
        for a session that goes on, its Message Expiry Interval from publication."""
        expiry = message.properties.message_expiry_interval \
            if message.properties is not NO_PROPERTIES else None
        if expiry is not None:
            message.expires_at = now + delay + expiry
        if delay and client_id in self.table.sessions:
            self.table.delay_will(client_id, message, now + delay, now)
        else:
            self.router.publish(message, now)


# Wiring into a node ------------------------------------------------------------------------


def wrap_store(config: Config, store: Store) -> JetStreamSessionStore:
    """The store of a cluster node: sessions in JetStream, retained messages in ``store``.

    It connects when ``attach_sessions`` runs (before the node listens)."""
    del config  # the same for every configuration, for now
    return JetStreamSessionStore(store)


@attrs.define
class SessionsHandle:
    """What ``attach_sessions`` started, to stop it with the broker."""

    sessions: ClusterSessions
    link: ClusterLink
    nats: NatsThread
    reaper: concurrent.futures.Future[None] | None = None

    async def close(self) -> None:
        """Write what the closed connections left (their sessions' ends), stop finding
        orphans, let the lease go (other nodes take this node's persistent sessions
        from now on), close the NATS connection and its thread."""
        store = self.sessions.store
        if self.reaper is not None:
            self.reaper.cancel()
        try:
            if self.link.connected:
                store.commit()
            await self.nats.call_async(self.link.close())
        finally:
            store.unbind()
            self.nats.stop()


async def attach_sessions(
    broker: SessionsHost, *, servers: list[str] | None = None, node_name: str | None = None,
    lease: float | None = None, interest_changed: Callable[[], None] | None = None,
) -> SessionsHandle:
    """Make ``broker``'s sessions cluster sessions: connect to NATS, take the lease,
    serve release requests, find orphans, and put ``ClusterSessions`` in its ports.

    The arguments default to ``broker.config.cluster``; its store must come from
    ``wrap_store``."""
    settings = broker.config.cluster
    store = broker.table.store
    if not isinstance(store, JetStreamSessionStore):
        raise TypeError("a cluster node's store comes from impl.cluster.sessions.wrap_store")
    if servers is None or node_name is None or lease is None:
        if settings is None:
            raise ValueError("attach_sessions needs servers, node_name and lease, "
                             "or a broker configured with [cluster]")
        servers = servers or list(settings.servers)
        node_name = node_name or settings.node_name
        lease = lease or settings.lease
    if interest_changed is None:
        interest_changed = _no_interest
    nats = NatsThread(f"mqttref-sessions-{node_name}")
    nats.start()
    link = ClusterLink(NodeId.fresh(node_name), lease)
    loop = asyncio.get_running_loop()
    options: dict[str, str] = {}
    if settings is not None:
        if settings.user is not None and settings.password is not None:
            options = {"user": settings.user, "password": settings.password}
        elif settings.creds is not None:
            options = {"user_credentials": settings.creds}
    try:
        await nats.call_async(link.connect(servers, **options))
    except BaseException:
        nats.stop()
        raise
    assert link.sessions is not None
    assert link.js is not None
    assert link.nc is not None
    store.bind(nats, link.sessions, link.js, StreamPublisher(link.nc))
    store.is_connected = lambda: link.connected
    sessions = ClusterSessions(broker.table, store, link, nats,
                               interest_changed=interest_changed)
    inbox = Inbox.of_thread(threading.get_ident())  # the thread of the broker's loop

    async def release(client_id: str) -> None:
        await inbox.run(functools.partial(_release, sessions, client_id, loop), loop)

    def reconnected() -> None:
        inbox.post(functools.partial(_verify, sessions, loop), loop)

    link.reconnected = reconnected
    await nats.call_async(link.serve_releases(release))
    broker.ports = attrs.evolve(broker.ports, sessions=sessions)
    handle = SessionsHandle(sessions, link, nats)
    handle.reaper = nats.submit(find_orphans(sessions.adopt, link, loop, inbox))
    return handle


def _release(sessions: ClusterSessions, client_id: str, loop: asyncio.AbstractEventLoop) -> None:
    sessions.release(client_id, loop.time())


def _outlives_connection(connect: Connect) -> bool:
    """Whether a CONNECT asks for a session that may outlive its connection: clean session
    0 (3.1.1; Clean Start 0 at 5.0 may resume one), or a 5.0 Session Expiry Interval
    above 0 [MQTT-3.1.2-23]."""
    if not connect.clean_session:
        return True
    if connect.protocol_level is ProtocolLevel.MQTT_5:
        return bool(connect.properties.session_expiry_interval)
    return False


def _no_interest() -> None:
    """A node without a cluster router (the sessions tests): no NATS interest to sync."""


def _verify(sessions: ClusterSessions, loop: asyncio.AbstractEventLoop) -> None:
    """Run on the broker's loop, maybe inside another call's wait: never raise there."""
    try:
        sessions.verify_ownership(loop.time())
    except Exception:
        log.exception("letting go of the sessions other nodes took failed")
