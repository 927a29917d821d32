"""Shared subscription groups' QoS 1/2 messages: a durable JetStream consumer per group.

Theory of operation. A group (``$share/{ShareName}/{filter}``, 4.8.2) gets each
message once in the cluster: one node among those with members takes it, and one
member there. For QoS 0 a NATS queue group does that (``interest.queue_of``, at most
once, as QoS 0 is). A QoS 1/2 message the publisher's node acknowledged is in the
stream ``MQTTREF_MESSAGES`` (``durable.py``) and must outlive the node NATS picks for
it, so the group reads it from a durable consumer of the stream, one per group and
subject of its filter (``consumer_name``), the same on every node, delivered to a
NATS deliver group of the nodes with members: JetStream hands each message to one of
them, and hands it again to one of them (``ACK_WAIT`` later) until a node
acknowledges it.

A node acknowledges a message to JetStream only once it is safe (``GroupAcks``):
after the store commit that follows its handing to a member (``DurableSink.batch``).
That commit writes it into the member's session when the session is persistent (its
queue or its in-flight messages, ``session_store.py``), so should the node die after
the acknowledgement, the session's next node delivers it; should it die before,
JetStream gives the message to another node's member. QoS 1: at least once to the
group. QoS 2: once to the member that got it, but a node that dies between that
commit and its acknowledgement reaching NATS (milliseconds) leaves the message to be
given to a member a second time (docs/cluster.md, "Still not covered").

A consumer made by the first node with members begins at the stream's end (as a
queue subscription would); it outlives the nodes' interest by ``INACTIVE`` seconds,
then nats-server removes it (nats-server 2.9 applies an inactive threshold to
durable consumers too).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from mqttref.impl.cluster.durable import DURABLE, STREAM, msg_id
from mqttref.impl.cluster.node import SUBJECT_ROOT
from mqttref.impl.logtext import broker_log

ACK_WAIT: Final = 10.0
"""Seconds JetStream waits for a node's acknowledgement before it gives the message to
a node again: above a store commit's 5 s limit (a node whose commit fails stops), so a
living node's message is not given twice; the delay of a dead node's messages."""
INACTIVE: Final = 120.0
"""Seconds a group's consumer outlives the last node with members."""
MAX_ACK_PENDING: Final = 20_000
"""Messages a group's consumer hands out unacknowledged at most (JetStream's default,
1,000 on nats-server 2.9, would hold a burst back while commits run)."""
STORED_WAIT: Final = 10.0
"""Seconds a message waits at most for the commit that writes it: a store that stopped
committing belongs to a node that is stopping (JetStream gives the message again)."""
POLL: Final = 0.002
POLL_AFTER: Final = 0.05
"""Seconds an acknowledgement waits for its commit turn by turn of the loop, before it
polls every ``POLL``: the sooner it follows the commit, the narrower the window in
which a node's death leaves a written message to be given again."""
RETRY_DELAY: Final = 1.0
"""Seconds before JetStream gives again a message a node could not hand out (its group
has no member there any more; the interest sweep drops its subscription within a
second)."""
GROUPS: Final = f"{SUBJECT_ROOT}.group."
"""The prefix of the groups' deliver subjects (outside the stream's subjects)."""


def group_tag(queue: str, incarnation: bytes, sequence: int) -> str:
    """What a member's session records with a group message (in its key's ``e``): the
    group's queue name and the envelope id, marked as a group copy so that
    ``replay.py``, which leaves out what a session's keys name, does not take it for
    the copy of a non-shared subscription."""
    return f"g:{queue}:{msg_id(incarnation, sequence)}"


def consumer_name(queue: str, bare: str) -> str:
    """The durable consumer (and its deliver group) of one group's subject: the same
    name on every node, a valid JetStream name whatever the subject holds."""
    digest = hashlib.sha256(bare.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{queue}-{digest[:16]}"


async def follow_group(js: JetStreamContext, queue: str, bare: str,
                       cb: Callable[[Msg], Awaitable[None]]) -> JetStreamContext.PushSubscription:
    """Join the deliver group of the group's consumer on subject ``bare`` (created here
    if no node made it yet).

    Its deliver subject is named after it, not a node's inbox: two nodes creating it
    at once then ask for the same consumer, and nats-server 2.9 answers both with it;
    with an inbox each, the second creation moved the consumer to its own inbox and
    the first node's subscription got nothing ever after (seen on 2.9.10)."""
    name = consumer_name(queue, bare)
    config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW, ack_policy=AckPolicy.EXPLICIT,
                            ack_wait=ACK_WAIT, max_ack_pending=MAX_ACK_PENDING,
                            inactive_threshold=INACTIVE, deliver_subject=GROUPS + name)
    return await js.subscribe(DURABLE + bare, queue=name, stream=STREAM, cb=cb,
                              manual_ack=True, config=config)


class GroupAcks:
    """Acknowledgements to JetStream, each sent once the store commit that wrote its
    message is over, in the order taken (commits end in their order)."""

    def __init__(self, stored: Callable[[int], bool]) -> None:
        self._stored = stored
        """``DurableSink.stored``: whether commit number n is over."""
        self._waiting: deque[tuple[int | None, float, Msg]] = deque()
        self._wake = asyncio.Event()
        self.dropped = 0
        """Messages left unacknowledged because their commit never came (given again)."""

    def after(self, batch: int | None, msg: Msg) -> None:
        """Acknowledge ``msg`` once commit ``batch`` is over (None: at once)."""
        self._waiting.append((batch, asyncio.get_running_loop().time(), msg))
        self._wake.set()

    async def run(self) -> None:
        """Send the acknowledgements as their commits end (the router's task)."""
        waiting = self._waiting
        loop = asyncio.get_running_loop()
        while True:
            if not waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, taken, msg = waiting[0]
            if batch is not None and not self._stored(batch):
                waited = loop.time() - taken
                if waited < STORED_WAIT:  # the commit comes at the loop's next turn
                    await asyncio.sleep(0 if waited < POLL_AFTER else POLL)
                    continue
                self.dropped += 1
                broker_log.warning("cluster shared", "a shared group's message waited %.0f s "
                                   "for its commit: left to JetStream to give again",
                                   STORED_WAIT)
                waiting.popleft()
                continue
            waiting.popleft()
            with contextlib.suppress(Exception):  # NATS lost: JetStream gives it again
                await msg.ack()

    async def flush(self) -> None:
        """The node stops: acknowledge what its last commits wrote (else JetStream would
        give it to the group again, ``ACK_WAIT`` later); the rest is given again."""
        waiting, self._waiting = self._waiting, deque()
        for batch, _taken, msg in waiting:
            if batch is None or self._stored(batch):
                with contextlib.suppress(Exception):
                    await msg.ack()
