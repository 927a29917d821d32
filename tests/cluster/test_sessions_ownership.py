"""Who owns a client id in the cluster: the pure decisions of ``impl/cluster/ownership.py``.

No NATS here: the owner record, the live leases and the clock are given, and each
test reads as one rule of the takeover protocol.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.cluster.ownership import (
    AskRelease,
    ClaimState,
    Create,
    Lease,
    NodeId,
    Owned,
    OwnerRecord,
    Replace,
    decide_claim,
    orphans,
)

ME = NodeId("n2", "me-1")
A = NodeId("n1", "a-1")
LEASE = 10.0
NOT_ASKED = ClaimState()


def claim(current: OwnerRecord | None, live: dict[str, str],
          state: ClaimState = NOT_ASKED, now: float = 100.0) -> object:
    return decide_claim(ME, current, live, state, now=now, lease=LEASE)


def test_a_client_id_nobody_owns_is_created() -> None:
    assert claim(None, {}) == Create()


def test_a_client_id_this_node_owns_needs_nothing() -> None:
    assert claim(OwnerRecord(ME, 7), {"n2": "me-1"}) == Owned()


def test_a_live_owner_is_asked_to_release_first() -> None:
    assert claim(OwnerRecord(A, 7), {"n1": "a-1", "n2": "me-1"}) == AskRelease(A)


def test_after_the_owner_released_the_record_is_replaced_at_the_revision_read() -> None:
    state = ClaimState(A, 100.0, released=True)
    assert claim(OwnerRecord(A, 7), {"n1": "a-1"}, state, now=100.1) == Replace(7)


def test_a_silent_live_owner_is_asked_again_until_one_lease_after_the_first_request(
) -> None:
    state = ClaimState(A, 100.0, released=False)
    assert claim(OwnerRecord(A, 7), {"n1": "a-1"}, state, now=105.0) == AskRelease(A)
    assert claim(OwnerRecord(A, 7), {"n1": "a-1"}, state, now=110.0) == Replace(7)


def test_an_owner_nobody_answers_for_in_nats_is_gone_at_once() -> None:
    state = ClaimState(A, 100.0, gone=True)
    assert claim(OwnerRecord(A, 7), {"n1": "a-1"}, state, now=100.0) == Replace(7)


def test_an_owner_whose_lease_ran_out_is_replaced_without_asking() -> None:
    assert claim(OwnerRecord(A, 7), {"n2": "me-1"}) == Replace(7)


def test_an_owner_started_again_does_not_keep_the_leases_of_its_previous_life() -> None:
    """n1 restarted: same name, new incarnation; its old sessions were never handed over."""
    assert claim(OwnerRecord(A, 7), {"n1": "a-2"}) == Replace(7)


def test_an_answer_from_an_earlier_owner_does_not_count_for_the_next() -> None:
    """Asked n1, but the record changed hands to n3 meanwhile: n3 must be asked too."""
    n3 = NodeId("n3", "c-1")
    state = ClaimState(A, 100.0, released=True)
    assert claim(OwnerRecord(n3, 9), {"n1": "a-1", "n3": "c-1"}, state) == AskRelease(n3)


def test_a_claim_that_lost_to_the_lease_scan_takes_the_session_over_from_the_adopter(
) -> None:
    """Issue 19, as events: n3 started again (its old life's record at revision 7 is an
    orphan); n2's CONNECT decides to replace it, but n1's scan wins the compare-and-set
    first (revision 8). Read again with a fresh state, the claim asks n1, now the live
    owner, to release the session, and replaces n1's record only once it has: never a
    new empty session while one exists [MQTT-3.2.2-2]."""
    dead_life = NodeId("n3", "c-1")
    live = {"n1": "a-1", "n2": "me-1", "n3": "c-2"}
    assert claim(OwnerRecord(dead_life, 7), live) == Replace(7)
    adopted = OwnerRecord(A, 8)  # n1's take_orphan won revision 7: the CAS above fails
    assert claim(adopted, live) == AskRelease(A)
    assert claim(adopted, live, ClaimState(A, 100.0, released=True)) == Replace(8)


def test_orphans_are_the_records_of_dead_or_restarted_nodes_in_client_id_order() -> None:
    n3 = NodeId("n3", "c-1")
    records = [("z", OwnerRecord(A, 1)), ("b", OwnerRecord(n3, 2)), ("a", OwnerRecord(A, 3)),
               ("m", OwnerRecord(ME, 4))]
    live = {"n2": "me-1", "n3": "c-1", "n1": "a-2"}
    assert orphans(records, live) == [("a", OwnerRecord(A, 3)), ("z", OwnerRecord(A, 1))]


@given(st.lists(st.tuples(st.text(max_size=5), st.sampled_from([A, ME]),
                          st.integers(1, 100)), max_size=10),
       st.booleans())
def test_no_record_of_a_live_incarnation_is_ever_an_orphan(
    rows: list[tuple[str, NodeId, int]], a_alive: bool,
) -> None:
    live = {"n2": "me-1"} | ({"n1": "a-1"} if a_alive else {})
    found = orphans([(cid, OwnerRecord(node, rev)) for cid, node, rev in rows], live)
    assert all(record.owner.name not in live for _cid, record in found)
    assert len(found) == sum(1 for _c, node, _r in rows if node.name not in live)


def test_a_lease_is_refreshed_every_third_and_held_until_a_whole_lease_without_refresh(
) -> None:
    lease = Lease(9.0)
    assert lease.next_refresh(50.0) == 50.0
    assert not lease.held(50.0)
    lease.refreshed(50.0)
    assert lease.next_refresh(51.0) == pytest.approx(53.0)
    assert lease.held(58.9)
    assert not lease.held(59.0)


def test_an_owner_record_reads_back_what_was_written() -> None:
    assert NodeId.decode(A.encode()) == A
    with pytest.raises(ValueError, match="not an owner record"):
        NodeId.decode(b'{"node": "n1"}')
    assert NodeId.fresh("n1") != NodeId.fresh("n1")
