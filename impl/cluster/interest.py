"""Which NATS subjects a node must subscribe to: its local filters, reference-counted.

Theory of operation. A node wants from the other nodes exactly the messages its
own sessions' filters match, so it subscribes in NATS to the subjects of those
filters (``subjects.filter_subjects``) and to nothing else: NATS then carries a
message only to nodes with a subscriber for it. Several sessions may hold one
filter, and two filters may need one subject (``a`` and ``a/#`` both need
``m.a``), so both are counted: a filter counts its holders, a subject the held
filters that need it. A subject is subscribed when its count leaves 0 and
unsubscribed when it returns to 0.

Pure: it answers "subscribe these, unsubscribe those"; ``routing.py`` does it.
A shared subscription ``$share/{ShareName}/{filter}`` (4.8.2) counts for its
inner filter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import attrs

from mqttref.impl.broker.matching import SHARED_PREFIX
from mqttref.impl.cluster.subjects import filter_subjects


def inner_filter(topic_filter: str) -> str:
    """The filter whose messages a subscription needs: a shared one's inner filter."""
    if topic_filter.startswith(SHARED_PREFIX):
        _share, _slash, inner = topic_filter[len(SHARED_PREFIX):].partition("/")
        if inner:
            return inner
    return topic_filter


@attrs.frozen
class Changes:
    """The NATS subscriptions to make and to drop, in that order."""

    subscribe: tuple[str, ...]
    unsubscribe: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.subscribe or self.unsubscribe)


class Interest:
    """Holders per filter and filters per subject, for one node."""

    def __init__(self) -> None:
        self.holders: Counter[str] = Counter()
        """Filter -> how many local subscriptions hold it (at least 1)."""
        self.subjects: Counter[str] = Counter()
        """Subject -> how many held filters need it (at least 1)."""

    def add(self, topic_filter: str, count: int = 1) -> tuple[str, ...]:
        """``count`` more holders of a filter; the subjects that became wanted."""
        topic_filter = inner_filter(topic_filter)
        before = self.holders[topic_filter]
        self.holders[topic_filter] = before + count
        if before:
            return ()
        wanted: list[str] = []
        for subject in filter_subjects(topic_filter):
            if not self.subjects[subject]:
                wanted.append(subject)
            self.subjects[subject] += 1
        return tuple(wanted)

    def remove(self, topic_filter: str, count: int = 1) -> tuple[str, ...]:
        """``count`` fewer holders of a filter; the subjects no longer wanted."""
        topic_filter = inner_filter(topic_filter)
        before = self.holders.get(topic_filter, 0)
        if not before:
            return ()
        left = before - count
        if left > 0:
            self.holders[topic_filter] = left
            return ()
        del self.holders[topic_filter]
        unwanted: list[str] = []
        for subject in filter_subjects(topic_filter):
            self.subjects[subject] -= 1
            if self.subjects[subject] <= 0:
                del self.subjects[subject]
                unwanted.append(subject)
        return tuple(unwanted)

    def reconcile(self, held: Iterable[str]) -> Changes:
        """Make the counts those of ``held`` (every local subscription's filter, once per
        holder): what sessions that ended or were restored changed without telling."""
        target: Counter[str] = Counter(inner_filter(f) for f in held)
        subscribe: list[str] = []
        unsubscribe: list[str] = []
        for topic_filter in list(self.holders):
            difference = self.holders[topic_filter] - target.get(topic_filter, 0)
            if difference > 0:
                unsubscribe.extend(self.remove(topic_filter, difference))
        for topic_filter, count in target.items():
            difference = count - self.holders.get(topic_filter, 0)
            if difference > 0:
                subscribe.extend(self.add(topic_filter, difference))
        again = set(subscribe) & set(unsubscribe)  # dropped and wanted back: keep it
        return Changes(tuple(s for s in subscribe if s not in again),
                       tuple(s for s in unsubscribe if s not in again))
