"""A node's leases and claims on client ids, over NATS (the I/O of ``ownership.py``).

Everything here runs on the node's NATS thread (``bridge.NatsThread``):

- ``keep_lease`` puts the node's incarnation under its name in ``mqttref_nodes``, a
  bucket whose entries age out after one lease, every third of a lease;
- ``claim`` walks ``ownership.decide_claim`` until this node owns a client id,
  asking the previous owner to release it on the subject
  ``mqttref.sessions.release.<node>.<incarnation>`` (request and reply);
- ``serve_releases`` answers such requests: the node's broker loop closes the
  client's connection and lets the session go (``ClusterSessions.release``), then
  the reply says it is done;
- ``owner_records`` and ``live_nodes`` are what ``wills.py`` reads to find orphans.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import attrs
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from mqttref.impl.cluster.ownership import (
    AskRelease,
    ClaimState,
    Create,
    Lease,
    NodeId,
    Owned,
    OwnerRecord,
    Replace,
    decide_claim,
)
from mqttref.impl.cluster.session_store import SESSIONS_BUCKET, session_prefix
from mqttref.impl.logtext import broker_log

log = logging.getLogger("mqttref.cluster")

NODES_BUCKET: Final = "mqttref_nodes"
OWNERS_BUCKET: Final = "mqttref_owners"
RELEASE_SUBJECT: Final = "mqttref.sessions.release"
ASK_TIMEOUT: Final = 1.0
"""Seconds to wait for one answer to a release request before asking again."""


def release_subject(node: NodeId) -> str:
    """Where one life of a node takes release requests (a name may hold any character)."""
    name = base64.urlsafe_b64encode(node.name.encode()).decode().rstrip("=")
    return f"{RELEASE_SUBJECT}.n{name}.{node.incarnation}"


def node_key(name: str) -> str:
    return "n" + base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


@attrs.frozen
class Claimed:
    """How this node came to own a client id."""

    created: bool = False
    """Nobody owned it: no node holds a session or a will for it (a record goes only
    with its session, ``disown``), so there is nothing to load."""
    gone: NodeId | None = None
    """The previous owner, when it was taken without its release (it was gone): the
    will its client left there is the new owner's to publish."""


