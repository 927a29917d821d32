"""MQTT 5.0 enhanced authentication and re-authentication (3.1.2.11.9, 3.15, 4.12).

Theory of operation: ``AUTH_5`` follows one connection's AUTH exchange. A
CONNECT without an Authentication Method (``connect_plain``) forbids AUTH in
both directions for the whole connection [MQTT-4.12.0-6] [MQTT-4.12.0-7]. A
CONNECT with one starts the exchange with the server's turn (``server_turn``):
it answers AUTH 0x18 (``client_turn``) [MQTT-4.12.0-2], CONNACK 0x00, or a
refusal that closes [MQTT-4.12.0-4]; the client answers AUTH 0x18
[MQTT-4.12.0-3] and sends nothing but AUTH or DISCONNECT until CONNACK
[MQTT-3.1.2-30]. Every AUTH and the successful CONNACK carry the CONNECT's
method [MQTT-4.12.0-5]. After CONNACK the client may re-authenticate with AUTH
0x19 and the same method [MQTT-4.12.1-1]; the server answers AUTH 0x00 (done)
or 0x18 (more data), and a failure ends in DISCONNECT and a close
[MQTT-4.12.1-2].

Client packets are what the harness does, server packets are observations. A
client packet with no row is the client's Protocol Error: the server must
close (``close_due``) [MQTT-4.13.1-1]. A server packet with no row is the
server's violation. Where the text describes a turn order but no statement
forbids a server from deviating (a second AUTH 0x18 before the client's
answer, CONNACK 0x00 without waiting for it), the chart tolerates it; an
out-of-turn AUTH 0x18 from the client during the server's turn is tolerated
too, since the server may close at any point of the exchange anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import attrs

from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.obligations import Obligation

CONTINUE_AUTHENTICATION = 0x18
REAUTHENTICATE = 0x19
SUCCESS = 0x00


class AuthState5(StrEnum):
    START = "start"
    PLAIN_CONNECTING = "plain_connecting"
    PLAIN_CONNECTED = "plain_connected"
    SERVER_TURN = "server_turn"
    CLIENT_TURN = "client_turn"
    CONNECTED = "connected"
    REAUTH_SERVER_TURN = "reauth_server_turn"
    REAUTH_CLIENT_TURN = "reauth_client_turn"
    CLOSE_DUE = "close_due"
    DISCONNECT_SENT = "disconnect_sent"
    CLOSED = "closed"


class AuthEvent5(StrEnum):
    CONNECT_PLAIN = "connect_plain"
    CONNECT_WITH_METHOD = "connect_with_method"
    CLIENT_AUTH_CONTINUE = "client_auth_continue"
    CLIENT_REAUTHENTICATE = "client_reauthenticate"
    CLIENT_OTHER = "client_other"
    CLIENT_DISCONNECT = "client_disconnect"
    CLIENT_PROTOCOL_ERROR = "client_protocol_error"
    SERVER_AUTH_CONTINUE = "server_auth_continue"
    SERVER_AUTH_SUCCESS = "server_auth_success"
    CONNACK_SUCCESS = "connack_success"
    CONNACK_FAILURE = "connack_failure"
    SERVER_DISCONNECT = "server_disconnect"
    CLOSED = "closed"


A, AE = AuthState5, AuthEvent5

CLIENT_EVENTS = (
    AE.CONNECT_PLAIN,
    AE.CONNECT_WITH_METHOD,
    AE.CLIENT_AUTH_CONTINUE,
    AE.CLIENT_REAUTHENTICATE,
    AE.CLIENT_OTHER,
    AE.CLIENT_DISCONNECT,
    AE.CLIENT_PROTOCOL_ERROR,
)
SERVER_EVENTS = (
    AE.SERVER_AUTH_CONTINUE,
    AE.SERVER_AUTH_SUCCESS,
    AE.CONNACK_SUCCESS,
    AE.CONNACK_FAILURE,
    AE.SERVER_DISCONNECT,
)
_PRE_CONNACK = (A.START, A.PLAIN_CONNECTING, A.SERVER_TURN, A.CLIENT_TURN)
_EXCHANGE = (A.SERVER_TURN, A.CLIENT_TURN)
_ACCEPTED = (A.PLAIN_CONNECTED, A.CONNECTED, A.REAUTH_SERVER_TURN, A.REAUTH_CLIENT_TURN)
_CLOSE_REFS = {
    A.START: ("MQTT-3.1.4-1",),
    A.PLAIN_CONNECTING: ("MQTT-3.1.4-2",),
    A.SERVER_TURN: ("MQTT-4.12.0-4",),
    A.CLIENT_TURN: ("MQTT-4.12.0-4",),
    A.PLAIN_CONNECTED: ("MQTT-4.13.2-1",),
    A.CONNECTED: ("MQTT-4.13.2-1",),
    A.REAUTH_SERVER_TURN: ("MQTT-4.12.1-2",),
    A.REAUTH_CLIENT_TURN: ("MQTT-4.12.1-2",),
    A.CLOSE_DUE: ("MQTT-4.13.1-1", "MQTT-4.13.2-1"),
    A.DISCONNECT_SENT: ("MQTT-3.14.4-2",),
}
"""Either side may end the connection from every state; what each close stands for."""


def _t(source: str, event: str, target: str, *refs: str, guard: str | None = None) -> Transition:
    return Transition(source, event, target, refs, guard)


def _common_rows() -> tuple[Transition, ...]:
    rows = [_t(state, AE.CLOSED, A.CLOSED, *refs) for state, refs in _CLOSE_REFS.items()]
    # Until CONNACK only AUTH and DISCONNECT may follow a CONNECT with a method
    # [MQTT-3.1.2-30]; the restriction binds no other state.
    rows += [
        _t(state, AE.CLIENT_OTHER, state, "MQTT-3.1.2-30")
        for state in (A.PLAIN_CONNECTING, *_ACCEPTED)
    ]
    rows += [
        _t(state, AE.CLIENT_DISCONNECT, A.CLOSED, "MQTT-3.1.2-30", "MQTT-3.14.4-2")
        for state in (A.PLAIN_CONNECTING, *_EXCHANGE, *_ACCEPTED)
    ]
    rows += [
        _t(state, AE.CLIENT_PROTOCOL_ERROR, A.CLOSE_DUE, "MQTT-4.13.1-1")
        for state in (A.START, A.PLAIN_CONNECTING, *_EXCHANGE, *_ACCEPTED)
    ]
    # A connection the server is closing: whatever the client still sends changes nothing.
    rows += [
        _t(state, event, state, *refs)
        for state, refs in (
            (A.CLOSE_DUE, ("MQTT-4.13.1-1", "MQTT-4.13.2-1")),
            (A.DISCONNECT_SENT, ("MQTT-3.14.4-2",)),
        )
        for event in CLIENT_EVENTS
        if event not in (AE.CONNECT_PLAIN, AE.CONNECT_WITH_METHOD)
    ]
    return tuple(rows)


AUTH_5 = Chart(
    name="auth_5",
    title="Enhanced authentication (MQTT 5.0)",
    description="One connection's AUTH exchange under MQTT 5.0: none without an "
    "Authentication Method; with one, AUTH 0x18 both ways until CONNACK, then "
    "re-authentication started by the client's AUTH 0x19, a failure ending in "
    "DISCONNECT and a close.",
    states=states_of(
        AuthState5,
        {
            A.START: "the network connection is open, no CONNECT yet",
            A.PLAIN_CONNECTING: "CONNECT without Authentication Method; CONNACK owed",
            A.PLAIN_CONNECTED: "accepted without enhanced authentication: no AUTH either way",
            A.SERVER_TURN: "CONNECT with a method (or the client's AUTH 0x18): the server "
            "answers AUTH 0x18, CONNACK, or closes",
            A.CLIENT_TURN: "the server sent AUTH 0x18: the client answers AUTH 0x18",
            A.CONNECTED: "CONNACK 0x00 after enhanced authentication",
            A.REAUTH_SERVER_TURN: "the client's AUTH 0x19 or 0x18: the server answers AUTH "
            "0x00, 0x18, or DISCONNECT",
            A.REAUTH_CLIENT_TURN: "the server sent AUTH 0x18 during re-authentication",
            A.CLOSE_DUE: "the server must close the connection",
            A.DISCONNECT_SENT: "the server sent DISCONNECT: nothing more, then the close",
            A.CLOSED: "the network connection is closed",
        },
        finals=[A.CLOSED],
    ),
    events=events_of(
        AuthEvent5,
        {
            AE.CONNECT_PLAIN: "the client sends CONNECT without Authentication Method",
            AE.CONNECT_WITH_METHOD: "the client sends CONNECT with an Authentication Method",
            AE.CLIENT_AUTH_CONTINUE: "the client sends AUTH 0x18 with the CONNECT's method",
            AE.CLIENT_REAUTHENTICATE: "the client sends AUTH 0x19 with the CONNECT's method",
            AE.CLIENT_OTHER: "the client sends any packet but AUTH, CONNECT or DISCONNECT",
            AE.CLIENT_DISCONNECT: "the client sends DISCONNECT and closes",
            AE.CLIENT_PROTOCOL_ERROR: "the client sends an AUTH (or packet) the exchange "
            "forbids: wrong method, no method, wrong reason code, out of order",
            AE.SERVER_AUTH_CONTINUE: "the server sends AUTH 0x18",
            AE.SERVER_AUTH_SUCCESS: "the server sends AUTH 0x00",
            AE.CONNACK_SUCCESS: "the server sends CONNACK 0x00",
            AE.CONNACK_FAILURE: "the server sends CONNACK 0x80 or above",
            AE.SERVER_DISCONNECT: "the server sends DISCONNECT",
            AE.CLOSED: "the network connection closes (either side)",
        },
    ),
    initial=A.START,
    guards=("was_accepted", "never_answered"),
    transitions=(
        _t(A.START, AE.CONNECT_PLAIN, A.PLAIN_CONNECTING, "MQTT-4.12.0-6", "MQTT-4.12.0-7"),
        _t(A.START, AE.CONNECT_WITH_METHOD, A.SERVER_TURN, "MQTT-4.12.0-2", "MQTT-3.1.2-30"),
        _t(A.PLAIN_CONNECTING, AE.CONNACK_SUCCESS, A.PLAIN_CONNECTED, "MQTT-3.1.4-5"),
        _t(A.PLAIN_CONNECTING, AE.CONNACK_FAILURE, A.CLOSE_DUE, "MQTT-3.2.2-7"),
        _t(A.SERVER_TURN, AE.SERVER_AUTH_CONTINUE, A.CLIENT_TURN, "MQTT-4.12.0-2", "MQTT-4.12.0-5"),
        _t(A.SERVER_TURN, AE.CONNACK_SUCCESS, A.CONNECTED, "MQTT-4.12.0-5", "MQTT-3.1.4-5"),
        _t(A.SERVER_TURN, AE.CONNACK_FAILURE, A.CLOSE_DUE, "MQTT-4.12.0-4", "MQTT-4.12.0-1"),
        _t(A.SERVER_TURN, AE.CLIENT_AUTH_CONTINUE, A.SERVER_TURN, "MQTT-4.12.0-4"),
        _t(A.CLIENT_TURN, AE.CLIENT_AUTH_CONTINUE, A.SERVER_TURN, "MQTT-4.12.0-3"),
        _t(A.CLIENT_TURN, AE.SERVER_AUTH_CONTINUE, A.CLIENT_TURN, "MQTT-4.12.0-2", "MQTT-4.12.0-5"),
        _t(A.CLIENT_TURN, AE.CONNACK_SUCCESS, A.CONNECTED, "MQTT-4.12.0-5", "MQTT-3.1.4-5"),
        _t(A.CLIENT_TURN, AE.CONNACK_FAILURE, A.CLOSE_DUE, "MQTT-4.12.0-4"),
        _t(A.PLAIN_CONNECTED, AE.SERVER_DISCONNECT, A.DISCONNECT_SENT, "MQTT-3.14.4-2"),
        _t(A.CONNECTED, AE.CLIENT_REAUTHENTICATE, A.REAUTH_SERVER_TURN, "MQTT-4.12.1-1"),
        _t(A.CONNECTED, AE.SERVER_DISCONNECT, A.DISCONNECT_SENT, "MQTT-3.14.4-2"),
        _t(A.REAUTH_SERVER_TURN, AE.SERVER_AUTH_SUCCESS, A.CONNECTED, "MQTT-4.12.0-5"),
        _t(
            A.REAUTH_SERVER_TURN,
            AE.SERVER_AUTH_CONTINUE,
            A.REAUTH_CLIENT_TURN,
            "MQTT-4.12.0-5",
        ),
        _t(A.REAUTH_SERVER_TURN, AE.CLIENT_AUTH_CONTINUE, A.REAUTH_SERVER_TURN, "MQTT-4.12.0-3"),
        _t(A.REAUTH_SERVER_TURN, AE.SERVER_DISCONNECT, A.DISCONNECT_SENT, "MQTT-4.12.1-2"),
        _t(A.REAUTH_CLIENT_TURN, AE.CLIENT_AUTH_CONTINUE, A.REAUTH_SERVER_TURN, "MQTT-4.12.0-3"),
        _t(A.REAUTH_CLIENT_TURN, AE.SERVER_AUTH_SUCCESS, A.CONNECTED, "MQTT-4.12.0-5"),
        _t(
            A.REAUTH_CLIENT_TURN,
            AE.SERVER_AUTH_CONTINUE,
            A.REAUTH_CLIENT_TURN,
            "MQTT-4.12.0-5",
        ),
        _t(A.REAUTH_CLIENT_TURN, AE.SERVER_DISCONNECT, A.DISCONNECT_SENT, "MQTT-4.12.1-2"),
        # Before any CONNACK the server may still refuse with one [MQTT-4.12.0-4] (3.2.2.2).
        _t(
            A.CLOSE_DUE,
            AE.CONNACK_FAILURE,
            A.CLOSE_DUE,
            "MQTT-4.12.0-4",
            "MQTT-3.2.2-7",
            guard="never_answered",
        ),
        _t(
            A.CLOSE_DUE,
            AE.SERVER_DISCONNECT,
            A.DISCONNECT_SENT,
            "MQTT-3.14.0-1",
            "MQTT-4.13.1-1",
            guard="was_accepted",
        ),
        *_common_rows(),
    ),
    protocol="5.0",
)

_LABELS = {
    AE.SERVER_AUTH_CONTINUE: "AUTH 0x18",
    AE.SERVER_AUTH_SUCCESS: "AUTH 0x00",
    AE.CONNACK_SUCCESS: "CONNACK 0x00",
    AE.CONNACK_FAILURE: "CONNACK 0x80 or above",
    AE.SERVER_DISCONNECT: "DISCONNECT",
}


def _server_refs(
    state: str, event: str, close_refs: tuple[str, ...], *, answered: bool
) -> tuple[str, ...]:
    """The statements a server packet with no row in ``state`` breaks."""
    if state == A.DISCONNECT_SENT:
        return ("MQTT-3.14.4-1",)
    if event == AE.SERVER_DISCONNECT:
        return ("MQTT-3.14.0-1",) if state in (*_PRE_CONNACK, A.CLOSE_DUE) else close_refs
    if event in (AE.CONNACK_SUCCESS, AE.CONNACK_FAILURE) and (state in _ACCEPTED or answered):
        return ("MQTT-3.2.0-2",)
    if state == A.CLOSE_DUE:
        return close_refs
    if state in (A.PLAIN_CONNECTING, A.PLAIN_CONNECTED):
        return ("MQTT-4.12.0-6",)
    if state in _EXCHANGE:
        return ("MQTT-4.12.0-2",)  # AUTH 0x00 before CONNACK: the server's AUTH is 0x18
    return ("MQTT-4.12.1-1",)  # re-authentication is the client's to start


@attrs.define
class Auth5:
    """One connection's authentication exchange under ``AUTH_5``."""

    client: str = "client"
    state: str = A.START
    method: str | None = None
    """The CONNECT's Authentication Method (None: enhanced authentication not used)."""
    accepted: bool = False
    """Whether the server sent CONNACK 0x00 on this connection."""
    answered: bool = False
    """Whether the server sent any CONNACK on this connection."""
    close_refs: tuple[str, ...] = ()
    """Why the server must close, once it must."""

    # -- what the server may send -----------------------------------------------------

    def allowed(self) -> frozenset[str]:
        """The server packets (and the close) the chart accepts now."""
        labels = {
            _LABELS[AuthEvent5(event)]
            for event in SERVER_EVENTS
            if AUTH_5.allows(self.state, event, self._holds)
        }
        if AUTH_5.rows(self.state, AE.CLOSED):
            labels.add("close")
        return frozenset(labels)

    def obligations(self) -> list[Obligation]:
        if self.state == A.CLOSE_DUE:
            return [Obligation(self.client, "close the network connection", self.close_refs)]
        if self.state == A.DISCONNECT_SENT:
            return [Obligation(self.client, "close after DISCONNECT", ("MQTT-3.14.4-2",))]
        return []

    # -- the client's packets (the harness) ---------------------------------------------

    def connect(self, method: str | None = None) -> Transition:
        """The client sends CONNECT, with ``method`` as its Authentication Method."""
        if self.state != A.START:
            raise UsageError(f"{self.client}: CONNECT on a connection past its start")
        self.method = method
        return self._client(AE.CONNECT_PLAIN if method is None else AE.CONNECT_WITH_METHOD, ())

    def client_auth(self, reason_code: int, method: str | None) -> Transition:
        """The client sends AUTH; anything the exchange forbids is its Protocol Error."""
        if self.state == A.START:
            return self._client_error(("MQTT-3.1.0-1",))
        if self.method is None:
            return self._client_error(("MQTT-4.12.0-7",))
        if method != self.method:
            return self._client_error(("MQTT-4.12.1-1",))
        if reason_code == CONTINUE_AUTHENTICATION:
            return self._client(AE.CLIENT_AUTH_CONTINUE, ("MQTT-4.12.0-3",))
        if reason_code == REAUTHENTICATE:  # only after CONNACK; before it, AUTH is 0x18
            refs = ("MQTT-4.12.1-1",) if self.accepted else ("MQTT-4.12.0-3",)
            return self._client(AE.CLIENT_REAUTHENTICATE, refs)
        return self._client_error(("MQTT-3.15.2-1",))

    def client_packet(self) -> Transition:
        """The client sends a packet other than CONNECT, AUTH or DISCONNECT."""
        return self._client(AE.CLIENT_OTHER, ("MQTT-3.1.2-30",))

    def client_disconnect(self) -> Transition:
        return self._client(AE.CLIENT_DISCONNECT, ("MQTT-3.1.0-1",))

    # -- the server's packets (observations) --------------------------------------------

    def server_auth(self, reason_code: int, method: str | None) -> Transition:
        """Observe the server's AUTH."""
        if reason_code not in (SUCCESS, CONTINUE_AUTHENTICATION):
            raise self._violation(
                "the server sent AUTH with a reason code a server may not use",
                ("MQTT-3.15.2-1",),
                f"AUTH 0x{reason_code:02X}",
            )
        event = AE.SERVER_AUTH_SUCCESS if reason_code == SUCCESS else AE.SERVER_AUTH_CONTINUE
        if self.method is not None and method != self.method and self.state != A.START:
            raise self._violation(
                "the server's AUTH carries another Authentication Method than CONNECT",
                ("MQTT-4.12.0-5",),
                f"AUTH 0x{reason_code:02X} method {method!r}",
            )
        return self._server(event, f"AUTH 0x{reason_code:02X}")

    def connack(self, reason_code: int, method: str | None) -> Transition:
        """Observe the CONNACK and the Authentication Method it carries."""
        arrived = f"CONNACK 0x{reason_code:02X} method {method!r}"
        if self.state != A.START and self.method is None and method is not None:
            raise self._violation(
                "CONNACK carries an Authentication Method the CONNECT did not",
                ("MQTT-4.12.0-6",),
                arrived,
            )
        success = reason_code == SUCCESS
        if success and self.method is not None and method != self.method:
            raise self._violation(
                "the successful CONNACK does not carry the CONNECT's Authentication Method",
                ("MQTT-4.12.0-5",),
                arrived,
            )
        if not success and reason_code < 0x80:
            raise self._violation(
                "CONNACK carries a reason code that is not a Connect Reason Code",
                ("MQTT-3.2.2-8",),
                arrived,
            )
        row = self._server(AE.CONNACK_SUCCESS if success else AE.CONNACK_FAILURE, arrived)
        self.answered = True
        self.accepted = success
        return row

    def server_disconnect(self, reason_code: int) -> Transition:
        return self._server(AE.SERVER_DISCONNECT, f"DISCONNECT 0x{reason_code:02X}")

    def closed(self) -> Transition:
        """The network connection closed (either side)."""
        return self._fire(AE.CLOSED)

    # -- helpers ----------------------------------------------------------------------

    @property
    def _holds(self) -> Callable[[str], bool]:
        truth = {"was_accepted": self.accepted, "never_answered": not self.answered}
        return lambda guard: truth[guard]

    def _fire(self, event: str) -> Transition:
        if self.state == A.START and event in SERVER_EVENTS:
            raise UsageError(f"{self.client}: a server packet before any CONNECT")
        row = AUTH_5.fire(self.state, event, self._holds)
        if row.target == A.CLOSE_DUE and self.state != A.CLOSE_DUE and not self.close_refs:
            self.close_refs = row.refs
        self.state = row.target
        return row

    def _client(self, event: str, refs: tuple[str, ...]) -> Transition:
        """A client packet; one the chart has no row for is the client's Protocol Error."""
        try:
            return self._fire(event)
        except NoTransition:
            return self._client_error(("MQTT-3.1.0-1",) if self.state == A.START else refs)

    def _client_error(self, refs: tuple[str, ...]) -> Transition:
        before = self.state
        row = self._fire(AE.CLIENT_PROTOCOL_ERROR)
        if before != A.CLOSE_DUE and row.target == A.CLOSE_DUE:
            self.close_refs = (*refs, *row.refs)
        return row

    def _server(self, event: str, arrived: str) -> Transition:
        try:
            return self._fire(event)
        except NoTransition:
            if event in (AE.SERVER_AUTH_CONTINUE, AE.SERVER_AUTH_SUCCESS) and self.method is None:
                refs: tuple[str, ...] = ("MQTT-4.12.0-6",)
            else:
                refs = _server_refs(self.state, event, self.close_refs, answered=self.answered)
            raise self._violation(
                f"the server sent {arrived} in state {self.state}", refs, arrived
            ) from None

    def _violation(self, message: str, refs: tuple[str, ...], arrived: str) -> Violation:
        return Violation(
            self.client, message, refs=refs, allowed=tuple(sorted(self.allowed())), arrived=arrived
        )
