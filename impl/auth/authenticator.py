"""MQTT 5.0 enhanced authentication (section 4.12): the pluggable server-side interface.

Theory of operation. A client names an Authentication Method in CONNECT. The broker asks
its ``AuthenticatorRegistry`` for that method; an unknown one is answered with CONNACK
0x8C [MQTT-4.12.0-1]. Otherwise a fresh ``Authenticator`` runs one exchange: ``start``
with the CONNECT's user name and Authentication Data, then ``step`` with the data of each
AUTH 0x18 the client sends. Every call returns a ``Step``:

- ``Continue(data)``: send AUTH 0x18 with ``data`` [MQTT-4.12.0-2];
- ``Success(data)``: send CONNACK 0x00 (or, on re-authentication, AUTH 0x00) with ``data``;
- ``Failure(reason_code)``: send CONNACK (or DISCONNECT) with that code and close
  [MQTT-4.12.0-4] [MQTT-4.12.1-2].

``Exchange`` holds one exchange's state in the ``TRANSITIONS`` table below; an input
the table has no row for is the client breaking the protocol (``AuthError``, 0x82).
``ConnectionAuth`` holds a connection's exchanges: the first one, then each
re-authentication (AUTH 0x19), which must use the same method [MQTT-4.12.1-1].

Nothing here reads a clock or a socket: the broker core and the client call it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from typing import Protocol, TypeAlias

import attrs

from mqttref.impl.auth.errors import AuthError
from mqttref.impl.codec.errors import ReasonCode

# --------------------------------------------------------------------------- steps


@attrs.frozen
class Continue:
    """Send AUTH 0x18 Continue authentication carrying ``data``."""

    data: bytes | None


@attrs.frozen
class Success:
    """Authenticated: CONNACK 0x00, or AUTH 0x00 on re-authentication, with ``data``.
    ``identity`` is who the client proved to be (SCRAM's user name), for authorization."""

    data: bytes | None = None
    identity: str | None = None


@attrs.frozen
class Failure:
    """Refused: CONNACK (before CONNACK) or DISCONNECT (re-authentication) with
    ``reason_code``. ``data`` is Authentication Data a failing CONNACK may carry (SCRAM's
    ``e=...``); ``reason`` a Reason String for peers that asked for problem information."""

    reason_code: ReasonCode
    data: bytes | None = None
    reason: str = ""


Step: TypeAlias = Continue | Success | Failure


class Authenticator(Protocol):
    """One method's server side of one exchange; the registry makes a new one per exchange.

    ``step`` may raise ``AuthError``: ``Exchange`` turns it into a ``Failure`` with the
    error's reason code, so a method need not catch its own parse errors.
    """

    @property
    def method(self) -> str: ...

    def start(self, user_name: str | None, data: bytes | None) -> Step:
        """The first message: CONNECT's (or AUTH 0x19's) Authentication Data."""
        ...

    def step(self, data: bytes | None) -> Step:
        """Each following message: the Authentication Data of an AUTH 0x18."""
        ...


AuthenticatorFactory: TypeAlias = Callable[[], Authenticator]


class ClientAuthenticator(Protocol):
    """One method's client side, the shape ``mqttref.impl.client.options.Authenticator``
    declares (tests/auth check that ``ScramSha256Client`` fits it). ``initial_data``
    begins a new exchange each time it is called: CONNECT, then every re-authentication.
    """

    @property
    def method(self) -> str: ...

    def initial_data(self) -> bytes | None:
        """Authentication Data for CONNECT or AUTH 0x19."""
        ...

    def challenge(self, data: bytes | None) -> bytes | None:
        """The answer (AUTH 0x18) to the server's AUTH 0x18 carrying ``data``."""
        ...

    def finish(self, data: bytes | None) -> None:
        """Check CONNACK 0x00's or AUTH 0x00's data; ``AuthError`` if the server is not
        who it claims (SCRAM's mutual authentication)."""
        ...


# ------------------------------------------------------------------ state machine


class ExchangeState(Enum):
    START = "start"
    SERVER_FIRST_SENT = "server first sent"
    DONE = "done"
    FAILED = "failed"


class ExchangeInput(Enum):
    CLIENT_FIRST = "client first (CONNECT or AUTH 0x19)"
    CLIENT_CONTINUE = "AUTH 0x18"


ACCEPTS: Mapping[tuple[ExchangeState, ExchangeInput], str] = {
    (ExchangeState.START, ExchangeInput.CLIENT_FIRST): "start",
    (ExchangeState.SERVER_FIRST_SENT, ExchangeInput.CLIENT_CONTINUE): "step",
}
"""Which input each state takes, and the ``Authenticator`` call it makes."""

TRANSITIONS: Mapping[tuple[ExchangeState, type[Continue | Success | Failure]], ExchangeState] = {
    (ExchangeState.START, Continue): ExchangeState.SERVER_FIRST_SENT,
    (ExchangeState.START, Success): ExchangeState.DONE,
    (ExchangeState.START, Failure): ExchangeState.FAILED,
    # Methods with more than two rounds stay here while they answer Continue.
    (ExchangeState.SERVER_FIRST_SENT, Continue): ExchangeState.SERVER_FIRST_SENT,
    (ExchangeState.SERVER_FIRST_SENT, Success): ExchangeState.DONE,
    (ExchangeState.SERVER_FIRST_SENT, Failure): ExchangeState.FAILED,
}
"""Where the step's outcome takes the exchange."""


@attrs.define
class Exchange:
    """One authentication exchange: its authenticator and where it stands."""

    authenticator: Authenticator
    state: ExchangeState = ExchangeState.START

    @property
    def method(self) -> str:
        return self.authenticator.method

    def start(self, user_name: str | None, data: bytes | None) -> Step:
        self._expect(ExchangeInput.CLIENT_FIRST)
        return self._advance(lambda: self.authenticator.start(user_name, data))

    def step(self, data: bytes | None) -> Step:
        self._expect(ExchangeInput.CLIENT_CONTINUE)
        return self._advance(lambda: self.authenticator.step(data))

    def _expect(self, event: ExchangeInput) -> None:
        if (self.state, event) not in ACCEPTS:
            raise AuthError(
                f"{event.value} while the exchange is in state {self.state.value!r}",
                ref="MQTT-4.12.0-3" if event is ExchangeInput.CLIENT_CONTINUE else "4.12",
                reason_code=ReasonCode.PROTOCOL_ERROR,
            )

    def _advance(self, call: Callable[[], Step]) -> Step:
        try:
            outcome = call()
        except AuthError as exc:
            outcome = Failure(exc.reason_code, exc.server_final, exc.detail)
        self.state = TRANSITIONS[(self.state, type(outcome))]
        return outcome


# ------------------------------------------------------------------------ registry


@attrs.define
class AuthenticatorRegistry:
    """The methods a broker offers: Authentication Method name -> authenticator factory."""

    factories: dict[str, AuthenticatorFactory] = attrs.field(factory=dict)

    def register(self, method: str, factory: AuthenticatorFactory) -> None:
        self.factories[method] = factory

    def __contains__(self, method: object) -> bool:
        return method in self.factories

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.factories))

    def exchange(self, method: str) -> Exchange | None:
        """A fresh exchange for ``method``, ``None`` when the broker does not offer it."""
        factory = self.factories.get(method)
        return None if factory is None else Exchange(factory())


