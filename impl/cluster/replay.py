"""A persistent session taken over from another node gets what that node never wrote.

Theory of operation (``durable.py`` for the stream and the marks). When a node loads
a persistent session that another node held (its client reconnected here, or its
node died and this one adopted it), the session's keys hold what that node wrote:
its queue, its in-flight messages, and its mark, per subject of its filters, up to
which stream sequence it had taken its QoS 1/2 messages. Everything above the mark
may have been routed to the dead node and never written. So:

1. *Catch up*: where this node's own position on a subject is behind the session's
   mark (its consumer lags), this node reads the stream up to the mark and hands
   those messages to its sessions as if they had just arrived, before the taken-over
   session joins them: the new session must not get them again. (Up to the stream's
   end, and on every subject the node follows that overlaps one of the session's.)
2. *Replay*: the session joins; for each of its subjects, the stream's messages
   above its mark (or, for a subject it has no mark for yet, stored since it
   subscribed) up to this node's position go to this session alone, in stream order,
   once per message (two of its filters may match one), at the QoS its subscriptions
   grant, minus those its queue or in-flight window already hold (the dead node wrote
   them in its last commit, after the mark). Above the position, the node's consumer
   delivers them, to every session here.

All this runs while the broker's loop waits for NATS (``bridge.NatsThread.call``),
before CONNACK: no live message is handed out meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from nats.js import JetStreamContext

from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.session import Session
from mqttref.impl.cluster.bridge import NatsThread
from mqttref.impl.cluster.durable import DURABLE, Stored, last_sequence, msg_id, read_range
from mqttref.impl.cluster.envelope import EnvelopeError, open_envelope
from mqttref.impl.cluster.routing import ClusterRouter
from mqttref.impl.cluster.session_store import (
    MARK_NODE,
    MARK_SENT,
    Fetched,
    JetStreamSessionStore,
    Tag,
)
from mqttref.impl.cluster.subjects import SubjectError, subject_topic
from mqttref.impl.codec.packets import QoS
from mqttref.impl.logtext import clip

log = logging.getLogger("mqttref.cluster")

READ_TIMEOUT = 10.0
"""Seconds a read of the stream may take before the CONNECT fails."""


class Replayer:
    """Catch-up and replay for sessions taken over on this node (see the module)."""

    def __init__(self, router: ClusterRouter, store: JetStreamSessionStore, nats: NatsThread,
                 js: JetStreamContext) -> None:
        self.router = router
        self.store = store
        self.nats = nats
        self.js = js
        self.replayed = 0
        """Messages replayed into sessions taken over here (for tests and logs)."""

    def _read(self, subject: str, *, after: int | None, since: float | None,
              upto: int) -> list[Stored]:
        return self.nats.call(read_range(self.js, subject, after=after, since=since,
                                         upto=upto), READ_TIMEOUT)

    def catch_up(self, fetched: Fetched, subjects: Iterable[str]) -> None:
        """Step 1: this node's positions on the session's subjects reach the stream's end
        (what it reads goes to its present sessions), so that nothing the session's last
        node already gave it (its own messages, handed out when published) arrives here
        live after the session joined.

        So do its positions on every other subject it follows the stream on that
        overlaps one of the session's (another local session's wider filter: ``#``,
        ``a/+``...): a message on the session's topics reaches the registry through
        any of them, and the registry hands it to every matching session, the joined
        one too. Without that, a will the last node published at the takeover, and
        gave the session itself (it is in the session's queue), came a second time
        through another subscriber's consumer for ``#`` here: a QoS 2 message twice
        [MQTT-4.3.3-2] (``test_cluster_machine``; ``test_will_at_takeover_once``)."""
        del fetched  # the end of the stream covers every mark
        positions = self.router.positions
        last = self.nats.call(last_sequence(self.js), READ_TIMEOUT)
        own = set(subjects)
        wider = {subject for subject in positions if subject not in own
                 and any(subjects_overlap(subject, each) for each in own)}
        for subject in sorted(own) + sorted(wider):
            position = positions.get(subject)
            if position is None:
                positions[subject] = last  # its consumer starts after it
                continue
            if position >= last:
                continue
            for stored in self._read(subject, after=position, since=None, upto=last):
                # By the message's own subject, which names its topic: ``subject`` may
                # hold wildcards (taken as the topic, the message was dropped as foreign).
                self.router.take_stored(subject, DURABLE + stored.subject, stored.data,
                                        stored.sequence)
            positions[subject] = max(positions.get(subject, 0), last)

    def replay(self, session: Session, registry: Registry, fetched: Fetched,
               subjects: Iterable[str], now: float) -> int:
        """Step 2: the session alone gets its subjects' messages above its mark."""
        subjects = sorted(subjects)
        positions = self.router.positions
        if any(subject not in positions for subject in subjects):
            last = self.nats.call(last_sequence(self.js), READ_TIMEOUT)
            for subject in subjects:
                positions.setdefault(subject, last)  # the consumer starts after it
        found: dict[int, Stored] = {}
        for subject in subjects:
            after = fetched.mark.get(subject)
            since = fetched.since.get(subject) if after is None else None
            if after is None and since is None:
                continue
            for stored in self._read(subject, after=after, since=since,
                                     upto=positions[subject]):
                found.setdefault(stored.sequence, stored)
        count = 0
        wall = time.time()
        holder = fetched.mark.get(MARK_NODE)
        handed = fetched.mark.get(MARK_SENT, 0)
        for sequence in sorted(found):
            if sequence in fetched.taken:
                continue
            stored = found[sequence]
            count += self.deliver_one(session, registry, stored, wall, now,
                                      taken=fetched.taken, holder=holder, handed=handed)
        if count:
            log.info("replayed %d messages from the stream to %s", count,
                     clip(session.client_id))
        self.replayed += count
        return count

    def deliver_one(self, session: Session, registry: Registry, stored: Stored, wall: float,
                    now: float, *, taken: frozenset[Tag] = frozenset(),
                    holder: int | None = None, handed: int = 0) -> int:
        """One stream message to one session, as the registry would hand it (its granted
        QoS, Subscription Identifiers, No Local, Retain As Published); 1 if it went.
        Not one its last node (``holder``, an incarnation) published and so gave it
        itself: up to ``handed``, or held in its keys (``taken``)."""
        try:
            topic = subject_topic(stored.subject)
            envelope = open_envelope(topic, stored.data, now)
        except (SubjectError, EnvelopeError):
            return 0
        if msg_id(envelope.incarnation, envelope.sequence) in taken:
            return 0
        if (holder is not None and int.from_bytes(envelope.incarnation, "big") == holder
                and envelope.sequence <= handed):
            return 0
        message = envelope.message
        if message.expires_at is not None:  # its time in the stream counts
            message.expires_at -= max(0.0, wall - stored.stored_at)
            if message.expires_at <= now:
                return 0
        qos = min(message.qos, registry.granted_on(session, topic))
        if qos is QoS.AT_MOST_ONCE:
            return 0  # QoS 0 is not promised across a node's death
        self.store.arriving = stored.sequence
        try:
            session.deliver(message, QoS(qos), now,
                            identifiers=registry.identifiers_on(session, topic),
                            retain=False)
        finally:
            self.store.arriving = None
        return 1


def subjects_overlap(first: str, second: str) -> bool:
    """Whether some subject matches both NATS subjects (``*``: one token, ``>``: one
    or more at the end), i.e. a stream message may come through either."""
    one, other = first.split("."), second.split(".")
    for mine, theirs in zip(one, other, strict=False):
        if mine == ">" or theirs == ">":
            return True
        if mine != theirs and "*" not in (mine, theirs):
            return False
    return len(one) == len(other)
