"""MQTT 5.0 Will Message: the Will Delay Interval against the end of the session
(3.1.2.5, 3.1.3.2.2, 3.1.4, 3.14.4).

Theory of operation: ``WILL_5`` is the chart of one connection's Will Message
on the server. It is ``stored`` while the connection is open [MQTT-3.1.2-7].
DISCONNECT 0x00 discards it [MQTT-3.14.4-3]; any other end of the connection
-- DISCONNECT 0x04 or another reason code, a network loss, a keep-alive
expiry, a close by the server, a takeover -- leaves it ``delayed``: it must be
published once the Will Delay Interval has passed or the session has ended,
whichever comes first, unless a new Network Connection for the session is
made before then, which cancels it [MQTT-3.1.2-8] [MQTT-3.1.3-9].

Timing has no precision in the specification (the Server SHOULD publish
"promptly", 3.1.2.5), so the component never asks for an instant: the will
becomes ``due`` when the delay (or the session's expiry, if shorter) has
passed; from then on its publication is allowed, and it is owed by ``margin``
seconds of model time later. A publication before it is due breaks
[MQTT-3.1.2-8]; one after DISCONNECT 0x00, after a cancelling reconnection or
a second one, breaks the statement that removed the will. A takeover is a
close followed by ``reconnected`` (Clean Start 0 resuming the session) or
``session_ended`` (Clean Start 1, or an interval of 0), as 3.1.4's comment
spells out: the will of the taken-over connection is sent unless the new
connection resumes the session and the delay is above zero.
"""

from __future__ import annotations

from enum import StrEnum

import attrs

from mqttref.impl.codec.packets import Publish, Will
from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.obligations import Obligation

NEVER_EXPIRES = 0xFFFFFFFF
"""A Session Expiry Interval of 0xFFFFFFFF: the session does not end on its own."""

NORMAL_DISCONNECTION = 0x00
"""The one DISCONNECT reason code that discards the will [MQTT-3.14.4-3]."""


class WillState5(StrEnum):
    STORED = "stored"
    DELAYED = "delayed"
    DUE = "due"
    PUBLISHED = "published"
    DISCARDED = "discarded"
    CANCELLED = "cancelled"


class WillEvent5(StrEnum):
    DISCONNECT_NORMAL = "disconnect_normal"
    DISCONNECT_OTHER = "disconnect_other"
    CONNECTION_CLOSED = "connection_closed"
    DELAY_ELAPSED = "delay_elapsed"
    SESSION_ENDED = "session_ended"
    RECONNECTED = "reconnected"
    WILL_PUBLISHED = "will_published"


W, WE = WillState5, WillEvent5

_FINAL_REFS = {
    W.PUBLISHED: ("MQTT-3.1.2-10",),
    W.DISCARDED: ("MQTT-3.14.4-3", "MQTT-3.1.2-10"),
    W.CANCELLED: ("MQTT-3.1.3-9", "MQTT-3.1.2-8"),
}
"""Why a will in a final state may never be published (again)."""


def _final_rows() -> tuple[Transition, ...]:
    """Later news of the session changes nothing for a will already gone."""
    return tuple(
        Transition(state, event, state, refs)
        for state, refs in _FINAL_REFS.items()
        for event in (WE.RECONNECTED, WE.SESSION_ENDED)
    )


