"""QoS 1 and QoS 2 messages in a JetStream stream: what makes an acknowledgement hold.

Theory of operation. A message a publisher's node acknowledges (PUBACK, PUBREC)
must outlive that node and the subscriber's node. So a QoS 1/2 message routed to
other nodes is published with JetStream into the stream ``MQTTREF_MESSAGES``
(subjects ``mqttref.dur.<subject of its topic>``), and the broker's store commit,
which precedes every acknowledgement, returns only once JetStream has stored it
(``session_store.JetStreamSessionStore.commit``). A QoS 2 message's ``Nats-Msg-Id``
is the envelope's (incarnation, sequence), so JetStream stores it once however often
it is sent (a QoS 1 message goes without one: a second copy is allowed).

Receiving nodes follow the stream, not core NATS, for those messages: one
ordered push consumer per subject of the node's interest (``routing.py``), so each
arrives with its stream sequence, in stream order per subject. A node knows, per
subject, the last stream sequence it has handed to its sessions (its *position*).
Each persistent session records, in every commit that changes it, its *mark*: the
positions of its subjects as of the previous commit (everything up to them reached
the session and is written). A node that takes the session over replays, from the
stream, its subjects' messages above the mark (``replay.py``) and skips those
whose stream sequence the session's keys already hold: QoS 1 at least once, QoS 2
exactly once.

This module is the stream itself: its configuration and reading ranges of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from typing import Final

import attrs
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from mqttref.impl.cluster.node import SUBJECT_ROOT

STREAM: Final = "MQTTREF_MESSAGES"
DURABLE: Final = f"{SUBJECT_ROOT}.dur."
"""The prefix of the subjects QoS 1/2 messages travel on, in the stream."""
MAX_AGE: Final = 600.0
"""Seconds a message stays in the stream: a session is replayed from it when its node
died, which the next node notices within a lease (or at once, its client reconnecting)."""
DUPLICATE_WINDOW: Final = 120.0
FETCH_BATCH: Final = 256
MSG_ID: Final = "Nats-Msg-Id"


def msg_id(incarnation: bytes, sequence: int) -> str:
    """The JetStream message id of an envelope: its name in the cluster."""
    return f"{incarnation.hex()}-{sequence}"


@attrs.define
class _Batch:
    size: int
    done: asyncio.Future[None]
    answered: set[int] = attrs.field(factory=set)
    failed: set[int] = attrs.field(factory=set)


class StreamPublisher:
    """A commit's QoS 1/2 messages into the stream at once, on one reply subscription.

    What ``JetStreamContext.publish`` does for one message (a request with its own
    reply subject, future and timer, and a JSON answer parsed), done for a batch: each
    message is published with a reply subject ``<inbox>.<batch>.<index>`` and the batch
    waits for all answers together. Several times cheaper per message (``bench/cluster.py``).
    An empty message id sends none (QoS 1: a second copy is allowed, and nats-server's
    duplicate window need not remember it)."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._prefix: str | None = None
        self._batches: dict[int, _Batch] = {}
        self._counter = 0

    async def publish_all(self, items: list[tuple[str, bytes, str]], timeout: float
                          ) -> list[int]:
        """Publish ``(subject, body, message id)`` each; the indexes JetStream did not
        take (answered with an error, or not within ``timeout`` seconds)."""
        if not items:
            return []
        if self._prefix is None:
            prefix = self.nc.new_inbox()
            await self.nc.subscribe(prefix + ".>", cb=self._answer)
            self._prefix = prefix
        self._counter += 1
        key = self._counter
        batch = _Batch(len(items), asyncio.get_running_loop().create_future())
        self._batches[key] = batch
        try:
            for index, (subject, body, message_id) in enumerate(items):
                await self.nc.publish(subject, body, reply=f"{self._prefix}.{key}.{index}",
                                      headers={MSG_ID: message_id} if message_id else None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(batch.done), timeout)
        finally:
            del self._batches[key]
        return sorted(batch.failed | (set(range(batch.size)) - batch.answered))

    async def _answer(self, msg: Msg) -> None:
        assert self._prefix is not None
        try:
            key, index = (int(token) for token in
                          msg.subject[len(self._prefix) + 1:].split("."))
        except ValueError:
            return
        batch = self._batches.get(key)
        if batch is None or index in batch.answered:
            return
        batch.answered.add(index)
        data = msg.data
        if b'"error"' in data or b'"seq"' not in data:  # an error, or no responders
            batch.failed.add(index)
        if len(batch.answered) == batch.size and not batch.done.done():
            batch.done.set_result(None)


async def ensure_stream(js: JetStreamContext) -> None:
    """Create the stream if it is missing (the first node does; the others find it)."""
    try:
        await js.stream_info(STREAM)
        return
    except nats.js.errors.NotFoundError:
        pass
    try:
        await js.add_stream(StreamConfig(
            name=STREAM, subjects=[DURABLE + ">"], storage=StorageType.FILE,
            max_age=MAX_AGE, duplicate_window=DUPLICATE_WINDOW))
    except nats.js.errors.BadRequestError:
        await js.stream_info(STREAM)  # another node created it meanwhile


async def last_sequence(js: JetStreamContext) -> int:
    """The stream's last sequence now."""
    info = await js.stream_info(STREAM)
    return int(info.state.last_seq)


@attrs.frozen
class Stored:
    """One message of the stream."""

    sequence: int
    subject: str
    """Its subject without the ``DURABLE`` prefix: its topic's."""
    data: bytes
    stored_at: float
    """Wall-clock seconds when JetStream stored it."""


async def read_range(js: JetStreamContext, subject: str, *, after: int | None,
                     since: float | None, upto: int, timeout: float = 2.0) -> list[Stored]:
    """The messages on ``DURABLE + subject`` with a stream sequence above ``after`` (or,
    with ``after`` None, stored from wall-clock ``since`` on), up to ``upto``."""
    if after is not None and after >= upto:
        return []
    if after is not None:
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                opt_start_seq=after + 1, ack_policy=AckPolicy.NONE,
                                inactive_threshold=30.0)
    else:
        start = datetime.datetime.fromtimestamp(since or 0.0, datetime.UTC)
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME,
                                opt_start_time=start, ack_policy=AckPolicy.NONE,
                                inactive_threshold=30.0)
    sub = await js.pull_subscribe(DURABLE + subject, stream=STREAM, config=config)
    found: list[Stored] = []
    try:
        remaining = (await sub.consumer_info()).num_pending or 0
        while remaining > 0:  # known up front: never a fetch left waiting on nothing
            try:
                batch = await sub.fetch(min(FETCH_BATCH, remaining), timeout=timeout)
            except (TimeoutError, nats.errors.TimeoutError):
                return found
            for msg in batch:
                remaining -= 1
                meta = msg.metadata
                sequence = int(meta.sequence.stream)
                if sequence > upto:
                    return found
                found.append(Stored(sequence, msg.subject[len(DURABLE):], msg.data,
                                    meta.timestamp.timestamp()))
                if sequence == upto:
                    return found
        return found
    finally:
        with contextlib.suppress(Exception):  # else it goes by its inactive threshold
            await sub.unsubscribe()
