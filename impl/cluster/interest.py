"""Which NATS subscriptions a node must hold: its local filters, reference-counted.

Theory of operation. A node wants from the other nodes exactly the messages its
own sessions' filters match, so it subscribes in NATS to the subjects of those
filters (``subjects.filter_subjects``) and to nothing else: NATS then carries a
message only to nodes with a subscriber for it. Several sessions may hold one
filter, and two filters may need one subject (``a`` and ``a/#`` both need
``m.a``), so both are counted: a filter counts its holders, a NATS subscription the
held filters that need it. A subscription is made when its count leaves 0 and
dropped when it returns to 0.

A shared subscription ``$share/{ShareName}/{filter}`` (4.8.2) needs the subjects of
its inner filter in a NATS queue group named after the whole shared filter
(``queue_of``): NATS hands each message to one queue subscriber among all nodes,
so one node's group gets it, and that node gives it to one member. An ordinary
subscription has no queue (the empty string).

Pure: it answers "subscribe these, unsubscribe those"; ``routing.py`` does it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

import attrs

from mqttref.impl.broker.shared import parse_shared
from mqttref.impl.cluster.subjects import filter_subjects

Want = tuple[str, str]
"""A NATS subscription: (subject, queue group or "" for none)."""


def queue_of(shared_filter: str) -> str:
    """The NATS queue group of a shared subscription's group: the same name on every
    node, and a valid NATS name whatever characters the ShareName holds."""
    digest = hashlib.sha256(shared_filter.encode("utf-8", "surrogatepass")).hexdigest()
    return "share-" + digest[:24]


@attrs.frozen
class Changes:
    """The NATS subscriptions to make and to drop."""

    subscribe: tuple[Want, ...]
    unsubscribe: tuple[Want, ...]

    def __bool__(self) -> bool:
        return bool(self.subscribe or self.unsubscribe)


class Interest:
    """Holders per filter and filters per NATS subscription, for one node."""

    def __init__(self, *, shared_subscriptions: bool = True) -> None:
        self.shared_subscriptions = shared_subscriptions
        """Whether ``$share/...`` filters are shared subscriptions (the broker's
        ``shared_subscriptions`` key); if not they are ordinary filters."""
        self.holders: Counter[str] = Counter()
        """Filter -> how many local subscriptions hold it (at least 1)."""
        self.wanted: Counter[Want] = Counter()
        """NATS subscription -> how many held filters need it (at least 1)."""
        self.groups: dict[str, str] = {}
        """Queue group -> the shared subscription filter (the group's key) it serves."""

    def wants_of(self, topic_filter: str) -> tuple[Want, ...]:
        """The NATS subscriptions one filter needs (none for a malformed shared one)."""
        if self.shared_subscriptions and topic_filter.startswith("$share/"):
            parsed = parse_shared(topic_filter)
            if parsed is None:
                return ()
            queue = queue_of(topic_filter)
            self.groups[queue] = topic_filter
            return tuple((subject, queue) for subject in filter_subjects(parsed[1]))
        return tuple((subject, "") for subject in filter_subjects(topic_filter))

    def add(self, topic_filter: str, count: int = 1) -> tuple[Want, ...]:
        """``count`` more holders of a filter; the NATS subscriptions now wanted."""
        before = self.holders[topic_filter]
        self.holders[topic_filter] = before + count
        if before:
            return ()
        new: list[Want] = []
        for want in self.wants_of(topic_filter):
            if not self.wanted[want]:
                new.append(want)
            self.wanted[want] += 1
        return tuple(new)

    def remove(self, topic_filter: str, count: int = 1) -> tuple[Want, ...]:
        """``count`` fewer holders of a filter; the NATS subscriptions no longer wanted."""
        before = self.holders.get(topic_filter, 0)
        if not before:
            return ()
        left = before - count
        if left > 0:
            self.holders[topic_filter] = left
            return ()
        del self.holders[topic_filter]
        gone: list[Want] = []
        for want in self.wants_of(topic_filter):
            self.wanted[want] -= 1
            if self.wanted[want] <= 0:
                del self.wanted[want]
                gone.append(want)
        return tuple(gone)

    def reconcile(self, held: Iterable[str]) -> Changes:
        """Make the counts those of ``held`` (every local subscription's filter, once per
        holder): what sessions that ended or were restored changed without telling."""
        target: Counter[str] = Counter(held)
        subscribe: list[Want] = []
        unsubscribe: list[Want] = []
        for topic_filter in list(self.holders):
            difference = self.holders[topic_filter] - target.get(topic_filter, 0)
            if difference > 0:
                unsubscribe.extend(self.remove(topic_filter, difference))
        for topic_filter, count in target.items():
            difference = count - self.holders.get(topic_filter, 0)
            if difference > 0:
                subscribe.extend(self.add(topic_filter, difference))
        again = set(subscribe) & set(unsubscribe)  # dropped and wanted back: keep it
        return Changes(tuple(w for w in subscribe if w not in again),
                       tuple(w for w in unsubscribe if w not in again))
