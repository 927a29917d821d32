"""The session store's commit: what it records between commits, and how it writes it.

Theory of operation. ``JetStreamSessionStore`` (``session_store.py``) records every
change to a persistent session as the last value of one bucket key (``_put``,
``_delete``), and takes the QoS 1/2 messages this node publishes for the stream
(``publish_durable``); nothing reaches NATS until ``commit``. The broker commits
before PUBACK, PUBREC, SUBACK and CONNACK leave, and a commit returns once JetStream
has stored all of it, so what a client was told is kept survives the node.

A commit runs on the NATS thread (``_write``) in this order, each step once JetStream
has stored the one before (why, at each step: ``_write``, ``durable.py``,
``group_feed.py``):

1. the sessions' marks (``stream_marks.py``) and the QoS 2 packet ids that carry
   their message (``r.<packet id>``);
2. the stream messages;
3. every other key, with last the keys naming the member a shared group's QoS 2
   message was written for (``group_feed.group_index_key``);
4. the acknowledgements to JetStream of the shared groups' messages the commit wrote
   into members' sessions (``acknowledge_after_commit``).

Stream messages JetStream did not take go back to the router's queue (``fallback``);
commits are numbered (``batch``, ``stored``) so that the router puts a retained QoS 1/2
message in the bucket only after the commit that put it in the stream. This module
exists apart from ``session_store.py`` so that each stays readable: the store says
which key each broker call changes, this module when and in what order they are
written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping

from nats.js.kv import KeyValue

from mqttref.impl.cluster.bridge import NatsThread
from mqttref.impl.cluster.durable import StreamPublisher
from mqttref.impl.cluster.session_codec import SESSIONS_BUCKET, Value, b64, session_prefix
from mqttref.impl.cluster.stream_marks import advanced_mark
from mqttref.impl.store.base import Store
from mqttref.impl.store.datadir import StoreError
from mqttref.impl.store.memory import MemoryStore


class SessionCommits:
    """The recording and committing half of the session store: the base class of
    ``JetStreamSessionStore``, which sets ``local`` and ``retained_store``."""

    local: MemoryStore
    """The sessions held here, in memory (set by ``JetStreamSessionStore``)."""
    retained_store: Store
    """The node's store of retained messages (set by ``JetStreamSessionStore``)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.nats: NatsThread | None = None
        self.kv: KeyValue | None = None
        """Set by ``bind`` once the node is connected to NATS (``sessions.attach_sessions``):
        before, no session can exist here (the node does not listen yet)."""
        self.publisher: StreamPublisher | None = None
        """Puts QoS 1/2 messages into the stream at each commit (``durable.py``)."""
        self.timeout = timeout
        self._pending: dict[str, bytes | None] = {}
        """Key -> value to put (None: delete) at the next commit."""
        self._keys: dict[str, set[str]] = {}
        """The bucket keys of each persistent session held here (to delete them)."""
        self._muted: set[str] = set()
        self._later: dict[str, bytes | None] = {}
        """Live wills to write at the next commit that can (``live_will_set``)."""
        self.is_connected: Callable[[], bool] = lambda: self.nats is not None
        self.positions: Callable[[], Mapping[str, int]] = dict
        """The router's positions per subject (``routing.ClusterRouter.positions``)."""
        self._snapshot: dict[str, int] = {}
        """The positions as of the last commit that succeeded: all up to them is written."""
        self.origins: Callable[[], Mapping[str, int]] = dict
        """The router's origins per subject (``routing.ClusterRouter.origins``)."""
        self._origins_snapshot: dict[str, int] = {}
        self._marks: dict[str, dict[str, int]] = {}
        """Client id -> its mark as written (or loaded)."""
        self._subjects: dict[str, set[str]] = {}
        """Client id -> the subjects of its (non-shared) filters, for its mark."""
        self._changed: set[str] = set()
        self._publishes: list[tuple[str, bytes, str]] = []
        """QoS 1/2 messages for the stream, sent at the next commit (``publish_durable``)."""
        self._rel_waiting: tuple[str, int] | None = None
        self._first: dict[str, tuple[str, int]] = {}
        """Keys written before the commit's stream publishes: QoS 2 packet ids with their
        message (``publish_durable``), by key: (client id, packet id)."""
        self.sent: Callable[[], tuple[int, int]] = lambda: (0, 0)
        """This node's incarnation (as an integer) and its envelope sequence so far
        (``routing.ClusterRouter``): its messages up to it reached its own sessions."""
        self._sent_snapshot: tuple[int, int] = (0, 0)
        self.fallback: Callable[[list[tuple[str, bytes]]], None] = lambda _items: None
        """Where stream messages go when JetStream did not take them at a commit (the
        router's queue: sent later through core NATS, the stream still takes them)."""
        self._batches_taken = 0
        self._batches_open: set[int] = set()
        self._index: dict[str, bytes] = {}
        """Keys naming the member that a shared group's QoS 2 message was written for
        (``recorded``), written at the next commit after the members' keys."""
        self._acks: list[str] = []
        """Reply subjects of shared groups' JetStream messages to acknowledge once the
        next commit has stored its keys (``acknowledge_after_commit``)."""

    # Bookkeeping -----------------------------------------------------------------------

    def _persistent(self, client_id: str) -> bool:
        return client_id in self._keys and client_id not in self._muted

    def _put(self, client_id: str, suffix: str, value: Value) -> None:
        key = f"{session_prefix(client_id)}.{suffix}"
        self._keys[client_id].add(key)
        self._changed.add(client_id)
        self._pending[key] = json.dumps(value, separators=(",", ":")).encode()

    def _delete(self, client_id: str, suffix: str) -> None:
        key = f"{session_prefix(client_id)}.{suffix}"
        keys = self._keys.get(client_id)
        if keys is not None and key in keys:
            keys.discard(key)
            self._pending[key] = None
            self._changed.add(client_id)

    def connected(self) -> bool:
        """Whether the NATS connection is up (set by ``sessions.attach_sessions``)."""
        return self.is_connected()

    def _connected(self) -> tuple[NatsThread, KeyValue]:
        if self.nats is None or self.kv is None:
            raise StoreError(f"JetStream bucket {SESSIONS_BUCKET}: not connected to NATS")
        return self.nats, self.kv

    # Stream messages and acknowledgements ----------------------------------------------

    def publish_durable(self, subject: str, body: bytes, message_id: str,
                        origin: str | None = None) -> bool:
        """Take a QoS 1/2 message for the stream: the next commit, before the publisher's
        PUBACK or PUBREC, returns once JetStream stored it. False while NATS is away.

        The QoS 2 message of a persistent publisher's session is also kept in its
        packet id's key (``r.<packet id>``, written before the stream publish): should
        this node die between the two, the node that takes the session over sends it
        to the stream again under the same ``Nats-Msg-Id`` (JetStream keeps one), while
        the packet id answers the publisher's resent PUBLISH without routing it again
        [MQTT-4.3.3-9]: exactly once either way."""
        waiting, self._rel_waiting = self._rel_waiting, None
        if self.nats is None or self.publisher is None or not self.connected():
            return False
        self._publishes.append((subject, body, message_id))
        if waiting is not None and waiting[0] == origin and self._persistent(origin):
            client_id, packet_id = waiting
            self._put(client_id, f"r.{packet_id}", {"id": message_id, "s": subject,
                                                     "b": b64(body)})
            self._first[f"{session_prefix(client_id)}.r.{packet_id}"] = waiting
        return True

    @property
    def batch(self) -> int:
        """The number of the commit that carries a message ``publish_durable`` takes now."""
        return self._batches_taken + 1

    def stored(self, batch: int) -> bool:
        """Whether commit number ``batch`` is over: its stream messages are in JetStream
        (or, JetStream having failed them, in the router's queue, ``fallback``)."""
        return batch <= self._batches_taken and batch not in self._batches_open

    def acknowledge_after_commit(self, reply: str) -> None:
        """Acknowledge a shared group's message to JetStream (``group_feed.py``) once the
        next commit, which writes it into the member's session, has stored its keys:
        sent from the NATS thread right after, so that a node dying between the two
        (the message then reaches the group twice) is as unlikely as can be. A commit
        that fails sends none: JetStream gives those messages again."""
        self._acks.append(reply)

    # The commit ----------------------------------------------------------------------

    def commit(self) -> None:
        """Write every change since the last commit to the bucket, and wait for it.

        While NATS is away, live wills wait for the next commit after it is back; a
        persistent session's change cannot be made durable, so the commit fails
        (``StoreError``: the node stops, as a single broker whose disk fails)."""
        self.local.commit()
        self.retained_store.commit()
        self._mark_changed()
        publishes, self._publishes = self._publishes, []
        acks, self._acks = self._acks, []
        self._batches_taken += 1
        batch = self._batches_taken
        self._batches_open.add(batch)
        try:
            self._commit(publishes, acks)
        finally:
            self._batches_open.discard(batch)

    def _commit(self, publishes: list[tuple[str, bytes, str]], acks: list[str]) -> None:
        if not self._pending and not self._later and not publishes:
            self._snapshot = dict(self.positions())
            self._origins_snapshot = dict(self.origins())
            self._sent_snapshot = self.sent()
            if acks and self.nats is not None and self.connected():
                self.nats.submit(self._acknowledge(acks))  # nothing to write first
            return
        if not self._pending and not publishes and not self.connected():
            return  # only live wills: they wait for NATS
        nats, kv = self._connected()
        pending, self._pending = self._pending, {}
        later, self._later = self._later, {}
        first_keys, self._first = self._first, {}
        index, self._index = self._index, {}
        marks = {key: pending.pop(key) for key in
                 [k for k in pending if k.endswith(".mark") or k in first_keys]}
        try:
            failed = nats.call(self._write(kv, marks, later | pending, publishes, acks=acks,
                                           index=index), self.timeout)
        except Exception as exc:
            self._pending = marks | pending | self._pending  # kept: the next commit fails too
            if pending or marks or publishes:
                self.fallback([(subject, body) for subject, body, _id in publishes])
            if pending or marks:
                raise StoreError(f"JetStream bucket {SESSIONS_BUCKET}: cannot write "
                                 f"{len(pending)} session changes: {exc!r}") from exc
            self._later = later | self._later
            return
        if failed:
            self.fallback([(subject, body) for subject, body, _id in failed])
        self._later.update(dict.fromkeys(index))  # acknowledged: not needed past the next
        self._snapshot = dict(self.positions())
        self._origins_snapshot = dict(self.origins())
        self._sent_snapshot = self.sent()
        for key, (client_id, packet_id) in first_keys.items():
            if key in self._keys.get(client_id, ()) and not failed:
                # In the stream now: the key need not carry the message any more (a
                # resend after JetStream's duplicate window would be a second copy).
                self._put(client_id, f"r.{packet_id}", {})

    def _mark_changed(self) -> None:
        """Each persistent session changed since the last commit records its mark: the
        positions of its subjects as of the last commit (everything up to them that it
        takes is written by then), never going back; and this node's incarnation and
        envelope sequence as of then (``~n``, ``~q``: its own messages up to it reached
        the session when published, ``replay.py`` leaves them out)."""
        changed, self._changed = self._changed, set()
        for client_id in changed:
            self._write_mark(client_id, self._snapshot, self._sent_snapshot,
                             self._origins_snapshot)

    def _write_mark(self, client_id: str, positions: Mapping[str, int],
                    sent: tuple[int, int], origins: Mapping[str, int]) -> None:
        if not self._persistent(client_id):
            return
        old = self._marks.get(client_id, {})
        mark = advanced_mark(old, self._subjects.get(client_id, ()), positions, sent, origins)
        if mark != old:
            self._marks[client_id] = mark
            key = f"{session_prefix(client_id)}.mark"
            self._keys[client_id].add(key)
            self._pending[key] = json.dumps(mark, separators=(",", ":")).encode()

    def final_mark(self, client_id: str) -> None:
        """The session leaves this node (``ClusterSessions.release``), everything it took
        written: its mark as of now, for the next commit."""
        self._write_mark(client_id, self.positions(), self.sent(), self.origins())

    async def _write(self, kv: KeyValue, marks: dict[str, bytes | None],
                     pending: dict[str, bytes | None],
                     publishes: list[tuple[str, bytes, str]], *,
                     acks: list[str] | None = None, index: dict[str, bytes] | None = None,
                     ) -> list[tuple[str, bytes, str]]:
        """On the NATS thread: the stream messages and the marks first, then every other
        change at once; done when JetStream acknowledged all. A mark goes before the keys
        it covers are deleted (a node dying in between leaves nothing replayed twice).
        Returns the stream messages JetStream did not take."""
        publisher = self.publisher
        await asyncio.gather(*(
            kv.put(key, value) if value is not None else kv.delete(key)
            for key, value in marks.items()))
        failed: list[tuple[str, bytes, str]] = []
        if publisher is not None and publishes:
            try:
                indexes = await publisher.publish_all(publishes, self.timeout)
                failed = [publishes[index] for index in indexes]
            except Exception:  # NATS lost: the router sends them when it is back
                failed = list(publishes)
        # The keys naming a group message's member go last, in the same round trip: each
        # put is in nats-py's buffer before the next starts (one socket write, read by
        # nats-server in order), so a node dying then leaves neither a member's message
        # unnamed (another member would get it) nor a name without the message (nobody
        # would); a round trip of their own left the first open (seen: 4 to 10 QoS 2
        # messages to two members in 3 of 5 runs of test_shared_survives_node_death).
        await asyncio.gather(*(
            kv.put(key, value) if value is not None else kv.delete(key)
            for key, value in (pending | (index or {})).items()
        ))
        if acks:
            await self._acknowledge(acks)
        return failed

    async def _acknowledge(self, acks: list[str]) -> None:
        """On the NATS thread: acknowledge shared groups' messages (their reply subjects;
        any connection may) once what the commit wrote of them is stored."""
        publisher = self.publisher
        if publisher is None:
            return  # the node left the cluster: JetStream gives them again
        with contextlib.suppress(Exception):  # NATS lost: likewise
            for reply in acks:
                await publisher.nc.publish(reply, b"+ACK")
