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

A node acknowledges a message to JetStream only once it is safe: the store commit
that follows its handing to a member sends the acknowledgement, on the NATS thread,
as soon as JetStream has stored the commit's keys
(``session_store.JetStreamSessionStore.acknowledge_after_commit``).
That commit writes it into the member's session when the session is persistent (its
queue or its in-flight messages, ``session_store.py``), so should the node die after
the acknowledgement, the session's next node delivers it; should it die before,
JetStream gives the message to a node with members again. QoS 1: at least once to
the group. QoS 2: once to each member's session [MQTT-4.3.3-2]: the member's keys
record the message (``group_tag``), and the node its session resumes on, having
loaded them, acknowledges such a message without handing it out, even once the
member completed it. And since a node that dies between storing the commit and its
acknowledgement reaching NATS (the commit's round trip, often hit under a steady
flow) leaves the message to be given again, maybe to a node without that member,
the commit also writes a key naming the member (``session_store.group_index_key``,
after the member's keys, deleted at the next commit), which the node given the
message again reads: no other member gets it [MQTT-4.8.2-5].

A consumer made by the first node with members begins at the stream's end (as a
queue subscription would); it outlives the nodes' interest by ``INACTIVE`` seconds,
then nats-server removes it (nats-server 2.9 applies an inactive threshold to
durable consumers too).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from mqttref.impl.cluster.durable import DURABLE, STREAM, msg_id
from mqttref.impl.cluster.node import SUBJECT_ROOT

ACK_WAIT: Final = 10.0
"""Seconds JetStream waits for a node's acknowledgement before it gives the message to
a node again: above a store commit's 5 s limit (a node whose commit fails stops), so a
living node's message is not given twice; the delay of a dead node's messages."""
INACTIVE: Final = 120.0
"""Seconds a group's consumer outlives the last node with members."""
MAX_ACK_PENDING: Final = 20_000
"""Messages a group's consumer hands out unacknowledged at most (JetStream's default,
1,000 on nats-server 2.9, would hold a burst back while commits run)."""
GIVEN_WINDOW: Final = 65_536
"""Group messages of loaded sessions a node remembers (``GivenTags``)."""
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


def group_index_key(tag: str) -> str:
    """The sessions bucket's key that names the member a group's QoS 2 message was
    written for: ``g.<queue>.<envelope id>`` (``group_tag`` without ``g:``)."""
    return "g." + tag.removeprefix("g:").replace(":", ".")


class GivenTags:
    """The group messages (``group_tag``) that the sessions a node loaded held, the last
    ``GIVEN_WINDOW`` of them: JetStream gives such a message again within its ack wait,
    seconds after the load (``session_store.JetStreamSessionStore.given``)."""

    def __init__(self) -> None:
        self._tags: set[str] = set()
        self._order: deque[str] = deque()

    def has(self, tag: str) -> bool:
        return tag in self._tags

    def remember(self, tags: Iterable[int | str]) -> None:
        """Keep the group tags among a loaded session's recorded tags."""
        for tag in tags:
            if isinstance(tag, str) and tag.startswith("g:") and tag not in self._tags:
                self._tags.add(tag)
                self._order.append(tag)
                if len(self._order) > GIVEN_WINDOW:
                    self._tags.discard(self._order.popleft())
