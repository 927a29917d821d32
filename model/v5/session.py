"""MQTT 5.0 session lifetime: Clean Start, Session Expiry and takeover (3.1.2.4,
3.1.2.11.2, 3.1.4, 3.2.2.1.1, 3.14.2.2.2, 4.1).

Theory of operation: ``SESSION_5`` is the server's chart of the Session State
for one ClientID. A session exists while a Network Connection is attached
(``connected``) and, once it closes, for the Session Expiry Interval in force
(``disconnected``); an interval of 0 ends it with the connection, 0xFFFFFFFF
never ends it. The CONNACK that accepts a CONNECT is the observation that
moves the chart: Clean Start 1 discards any session (Session Present 0
[MQTT-3.2.2-2]), Clean Start 0 resumes one that exists (Session Present 1) or
creates a new one (Session Present 0) [MQTT-3.2.2-3]. A refused CONNECT leaves
the session as it was and carries Session Present 0 [MQTT-3.2.2-6].

The specification gives no precision for expiry, so the chart does not
pretend to one: when the interval has passed (``expiry_passed``) the session
is ``expiring`` -- it may still exist or already be gone -- for ``margin``
seconds of model time, after which it must be gone (``margin_passed``)
[MQTT-4.1.0-2]. Before the interval has passed it must exist [MQTT-3.1.2-23].
The model has no clock: ``time_passes`` moves it.

A CONNECT for the ClientID while a connection is attached is a takeover: the
server closes the existing connection (DISCONNECT 0x8E if it sends one)
[MQTT-3.1.4-3] -- which ends the session when its interval is 0 -- and then
processes Clean Start [MQTT-3.1.4-4]. ``taken_over`` is that close.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import attrs

from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.obligations import Obligation

NEVER_EXPIRES = 0xFFFFFFFF
"""A Session Expiry Interval of 0xFFFFFFFF (UINT_MAX): the session does not expire."""

SESSION_TAKEN_OVER = 0x8E
"""The DISCONNECT reason code a taken-over connection is sent [MQTT-3.1.4-3]."""


class SessionState5(StrEnum):
    NO_SESSION = "no_session"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    EXPIRING = "expiring"


class SessionEvent5(StrEnum):
    CONNACK_CLEAN = "connack_clean"
    CONNACK_RESUME = "connack_resume"
    CONNACK_REFUSED = "connack_refused"
    TAKEN_OVER = "taken_over"
    CLIENT_DISCONNECT = "client_disconnect"
    CONNECTION_CLOSED = "connection_closed"
    EXPIRY_PASSED = "expiry_passed"
    MARGIN_PASSED = "margin_passed"


S, E = SessionState5, SessionEvent5

EXCLUSIVE_GUARDS = (
    frozenset({"expiry_kept", "expiry_zero"}),
    frozenset({"session_present", "no_session_present"}),
)
"""Guard pairs that tell rows of one (state, event) apart: each pair is complementary."""


def _closing_rows() -> tuple[Transition, ...]:
    """A connection ends: the session outlives it only if its interval is not 0."""
    rows: list[Transition] = []
    for event, refs in (
        (E.TAKEN_OVER, ("MQTT-3.1.4-3",)),
        (E.CLIENT_DISCONNECT, ()),
        (E.CONNECTION_CLOSED, ()),
    ):
        rows.append(
            Transition(
                S.CONNECTED,
                event,
                S.DISCONNECTED,
                (*refs, "MQTT-3.1.2-23"),
                "expiry_kept",
                "start_expiry",
            )
        )
        rows.append(
            Transition(
                S.CONNECTED,
                event,
                S.NO_SESSION,
                (*refs, "MQTT-4.1.0-2"),
                "expiry_zero",
                "end_session",
            )
        )
    return tuple(rows)


def _connack_rows() -> tuple[Transition, ...]:
    """CONNACK answering a CONNECT on a new connection, from each state without one.

    These rows are the processing of Clean Start the server must perform when it
    accepts a CONNECT [MQTT-3.1.4-4]: 1 discards any existing Session and starts a new
    one [MQTT-3.1.2-4], 0 resumes the existing one [MQTT-3.1.2-5] or starts a new one."""
    present, absent = "session_present", "no_session_present"
    rows: list[Transition] = []
    for state in (S.NO_SESSION, S.DISCONNECTED, S.EXPIRING):
        rows.append(
            Transition(
                state,
                E.CONNACK_CLEAN,
                S.CONNECTED,
                ("MQTT-3.1.4-4", "MQTT-3.1.2-4", "MQTT-3.2.2-2"),
                absent,
                "new_session" if state == S.NO_SESSION else "discard_and_start",
            )
        )
        rows.append(Transition(state, E.CONNACK_REFUSED, state, ("MQTT-3.2.2-6",), absent))
    rows += [
        Transition(
            S.NO_SESSION,
            E.CONNACK_RESUME,
            S.CONNECTED,
            ("MQTT-3.1.2-6", "MQTT-3.2.2-3"),
            absent,
            "new_session",
        ),
        Transition(
            S.DISCONNECTED,
            E.CONNACK_RESUME,
            S.CONNECTED,
            ("MQTT-3.1.4-4", "MQTT-3.1.2-5", "MQTT-3.2.2-3"),
            present,
            "resume_session",
        ),
        Transition(
            S.EXPIRING,
            E.CONNACK_RESUME,
            S.CONNECTED,
            ("MQTT-3.1.4-4", "MQTT-3.1.2-5", "MQTT-3.2.2-3"),
            present,
            "resume_session",
        ),
        Transition(
            S.EXPIRING,
            E.CONNACK_RESUME,
            S.CONNECTED,
            ("MQTT-4.1.0-2", "MQTT-3.1.2-6", "MQTT-3.2.2-3"),
            absent,
            "new_session",
        ),
        # A refused CONNECT on another connection fails before any takeover (3.1.4):
        # the attached connection and its session are untouched [MQTT-4.1.0-1].
        Transition(
            S.CONNECTED, E.CONNACK_REFUSED, S.CONNECTED, ("MQTT-3.2.2-6", "MQTT-4.1.0-1"), absent
        ),
    ]
    return tuple(rows)


SESSION_5 = Chart(
    name="session_5",
    title="Session (MQTT 5.0)",
    description="The server's Session State for one ClientID under MQTT 5.0: Clean Start, "
    "the Session Expiry Interval as a timer once the connection closes, Session Present "
    "in CONNACK, and the takeover of an attached connection.",
    states=states_of(
        SessionState5,
        {
            S.NO_SESSION: "no Session State for this ClientID",
            S.CONNECTED: "a Network Connection is attached: the state must be kept",
            S.DISCONNECTED: "the connection closed; the Session Expiry Interval has not passed",
            S.EXPIRING: "the interval has passed: the server must discard the state (margin)",
        },
    ),
    events=events_of(
        SessionEvent5,
        {
            E.CONNACK_CLEAN: "CONNACK 0x00 answers a CONNECT with Clean Start 1",
            E.CONNACK_RESUME: "CONNACK 0x00 answers a CONNECT with Clean Start 0",
            E.CONNACK_REFUSED: "CONNACK 0x80 or above, or a close without CONNACK, answers "
            "a CONNECT",
            E.TAKEN_OVER: "a CONNECT for this ClientID on a new connection: the server closes the "
            "attached one",
            E.CLIENT_DISCONNECT: "the client sends a valid DISCONNECT and the connection closes",
            E.CONNECTION_CLOSED: "the connection closes without a valid DISCONNECT",
            E.EXPIRY_PASSED: "the Session Expiry Interval has passed since the connection closed",
            E.MARGIN_PASSED: "the model's margin after the expiry has passed as well",
        },
    ),
    initial=S.NO_SESSION,
    guards=("expiry_kept", "expiry_zero", "session_present", "no_session_present"),
    actions=(
        "new_session",
        "discard_and_start",
        "resume_session",
        "start_expiry",
        "end_session",
    ),
    transitions=(
        *_connack_rows(),
        *_closing_rows(),
        Transition(S.DISCONNECTED, E.EXPIRY_PASSED, S.EXPIRING, ("MQTT-4.1.0-2",)),
        Transition(
            S.EXPIRING, E.MARGIN_PASSED, S.NO_SESSION, ("MQTT-4.1.0-2",), action="end_session"
        ),
    ),
    protocol="5.0",
)

_CONNACK_REFS = {
    E.CONNACK_CLEAN: ("MQTT-3.2.2-2",),
    E.CONNACK_RESUME: ("MQTT-3.2.2-3", "MQTT-3.1.2-23", "MQTT-4.1.0-2"),
    E.CONNACK_REFUSED: ("MQTT-3.2.2-6",),
}


@attrs.frozen
class PendingConnect:
    """A CONNECT the server has not answered yet."""

    clean_start: bool
    session_expiry: int


def _check_interval(value: int) -> int:
    if not 0 <= value <= NEVER_EXPIRES:
        raise UsageError(f"a Session Expiry Interval is a Four Byte Integer, not {value}")
    return value


@attrs.define
class Session5:
    """One ClientID's session under ``SESSION_5``, on a model clock.

    ``margin`` is the model time (seconds) after the Session Expiry Interval
    has passed during which the session may or may not still exist; the
    specification gives no precision (3.1.2.11.2's comment: deletion can be
    delayed), so the harness chooses it.
    """

    client: str = "client"
    margin: float = 0.0
    state: str = S.NO_SESSION
    now: float = 0.0
    connect_expiry: int = 0
    """The Session Expiry Interval of the CONNECT that attached the connection."""
    expiry: int = 0
    """The interval in force: CONNECT's, replaced by CONNACK's or the client's DISCONNECT's."""
    closed_at: float | None = None
    pending: PendingConnect | None = None
    takeover_due: bool = False

    # -- what the server may answer -------------------------------------------------

    def session_present_allowed(self) -> frozenset[bool]:
        """The Session Present values a CONNACK 0x00 may carry for the pending CONNECT."""
        if self.pending is None:
            raise UsageError(f"{self.client}: no CONNECT awaits a CONNACK")
        if self.pending.clean_start:
            return frozenset({False})  # [MQTT-3.2.2-2]
        state = self.state
        if state == S.CONNECTED:  # the takeover closes the attached connection first
            state = S.DISCONNECTED if self.expiry != 0 else S.NO_SESSION
        return self._exists(state)  # [MQTT-3.2.2-3]

    def exists(self) -> frozenset[bool]:
        """Whether the session may exist now: one value, or both inside the margin."""
        return self._exists(self.state)

    @staticmethod
    def _exists(state: str) -> frozenset[bool]:
        if state == S.NO_SESSION:
            return frozenset({False})
        if state == S.EXPIRING:
            return frozenset({True, False})
        return frozenset({True})

    @property
    def expires_at(self) -> float | None:
        """Model time at which the interval has passed (None: attached, or never)."""
        if self.closed_at is None or self.expiry == NEVER_EXPIRES:
            return None
        return self.closed_at + self.expiry

    def obligations(self) -> list[Obligation]:
        if self.takeover_due:
            return [
                Obligation(
                    self.client,
                    "close the taken-over connection (DISCONNECT 0x8E if any)",
                    ("MQTT-3.1.4-3",),
                )
            ]
        return []

    # -- events -----------------------------------------------------------------------

    def connect(self, *, clean_start: bool, session_expiry: int = 0) -> frozenset[bool]:
        """The client sends CONNECT (a new connection for this ClientID).

        ``session_expiry`` is the CONNECT's Session Expiry Interval (absent: 0).
        Returns the Session Present values an accepting CONNACK may carry.
        """
        if self.pending is not None:
            raise UsageError(f"{self.client}: a CONNECT already awaits its CONNACK")
        self.pending = PendingConnect(clean_start, _check_interval(session_expiry))
        return self.session_present_allowed()

    def connack(
        self, reason_code: int, session_present: bool, session_expiry: int | None = None
    ) -> Transition:
        """Observe the CONNACK answering the pending CONNECT.

        ``session_expiry`` is the CONNACK's Session Expiry Interval, present when
        the server uses another value than the client asked for (3.2.2.3.2).
        """
        pending = self.pending
        if pending is None:
            raise UsageError(f"{self.client}: a CONNACK with no CONNECT to answer")
        if 0 < reason_code < 0x80 or reason_code > 0xFF:
            raise Violation(
                self.client,
                "CONNACK carries a reason code that is not a Connect Reason Code",
                refs=("MQTT-3.2.2-8",),
                allowed=("0x00", "0x80 or above"),
                arrived=f"0x{reason_code:02X}",
            )
        self.pending = None
        if reason_code >= 0x80:
            return self._fire_connack(E.CONNACK_REFUSED, session_present, pending)
        if self.state == S.CONNECTED:  # step 1 of 3.1.4: close the attached connection
            self._fire(E.TAKEN_OVER)
            self.takeover_due = True
        event = E.CONNACK_CLEAN if pending.clean_start else E.CONNACK_RESUME
        row = self._fire_connack(event, session_present, pending)
        self.connect_expiry = pending.session_expiry
        self.expiry = pending.session_expiry if session_expiry is None else session_expiry
        self.expiry = _check_interval(self.expiry)
        self.closed_at = None
        return row

    def closed_without_connack(self) -> Transition:
        """The server closed the new connection without answering its CONNECT: a refusal."""
        pending = self.pending
        if pending is None:
            raise UsageError(f"{self.client}: no CONNECT awaits a CONNACK")
        self.pending = None
        return self._fire_connack(E.CONNACK_REFUSED, False, pending)

    def taken_over_connection_closed(self, reason_code: int | None = None) -> Transition | None:
        """The server closed the attached connection because of the pending CONNECT.

        ``reason_code`` is the DISCONNECT it sent first (None: it sent none).
        The takeover may be observed before or after the new CONNACK.
        """
        if reason_code is not None and reason_code != SESSION_TAKEN_OVER:
            raise Violation(
                self.client,
                "a taken-over connection is sent DISCONNECT with another reason code",
                refs=("MQTT-3.1.4-3", "MQTT-3.14.2-1"),
                allowed=("DISCONNECT 0x8E", "close without DISCONNECT"),
                arrived=f"DISCONNECT 0x{reason_code:02X}",
            )
        if self.takeover_due:
            self.takeover_due = False
            return None
        if self.state != S.CONNECTED or self.pending is None:
            raise UsageError(f"{self.client}: no connection is being taken over")
        row = self._fire(E.TAKEN_OVER)
        self._closed_now()
        return row

    def disconnect(self, session_expiry: int | None = None) -> bool:
        """The client sends DISCONNECT (with a Session Expiry Interval or not); the
        connection then closes. Returns whether the DISCONNECT was valid.

        A non-zero interval after a CONNECT whose interval was 0 is a Protocol
        Error (3.14.2.2.2): the server does not treat it as a valid DISCONNECT
        (it owes DISCONNECT 0x82 and the close [MQTT-4.13.1-1]), so the interval
        in force is left as it was (0 unless CONNACK replaced it) and the
        connection counts as closed without DISCONNECT.
        """
        if session_expiry is not None and session_expiry != 0 and self.connect_expiry == 0:
            self.closed()
            return False
        if session_expiry is not None:
            self.expiry = _check_interval(session_expiry)
        self._fire(E.CLIENT_DISCONNECT)
        self._closed_now()
        return True

    def closed(self) -> Transition:
        """The attached connection closed without a valid DISCONNECT (either side)."""
        row = self._fire(E.CONNECTION_CLOSED)
        self._closed_now()
        return row

    def time_passes(self, seconds: float) -> None:
        """Model time moves on: the expiry timer may pass, then its margin."""
        if seconds < 0:
            raise UsageError("time does not run backwards")
        self.now += seconds
        due = self.expires_at
        if due is None:
            return
        if self.state == S.DISCONNECTED and self.now >= due:
            self._fire(E.EXPIRY_PASSED)
        if self.state == S.EXPIRING and self.now > due + self.margin:
            self._fire(E.MARGIN_PASSED)
            self.closed_at = None

    # -- helpers ----------------------------------------------------------------------

    def _closed_now(self) -> None:
        self.closed_at = self.now if self.state == S.DISCONNECTED else None

    def _holds(self, session_present: bool | None = None) -> Callable[[str], bool]:
        def holds(guard: str) -> bool:
            if guard == "expiry_kept":
                return self.expiry != 0
            if guard == "expiry_zero":
                return self.expiry == 0
            if guard == "session_present":
                return session_present is True
            if guard == "no_session_present":
                return session_present is False
            return False

        return holds

    def _fire(self, event: str) -> Transition:
        row = SESSION_5.fire(self.state, event, self._holds())
        self.state = row.target
        return row

    def _fire_connack(
        self, event: str, session_present: bool, pending: PendingConnect
    ) -> Transition:
        try:
            row = SESSION_5.fire(self.state, event, self._holds(session_present))
        except NoTransition:
            allowed = (
                frozenset({False}) if event == E.CONNACK_REFUSED else self._allowed_after(pending)
            )
            raise Violation(
                self.client,
                f"CONNACK ({event}) carries a Session Present the session's state rules out",
                refs=_CONNACK_REFS[SessionEvent5(event)],
                allowed=tuple(f"Session Present {int(v)}" for v in sorted(allowed)),
                arrived=f"Session Present {int(session_present)}",
            ) from None
        self.state = row.target
        return row

    def _allowed_after(self, pending: PendingConnect) -> frozenset[bool]:
        if pending.clean_start:
            return frozenset({False})
        return self._exists(self.state)
