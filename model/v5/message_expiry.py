"""Message expiry (3.3.2.3.3): one copy of an Application Message against its lifetime.

Theory of operation: a PUBLISH may carry a Message Expiry Interval, the
message's lifetime in seconds; without one the message never expires. When
the interval has passed and the Server has not managed to start onward
delivery to a matching subscriber, it MUST delete that subscriber's copy
[MQTT-3.3.2-5]; a PUBLISH that does carry the copy to a Client MUST carry the
received value less the time the message waited in the Server [MQTT-3.3.2-6].
Once a PUBLISH has carried the copy, expiry no longer applies to it (onward
delivery has started; for QoS 2 the sender MUST NOT apply expiry after sending
the PUBLISH [MQTT-4.3.3-7]), so a re-send on reconnection [MQTT-4.4.0-1] is
never late. The retained message of a topic is held the same way: a new
subscription gets the remaining interval, or nothing once it has expired
(3.3.1.3: an expired retained message is discarded).

``MESSAGE_EXPIRY_5`` is the chart of one copy (a subscriber's queued copy, or
the retained message offered to one new subscription). Time is the model's
clock, read off events (seconds since any origin), never a wall clock; the
Server's own moments are known only within bounds: it received the message
no earlier than the publisher sent it (``published_at``) and no later than
the publisher got its acknowledgement (``held_by``, when known), and it sent a
copy no earlier than it could (``sendable_from``: the subscriber's CONNECT or
SUBSCRIBE) and no later than the copy arrived. The interval is in whole
seconds, so the allowed values are rounded outwards; and a Server counting
the wait in whole seconds can see up to a second more or less than passed,
so one stated ``margin`` (whole seconds, 1 by default) widens the bounds of
both the values and the expiry itself. Hence the states between ``held`` and
``expired``:

- ``held``: the interval has surely not passed: expiry is no excuse, the copy
  is still owed wherever the session owes it;
- ``expiring``: it may have passed, within the bounds: delivering and dropping
  are both allowed (dropping is never owed before the interval surely passed);
- ``expired``: it surely passed before the earliest moment the Server could
  send the copy: delivering it breaks [MQTT-3.3.2-5].
"""

from __future__ import annotations

import math
from enum import StrEnum

import attrs

from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import UsageError, Violation

LARGEST_INTERVAL = 4_294_967_295
"""The Message Expiry Interval is a Four Byte Integer (1.5.3)."""


class ExpiryState(StrEnum):
    HELD = "held"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    DELIVERED = "delivered"
    DELETED = "deleted"


class ExpiryEvent(StrEnum):
    INTERVAL_MAY_HAVE_PASSED = "interval_may_have_passed"
    INTERVAL_PASSED = "interval_passed"
    SEND = "send"
    RESEND = "resend"
    DELETE = "delete"


X, XE = ExpiryState, ExpiryEvent
_CARRY = ("MQTT-3.3.2-6",)
_DELETE = ("MQTT-3.3.2-5",)