WILL_5 = Chart(
    name="will_5",
    title="Will Message (MQTT 5.0)",
    description="One connection's Will Message on the server under MQTT 5.0: discarded by "
    "DISCONNECT 0x00, otherwise published once the Will Delay Interval has passed or the "
    "session has ended, whichever is first, unless a new connection resumes the session "
    "before then.",
    states=states_of(
        WillState5,
        {
            W.STORED: "the connection is open; the will is kept with the session",
            W.DELAYED: "the connection closed; neither the delay nor the session has ended",
            W.DUE: "the delay has passed or the session ended: the will must be published",
            W.PUBLISHED: "the will was published and removed",
            W.DISCARDED: "DISCONNECT 0x00 removed the will unpublished",
            W.CANCELLED: "a new connection for the session came before the delay passed",
        },
        finals=[W.PUBLISHED, W.DISCARDED, W.CANCELLED],
    ),
    events=events_of(
        WillEvent5,
        {
            WE.DISCONNECT_NORMAL: "the client sends DISCONNECT 0x00 (Normal disconnection)",
            WE.DISCONNECT_OTHER: "the client sends DISCONNECT with any other reason code "
            "(0x04 Disconnect with Will Message, or an error)",
            WE.CONNECTION_CLOSED: "the connection closes without DISCONNECT (network loss, "
            "keep-alive, a close by the server, a takeover)",
            WE.DELAY_ELAPSED: "the Will Delay Interval has passed since the close",
            WE.SESSION_ENDED: "the session ended (expiry, Clean Start 1, or interval 0)",
            WE.RECONNECTED: "a new Network Connection resumes the session",
            WE.WILL_PUBLISHED: "the server publishes the Will Message (observation)",
        },
    ),
    initial=W.STORED,
    actions=("discard_will", "start_delay", "cancel_will", "remove_will"),
    transitions=(
        Transition(
            W.STORED,
            WE.DISCONNECT_NORMAL,
            W.DISCARDED,
            ("MQTT-3.14.4-3", "MQTT-3.1.2-10"),
            action="discard_will",
        ),
        # The will is stored with the Session, not the connection: it outlives the close
        # [MQTT-3.1.2-7] until its delay or the session's end [MQTT-3.1.2-8].
        Transition(
            W.STORED,
            WE.DISCONNECT_OTHER,
            W.DELAYED,
            ("MQTT-3.1.2-7", "MQTT-3.1.2-8"),
            action="start_delay",
        ),
        Transition(
            W.STORED,
            WE.CONNECTION_CLOSED,
            W.DELAYED,
            ("MQTT-3.1.2-7", "MQTT-3.1.2-8"),
            action="start_delay",
        ),
        Transition(W.DELAYED, WE.DELAY_ELAPSED, W.DUE, ("MQTT-3.1.2-8",)),
        Transition(W.DELAYED, WE.SESSION_ENDED, W.DUE, ("MQTT-3.1.2-8",)),
        Transition(
            W.DELAYED,
            WE.RECONNECTED,
            W.CANCELLED,
            ("MQTT-3.1.3-9", "MQTT-3.1.2-8"),
            action="cancel_will",
        ),
        Transition(
            W.DUE,
            WE.WILL_PUBLISHED,
            W.PUBLISHED,
            ("MQTT-3.1.2-8", "MQTT-3.1.2-10"),
            action="remove_will",
        ),
        # Too late to cancel: the delay (or the session) ended before the new connection.
        Transition(W.DUE, WE.RECONNECTED, W.DUE, ("MQTT-3.1.2-8",)),
        Transition(W.DUE, WE.SESSION_ENDED, W.DUE, ("MQTT-3.1.2-8",)),
        *_final_rows(),
    ),
    protocol="5.0",
)

_EARLY_REFS = ("MQTT-3.1.2-8",)
"""A will published while its connection is open or before it is due."""


@attrs.define
class Will5:
    """One connection's Will Message under ``WILL_5``, on a model clock.

    ``delay`` is the Will Delay Interval (absent: 0). ``margin`` is how much
    model time after the will falls due the server may take to publish it.
    """

    delay: int = 0
    margin: float = 0.0
    client: str = "client"
    state: str = W.STORED
    now: float = 0.0
    due_at: float | None = None
    """Model time from which the will may (and then must) be published."""

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.delay <= 0xFFFFFFFF:
            raise UsageError(f"a Will Delay Interval is a Four Byte Integer, not {self.delay}")
        if self.margin < 0:
            raise UsageError("the margin is a duration, not a negative number")

    # -- what the server may do -------------------------------------------------------

    def may_publish(self) -> bool:
        """Whether a publication of the will now is allowed."""
        return self.state == W.DUE

    @property
    def deadline(self) -> float | None:
        """Model time by which a due will must have been published."""
        return None if self.due_at is None else self.due_at + self.margin

    def overdue(self) -> bool:
        deadline = self.deadline
        return self.state == W.DUE and deadline is not None and self.now > deadline

    def obligations(self) -> list[Obligation]:
        if self.state != W.DUE:
            return []
        return [
            Obligation(
                self.client,
                f"publish the Will Message (due at {self.due_at}, by {self.deadline})",
                ("MQTT-3.1.2-8",),
            )
        ]

    def check(self) -> None:
        """Raise ``Violation`` if the will is owed and its margin has run out."""
        if self.overdue():
            raise Violation(
                self.client,
                f"the Will Message was due at {self.due_at} and is still unpublished",
                refs=("MQTT-3.1.2-8",),
                allowed=(f"publication by {self.deadline}",),
                arrived=f"nothing by {self.now}",
            )

    # -- events -----------------------------------------------------------------------

    def client_disconnect(self, reason_code: int, *, session_expiry: int) -> Transition:
        """The client sends DISCONNECT with ``reason_code``; the connection closes.

        ``session_expiry`` is the Session Expiry Interval in force after it
        (0: the session ends with the connection, which makes the will due).
        """
        if reason_code == NORMAL_DISCONNECTION:
            return self._fire(WE.DISCONNECT_NORMAL)
        return self._close(WE.DISCONNECT_OTHER, session_expiry)

    def connection_closed(self, *, session_expiry: int) -> Transition:
        """The connection closed without DISCONNECT (either side, or a takeover)."""
        return self._close(WE.CONNECTION_CLOSED, session_expiry)

    def session_ended(self) -> Transition:
        """The session ended for another reason than its expiry timer (Clean Start 1
        on a new connection, administrative discard)."""
        return self._fire(WE.SESSION_ENDED)

    def reconnected(self) -> Transition:
        """A new Network Connection for the ClientID resumes the session."""
        return self._fire(WE.RECONNECTED)

    def time_passes(self, seconds: float) -> None:
        if seconds < 0:
            raise UsageError("time does not run backwards")
        self.now += seconds
        if self.state == W.DELAYED and self.due_at is not None and self.now >= self.due_at:
            self._fire(WE.DELAY_ELAPSED)

    def published(self) -> Transition:
        """Observe the server publishing the Will Message."""
        try:
            row = WILL_5.fire(self.state, WE.WILL_PUBLISHED)
        except NoTransition:
            refs = _FINAL_REFS.get(WillState5(self.state), _EARLY_REFS)
            raise Violation(
                self.client,
                f"the Will Message was published while {self.state}",
                refs=refs,
                allowed=(self._when_allowed(),),
                arrived=f"Will Message at {self.now}",
            ) from None
        self.state = row.target
        return row

    # -- helpers ----------------------------------------------------------------------

    def _when_allowed(self) -> str:
        if self.state == W.STORED:
            return "nothing while the connection is open"
        if self.state == W.DELAYED:
            return f"nothing before {self.due_at}"
        return "nothing: the will is gone"

    def _close(self, event: str, session_expiry: int) -> Transition:
        if not 0 <= session_expiry <= NEVER_EXPIRES:
            raise UsageError(f"a Session Expiry Interval is a Four Byte Integer: {session_expiry}")
        row = self._fire(event)
        wait = self.delay if session_expiry == NEVER_EXPIRES else min(self.delay, session_expiry)
        self.due_at = self.now + wait
        self.time_passes(0)
        return row

    def _fire(self, event: str) -> Transition:
        row = WILL_5.fire(self.state, event)
        self.state = row.target
        return row


