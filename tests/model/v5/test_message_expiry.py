"""Message expiry (3.3.2.3.3) as the model judges it, on the model's clock."""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.v5.message_expiry import MESSAGE_EXPIRY_5, ExpiringCopy, ExpiryState
from mqttref.oracle.statements import statements
from mqttref.statecharts.build import problems


def test_the_chart_passes_the_graph_checks_and_cites_only_5_0_statements() -> None:
    assert problems(MESSAGE_EXPIRY_5) == []
    assert MESSAGE_EXPIRY_5.protocol == "5.0"
    assert [ref for ref in MESSAGE_EXPIRY_5.refs if ref not in statements("5.0")] == []


def violation_refs(copy: ExpiringCopy, carried: int | None, arrived: float,
                   sendable: float | None = None) -> tuple[str, ...]:
    with pytest.raises(Violation) as raised:
        copy.delivered(carried, arrived, sendable)
    return raised.value.refs


def test_a_message_without_an_interval_never_expires() -> None:
    """3.3.2.3.3: 'If absent, the Application Message does not expire.'"""
    copy = ExpiringCopy(None, published_at=0.0, held_by=0.1)
    assert copy.owed(1_000_000.0)
    assert not copy.may_drop(1_000_000.0)
    copy.delivered(None, arrived_at=1_000_000.0)
    assert copy.state == ExpiryState.DELIVERED


def test_a_message_without_an_interval_is_delivered_without_one() -> None:
    assert violation_refs(ExpiringCopy(None, 0.0), 30, 1.0) == ("MQTT-3.3.2-6",)


def test_a_delivered_copy_carries_the_received_interval_less_its_wait() -> None:
    """[MQTT-3.3.2-6]: 60 s, held from 0.05 s, sent no earlier than the 10 s reconnect."""
    copy = ExpiringCopy(60, published_at=0.0, held_by=0.05)
    allowed = copy.allowed_on_delivery(arrived_at=10.1, sendable_from=10.0)
    assert 50 in allowed
    assert 60 not in allowed
    assert None not in allowed
    assert violation_refs(ExpiringCopy(60, 0.0, 0.05), 60, 10.1, 10.0) == ("MQTT-3.3.2-6",)
    assert violation_refs(ExpiringCopy(60, 0.0, 0.05), None, 10.1, 10.0) == ("MQTT-3.3.2-6",)
    copy.delivered(50, arrived_at=10.1, sendable_from=10.0)


def test_the_remaining_interval_never_exceeds_the_received_one() -> None:
    copy = ExpiringCopy(5, published_at=0.0)
    assert max(copy.allowed_on_delivery(0.2).values) == 5
    assert violation_refs(copy, 6, 0.2) == ("MQTT-3.3.2-6",)


def test_a_copy_is_owed_until_its_interval_may_have_passed() -> None:
    """Expiry is no excuse while the interval surely has not passed (margin 1 s)."""
    copy = ExpiringCopy(10, published_at=0.0, margin=1)
    assert copy.owed(8.9)
    assert not copy.may_drop(8.9)
    assert not copy.owed(9.0)
    assert copy.may_drop(9.0)


def test_dropping_a_copy_that_is_still_owed_is_no_expiry() -> None:
    copy = ExpiringCopy(10, published_at=0.0)
    with pytest.raises(NoTransition):
        copy.dropped(1.0)


def test_a_copy_whose_interval_surely_passed_must_not_be_delivered() -> None:
    """[MQTT-3.3.2-5]: 2 s, held by 0.1 s, the subscriber back only at 5 s."""
    copy = ExpiringCopy(2, published_at=0.0, held_by=0.1)
    assert copy.state_at(5.0) == ExpiryState.EXPIRED
    assert violation_refs(copy, 0, 5.05, 5.0) == ("MQTT-3.3.2-5",)
    copy.dropped(5.0)
    assert copy.state == ExpiryState.DELETED


def test_within_the_margin_both_delivering_and_dropping_are_allowed() -> None:
    early = ExpiringCopy(5, published_at=0.0, held_by=0.1)
    assert early.state_at(5.5) == ExpiryState.EXPIRING
    early.delivered(0, arrived_at=5.6, sendable_from=5.5)
    late = ExpiringCopy(5, published_at=0.0, held_by=0.1)
    late.dropped(5.5)
    assert late.state == ExpiryState.DELETED


