"""What a persistent session records of the stream, so that a replay adds nothing twice.

A node hands QoS 1/2 messages from the stream to its sessions; each persistent
session writes its *mark* (per subject, the node's positions as of the previous
commit, which that commit made durable) before its other keys, and each queued or
in-flight message that came from the stream keeps its stream sequence. A node that
takes the session over replays above the mark, leaving out the sequences its keys
hold (docs/cluster.md, "Acknowledged messages and the stream"). No NATS here: the
store's bookkeeping and the keys it would write.
"""

from __future__ import annotations

import json

import pytest

from mqttref.impl.cluster.session_store import (
    JetStreamSessionStore,
    reached,
    session_prefix,
    stream_state,
    subjects_of_filters,
)
from mqttref.impl.cluster.subjects import subject_covers
from mqttref.impl.codec.packets import QoS
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import OutboundMessage
from mqttref.impl.store.memory import MemoryStore


def _store(positions: dict[str, int]) -> JetStreamSessionStore:
    store = JetStreamSessionStore(MemoryStore())
    store.positions = lambda: positions
    store.create_session("c")
    store.set_subscription("c", "t/#", QoS.EXACTLY_ONCE)
    store.set_subscription("c", "$share/g/s", QoS.AT_LEAST_ONCE)
    return store


def _pending(store: JetStreamSessionStore, suffix: str) -> object:
    data = store._pending[f"{session_prefix('c')}.{suffix}"]  # what the next commit writes
    assert data is not None
    return json.loads(data)


def test_the_subjects_of_a_session_are_those_of_its_filters_without_shared_ones() -> None:
    assert subjects_of_filters(["t/#", "$share/g/s", "a/+"]) == {"m.t", "m.t.>", "m.a.*"}


def test_a_message_from_the_stream_keeps_its_sequence_from_the_queue_into_flight() -> None:
    store = _store({})
    message = OutboundMessage("t/1", 0, QoS.EXACTLY_ONCE, b"x")
    store.arriving = 41
    store.queue_append("c", 1, message)
    store.arriving = None
    queued = _pending(store, "q.1")
    assert isinstance(queued, dict)
    assert queued["js"] == 41
    store.queue_remove("c", 1)  # the session sends it: into the in-flight window
    store.inflight_set("c", 7, OutboundState.AWAITING_PUBREC, message._replace(packet_id=7))
    store.inflight_set("c", 7, OutboundState.AWAITING_PUBCOMP, message._replace(packet_id=7))
    in_flight = _pending(store, "f.7")
    assert isinstance(in_flight, dict)
    assert (in_flight["state"], in_flight["js"]) == ("AWAITING_PUBCOMP", 41)


def test_a_message_from_another_road_carries_no_sequence() -> None:
    store = _store({})
    store.queue_append("c", 1, OutboundMessage("t/1", 0, QoS.AT_LEAST_ONCE, b"x"))
    value = _pending(store, "q.1")
    assert isinstance(value, dict)
    assert "js" not in value


def test_the_mark_is_the_previous_commits_positions_never_going_back() -> None:
    positions = {"m.t": 5, "m.t.>": 9, "m.other": 70}
    store = _store(positions)
    store._snapshot = dict(positions)  # as the last commit left them
    positions.update({"m.t.>": 12})  # a message handed out since, recorded below
    store.arriving = 12
    store.queue_append("c", 1, OutboundMessage("t/x", 0, QoS.AT_LEAST_ONCE, b"x"))
    store.arriving = None
    store._mark_changed()
    assert _pending(store, "mark") == {"m.t": 5, "m.t.>": 9,  # 12 is not durable yet
                                       "~n": 0, "~q": 0}
    store._marks["c"] = {"m.t": 8, "m.t.>": 9}  # loaded: the session's last node was ahead
    store._snapshot = {"m.t": 6, "m.t.>": 12, "m.other": 70}
    store._sent_snapshot = (77, 30)  # this node (incarnation 77) had sent 30 messages
    store.queue_remove("c", 1)
    store._mark_changed()
    assert _pending(store, "mark") == {"m.t": 8, "m.t.>": 12, "~n": 77, "~q": 30}


def test_a_message_published_here_is_recorded_with_its_envelope_id() -> None:
    """Its own sessions get a node's message when it is published, before the stream
    numbers it: the envelope id stands in, so a replay elsewhere leaves it out."""
    store = _store({})
    store.local_id = "00ff-3"
    store.queue_append("c", 1, OutboundMessage("t/1", 0, QoS.EXACTLY_ONCE, b"x"))
    store.local_id = None
    queued = _pending(store, "q.1")
    assert isinstance(queued, dict)
    assert queued["e"] == "00ff-3"
    assert "js" not in queued