MESSAGE_EXPIRY_5 = Chart(
    name="message_expiry_5",
    title="Message expiry (MQTT 5.0)",
    description="One copy of an Application Message held for one subscriber (or the "
    "retained message offered to one new subscription), against its Message Expiry "
    "Interval (3.3.2.3.3): sent with the remaining interval while it lives, deleted once "
    "the interval has passed before onward delivery started; `expiring` is the margin "
    "where the model cannot tell, and both are allowed.",
    states=states_of(
        ExpiryState,
        {
            X.HELD: "held, not yet sent, and the interval surely has not passed "
            "(a message without one stays here)",
            X.EXPIRING: "held, not yet sent, and the interval may have passed "
            "(within the measurement margin)",
            X.EXPIRED: "held, not yet sent, and the interval surely passed: "
            "the copy must be deleted",
            X.DELIVERED: "a PUBLISH carried the copy: onward delivery started, "
            "expiry no longer applies to it",
            X.DELETED: "the copy is gone without being sent",
        },
        finals=[X.DELIVERED, X.DELETED],
    ),
    events=events_of(
        ExpiryEvent,
        {
            XE.INTERVAL_MAY_HAVE_PASSED: "the model clock reaches the earliest moment the "
            "Server can count the interval as passed",
            XE.INTERVAL_PASSED: "the model clock passes the latest such moment",
            XE.SEND: "the Server sends the first PUBLISH carrying the copy",
            XE.RESEND: "the Server re-sends that PUBLISH (reconnection, DUP=1)",
            XE.DELETE: "the Server drops the copy",
        },
    ),
    initial=X.HELD,
    actions=("carry_remaining_interval",),
    protocol="5.0",
    transitions=(
        Transition(X.HELD, XE.INTERVAL_MAY_HAVE_PASSED, X.EXPIRING, _DELETE),
        Transition(X.EXPIRING, XE.INTERVAL_PASSED, X.EXPIRED, _DELETE),
        Transition(X.HELD, XE.SEND, X.DELIVERED, _CARRY, action="carry_remaining_interval"),
        Transition(X.EXPIRING, XE.SEND, X.DELIVERED, _CARRY, action="carry_remaining_interval"),
        Transition(
            X.DELIVERED,
            XE.RESEND,
            X.DELIVERED,
            ("MQTT-4.3.3-7", "MQTT-4.4.0-1", "MQTT-3.3.2-6"),
            action="carry_remaining_interval",
        ),
        Transition(X.EXPIRING, XE.DELETE, X.DELETED, _DELETE),
        Transition(X.EXPIRED, XE.DELETE, X.DELETED, _DELETE),
    ),
)


@attrs.frozen
class AllowedIntervals:
    """The Message Expiry Interval values a PUBLISH carrying the copy may have.

    ``absent``: the property must be left out (the message had none).
    Otherwise any value in ``values``, or in ``also`` (a re-send may repeat
    what the first PUBLISH carried).
    """

    values: range = range(0)
    also: frozenset[int] = frozenset()
    absent: bool = False

    def __contains__(self, carried: object) -> bool:
        if self.absent:
            return carried is None
        return isinstance(carried, int) and (carried in self.values or carried in self.also)

    def describe(self) -> str:
        if self.absent:
            return "no Message Expiry Interval (the message had none: it does not expire)"
        parts = [f"{self.values.start}..{self.values.stop - 1}"] if self.values else []
        parts += [str(v) for v in sorted(self.also - set(self.values))]
        return "Message Expiry Interval " + " or ".join(parts)