# ---------------------------------------------------------------- per connection


@attrs.define
class ConnectionAuth:
    """A connection's enhanced authentication, from CONNECT through every re-authentication.

    The broker core calls ``connect`` with the CONNECT packet and ``auth`` with each AUTH
    packet, and sends what the returned ``Step`` says. Protocol violations raise
    ``AuthError`` (0x82); a refused authentication is a returned ``Failure``.
    """

    registry: AuthenticatorRegistry
    method: str | None = None
    """The Authentication Method of CONNECT, once it named one the broker offers."""
    exchange: Exchange | None = None
    authenticated: bool = False
    identity: str | None = None
    """Who the last successful exchange proved the client to be."""
    user_name: str | None = None
    """True once an exchange succeeded; stays True while a re-authentication runs, since
    other packets flow on under the previous authentication (4.12.1)."""

    @property
    def reauthenticating(self) -> bool:
        """True while a re-authentication runs: its Success is AUTH 0x00, not CONNACK,
        and its Failure is DISCONNECT."""
        return self.authenticated and self._in_progress

    @property
    def _in_progress(self) -> bool:
        return self.exchange is not None and self.exchange.state in (
            ExchangeState.START,
            ExchangeState.SERVER_FIRST_SENT,
        )

    def connect(
        self, method: str | None, user_name: str | None, data: bytes | None
    ) -> Step | None:
        """CONNECT: ``None`` when it names no method (plain user name and password
        authentication applies), otherwise the first step of the exchange."""
        if self.method is not None or self.exchange is not None:
            raise AuthError("a second CONNECT", ref="MQTT-3.1.0-2",
                            reason_code=ReasonCode.PROTOCOL_ERROR)
        if method is None:
            if data is not None:
                raise AuthError("Authentication Data without an Authentication Method",
                                ref="3.1.2.11.10", reason_code=ReasonCode.PROTOCOL_ERROR)
            return None
        exchange = self.registry.exchange(method)
        if exchange is None:
            return Failure(ReasonCode.BAD_AUTHENTICATION_METHOD,
                           reason=f"authentication method {method!r} is not offered")
        self.method, self.exchange, self.user_name = method, exchange, user_name
        return self._record(exchange.start(user_name, data))

    def auth(self, reason_code: int, method: str | None, data: bytes | None) -> Step:
        """An AUTH packet from the client: 0x18 continues the running exchange, 0x19
        starts a re-authentication."""
        if self.method is None:
            raise AuthError("AUTH on a connection whose CONNECT named no method",
                            ref="MQTT-4.12.0-7", reason_code=ReasonCode.PROTOCOL_ERROR)
        if method != self.method:
            raise AuthError(
                f"AUTH names method {method!r}, the connection uses {self.method!r}",
                ref="MQTT-4.12.1-1" if reason_code == ReasonCode.REAUTHENTICATE else "4.12",
                reason_code=ReasonCode.PROTOCOL_ERROR,
            )
        if reason_code == ReasonCode.CONTINUE_AUTHENTICATION and self.exchange is not None:
            return self._record(self.exchange.step(data))
        if reason_code == ReasonCode.REAUTHENTICATE:
            if not self.authenticated or self._in_progress:
                raise AuthError("re-authentication before the last exchange finished",
                                ref="4.12.1", reason_code=ReasonCode.PROTOCOL_ERROR)
            exchange = self.registry.exchange(self.method)
            if exchange is None:  # unregistered since CONNECT
                return Failure(ReasonCode.BAD_AUTHENTICATION_METHOD)
            self.exchange = exchange
            return self._record(exchange.start(self.user_name, data))
        raise AuthError(f"AUTH reason code 0x{reason_code:02X} from a client",
                        ref="MQTT-3.15.2-1", reason_code=ReasonCode.PROTOCOL_ERROR)

    def _record(self, step: Step) -> Step:
        if isinstance(step, Success):
            if self.authenticated and step.identity != self.identity:
                # Re-authentication renews the client's proof; it does not let a
                # connection change whose session and permissions it holds.
                self.authenticated = False
                return Failure(ReasonCode.NOT_AUTHORIZED,
                               reason="re-authentication as a different identity")
            self.authenticated, self.identity = True, step.identity
        elif isinstance(step, Failure):
            self.authenticated = False
        return step