def test_a_session_comes_back_with_its_mark_the_sequences_it_holds_and_since_when() -> None:
    prefix = session_prefix("c")
    entries = [
        (f"{prefix}.mark", b'{"m.t": 5}'),
        (f"{prefix}.q.3", b'{"message": {}, "js": 17}'),
        (f"{prefix}.f.9", b'{"state": "AWAITING_PUBACK", "order": 1, "message": {}, "js": 6}'),
        (f"{prefix}.f.10", b'{"state": "AWAITING_PUBACK", "order": 2, "message": {}}'),
        (f"{prefix}.sub.dC8j", b'{"qos": 1, "at": 1000.5}'),
    ]
    mark, taken, since = stream_state("c", entries)
    assert mark == {"m.t": 5}
    assert taken == {("q", 3): 17, ("f", 9): 6}
    assert since == {"m.t": 1000.5, "m.t.>": 1000.5}


def test_a_qos_2_packet_id_keeps_its_message_until_the_stream_has_it() -> None:
    """A persistent publisher's QoS 2 packet id awaiting PUBREL carries the message and
    its stream message id, written before the stream publish of the same commit: a node
    taking the session over after a death between the two sends it again under that id
    (JetStream keeps one copy), and the packet id stops a second routing of the
    publisher's resent PUBLISH [MQTT-4.3.3-9]."""
    store = _store({})
    store.awaiting_rel_add("c", 5)
    assert store.publish_durable("mqttref.dur.m.t", b"body", "id-1", "c") is False  # no NATS
    assert _pending(store, "r.5") == {}
    store.nats = object()  # type: ignore[assignment]  # as if bound: commits would reach NATS
    store.publisher = object()  # type: ignore[assignment]
    store.is_connected = lambda: True
    store.awaiting_rel_add("c", 6)
    assert store.publish_durable("mqttref.dur.m.t", b"body", "id-2", "c") is True
    assert _pending(store, "r.6") == {"id": "id-2", "s": "mqttref.dur.m.t", "b": "Ym9keQ"}
    assert set(store._first) == {f"{session_prefix('c')}.r.6"}  # before the publishes
    assert store.publish_durable("mqttref.dur.m.t", b"other", "id-3", "c") is True
    assert _pending(store, "r.6") == {"id": "id-2", "s": "mqttref.dur.m.t", "b": "Ym9keQ"}


@pytest.mark.parametrize(("wide", "narrow", "covers"), [
    ("m.t.>", "m.t.a", True),
    ("m.>", "m.t.>", True),
    ("m.*.a", "m.t.a", True),
    ("m.*", "m.*", True),
    ("m.t", "m.*", False),
    ("m.t.>", "m.t", False),  # ">" takes one token at least
    ("m.*", "m.t.>", False),
    ("m.t.a", "m.t.>", False),
    ("m.t.a", "m.t.a", True),
])
def test_a_subject_covers_another_when_every_subject_of_the_narrow_one_matches(
        wide: str, narrow: str, covers: bool) -> None:
    assert subject_covers(wide, narrow) is covers


def test_the_mark_of_a_subject_follows_a_wider_consumer_that_handed_its_messages_first(
        ) -> None:
    """Another local session's ``#`` (``m.>``) handed messages 6 to 9 on ``t/a`` before
    ``m.t.a``'s own consumer did: the session got them, so its mark says 9, not 5 (a
    replay elsewhere gave them again, after later ones). Not so for a wider consumer
    that started above the subject's position: 6 to 8 may still be on their way."""
    positions = {"m.t.a": 5, "m.>": 9, "m.x.>": 40}
    assert reached("m.t.a", positions, {"m.>": 2, "m.x.>": 0}) == 9
    assert reached("m.t.a", positions, {"m.>": 8}) == 5
    assert reached("m.t.a", positions, {}) == 5
    store = JetStreamSessionStore(MemoryStore())
    store.positions = lambda: positions
    store.origins = lambda: {"m.>": 2}
    store.create_session("c")
    store.set_subscription("c", "t/a", QoS.AT_LEAST_ONCE)
    store.final_mark("c")
    assert _pending(store, "mark") == {"m.t.a": 9, "~n": 0, "~q": 0}