def _interval(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= LARGEST_INTERVAL:
        raise UsageError(f"Message Expiry Interval {value} is no Four Byte Integer (1.5.3)")
    return value


def _margin(value: int) -> int:
    if value < 0:
        raise UsageError(f"a measurement margin of {value} s: it is a number of whole seconds")
    return value


@attrs.define
class ExpiringCopy:
    """One held copy and its Message Expiry Interval; see the module docstring.

    ``interval`` is what the publisher sent (None: absent); ``published_at``
    when its PUBLISH went out and ``held_by`` when the Server surely had it
    (its PUBACK or PUBREC arrived; None: not known), on the model clock.
    """

    interval: int | None = attrs.field(converter=_interval)
    published_at: float
    held_by: float | None = None
    margin: int = attrs.field(default=1, converter=_margin)
    client: str = "?"
    state: str = ExpiryState.HELD
    first_carried: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.held_by is not None and self.held_by < self.published_at:
            raise UsageError("the Server cannot hold the message before it was published")

    def _passed(self, at: float) -> int:
        """0: surely not passed at ``at``; 1: may have; 2: surely passed."""
        if self.interval is None:
            return 0
        if self.held_by is not None and at - self.held_by - self.margin > self.interval:
            return 2
        return 0 if at - self.published_at + self.margin < self.interval else 1

    def state_at(self, at: float) -> str:
        """The chart's state for a Server acting at ``at`` (the clock replayed from ``held``)."""
        if self.state not in (X.HELD, X.EXPIRING, X.EXPIRED):
            return self.state
        state: str = X.HELD
        passed = self._passed(at)
        if passed >= 1:
            state = MESSAGE_EXPIRY_5.fire(state, XE.INTERVAL_MAY_HAVE_PASSED).target
        if passed == 2:
            state = MESSAGE_EXPIRY_5.fire(state, XE.INTERVAL_PASSED).target
        return state

    def owed(self, at: float) -> bool:
        """Whether expiry is still no excuse at ``at``: the copy has not been sent or
        dropped, and its interval surely has not passed."""
        return self.state_at(at) == X.HELD

    def may_drop(self, at: float) -> bool:
        """Whether the Server may have dropped the copy by ``at`` because it expired."""
        return MESSAGE_EXPIRY_5.allows(self.state_at(at), XE.DELETE)

    def allowed_on_delivery(
        self, arrived_at: float, sendable_from: float | None = None
    ) -> AllowedIntervals:
        """The values a PUBLISH carrying the copy, arriving at ``arrived_at``, may carry.

        ``sendable_from`` is the earliest the Server could send it (the
        subscriber's CONNECT or SUBSCRIBE; default ``published_at``). Raises
        ``Violation`` when the copy surely expired before it [MQTT-3.3.2-5].
        """
        start = self.published_at if sendable_from is None else sendable_from
        if arrived_at < start:
            raise UsageError("a copy cannot arrive before the Server could send it")
        resend = self.state == X.DELIVERED
        if not resend and not MESSAGE_EXPIRY_5.allows(self.state_at(start), XE.SEND):
            raise Violation(
                self.client,
                f"a copy whose Message Expiry Interval ({self.interval} s) had passed before "
                f"the Server could send it (held by {self.held_by}, sendable from {start}, "
                f"margin {self.margin} s) was delivered instead of deleted",
                refs=_DELETE,
                allowed=["nothing: the copy must be deleted"],
                arrived="PUBLISH carrying the expired message",
            )
        if self.interval is None:
            return AllowedIntervals(absent=True)
        longest = arrived_at - self.published_at
        shortest = max(0.0, start - self.held_by) if self.held_by is not None else 0.0
        low = max(0, math.floor(self.interval - longest) - self.margin)
        high = min(self.interval, math.ceil(self.interval - shortest) + self.margin)
        if not resend:
            return AllowedIntervals(range(low, high + 1))
        # A re-send may recompute the interval (0 once it has run out) or repeat
        # the first PUBLISH's value: 3.3.2.3.3 does not say which.
        first = frozenset() if self.first_carried is None else frozenset({self.first_carried})
        return AllowedIntervals(range(low, max(high, 0) + 1), first)

    def delivered(
        self, carried: int | None, arrived_at: float, sendable_from: float | None = None
    ) -> None:
        """A PUBLISH carrying the copy with Message Expiry Interval ``carried`` arrived."""
        allowed = self.allowed_on_delivery(arrived_at, sendable_from)
        if carried not in allowed:
            raise Violation(
                self.client,
                f"the PUBLISH must carry the received Message Expiry Interval "
                f"({self.interval}) less the time the message waited in the Server "
                f"(margin {self.margin} s)",
                refs=_CARRY,
                allowed=[allowed.describe()],
                arrived="no Message Expiry Interval" if carried is None
                else f"Message Expiry Interval {carried}",
            )
        if self.state == X.DELIVERED:
            MESSAGE_EXPIRY_5.fire(self.state, XE.RESEND)
            return
        start = self.published_at if sendable_from is None else sendable_from
        self.state = MESSAGE_EXPIRY_5.fire(self.state_at(start), XE.SEND).target
        self.first_carried = carried

    def dropped(self, at: float) -> None:
        """The model concluded the copy is gone by ``at`` (never sent).

        Only an interval that may have passed allows that here; a copy still
        owed raises ``NoTransition``: what it was owed under is the session's rule.
        """
        self.state = MESSAGE_EXPIRY_5.fire(self.state_at(at), XE.DELETE).target