# -- the Will Message as published ---------------------------------------------------


def check_will_delivery(client: str, will: Will, packet: Publish, *,
                        retain_as_published: bool) -> None:
    """Raise ``Violation`` unless ``packet``, a PUBLISH carrying ``will`` to a subscription
    with ``retain_as_published``, carries it as the CONNECT asked: Will Retain 0 makes it
    a non-retained message, RETAIN 0 on every delivery [MQTT-3.1.2-14]; Will Retain 1 a
    retained one, RETAIN 1 where the subscription keeps the flag [MQTT-3.1.2-15]
    (otherwise 0, 3.3.1.3); its User Properties in the CONNECT's order [MQTT-3.1.3-10]."""
    if (packet.topic, packet.payload) != (will.topic, will.payload):
        raise UsageError("the PUBLISH does not carry this Will Message")
    retain = will.retain and retain_as_published
    if packet.retain != retain:
        refs = ("MQTT-3.1.2-15",) if will.retain else ("MQTT-3.1.2-14",)
        raise Violation(client, f"the Will Message (Will Retain {int(will.retain)}) delivered "
                        f"with RETAIN {int(packet.retain)}", refs=refs,
                        allowed=(f"RETAIN {int(retain)}",), arrived=f"RETAIN {int(packet.retain)}")
    sent = will.properties.user_properties
    got = packet.properties.user_properties
    if got != sent:
        what = "reordered" if sorted(got) == sorted(sent) else "changed"
        raise Violation(client, f"the Will Message's User Properties {what}",
                        refs=("MQTT-3.1.3-10",), allowed=(repr(sent),), arrived=repr(got))


def retained_after_will(will: Will, before: bytes | None) -> bytes | None:
    """The payload of the topic's retained message once the will is published (None:
    none). Will Retain 1 makes the will the retained message [MQTT-3.1.2-15] (a zero-byte
    one removes it, 3.3.1.3); Will Retain 0 leaves the retained message as it was
    [MQTT-3.1.2-14]."""
    if not will.retain:
        return before
    return will.payload or None


def check_retained_after_will(client: str, will: Will, before: bytes | None,
                              got: bytes | None) -> None:
    """A new subscription to the will's topic, after the will was published, got ``got``
    as the retained message (None: none)."""
    owed = retained_after_will(will, before)
    if got != owed:
        refs = ("MQTT-3.1.2-15",) if will.retain else ("MQTT-3.1.2-14",)
        raise Violation(client, f"the retained message after a will with Will Retain "
                        f"{int(will.retain)}", refs=refs,
                        allowed=(repr(owed) if owed is not None else "no retained message",),
                        arrived=repr(got) if got is not None else "no retained message")
