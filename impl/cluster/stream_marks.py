"""What a persistent session records of the stream, so that a replay adds nothing twice.

A node hands QoS 1/2 messages from the stream to its sessions; each persistent session
writes its *mark* (per subject, how far the node had handed it the stream's messages as
of the previous commit) before its other keys, and each queued or in-flight message that
came from the stream keeps its stream sequence (``js``; one this node published itself,
its envelope id, ``e``). A node that takes the session over replays above the mark,
leaving out what its keys hold (``replay.py``; docs/cluster.md, "Acknowledged messages
and the stream"). Pure functions over the bucket's entries and the router's positions:
``session_store.py`` keeps and writes the marks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Final

from mqttref.impl.cluster.session_codec import session_prefix, unb64
from mqttref.impl.cluster.subjects import SubjectError, filter_subjects, subject_covers

MARK_NODE: Final = "~n"
"""In a mark: the incarnation (as an integer) of the node that wrote it."""
MARK_SENT: Final = "~q"
"""In a mark: that node's envelope sequence its own sessions had been handed."""

Tag = int | str
"""Where a recorded message came from: its stream sequence, or (published on this
node) its envelope id."""


def stream_state(client_id: str, entries: Iterable[tuple[str, bytes]]
                 ) -> tuple[dict[str, int], dict[tuple[str, int], Tag], dict[str, float]]:
    """A session's mark (subject -> stream sequence), the stream sequences its queued
    (``("q", seq)``) and in-flight (``("f", packet id)``) messages came with, and since
    when (wall clock) each subject has been subscribed."""
    prefix = session_prefix(client_id) + "."
    mark: dict[str, int] = {}
    taken: dict[tuple[str, int], Tag] = {}
    since: dict[str, float] = {}
    for key, data in entries:
        kind, _dot, rest = key.removeprefix(prefix).partition(".")
        if kind == "sub":
            at = json.loads(data).get("at")
            if at is not None:
                for subject in subjects_of_filters((unb64(rest).decode(),)):
                    since[subject] = min(since.get(subject, at), at)
        elif kind == "mark":
            mark = {str(k): int(v) for k, v in json.loads(data).items()}
        elif kind in ("q", "f"):
            value = json.loads(data)
            if "js" in value:
                taken[(kind, int(rest))] = int(value["js"])
            elif "e" in value:
                taken[(kind, int(rest))] = str(value["e"])
    return mark, taken, since


def reached(subject: str, positions: Mapping[str, int], origins: Mapping[str, int]) -> int:
    """How far the node has handed its sessions the stream's messages on ``subject``:
    its position there, or further where the consumer of a wider subject the node
    follows (another local session's ``#``) handed them first, from at or below it on.

    A message on ``subject`` reaches the registry through whichever of the node's
    consumers delivers it first (the others' copies are dropped as seen), so the
    subject's own consumer may lag a wider one: a mark taken from it alone lagged
    behind what the session had been given and acknowledged, and a replay elsewhere
    gave the session those messages again, after later ones (a QoS 1 message anew
    after its successors [MQTT-4.6.0-6], a QoS 2 one twice [MQTT-4.3.3-2])."""
    best = positions[subject]
    moved = True
    while moved:
        moved = False
        for other, at in positions.items():
            if (at > best and other != subject and other in origins
                    and origins[other] <= best and subject_covers(other, subject)):
                best, moved = at, True
    return best


def subjects_of_filters(filters: Iterable[str]) -> set[str]:
    """The subjects (without prefix) whose stream messages a session's filters take;
    shared subscriptions are the groups' (not replayed)."""
    subjects: set[str] = set()
    for topic_filter in filters:
        if topic_filter.startswith("$share/"):
            continue
        try:
            subjects.update(filter_subjects(topic_filter))
        except SubjectError:
            continue
    return subjects


def advanced_mark(old: Mapping[str, int], subjects: Iterable[str],
                  positions: Mapping[str, int], sent: tuple[int, int],
                  origins: Mapping[str, int]) -> dict[str, int]:
    """A session's mark moved on to ``positions`` (how far each subject of its filters
    was ``reached``), never going back, with the writing node's incarnation and envelope
    sequence (``sent``: ``MARK_NODE``, ``MARK_SENT``)."""
    mark = {subject: max(old.get(subject, 0), reached(subject, positions, origins))
            for subject in subjects if subject in positions}
    for subject, sequence in old.items():
        mark.setdefault(subject, sequence)
    mark[MARK_NODE], mark[MARK_SENT] = sent
    return mark
