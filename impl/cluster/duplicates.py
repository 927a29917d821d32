"""The duplicate filter: how a node tells a message it has handed out already.

Theory of operation. A message reaches a node more than once in two ways, and
each copy past the first must be dropped, or a subscriber gets it twice where a
single broker sends one PUBLISH per subscription:

* Through core NATS and the stream, a message from another node comes once per
  NATS subscription of this node that matches it (``interest.py``: overlapping
  filters mean overlapping subjects). Each carries its sender's (incarnation,
  sequence) (``envelope.py``), which ``Seen`` remembers for a window of the latest
  messages; the router delivers a message only the first time (``routing.py``).
* A shared group's QoS 1/2 message comes from the group's durable consumer, which
  gives it again to some node of the group until one acknowledges it
  (``group_feed.py``). ``given_again`` says whether this delivery is such a second
  one, and a second ``Seen`` (keyed by group too) whether this node handed the
  message out itself; the session store answers for a member's session loaded here
  (``session_store.JetStreamSessionStore.given``, ``recorded``).

Nothing here does I/O: the router asks, the window answers.
"""

from __future__ import annotations

from collections import deque

from nats.aio.msg import Msg

SEEN_WINDOW = 65_536
"""Messages remembered for the duplicate filter (all senders together): the copies of
one message through overlapping NATS subscriptions arrive a few messages apart."""


class Seen:
    """The (incarnation, sequence) names of the messages delivered lately, each kept as
    one integer (a few MB for the whole window).

    The copies of one message come through the node's NATS subscriptions, each in its
    sender's order; nats-py fills every subscription's queue from one socket read
    before their tasks run, so the copies arrive about one read (hundreds of small
    messages) apart, far inside the window."""

    def __init__(self, window: int = SEEN_WINDOW) -> None:
        self._window = window
        self._names: set[int] = set()
        self._order: deque[int] = deque()

    def has(self, incarnation: bytes, sequence: int) -> bool:
        """Whether this message was delivered here lately."""
        return (int.from_bytes(incarnation, "big") << 64 | sequence) in self._names

    def first_time(self, incarnation: bytes, sequence: int) -> bool:
        """Whether this message is new here (and remember it)."""
        name = int.from_bytes(incarnation, "big") << 64 | sequence
        if name in self._names:
            return False
        self._names.add(name)
        self._order.append(name)
        if len(self._order) > self._window:
            self._names.discard(self._order.popleft())
        return True


def given_again(msg: Msg) -> bool:
    """Whether JetStream gave this message before (to this node or another)."""
    try:
        return int(msg.metadata.num_delivered) > 1
    except Exception:  # no JetStream metadata: a first delivery as far as we know
        return False
