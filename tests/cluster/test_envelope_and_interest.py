"""The pure parts of the cluster, without NATS: the envelope a message travels in, and
the reference-counted interest that decides a node's NATS subscriptions."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.cluster.duplicates import Seen
from mqttref.impl.cluster.envelope import EnvelopeError, open_envelope, seal
from mqttref.impl.cluster.interest import Interest, queue_of
from mqttref.impl.codec.packets import QoS
from mqttref.impl.message import Message
from tests.strategies import client_ids, payloads, properties, topic_filters, topic_names


@given(topic=topic_names(), payload=payloads(), qos=st.sampled_from(QoS), retain=st.booleans(),
       props=properties("PUBLISH", exclude=frozenset({"topic_alias",
                                                      "subscription_identifiers"})),
       expiry=st.none() | st.floats(0, 1e5), origin=st.none() | client_ids(),
       sequence=st.integers(1, 2**63))
def test_a_message_survives_its_envelope(
        *, topic: str, payload: bytes, qos: QoS, retain: bool, props: object,
        expiry: float | None, origin: str | None, sequence: int) -> None:
    now = 1000.0
    message = Message(topic, payload, qos, retain, properties=props,  # type: ignore[arg-type]
                      expires_at=None if expiry is None else now + expiry, origin=origin)
    body = seal(message, b"12345678", sequence, now)
    envelope = open_envelope(topic, body, now + 5.0)  # another node's clock
    got = envelope.message
    assert (envelope.incarnation, envelope.sequence) == (b"12345678", sequence)
    assert got.same_as(message)
    assert (got.properties, got.origin) == (message.properties, message.origin)
    if expiry is None:
        assert got.expires_at is None
    else:  # time left travels, to a millisecond, on the receiver's clock
        assert got.expires_at is not None
        assert abs(got.expires_at - (now + 5.0 + expiry)) <= 0.0011


@pytest.mark.parametrize("body", [b"", b"x" * 16, b"x" * 16 + b"\x03", b"x" * 16 + b"\x40",
                                  b"x" * 16 + b"\x10\x00"])
def test_bytes_that_are_no_envelope_are_refused(body: bytes) -> None:
    with pytest.raises(EnvelopeError):
        open_envelope("t", body, 0.0)


def test_a_shared_subscription_wants_its_inner_filter_in_a_queue_group_of_its_own() -> None:
    interest = Interest()
    queue = queue_of("$share/group/a/+")
    assert interest.add("$share/group/a/+") == (("m.a.*", queue),)
    assert interest.groups[queue] == "$share/group/a/+"
    assert queue != queue_of("$share/other/a/+")
    assert interest.add("a/+") == (("m.a.*", ""),)  # an ordinary subscriber: no queue
    assert interest.add("$share/bad") == ()  # malformed: refused by the registry anyway
    assert Interest(shared_subscriptions=False).add("$share/g/a") == (("d.=24share.g.a", ""),)


def test_one_subject_needed_by_two_filters_stays_until_both_are_gone() -> None:
    interest = Interest()
    assert interest.add("a") == (("m.a", ""),)
    assert interest.add("a/#") == (("m.a.>", ""),)  # m.a is wanted already
    assert interest.add("a") == ()  # a second holder
    assert interest.remove("a") == ()
    assert interest.remove("a") == ()  # a/# still needs m.a
    assert interest.remove("a/#") == (("m.a", ""), ("m.a.>", ""))


operations = st.lists(st.tuples(st.booleans(), topic_filters(max_levels=3)), max_size=30)


@given(operations)
def test_the_subscribed_subjects_are_those_of_the_held_filters(
        steps: list[tuple[bool, str]]) -> None:
    """Whatever the order of subscribes and unsubscribes, the subjects subscribed (the
    changes applied one by one) are exactly those the filters still held need, and a
    reconcile from the held filters changes nothing."""
    interest = Interest()
    held: Counter[str] = Counter()
    subscribed: set[tuple[str, str]] = set()
    for add, topic_filter in steps:
        if add:
            held[topic_filter] += 1
            new = interest.add(topic_filter)
            assert not subscribed & set(new)
            subscribed |= set(new)
        elif held[topic_filter]:
            held[topic_filter] -= 1
            gone = interest.remove(topic_filter)
            assert set(gone) <= subscribed
            subscribed -= set(gone)
        needed = {w for f, n in held.items() if n for w in interest.wants_of(f)}
        assert subscribed == needed
    assert not interest.reconcile(held.elements())


@given(st.lists(topic_filters(max_levels=3), max_size=10),
       st.lists(topic_filters(max_levels=3), max_size=10))
def test_reconcile_moves_from_one_set_of_filters_to_another(
        before: list[str], after: list[str]) -> None:
    interest = Interest()
    subscribed = set(interest.reconcile(before).subscribe)
    changes = interest.reconcile(after)
    assert not set(changes.subscribe) & subscribed
    assert set(changes.unsubscribe) <= subscribed
    subscribed = (subscribed - set(changes.unsubscribe)) | set(changes.subscribe)
    assert subscribed == {w for f in after for w in interest.wants_of(f)}


def test_the_duplicate_filter_passes_each_message_once_within_its_window() -> None:
    seen = Seen(window=4)
    assert seen.first_time(b"node-one", 1)
    assert not seen.first_time(b"node-one", 1)
    assert seen.first_time(b"node-two", 1)  # another sender's sequence 1
    for sequence in range(2, 6):
        assert seen.first_time(b"node-one", sequence)
    assert seen.first_time(b"node-one", 1)  # forgotten: out of the window
