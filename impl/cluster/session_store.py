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
per key (``session_commit.py``, the store's base class: the recording, the commit and
its order), and returns once JetStream has stored all of it: the broker commits before
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

import json
from collections.abc import Iterable

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
from mqttref.impl.cluster.session_commit import SessionCommits
from mqttref.impl.cluster.stream_marks import (
    MARK_NODE,
    MARK_SENT,
    Tag,
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


class JetStreamSessionStore(SessionCommits, Store):
    """Sessions in memory and in the ``mqttref_sessions`` bucket; retained messages in
    ``retained`` (the node's own store for them)."""

    def __init__(self, retained: Store, *, timeout: float = 5.0,
                 clocks: Clocks | None = None) -> None:
        self.retained_store = retained
        self.local = MemoryStore()
        super().__init__(timeout)
        self.js: JetStreamContext | None = None
        self.clocks = clocks or Clocks()
        self._live_wills: set[str] = set()
        """Client ids whose connection here left a will in the bucket."""
        self._sent_order = 0
        self.arriving: int | None = None
        """The stream sequence of the message the router hands to the sessions now."""
        self._js_queue: dict[tuple[str, int], Tag] = {}
        self._js_inflight: dict[tuple[str, int], Tag] = {}
        self._moving: dict[str, Tag] = {}
        self.local_id: str | None = None
        """The envelope id (``durable.msg_id``) of a QoS 1/2 message this node publishes,
        while the router hands it to its own sessions (before the stream numbers it)."""
        self._group_given = GivenTags()
        """Shared groups' messages the sessions loaded here held (``given``)."""

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
