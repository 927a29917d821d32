"""The cluster's router: the node's registry for its own sessions, NATS for the others.

Theory of operation. ``ClusterRouter`` is one more ``RouterPort`` (``ports.py``):
what a connection's core asks of the router, it answers with the node's own
``Registry`` first, so a local subscriber gets a local message exactly as on a
single node, and then it forwards:

* ``publish``: the message goes to the local registry, then into the node's
  outgoing queue as an envelope (``envelope.py``) on the subject of its topic
  (``subjects.py``, under ``mqttref.msg``). One task sends the queue in order, so
  the messages of one publisher keep their order per topic across nodes (NATS
  keeps the order of one connection's messages to each subscriber). A retained
  message (or its clear) also goes to the key-value bucket (``retained.py``).
  ``$SYS/...`` topics are the node's own status and are not forwarded.
* ``on_subscribe``/``on_unsubscribe``: answered by the registry, then the node's
  NATS subscriptions follow its filters (``interest.py``), so NATS carries to
  this node only what some local session wants. Sessions that end or come back
  without a SUBSCRIBE (session table, restore) are caught by a sweep every
  ``SWEEP_INTERVAL`` seconds and by ``sync_interest``.

Shared subscription groups (4.8.2) are served apart, cluster-wide: every delivery
above leaves them out (``Registry.publish(groups=False)``); a node with members of a
group holds a NATS queue subscription for it (``interest.queue_of``) on the node's
second connection, NATS gives each message to one node of the queue group, even the
publisher's own, and ``_shared_arrived`` to one member there. That is QoS 0's road;
a QoS 1/2 message comes from the group's durable JetStream consumer instead
(``group_feed.py``), acknowledged to JetStream once the member's session has it
written, so the death of the node that took it does not lose it for the group.

A message from another node is delivered through the registry alone (never
forwarded again), once even when several of the node's NATS subscriptions match
it: its (incarnation, sequence) is remembered in a window (``duplicates.Seen``). Its
RETAIN flag reaches the subscribers that asked for Retain As Published, but the local
copy of the retained message is the key-value bucket's, not the forwarded one's.

While NATS is away, what is meant for other nodes waits in the queue, up to
``max_pending`` messages; beyond that it is dropped for other nodes (logged and
counted in ``dropped``) while local subscribers still get it (docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import MaxPayloadError
from nats.js.api import ConsumerConfig, DeliverPolicy

from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.session import Session
from mqttref.impl.broker.sys_topics import SYS_ROOT, is_sys_topic
from mqttref.impl.cluster import durable
from mqttref.impl.cluster.duplicates import Seen, given_again
from mqttref.impl.cluster.durable import DURABLE, STREAM
from mqttref.impl.cluster.durable_sink import DurableSink
from mqttref.impl.cluster.envelope import EnvelopeError, open_envelope, seal
from mqttref.impl.cluster.group_feed import RETRY_DELAY, follow_group, group_tag
from mqttref.impl.cluster.interest import Interest, Want
from mqttref.impl.cluster.node import SUBJECT_ROOT, ClusterNode
from mqttref.impl.cluster.retained import RETAINED_HEADER, RetainedMirror
from mqttref.impl.cluster.subjects import (
    SubjectError,
    subject_covers,
    subject_topic,
    topic_subject,
)
from mqttref.impl.codec.packets import Subscribe, Unsubscribe
from mqttref.impl.logtext import broker_log, clip
from mqttref.impl.message import Message

MESSAGES = f"{SUBJECT_ROOT}.msg."
"""The prefix of the subjects routed messages travel on."""
SWEEP_INTERVAL = 1.0
SEND_ATTEMPTS = 40
"""Tries to send one thing while NATS is connected before it is given up (logged):
JetStream answers a few seconds late after nats-server restarts."""
RETRY_WAIT = 0.25
STORED_WAIT = 10.0
"""Seconds a retained QoS 1/2 message waits at most for the commit that puts it in the
stream before it goes to the bucket anyway (a commit gives up after 5 s)."""
MAX_SUBJECT = 4000
"""Bytes of a subject at most: nats-server's protocol line is 4096 bytes by default
(``max_control_line``), and a longer one costs the node its connection."""


def topic_of(subject: str) -> str:
    """The topic name of a routed message's subject (core or stream)."""
    prefix = DURABLE if subject.startswith(DURABLE) else MESSAGES
    return subject_topic(subject[len(prefix):])