def test_without_knowing_when_the_server_held_it_a_late_delivery_is_not_proven_late() -> None:
    """The Server's receipt is bounded only by the copy's own arrival."""
    copy = ExpiringCopy(2, published_at=0.0, held_by=None)
    copy.delivered(0, arrived_at=100.0, sendable_from=99.0)


def test_a_resent_copy_is_never_late_and_may_repeat_its_first_value() -> None:
    """[MQTT-4.3.3-7]: no expiry once a PUBLISH has been sent; re-sent on reconnection."""
    copy = ExpiringCopy(10, published_at=0.0, held_by=0.1)
    copy.delivered(10, arrived_at=0.3)
    copy.delivered(10, arrived_at=50.0, sendable_from=49.0)
    copy.delivered(0, arrived_at=60.0, sendable_from=59.0)
    with pytest.raises(Violation):
        copy.delivered(7, arrived_at=60.0, sendable_from=59.0)
    assert copy.state == ExpiryState.DELIVERED


def test_the_retained_message_expires_too() -> None:
    """3.3.1.3: an expired retained message is discarded; a subscription made after
    that gets none [MQTT-3.3.2-5], one made before gets the rest [MQTT-3.3.2-6]."""
    retained = ExpiringCopy(10, published_at=0.0, held_by=0.1)
    assert not retained.owed(20.0)
    with pytest.raises(Violation):
        retained.allowed_on_delivery(arrived_at=20.1, sendable_from=20.0)
    assert 7 in retained.allowed_on_delivery(arrived_at=3.1, sendable_from=3.0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ExpiringCopy(-1, 0.0),
        lambda: ExpiringCopy(2**32, 0.0),
        lambda: ExpiringCopy(5, 0.0, margin=-1),
        lambda: ExpiringCopy(5, 1.0, held_by=0.5),
    ],
    ids=["negative", "beyond-four-bytes", "negative-margin", "held-before-published"],
)
def test_input_no_message_could_have_is_refused(build: object) -> None:
    with pytest.raises(UsageError):
        build()  # type: ignore[operator]


# Property: a conforming Server, whatever moments and whole-second clock it had,
# is never found at fault.

EIGHTHS = st.integers(0, 800).map(lambda k: k / 8)
"""Seconds on the model clock, in eighths so that sums and differences are exact."""


@attrs.frozen
class Timeline:
    """One message's life as a conforming Server lived it, and what the model saw."""

    published: float
    received: float
    held_by: float
    sendable: float
    sent: float
    arrived: float


@st.composite
def timelines(draw: st.DrawFn) -> Timeline:
    published, ack_delay, away, transit = (draw(EIGHTHS) for _ in range(4))
    held_by = published + ack_delay
    sendable = held_by + away
    return Timeline(
        published=published,
        received=published + draw(st.floats(0, 1)) * ack_delay,
        held_by=held_by,
        sendable=sendable,
        sent=sendable + draw(st.floats(0, 1)) * transit,
        arrived=sendable + transit,
    )


@given(
    interval=st.integers(0, 120),
    life=timelines(),
    whole_seconds=st.sampled_from([math.floor, math.ceil, round]),
    stamps=st.booleans(),
)
def test_a_conforming_server_is_never_found_at_fault(
    interval: int, life: Timeline, whole_seconds: Callable[[float], int], stamps: bool
) -> None:
    """Whenever it received and sent the copy within what the model saw, and
    whether it counts the wait in whole seconds or stamps both moments so
    (each within the model's 1 s margin)."""
    if stamps:
        waited = whole_seconds(life.sent) - whole_seconds(life.received)
    else:
        waited = whole_seconds(life.sent - life.received)
    copy = ExpiringCopy(interval, life.published, life.held_by, margin=1)
    if waited >= interval:
        # The Server counts it expired: dropping it is allowed from then on.
        assert copy.may_drop(life.arrived)
        return
    copy.delivered(interval - waited, life.arrived, life.sendable)


@given(interval=st.integers(0, 120), published=EIGHTHS, held=EIGHTHS, later=EIGHTHS)
def test_an_owed_copy_is_one_no_server_can_count_expired_yet(
    interval: int, published: float, held: float, later: float
) -> None:
    copy = ExpiringCopy(interval, published, published + held)
    at = published + later
    assume(at >= published + held)
    assert copy.owed(at) == (later + copy.margin < interval)
    assert copy.may_drop(at) != copy.owed(at)