class ClusterLink:
    """One node's NATS connection for sessions, and its buckets."""

    def __init__(self, me: NodeId, lease: float, *, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.me = me
        self.lease = Lease(lease)
        self.clock = clock
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.nodes: KeyValue | None = None
        self.owners: KeyValue | None = None
        self.sessions: KeyValue | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        """Client id -> its lock and how many claims use or wait for it."""
        self._adoptions: dict[str, asyncio.Event] = {}
        """Client id -> set when this node's adoption of it (``adopting``) is over."""
        self._closing = False
        self.reconnected: Callable[[], None] = lambda: None
        """Called (on the NATS thread) when the connection is back after NATS was away."""

    @property
    def lease_seconds(self) -> float:
        return self.lease.lease

    async def connect(self, servers: list[str], **options: str) -> None:
        """Connect (``options``: ``user``, ``password`` or ``user_credentials``), create the
        buckets if they are missing, and take the first lease."""
        self.nc = await nats.connect(servers, name=f"mqttref-sessions-{self.me.name}",
                                     max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                     reconnected_cb=self._reconnected,
                                     disconnected_cb=self._disconnected,
                                     error_cb=self._error, closed_cb=self._closed, **options)
        self.js = self.nc.jetstream()
        self.nodes = await self._bucket(NODES_BUCKET, ttl=self.lease.lease)
        self.owners = await self._bucket(OWNERS_BUCKET)
        self.sessions = await self._bucket(SESSIONS_BUCKET)
        await self._refresh()
        self._lease_task = asyncio.get_running_loop().create_task(self._keep_lease())

    async def _disconnected(self) -> None:
        """NATS went away: one line (the node's main connection says the rest)."""
        if not self._closing:
            broker_log.warning("cluster", "node %s: the sessions' NATS connection is lost; "
                               "reconnecting", self.me.name)

    async def _error(self, exc: Exception) -> None:
        """nats-py's errors, as one line each: without this callback nats-py logs each
        with a traceback, every reconnect attempt while NATS is away."""
        if not self._closing:  # rate-limited: once per attempt while NATS is away
            broker_log.warning("cluster", "node %s: sessions' NATS connection: %s",
                               self.me.name, exc or type(exc).__name__)

    async def _closed(self) -> None:
        """The connection is closed for good (``close``): nothing to do."""

    async def _reconnected(self) -> None:
        """Back after NATS was away: other nodes may have taken client ids meanwhile (an
        owner away from NATS does not answer, so it counts as gone)."""
        self.reconnected()

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def _bucket(self, name: str, ttl: float | None = None) -> KeyValue:
        assert self.js is not None
        try:
            return await self.js.key_value(name)
        except nats.js.errors.BucketNotFoundError:
            pass
        try:
            return await self.js.create_key_value(KeyValueConfig(
                bucket=name, ttl=ttl, storage=StorageType.FILE, history=1))
        except nats.js.errors.Error:
            return await self.js.key_value(name)  # another node created it meanwhile

    async def _refresh(self) -> None:
        assert self.nodes is not None
        started = self.clock()
        await self.nodes.put(node_key(self.me.name), self.me.incarnation.encode())
        self.lease.refreshed(started)

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self.lease.next_refresh(self.clock()) - self.clock()))
            try:
                await self._refresh()
            except Exception as exc:  # NATS away: try again soon, and tell when it is lost
                if self.lease.held(self.clock()):
                    log.warning("node %s could not refresh its lease: %r", self.me.name, exc)
                else:  # other nodes may take its client ids; ``reconnected`` sorts it out
                    log.warning("node %s lost its lease: other nodes may take its client ids",
                                self.me.name)
                await asyncio.sleep(self.lease.lease / 10)

    async def close(self) -> None:
        """Stop refreshing and let the lease go now (a clean stop), then disconnect."""
        self._closing = True
        task, self._lease_task = self._lease_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # finished, not destroyed pending with the thread's loop
        if self.nc is not None:
            try:
                if self.nodes is not None:
                    await self.nodes.delete(node_key(self.me.name))
            finally:
                await self.nc.close()
                self.nc = None

    # Reading ---------------------------------------------------------------------------

    async def owner(self, client_id: str) -> OwnerRecord | None:
        assert self.owners is not None
        try:
            entry = await self.owners.get(session_prefix(client_id))
        except nats.js.errors.KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return OwnerRecord(NodeId.decode(entry.value), entry.revision)

    async def live_nodes(self) -> dict[str, str]:
        """Node name -> incarnation, for every node whose lease is held now."""
        assert self.nodes is not None
        try:
            keys = await self.nodes.keys()
        except nats.js.errors.NoKeysError:
            return {}
        live: dict[str, str] = {}
        for key in keys:
            try:
                entry = await self.nodes.get(key)
            except nats.js.errors.KeyNotFoundError:
                continue
            if entry.value:
                name = base64.urlsafe_b64decode(key[1:] + "=" * (-(len(key) - 1) % 4)).decode()
                live[name] = entry.value.decode()
        return live

    async def owner_records(self) -> list[tuple[str, OwnerRecord]]:
        """Every owner record, by client id."""
        assert self.owners is not None
        try:
            keys = await self.owners.keys()
        except nats.js.errors.NoKeysError:
            return []
        records: list[tuple[str, OwnerRecord]] = []
        for key in keys:
            try:
                entry = await self.owners.get(key)
            except nats.js.errors.KeyNotFoundError:
                continue
            if entry.value and entry.revision is not None:
                client_id = base64.urlsafe_b64decode(key[1:] + "=" * (-(len(key) - 1) % 4))
                records.append((client_id.decode(),
                                OwnerRecord(NodeId.decode(entry.value), entry.revision)))
        return records

    # Claiming --------------------------------------------------------------------------

    async def claim(self, client_id: str) -> Claimed:
        """Own ``client_id``: returns once this node owns it and its previous owner (if
        live) has let it go, or did not answer within a lease. ConnectionError while
        NATS is away (nothing can be owned then)."""
        if not self.connected:
            raise ConnectionError("NATS is away: client ids cannot be claimed")
        async with self._lock(client_id):
            return await self._claim(client_id)

    async def _claim(self, client_id: str) -> Claimed:
        assert self.owners is not None
        state = ClaimState()
        key = session_prefix(client_id)
        while True:
            current = await self.owner(client_id)
            mine = current is None or current.owner == self.me
            live = {} if mine else await self.live_nodes()
            now = self.clock()
            action = decide_claim(self.me, current, live, state, now=now, lease=self.lease.lease)
            match action:
                case Owned():
                    return Claimed()
                case Create():
                    try:
                        await self.owners.create(key, self.me.encode())
                        return Claimed(created=True)
                    except nats.js.errors.KeyWrongLastSequenceError:
                        continue  # someone created it first: read it again
                case Replace(revision=revision):
                    try:
                        await self.owners.update(key, self.me.encode(), last=revision)
                        assert current is not None
                        return Claimed(gone=None if state.released else current.owner)
                    except nats.js.errors.KeyWrongLastSequenceError:
                        state = ClaimState()  # it changed hands meanwhile: start again
                        continue
                case AskRelease(owner=owner):
                    first_asked = state.asked_at if state.asked == owner else now
                    answer = await self._ask_release(owner, client_id)
                    state = ClaimState(owner, first_asked, released=answer is True,
                                       gone=answer is None)

    async def _ask_release(self, owner: NodeId, client_id: str) -> bool | None:
        """Ask ``owner`` to let ``client_id`` go; whether it said it did.

        No responders means that life of the owner has no connection to NATS: killed,
        or cut off (it then lets its sessions go when it is back, ``reconnected``).
        Waiting for its lease would block the CONNECT, and every client on this node
        with it, for nothing: it counts as gone at once (not released). A silent
        owner (a timeout: a request may also reach a connection nats-server has not yet
        seen die) is asked again, up to a lease."""
        assert self.nc is not None
        try:
            reply = await self.nc.request(release_subject(owner), client_id.encode(),
                                          timeout=min(ASK_TIMEOUT, self.lease.lease / 3))
        except nats.errors.NoRespondersError:
            return None
        except nats.errors.TimeoutError:
            return False
        return reply.data == b"released"

    async def disown(self, client_id: str) -> None:
        """Delete this node's record of ``client_id`` (its session ended here), unless
        another node owns it by now."""
        assert self.owners is not None
        async with self._lock(client_id):
            current = await self.owner(client_id)
            if current is None or current.owner != self.me:
                return
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                await self.owners.delete(session_prefix(client_id), last=current.revision)

    @contextlib.asynccontextmanager
    async def _lock(self, client_id: str) -> AsyncIterator[None]:
        """One claim or disowning of a client id at a time, in the order they were asked
        (a client that leaves and comes straight back is disowned, then claimed)."""
        lock, users = self._locks.get(client_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[client_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[client_id]
            if users == 1:
                del self._locks[client_id]
            else:
                self._locks[client_id] = (lock, users - 1)

    @contextlib.asynccontextmanager
    async def adopting(self, client_id: str) -> AsyncIterator[None]:
        """Around taking a dead node's client id and adopting its session here: a release
        request for it meanwhile waits until the session is here (``serve_releases``).

        Between the compare-and-set and the adoption, another node's CONNECT claim may
        read this node as the owner and ask it to release; answered at once, nothing
        would be released (the session is not here yet), the claimant would load the
        session while this node adopts it after: two owners, and the client told no
        session was present [MQTT-3.2.2-2] when the claimant read the bucket while the
        adoption wrote it. Waiting makes it a normal takeover across nodes."""
        done = asyncio.Event()
        self._adoptions[client_id] = done
        try:
            yield
        finally:
            if self._adoptions.get(client_id) is done:
                del self._adoptions[client_id]
            done.set()

    async def take_orphan(self, client_id: str, record: OwnerRecord) -> bool:
        """Take a dead node's client id by compare-and-set; whether this node won it."""
        assert self.owners is not None
        try:
            await self.owners.update(session_prefix(client_id), self.me.encode(),
                                     last=record.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    async def serve_releases(self, release: Callable[[str], Awaitable[None]]) -> None:
        """Answer release requests for this life of the node with ``release``."""
        assert self.nc is not None

        async def answer(msg: Msg) -> None:
            client_id = msg.data.decode()
            adoption = self._adoptions.get(client_id)
            if adoption is not None:  # the session is on its way here: release it after
                await adoption.wait()
            try:
                await release(client_id)
            except Exception:
                log.exception("releasing %r for another node failed", client_id[:100])
                await msg.respond(b"failed")
                return
            await msg.respond(b"released")

        await self.nc.subscribe(release_subject(self.me), cb=answer)