@attrs.frozen
class _Publish:
    subject: str
    body: bytes


@attrs.frozen
class _Subscription:
    want: Want
    wanted: bool


@attrs.frozen
class _Retain:
    message: Message
    batch: int | None = None
    """The store commit that puts the message in the stream (``DurableSink.batch``): the
    bucket gets it only after, see ``ClusterRouter.publish``."""
    sequence: int = 0
    """Its envelope sequence: the bucket's value names its live copy (``retained.py``)."""


_Work = _Publish | _Subscription | _Retain


class ClusterRouter:
    """A ``RouterPort`` over the local registry and NATS."""

    def __init__(self, node: ClusterNode, registry: Registry,
                 held_filters: Callable[[], Iterable[str]], retained: RetainedMirror) -> None:
        self.node = node
        self.registry = registry
        self._held_filters = held_filters
        self.retained = retained
        self.interest = Interest(shared_subscriptions=registry.config.shared_subscriptions)
        self.seen = Seen()
        retained.follows = self.follows
        retained.seen = self.seen.has
        self._sequence = 0
        self._queue: deque[_Work] = deque()
        self._pending_messages = 0
        self._wake = asyncio.Event()
        self._subscriptions: dict[Want, Subscription] = {}
        self._durables: dict[Want, Any] = {}
        """The stream side of each want: an ordered JetStream consumer (a queue
        subscription on the ``DURABLE`` subject for a shared group)."""
        self.positions: dict[str, int] = {}
        """Subject (without prefix) -> the last stream sequence handed to the sessions
        here through it (``durable.py``); a message at or below it is not handed again."""
        self.origins: dict[str, int] = {}
        """Subject (without prefix) -> its position when its consumer started: the
        consumer hands every message above it (``session_store.reached``)."""
        self.sink: DurableSink | None = None
        """The session store, once sessions are attached (``sessions.attach_sessions``)."""
        self.commit_soon: Callable[[], None] = lambda: None
        """Ask for a store commit at the loop's next turn (``wiring.py``: the outbox's):
        a will of a dropped connection comes with no acknowledgement to commit it."""
        self.group_seen = Seen()
        """(group, incarnation, sequence) of the group messages handed out here: one that
        JetStream gives again to this node is acknowledged, not handed out twice."""
        self._tasks: list[asyncio.Task[None]] = []
        self.forwarded = 0
        """Messages sent to NATS for other nodes."""
        self.received = 0
        """Messages from other nodes delivered here (duplicates not counted)."""
        self.unroutable = 0
        """Messages delivered on this node only, too large for NATS (``MAX_SUBJECT``,
        the server's ``max_payload``)."""
        self.dropped = 0
        """Messages not forwarded because the queue was full while NATS was away."""

    def sent(self) -> tuple[int, int]:
        """This node's incarnation as an integer, and its envelope sequence so far."""
        return int.from_bytes(self.node.incarnation, "big"), self._sequence

    # RouterPort ---------------------------------------------------------------------

    def publish(self, message: Message, now: float) -> int:
        """Deliver locally, then forward to the nodes that want it; the local count, at
        least 1 once the message goes to other nodes.

        This node cannot know whether another node has a matching subscriber, and the
        cluster is one Server: it MAY answer 0x10 "No matching subscribers" only when it
        knows there are none (3.4.2.1, 3.5.2.1), so a forwarded message counts as
        matched and gets 0x00 (the 5.0 exploration of ``mqttref check`` caught 0x10
        for a topic subscribed on another node)."""
        topic = message.topic
        registry = self.registry
        if topic.startswith(SYS_ROOT) and is_sys_topic(topic):
            return registry.publish(message, now)  # the node's own status, not the cluster's
        self._sequence += 1  # its name in the cluster (with the incarnation)
        sink = self.sink
        if sink is not None and message.qos:  # recorded with it: ``replay.py`` skips it
            sink.local_id = durable.msg_id(self.node.incarnation, self._sequence)
        try:
            matched = registry.publish(message, now, groups=False)
        finally:
            if sink is not None:
                sink.local_id = None
        shared = registry.shared
        subject = MESSAGES + topic_subject(topic)
        if len(subject) > MAX_SUBJECT:
            self.unroutable += 1
            broker_log.warning("cluster unroutable", "node %s: the subject of %s is too long "
                               "for NATS (%d of %d bytes): delivered on this node only",
                               self.node.name, clip(topic), len(subject), MAX_SUBJECT)
            return matched + (shared.publish(message, now) if shared else 0)
        if shared:  # counted here, served through NATS queue groups (``_shared_arrived``)
            matched += len(shared.index.match(topic))
        body = seal(message, self.node.incarnation, self._sequence, now)
        if message.qos:
            subject = DURABLE + subject[len(MESSAGES):]
        if len(body) + RETAINED_HEADER > self.node.max_payload:
            self.unroutable += 1
            broker_log.warning("cluster unroutable", "node %s: a message on %s is too large "
                               "for NATS (%d bytes, max_payload %d): delivered on this node "
                               "only", self.node.name, clip(topic), len(body),
                               self.node.max_payload)
            return matched + (shared.publish(message, now) if shared else 0)
        if self._pending_messages >= self.node.settings.max_pending:
            self.dropped += 1
            broker_log.warning("cluster queue full", "node %s: %d messages wait for NATS; "
                               "one on %s not forwarded to other nodes", self.node.name,
                               self._pending_messages, clip(topic))
            if message.retain:
                self._queue.append(_Retain(message))  # state: kept even when the queue is full
            if shared:
                shared.publish(message, now)
            self._wake.set()
            return matched  # it reaches no other node: this node's count is the cluster's
        sink = self.sink
        batch: int | None = None
        if message.qos and sink is not None and not self._pending_messages:
            batch = sink.batch
            if not sink.publish_durable(subject, body, durable.msg_id(
                    self.node.incarnation, self._sequence) if message.qos == 2 else "",
                    message.origin):
                batch = None
        if batch is None:  # QoS 0, or NATS away: core NATS (a QoS 1/2 one still reaches the stream)
            self._queue.append(_Publish(subject, body))
            self._pending_messages += 1
        else:  # in JetStream before the PUBACK or PUBREC (the store's commit), and soon
            # without one: a will of a dropped connection has no acknowledgement whose
            # commit would carry it (it waited for the broker's tick, up to a second).
            self.commit_soon()
        if message.retain:
            # The live copy first, the retained one after: a subscription on another node
            # must not get the retained copy from the bucket and then the live one from
            # the stream (one PUBLISH per subscription, as on one broker).
            self._queue.append(_Retain(message, batch, self._sequence))
        self._wake.set()
        return max(matched, 1)  # other nodes may have subscribers: never "none"

    def on_subscribe(self, session: Session, packet: Subscribe, now: float) -> None:
        before = set(session.subscriptions)
        self.registry.on_subscribe(session, packet, now)
        for topic_filter in session.subscriptions.keys() - before:
            for want in self.interest.add(topic_filter):
                self._subscription(want, wanted=True)

    def on_unsubscribe(self, session: Session, packet: Unsubscribe, now: float) -> None:
        before = set(session.subscriptions)
        self.registry.on_unsubscribe(session, packet, now)
        for topic_filter in before - session.subscriptions.keys():
            for want in self.interest.remove(topic_filter):
                self._subscription(want, wanted=False)

    def requeue(self, items: list[tuple[str, bytes]]) -> None:
        """Stream messages JetStream did not take at a commit (NATS lost meanwhile): sent
        through core NATS once it is back, where the stream still takes them."""
        for subject, body in items:
            self._queue.append(_Publish(subject, body))
            self._pending_messages += 1
        self._wake.set()

    # Interest -----------------------------------------------------------------------

    def sync_interest(self) -> None:
        """Make the NATS subscriptions follow every local session's filters now."""
        changes = self.interest.reconcile(self._held_filters())
        for want in changes.unsubscribe:
            self._subscription(want, wanted=False)
        for want in changes.subscribe:
            self._subscription(want, wanted=True)

    def _subscription(self, want: Want, *, wanted: bool) -> None:
        subject, queue = want
        if len(MESSAGES) + len(subject) > MAX_SUBJECT:
            if wanted:
                broker_log.warning("cluster unroutable", "node %s: a filter's subject is too "
                                   "long for NATS (%d bytes): it gets messages of this node "
                                   "only", self.node.name, len(subject))
            return
        self._queue.append(_Subscription((MESSAGES + subject, queue), wanted))
        self._wake.set()

    def follows(self, topic: str) -> bool:
        """Whether this node is subscribed in NATS to a subject that carries ``topic``."""
        try:
            subject = topic_subject(topic)
        except SubjectError:
            return False
        return any(subject_covers(followed[len(MESSAGES):], subject)
                   for followed, queue in self._subscriptions if not queue)

    @property
    def nats_subjects(self) -> tuple[str, ...]:
        """The subjects this node is subscribed to in NATS now, without a queue (sorted)."""
        return tuple(sorted(subject for subject, queue in self._subscriptions if not queue))

    # Lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start sending the queue and sweeping the interest (on the running loop)."""
        self.sync_interest()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send()), loop.create_task(self._sweep())]

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until the queue is sent and NATS has it (for an orderly stop)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queue and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self.node.connected:
            await self.node.nc.flush(timeout=max(1, round(deadline - loop.time())))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # Sending ------------------------------------------------------------------------

    async def _send(self) -> None:
        """Send the queue in order; while NATS is away, wait with it."""
        queue = self._queue
        failures = 0
        while True:
            if not queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.node.wait_settled()
            work = queue[0]
            if isinstance(work, _Retain) and work.batch is not None:
                await self._wait_stored(work.batch)
            try:
                await self._do(work)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if isinstance(exc, MaxPayloadError):  # never fits: trying again stalls all
                    failures = SEND_ATTEMPTS
                if self.node.connected and failures >= SEND_ATTEMPTS:
                    broker_log.error("cluster send", "node %s: could not send %s to NATS: %s",
                                     self.node.name, type(work).__name__, exc)
                else:  # NATS lost meanwhile, or JetStream not ready yet after a restart
                    await asyncio.sleep(RETRY_WAIT)
                    continue
            failures = 0
            queue.popleft()
            if isinstance(work, _Publish):
                self._pending_messages -= 1

    async def _wait_stored(self, batch: int) -> None:
        """Until the store's commit ``batch`` is over (bounded: a store that stopped
        committing belongs to a node that is stopping)."""
        sink = self.sink
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STORED_WAIT
        while sink is not None and not sink.stored(batch) and loop.time() < deadline:
            await asyncio.sleep(0.002)

    async def _do(self, work: _Work) -> None:
        if isinstance(work, _Publish):
            await self.node.nc.publish(work.subject, work.body)
            self.forwarded += 1
        elif isinstance(work, _Retain):
            await self.retained.put(work.message, self.node.incarnation, work.sequence)
        elif work.wanted:
            # The stream side first: once nats-server shows the core subscription (what
            # tests and operators look at), QoS 1/2 messages reach this node too.
            if work.want not in self._durables:
                await self._follow_stream(work.want)
            if work.want not in self._subscriptions:
                subject, queue = work.want
                if queue:
                    group = self.interest.groups[queue]
                    self._subscriptions[work.want] = await self.node.shared_nc.subscribe(
                        subject, queue=queue, cb=functools.partial(self._shared_arrived, group))
                else:
                    self._subscriptions[work.want] = await self.node.nc.subscribe(
                        subject, cb=self._arrived)
        else:
            subscription = self._subscriptions.pop(work.want, None)
            if subscription is not None:
                await subscription.unsubscribe()
            stream_side = self._durables.pop(work.want, None)
            if not work.want[1]:
                self.positions.pop(work.want[0][len(MESSAGES):], None)
                self.origins.pop(work.want[0][len(MESSAGES):], None)
            if stream_side is not None:
                await stream_side.unsubscribe()

    async def _follow_stream(self, want: Want) -> None:
        """The stream side of a want: QoS 1/2 messages come from JetStream, in stream
        order, each with its stream sequence, from just after this node's position on the
        subject (the stream's end when it has none: a replay may have set one)."""
        subject, queue = want
        bare = subject[len(MESSAGES):]
        if queue:  # the group's durable consumer, whose messages a node's death cannot lose
            group = self.interest.groups[queue]
            self._durables[want] = await follow_group(
                self.node.shared_nc.jetstream(), queue, bare,
                functools.partial(self._group_stored, group, queue))
            return
        if bare not in self.positions:
            last = await durable.last_sequence(self.node.js)
            self.positions.setdefault(bare, last)  # a replay meanwhile may have set it
        start = self.positions[bare] + 1
        self.origins[bare] = start - 1
        self._durables[want] = await self.node.js.subscribe(
            DURABLE + bare, stream=STREAM, cb=functools.partial(self._durable_arrived, bare),
            ordered_consumer=True, idle_heartbeat=2.0,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                  opt_start_seq=start))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                self.sync_interest()
            except Exception:
                broker_log.error("cluster sweep", "node %s: the interest sweep failed",
                                 self.node.name, exc_info=True)

    # Receiving ----------------------------------------------------------------------

    async def _arrived(self, msg: Msg) -> None:
        """A message from another node through core NATS (QoS 0): deliver it here once."""
        self._forwarded_arrived(msg.subject, msg.data, None)

    async def _durable_arrived(self, bare: str, msg: Msg) -> None:
        """A QoS 1/2 message from the stream, on the subject ``bare`` of this node's
        interest: hand it to the sessions here once, and move the subject's position."""
        tokens = msg.reply.split(".")  # $JS.ACK.<stream>.<consumer>.<n>.<stream seq>...
        try:
            sequence = int(tokens[5]) if len(tokens) == 9 else int(
                msg.metadata.sequence.stream)  # the longer form (domain, account hash)
        except Exception:  # not a stream message (a status the client passed on)
            return
        self.take_stored(bare, msg.subject, msg.data, sequence)

    def take_stored(self, bare: str, subject: str, data: bytes, sequence: int) -> None:
        """A stream message on ``bare``, live or read by a catch-up (``replay.py``)."""
        if sequence <= self.positions.get(bare, 0):
            return  # handed already (a replay read it first)
        self.positions[bare] = sequence
        self._forwarded_arrived(subject, data, sequence)

    def _forwarded_arrived(self, subject: str, data: bytes, sequence: int | None) -> None:
        now = asyncio.get_running_loop().time()
        try:
            topic = topic_of(subject)
            envelope = open_envelope(topic, data, now)
        except (SubjectError, EnvelopeError) as exc:
            broker_log.warning("cluster foreign", "node %s: not an mqttref message on %s: %s",
                               self.node.name, clip(subject), exc)
            return
        if envelope.incarnation == self.node.incarnation:
            return  # our own (delivered here when published)
        if not self.seen.first_time(envelope.incarnation, envelope.sequence):
            return
        self.received += 1
        message = envelope.message
        sink = self.sink
        if sink is not None:
            sink.arriving = sequence
        try:
            if message.retain:
                self.retained.deliver_keeping_retained(message, now)
                self.retained.arrived(envelope.incarnation, envelope.sequence)
            else:
                self.registry.publish(message, now, groups=False)
        except Exception:
            broker_log.error("cluster deliver", "node %s: delivering a message on %s failed",
                             self.node.name, clip(topic), exc_info=True)
        finally:
            if sink is not None:
                sink.arriving = None

    async def _shared_arrived(self, key: str, msg: Msg) -> None:
        """A message NATS gave this node for one shared subscription group (its queue
        group): one member here gets it (4.8.2), whichever node published it."""
        now = asyncio.get_running_loop().time()
        try:
            topic = topic_of(msg.subject)
            message = open_envelope(topic, msg.data, now).message
        except (SubjectError, EnvelopeError) as exc:
            broker_log.warning("cluster foreign", "node %s: not an mqttref message on %s: %s",
                               self.node.name, clip(msg.subject), exc)
            return
        shared = self.registry.shared
        group = shared.groups.get(key)
        member = group.pick() if group is not None else None
        if group is None or member is None:
            broker_log.warning("cluster shared", "node %s: a message on %s for a shared "
                               "group this node no longer has members of", self.node.name,
                               clip(topic))
            return
        shared.send(group, member, message, now)

    async def _group_stored(self, key: str, queue: str, msg: Msg) -> None:
        """A QoS 1/2 message JetStream gave this node for one shared group (its durable
        consumer's deliver group): one member here gets it (4.8.2), and JetStream hears
        of it once the commit that wrote it into the member's session is over; with no
        member here any more, JetStream gives it to another node at once."""
        now = asyncio.get_running_loop().time()
        try:
            topic = topic_of(msg.subject)
            envelope = open_envelope(topic, msg.data, now)
        except (SubjectError, EnvelopeError) as exc:
            broker_log.warning("cluster foreign", "node %s: not an mqttref message on %s: %s",
                               self.node.name, clip(msg.subject), exc)
            await _acknowledge(msg)
            return
        name = envelope.incarnation + key.encode("utf-8", "surrogatepass")
        tag = group_tag(queue, envelope.incarnation, envelope.sequence)
        shared = self.registry.shared
        group = shared.groups.get(key)
        sink = self.sink
        if self.group_seen.has(name, envelope.sequence) or (
                sink is not None and given_again(msg) and sink.given(tag)):
            # Handed out here already, or written into a member's session by a node that
            # died before acknowledging it (the session resumed here): not a second time.
            await _acknowledge(msg)
            return
        if (sink is not None and envelope.message.qos == 2 and given_again(msg)
                and await sink.recorded(tag)):
            # Written for a member on a node that died before acknowledging it: that
            # member completes it [MQTT-4.8.2-4], no other one gets it [MQTT-4.8.2-5].
            await _acknowledge(msg)
            return
        member = group.pick() if group is not None else None
        if group is None or member is None:
            with contextlib.suppress(Exception):
                await msg.nak(delay=RETRY_DELAY)
            return
        self.group_seen.first_time(name, envelope.sequence)
        if sink is not None:
            sink.local_id = tag  # recorded with it (``given``, the key naming the member)
        try:
            shared.send(group, member, envelope.message, now)
        finally:
            if sink is not None:
                sink.local_id = None
        if sink is None:
            await _acknowledge(msg)
        else:  # written into the member's session first (``group_feed.py``)
            sink.acknowledge_after_commit(msg.reply)
            self.commit_soon()


async def _acknowledge(msg: Msg) -> None:
    with contextlib.suppress(Exception):  # NATS lost: JetStream gives it again
        await msg.ack()
