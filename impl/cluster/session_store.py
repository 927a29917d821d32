"""Persistent sessions in a JetStream key-value bucket, behind the broker's ``Store``.

Theory of operation. A cluster node keeps what its own sessions hold in memory,
as a single broker does (a ``MemoryStore`` here), and every change to a
persistent session is also written to the bucket ``mqttref_sessions``, one key
per thing (the layout and the values: ``session_codec.py``), so that another node
can load the session when its client comes back there (``fetch``).

A queued or in-flight message that came from the stream carries its stream
sequence (``js``), so that a replay does not add it a second time; each session's
mark says how far it took the stream (``stream_marks.py``, ``durable.py``,
``replay.py``).

Calls only record; ``commit`` writes what changed since the last commit, the last value
per key, and returns once JetStream has stored all of it: the broker commits before
PUBACK, PUBREC, SUBACK and CONNACK leave, so what a client was told is kept
survives the node. A store that cannot write raises ``StoreError``, and the node
stops as a single broker does when its disk fails.

A session this node let another node take (``release``) is muted: the table's
clean-up of it here (unsubscribing, discarding) changes nothing in the bucket,
which now belongs to the new owner.

Retained messages are not sessions: those calls go to ``retained``, the store the
node keeps them in. The codec's and the marks' public names are importable from here
too, as they were before they moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Mapping

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from mqttref.impl.cluster.bridge import NatsThread
from mqttref.impl.cluster.durable import StreamPublisher
from mqttref.impl.cluster.group_feed import GivenTags, group_index_key
from mqttref.impl.cluster.session_bucket import Fetched, key_value, read_session, session_keys
from mqttref.impl.cluster.session_codec import (
    SESSIONS_BUCKET,
    Clocks,
    Value,
    b64,
    decode_live_will,
    decode_message,
    decode_outbound,
    encode_live_will,
    encode_message,
    encode_outbound,
    options_value,
    record_from_entries,
    session_prefix,
    unb64,
)
from mqttref.impl.cluster.stream_marks import (
    MARK_NODE,
    MARK_SENT,
    Tag,
    advanced_mark,
    reached,
    stream_state,
    subjects_of_filters,
)
from mqttref.impl.codec.packets import QoS, Will
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage
from mqttref.impl.store.base import (
    NO_OPTIONS,
    SessionExpiry,
    SessionRecord,
    Store,
    StoredWill,
    SubscriptionOptions,
)
from mqttref.impl.store.datadir import StoreError
from mqttref.impl.store.memory import MemoryStore

__all__ = [
    "MARK_NODE",
    "MARK_SENT",
    "SESSIONS_BUCKET",
    "Clocks",
    "Fetched",
    "JetStreamSessionStore",
    "Tag",
    "decode_live_will",
    "decode_message",
    "decode_outbound",
    "encode_message",
    "encode_outbound",
    "reached",
    "record_from_entries",
    "session_keys",
    "session_prefix",
    "stream_state",
    "subjects_of_filters",
]


class JetStreamSessionStore(Store):
    """Sessions in memory and in the ``mqttref_sessions`` bucket; retained messages in
    ``retained`` (the node's own store for them)."""

    def __init__(self, retained: Store, *, timeout: float = 5.0,
                 clocks: Clocks | None = None) -> None:
        self.retained_store = retained
        self.local = MemoryStore()
        self.nats: NatsThread | None = None
        self.kv: KeyValue | None = None
        self.js: JetStreamContext | None = None
        self.publisher: StreamPublisher | None = None
        """Puts QoS 1/2 messages into the stream at each commit (``durable.py``)."""
        """Set by ``bind`` once the node is connected to NATS (``sessions.attach_sessions``):
        before, no session can exist here (the node does not listen yet)."""
        self.timeout = timeout
        self.clocks = clocks or Clocks()
        self._pending: dict[str, bytes | None] = {}
        """Key -> value to put (None: delete) at the next commit."""
        self._keys: dict[str, set[str]] = {}
        """The bucket keys of each persistent session held here (to delete them)."""
        self._muted: set[str] = set()
        self._later: dict[str, bytes | None] = {}
        """Live wills to write at the next commit that can (``live_will_set``)."""
        self.is_connected: Callable[[], bool] = lambda: self.nats is not None
        self._live_wills: set[str] = set()
        """Client ids whose connection here left a will in the bucket."""
        self._sent_order = 0
        self.arriving: int | None = None
        """The stream sequence of the message the router hands to the sessions now."""
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
        self._rel_waiting: tuple[str, int] | None = None
        self._first: dict[str, tuple[str, int]] = {}
        """Keys written before the commit's stream publishes: QoS 2 packet ids with their
        message (``publish_durable``), by key: (client id, packet id)."""
        """QoS 1/2 messages for the stream, sent at the next commit (``publish_durable``)."""
        self._js_queue: dict[tuple[str, int], Tag] = {}
        self._js_inflight: dict[tuple[str, int], Tag] = {}
        self._moving: dict[str, Tag] = {}
        self.local_id: str | None = None
        """The envelope id (``durable.msg_id``) of a QoS 1/2 message this node publishes,
        while the router hands it to its own sessions (before the stream numbers it)."""
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
        self._group_given = GivenTags()
        """Shared groups' messages the sessions loaded here held (``given``)."""

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

    def _index_group(self, client_id: str, tag: Tag | None, qos: int) -> None:
        if isinstance(tag, str) and tag.startswith("g:") and qos == 2:
            self._index[group_index_key(tag)] = client_id.encode("utf-8", "surrogatepass")

    async def recorded(self, tag: str) -> bool:
        """Whether a shared group's QoS 2 message (``tag``) was written into some member's
        session on any node (its index key, ``_write``): JetStream gives it again because
        its node died before acknowledging it, and the member it was written for is to
        complete it [MQTT-4.8.2-4], no other member may get it [MQTT-4.8.2-5]. The key
        is deleted at the next commit. False when unsure (NATS away): the message then
        goes to a member again."""
        nats, kv = self.nats, self.kv
        if nats is None or kv is None:
            return False
        key = group_index_key(tag)
        try:
            found = await nats.call_async(key_value(kv, key)) is not None
        except Exception:
            return False
        if found:
            self._later[key] = None
        return found

    def given(self, tag: str) -> bool:
        """Whether a session loaded here held a shared group's message recorded with
        ``tag`` (``group_feed.group_tag``) queued or in flight: its last node gave it to
        the group and died before JetStream heard of it, so JetStream gives it again
        (``routing.ClusterRouter._group_stored``), maybe after the session here has
        completed it and forgotten it."""
        return self._group_given.has(tag)

    def _tag(self, value: Value, tag: Tag | None) -> Value:
        if isinstance(tag, int):
            value["js"] = tag  # its stream sequence
        elif tag is not None:
            value["e"] = tag  # published here: its envelope id
        return value

    def _arriving_tag(self) -> Tag | None:
        return self.arriving if self.arriving is not None else self.local_id

    def bind(self, nats: NatsThread, kv: KeyValue, js: JetStreamContext,
             publisher: StreamPublisher | None = None) -> None:
        self.nats = nats
        self.kv = kv
        self.js = js
        self.publisher = publisher

    def unbind(self) -> None:
        """The node left the cluster: a later commit of session changes fails at once."""
        self.nats = None
        self.kv = None
        self.js = None
        self.publisher = None
        self.is_connected = lambda: False

    def _connected(self) -> tuple[NatsThread, KeyValue]:
        if self.nats is None or self.kv is None:
            raise StoreError(f"JetStream bucket {SESSIONS_BUCKET}: not connected to NATS")
        return self.nats, self.kv

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

    def mute(self, client_id: str) -> None:
        """Another node took this session: forget it here, and write nothing more of it."""
        self._muted.add(client_id)
        self._keys.pop(client_id, None)
        self._forget_stream_state(client_id)

    def _forget_stream_state(self, client_id: str) -> None:
        self._marks.pop(client_id, None)
        self._subjects.pop(client_id, None)
        self._moving.pop(client_id, None)
        for table in (self._js_queue, self._js_inflight):
            for key in [key for key in table if key[0] == client_id]:
                del table[key]

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

    def connected(self) -> bool:
        """Whether the NATS connection is up (set by ``sessions.attach_sessions``)."""
        return self.is_connected()

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

    def fetch(self, client_id: str) -> Fetched:
        """Load a session from the bucket (this node has just taken its client id) and
        hold it here from now on; with it, the will its client left on its last node."""
        nats, kv = self._connected()
        try:
            entries = nats.call(read_session(self.js, kv, session_prefix(client_id)),
                                 self.timeout)
        except Exception as exc:
            raise StoreError(f"JetStream bucket {SESSIONS_BUCKET}: cannot read session "
                             f"{client_id[:100]!r}: {exc!r}") from exc
        live_will = dict(entries).get(f"{session_prefix(client_id)}.lastwill")
        self._muted.discard(client_id)
        self.local.delete_session(client_id)
        record, will = record_from_entries(client_id, entries, self.clocks)
        if record is None:
            self._keys.pop(client_id, None)
            return Fetched(None, None, live_will)
        self._keys[client_id] = {key for key, _data in entries if not key.endswith(".lastwill")}
        mark, taken, since = stream_state(client_id, entries)
        for _key, data in entries:
            if _key.startswith(f"{session_prefix(client_id)}.r."):
                value = json.loads(data)
                if "b" in value:  # maybe not in the stream yet: again, same message id
                    self._publishes.append((value["s"], unb64(value["b"]), value["id"]))
        self._marks[client_id] = mark
        self._subjects[client_id] = subjects_of_filters(record.subscriptions)
        for (kind, number), sequence in taken.items():
            (self._js_queue if kind == "q" else self._js_inflight)[(client_id, number)] = sequence
        self._group_given.remember(taken.values())
        self.local.create_session(client_id)
        for topic_filter, qos in record.subscriptions.items():
            self.local.set_subscription(client_id, topic_filter, qos,
                                        record.options.get(topic_filter, NO_OPTIONS))
        for seq, message in record.queue:
            self.local.queue_append(client_id, seq, message)
        for stored in record.inflight:
            self.local.inflight_set(client_id, stored.packet_id, stored.state, stored.message)
        for key, data in entries:  # later sends here order after the loaded ones
            if key.startswith(f"{session_prefix(client_id)}.f."):
                self._sent_order = max(self._sent_order, int(json.loads(data)["order"]))
        for packet_id in record.awaiting_rel:
            self.local.awaiting_rel_add(client_id, packet_id)
        return Fetched(record, will, live_will, mark, frozenset(taken.values()), since)

    # Persistent sessions ---------------------------------------------------------------

    def session_ids(self) -> list[str]:
        """None at start-up: a node loads a session when it takes its client id."""
        return []

    def create_session(self, client_id: str) -> None:
        self.local.create_session(client_id)
        self._muted.discard(client_id)
        if client_id in self._keys:
            return
        self._keys[client_id] = set()
        self._put(client_id, "meta", {"disconnected_at": None, "expiry_interval": None})
        record = self.local.load_session(client_id)
        if record is not None:
            for topic_filter, qos in record.subscriptions.items():
                self._put(client_id, f"sub.{b64(topic_filter)}", options_value(
                    qos, record.options.get(topic_filter, NO_OPTIONS)))

    def load_session(self, client_id: str) -> SessionRecord | None:
        return self.local.load_session(client_id)

    def delete_session(self, client_id: str) -> None:
        self.local.delete_session(client_id)
        self._forget_stream_state(client_id)
        if client_id in self._muted:
            return
        for key in self._keys.pop(client_id, set()):
            self._pending[key] = None

    def session_expiry(self, client_id: str) -> SessionExpiry | None:
        return self.local.session_expiry(client_id)

    def session_disconnected(self, client_id: str, at: float,
                             expiry_interval: float | None = None) -> None:
        self.local.session_disconnected(client_id, at, expiry_interval)
        if self._persistent(client_id):
            self._put(client_id, "meta",
                      {"disconnected_at": at, "expiry_interval": expiry_interval})

    def session_connected(self, client_id: str) -> None:
        self.local.session_connected(client_id)
        if self._persistent(client_id):
            expiry = self.local.session_expiry(client_id)
            interval = expiry.expiry_interval if expiry is not None else None
            self._put(client_id, "meta", {"disconnected_at": None, "expiry_interval": interval})

    # Subscriptions ---------------------------------------------------------------------

    def set_subscription(self, client_id: str, topic_filter: str, qos: QoS,
                         options: SubscriptionOptions = NO_OPTIONS) -> None:
        self.local.set_subscription(client_id, topic_filter, qos, options)
        if self._persistent(client_id):
            self._subjects.setdefault(client_id, set()).update(
                subjects_of_filters((topic_filter,)))
            self._put(client_id, f"sub.{b64(topic_filter)}", options_value(qos, options))

    def delete_subscription(self, client_id: str, topic_filter: str) -> None:
        self.local.delete_subscription(client_id, topic_filter)
        if self._persistent(client_id):
            record = self.local.load_session(client_id)
            self._subjects[client_id] = subjects_of_filters(
                record.subscriptions if record is not None else ())
            self._delete(client_id, f"sub.{b64(topic_filter)}")

    def subscriptions(self) -> Iterable[tuple[str, str, QoS]]:
        """Those of the sessions held here (none at start-up)."""
        return self.local.subscriptions()

    # Queues and in-flight state --------------------------------------------------------

    def queue_append(self, client_id: str, seq: int, message: OutboundMessage) -> None:
        self.local.queue_append(client_id, seq, message)
        if self._persistent(client_id):
            sequence = self._arriving_tag()
            if sequence is not None:
                self._js_queue[(client_id, seq)] = sequence
            self._put(client_id, f"q.{seq}", self._tag(
                {"message": encode_outbound(message, self.clocks)}, sequence))
            self._index_group(client_id, sequence, message.qos)

    def queue_remove(self, client_id: str, seq: int) -> None:
        self.local.queue_remove(client_id, seq)
        sequence = self._js_queue.pop((client_id, seq), None)
        if sequence is not None:
            self._moving[client_id] = sequence  # into the in-flight window, next
        if self._persistent(client_id):
            self._delete(client_id, f"q.{seq}")

    def inflight_set(self, client_id: str, packet_id: int, state: OutboundState,
                     message: OutboundMessage) -> None:
        self.local.inflight_set(client_id, packet_id, state, message)
        if self._persistent(client_id):
            self._sent_order += 1
            key = (client_id, packet_id)
            sequence = self._js_inflight.get(key)
            if sequence is None:
                sequence = self._arriving_tag()
                fresh = sequence
                if sequence is None:
                    sequence = self._moving.pop(client_id, None)
                if sequence is not None:
                    self._js_inflight[key] = sequence
            else:
                fresh = None
            self._put(client_id, f"f.{packet_id}", self._tag({
                "state": state.name, "order": self._sent_order,
                "message": encode_outbound(message, self.clocks)}, sequence))
            self._index_group(client_id, fresh, message.qos)

    def inflight_remove(self, client_id: str, packet_id: int) -> None:
        self.local.inflight_remove(client_id, packet_id)
        self._js_inflight.pop((client_id, packet_id), None)
        if self._persistent(client_id):
            self._delete(client_id, f"f.{packet_id}")

    def awaiting_rel_add(self, client_id: str, packet_id: int) -> None:
        self.local.awaiting_rel_add(client_id, packet_id)
        self._rel_waiting = None
        if self._persistent(client_id):
            self._put(client_id, f"r.{packet_id}", {})
            self._rel_waiting = (client_id, packet_id)  # its message goes to the stream next

    def awaiting_rel_remove(self, client_id: str, packet_id: int) -> None:
        self.local.awaiting_rel_remove(client_id, packet_id)
        if self._persistent(client_id):
            self._delete(client_id, f"r.{packet_id}")

    # Wills -----------------------------------------------------------------------------

    def will_set(self, client_id: str, will: Message, due_at: float) -> None:
        self.local.will_set(client_id, will, due_at)
        if self._persistent(client_id):
            self._put(client_id, "will", {"due_at": self.clocks.to_wall(due_at),
                                          "message": encode_message(will, self.clocks)})

    def will_remove(self, client_id: str) -> None:
        self.local.will_remove(client_id)
        if self._persistent(client_id):
            self._delete(client_id, "will")

    def wills(self) -> Iterable[StoredWill]:
        """None at start-up (see ``session_ids``)."""
        return []

    def live_will_set(self, client_id: str, will: Will | None) -> None:
        """The will of the client now connected here (None: it has none, or its connection
        ended here), for the cluster to publish should this node die before the
        connection ends (``impl/cluster/wills.py``).

        Written at the next commit (before the CONNACK it goes with); while NATS is away
        it waits for the first commit after, rather than fail one: a will is lost only
        if the node also dies meanwhile."""
        key = f"{session_prefix(client_id)}.lastwill"
        if will is None:
            if client_id in self._live_wills:
                self._live_wills.discard(client_id)
                self._later[key] = None
            return
        self._live_wills.add(client_id)
        self._later[key] = encode_live_will(will)

    def forget_live_will(self, client_id: str) -> None:
        """Delete the will another node's connection left (this node took it over)."""
        self._later[f"{session_prefix(client_id)}.lastwill"] = None

    # Retained messages -----------------------------------------------------------------

    def set_retained(self, topic: str, message: Message | None) -> None:
        self.retained_store.set_retained(topic, message)

    def get_retained(self, topic: str) -> Message | None:
        return self.retained_store.get_retained(topic)

    def retained(self) -> Iterable[Message]:
        return self.retained_store.retained()

    def open(self) -> None:
        self.retained_store.open()

    def close(self) -> None:
        self.retained_store.close()
