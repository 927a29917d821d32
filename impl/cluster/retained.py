"""Retained messages in a JetStream key-value bucket, mirrored by every node.

Theory of operation. The bucket ``mqttref_retained`` holds the cluster's retained
messages, one key per topic name (the topic's subject, ``subjects.py``, which is a
valid key), history 1. A node that routes a retained message puts it there (an
empty one, which clears the topic [MQTT-3.3.1-10], deletes the key instead
[MQTT-3.3.1-11]); each node mirrors the whole bucket into its own registry, as the
topic servers' ``retained`` messages, through an ordered JetStream consumer. So a
new subscription on any node gets the matching retained messages from its own
registry, with no round trip [MQTT-3.3.1-6], and a clear on one node reaches all.

The mirror is the only writer of a topic server's retained message for what
came from elsewhere: a message forwarded with RETAIN 1 is delivered without
touching it (``deliver_keeping_retained``), so the bucket's order decides when two
nodes retain on one topic at once. The node's own retained messages are set in
its registry at once (as on a single node) and then put in the bucket.

Values are an 8-byte wall-clock time of the put (milliseconds) and the message's
envelope (``envelope.py``): a 5.0 Message Expiry Interval keeps running while the
message waits in the bucket, whichever node reads it later (3.3.2.3.3).

At start and each time NATS comes back, the mirror reads the whole bucket and
forgets the retained messages the bucket no longer has (cleared while the node
was away); ``$SYS`` topics are the node's own and are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.sys_topics import is_sys_topic
from mqttref.impl.cluster.envelope import EnvelopeError, open_envelope, seal
from mqttref.impl.cluster.node import ClusterNode
from mqttref.impl.cluster.subjects import SubjectError, subject_topic, topic_subject
from mqttref.impl.logtext import broker_log, clip
from mqttref.impl.message import Message

BUCKET = "mqttref_retained"
RETAINED_HEADER = 8
"""Bytes before the envelope in a value: the wall-clock time of the put."""
STREAM = f"KV_{BUCKET}"
SYNC_TIMEOUT = 10.0
"""Seconds a node waits for its copy of the bucket at start (and after NATS is back)."""
_KEYS = f"$KV.{BUCKET}."
_NO_NODE = bytes(8)
HOLD_LIMIT = 1.0
"""Seconds a bucket update waits at most for the live copy of its message (``_update``)."""


def _wall_ms() -> int:
    return int(time.time() * 1000)


class RetainedMirror:
    """The bucket of retained messages, and this node's copy of it in the registry."""

    def __init__(self, node: ClusterNode, registry: Registry) -> None:
        self.node = node
        self.registry = registry
        self._kv: KeyValue | None = None
        self._subscription: Subscription | None = None
        self.applied = 0
        """Updates from the bucket applied to the registry (for tests and status)."""
        self._syncing: set[str] | None = None
        """While a copy of the bucket runs: the topics it found a value for."""
        self._synced = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.follows: Callable[[str], bool] = lambda _topic: False
        """Whether a live copy of a message on the topic comes to this node (the router:
        it follows a subject that covers the topic's)."""
        self.seen: Callable[[bytes, int], bool] = lambda _incarnation, _sequence: True
        """Whether the router handed out the message of this envelope id already."""
        self._held: dict[tuple[bytes, int], tuple[str, Message, asyncio.TimerHandle]] = {}
        """Bucket updates waiting for their message's live copy, by envelope id."""

    @property
    def kv(self) -> KeyValue:
        assert self._kv is not None, "the mirror is not started"
        return self._kv

    async def start(self) -> None:
        """Open (or make) the bucket, copy it into the registry, then follow it."""
        try:  # one made beforehand (more replicas, limits) is used as it is
            self._kv = await self.node.js.key_value(BUCKET)
        except BucketNotFoundError:
            self._kv = await self.node.js.create_key_value(bucket=BUCKET, history=1)
        await self.resync()
        self.node.on_reconnected(self._resync_soon)

    async def _resync_soon(self) -> None:
        """NATS is back: copy the bucket again, apart from nats-py's reconnect path."""
        task = asyncio.get_running_loop().create_task(self.resync())
        self._tasks.add(task)
        task.add_done_callback(self._resynced)

    def _resynced(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            broker_log.error("cluster", "node %s: copying %s again failed", self.node.name,
                             BUCKET, exc_info=task.exception())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for _topic, _message, timer in self._held.values():
            timer.cancel()
        self._held.clear()
        subscription, self._subscription = self._subscription, None
        if subscription is not None and self.node.connected:
            try:
                await subscription.unsubscribe()
            except Exception as exc:  # leaving anyway
                broker_log.warning("cluster", "node %s: %s", self.node.name, exc)

    async def resync(self) -> None:
        """Copy the whole bucket into the registry and follow it from there; return once
        the copy is complete (or after ``SYNC_TIMEOUT``, logged), having forgotten the
        retained messages the bucket no longer has.

        With history 1 the bucket's stream holds one message per key (a value or a
        delete marker), so its message count is how many the consumer, made to start
        with the last message of each key, delivers first."""
        old, self._subscription = self._subscription, None
        if old is not None:
            with contextlib.suppress(Exception):  # a consumer of a NATS that went away
                await old.unsubscribe()
        expected = (await self.node.js.stream_info(STREAM)).state.messages
        self._syncing = set()
        self._synced = 0
        self._subscription = await self.node.js.subscribe(
            _KEYS + ">", stream=STREAM, cb=self._update, ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SYNC_TIMEOUT
        while self._synced < expected and loop.time() < deadline:
            await asyncio.sleep(0.005)
        present, self._syncing = self._syncing, None
        if self._synced < expected:
            broker_log.warning("cluster", "node %s: %d of %d retained messages copied from "
                               "%s in %.0f s; the rest follow as they come", self.node.name,
                               self._synced, expected, BUCKET, SYNC_TIMEOUT)
            return  # not known to be gone: keep what the node has
        for server in list(self.registry.topics.values()):
            topic = server.name
            if server.retained is not None and not is_sys_topic(topic) and (
                    topic not in present):
                self._apply(topic, None)

    async def put(self, message: Message, incarnation: bytes = _NO_NODE,
                  sequence: int = 0) -> None:
        """Make ``message`` the cluster's retained message of its topic, or clear it; its
        envelope id (``incarnation``, ``sequence``) names its live copy (``_update``)."""
        key = topic_subject(message.topic)
        if message.payload:
            now = asyncio.get_running_loop().time()
            value = _wall_ms().to_bytes(RETAINED_HEADER, "big") + seal(
                message, incarnation, sequence, now)
            await self.kv.put(key, value)
        else:
            await self.kv.delete(key)

    def deliver_keeping_retained(self, message: Message, now: float) -> None:
        """Deliver a forwarded RETAIN 1 message to local subscribers, leaving the local
        retained message as the bucket last said."""
        registry = self.registry
        server = registry.topics.get(message.topic)
        before = server.retained if server is not None else None
        registry.publish(message, now, groups=False)
        server = registry.topics.get(message.topic)
        if server is not None and server.retained is not before:
            server.retained = before
            registry.store.set_retained(server.name, before)
            if server.idle:
                registry.topics.remove(server.name)

    async def _update(self, msg: Msg) -> None:
        """One change of the bucket: a topic's retained message set or cleared."""
        if self._syncing is not None:
            self._synced += 1  # counted even if it is no retained message of ours
        try:
            topic = subject_topic(msg.subject[len(_KEYS):])
        except SubjectError as exc:
            broker_log.warning("cluster foreign", "node %s: not a topic key in %s: %s",
                               self.node.name, BUCKET, exc)
            return
        operation = msg.headers.get(KV_OP) if msg.headers else None
        message: Message | None = None
        name = (_NO_NODE, 0)
        if operation not in (KV_DEL, KV_PURGE):
            now = asyncio.get_running_loop().time()
            try:
                put_at = int.from_bytes(msg.data[:RETAINED_HEADER], "big")
                envelope = open_envelope(topic, msg.data[RETAINED_HEADER:], now)
            except EnvelopeError as exc:
                broker_log.warning("cluster foreign", "node %s: not a retained message at %s: "
                                   "%s", self.node.name, clip(topic), exc)
                return
            message = envelope.message
            name = (envelope.incarnation, envelope.sequence)
            if message.expires_at is not None:
                message.expires_at -= max(0, _wall_ms() - put_at) / 1000
            message.origin = None
        self._drop_held(topic)  # a later update of the topic decides
        if (message is not None and self._syncing is None and name[0] != _NO_NODE
                and name[0] != self.node.incarnation and self.follows(topic)
                and not self.seen(*name)):
            # Its live copy is on its way to this node's subscribers: a subscription made
            # before that copy is handed out gets it live, one made after gets this; set
            # now, a subscription made in between got both (one broker publishes a
            # message at one moment) [MQTT-3.3.1-6] [MQTT-3.3.1-9].
            timer = asyncio.get_running_loop().call_later(HOLD_LIMIT, self.arrived, *name)
            self._held[name] = (topic, message, timer)
            return
        self._apply(topic, message)
        self.applied += 1
        if self._syncing is not None and message is not None:
            self._syncing.add(topic)

    def arrived(self, incarnation: bytes, sequence: int) -> None:
        """The router handed out the live copy of this envelope id (or the wait for it
        is over): the bucket update that waited for it applies now."""
        held = self._held.pop((incarnation, sequence), None)
        if held is None:
            return
        topic, message, timer = held
        timer.cancel()
        self._apply(topic, message)
        self.applied += 1

    def _drop_held(self, topic: str) -> None:
        for name, (held_topic, _message, timer) in list(self._held.items()):
            if held_topic == topic:
                timer.cancel()
                del self._held[name]

    def _apply(self, topic: str, message: Message | None) -> None:
        registry = self.registry
        if message is None:
            server = registry.topics.get(topic)
            if server is None or server.retained is None:
                return
            server.set_retained(Message(topic, b"", retain=True))
            if server.idle:
                registry.topics.remove(topic)
            return
        registry.topic_server(topic).set_retained(message)
