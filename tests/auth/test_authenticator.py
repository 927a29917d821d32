"""The enhanced-authentication interface (MQTT 5.0 section 4.12) as the broker core drives it.

Each test pumps AUTH data between a real ``ScramSha256Client`` and a ``ConnectionAuth``
holding the real SCRAM authenticator, the way the client and broker cores will.
"""

from __future__ import annotations

import itertools

import attrs
import pytest

from mqttref.impl.auth import (
    SCRAM_SHA_256,
    AuthenticatorRegistry,
    AuthError,
    ConnectionAuth,
    Continue,
    Credentials,
    Exchange,
    ExchangeState,
    Failure,
    ScramSha256Client,
    ScramSha256Server,
    Step,
    Success,
)
from mqttref.impl.auth.authenticator import ACCEPTS, TRANSITIONS, ExchangeInput
from mqttref.impl.codec.errors import ReasonCode

CONTINUE, REAUTH = ReasonCode.CONTINUE_AUTHENTICATION, ReasonCode.REAUTHENTICATE
STORE = Credentials.from_passwords({"alice": "wonderland", "bob": "builder"})
FACTORY = ScramSha256Server(STORE)


def registry() -> AuthenticatorRegistry:
    registry = AuthenticatorRegistry()
    registry.register(SCRAM_SHA_256, FACTORY)
    return registry


def authenticate(
    connection: ConnectionAuth, client: ScramSha256Client, *, reauth: bool = False
) -> Step:
    """CONNECT (or AUTH 0x19), AUTH 0x18 until the server answers Success or Failure."""
    step: Step | None
    if reauth:
        step = connection.auth(REAUTH, SCRAM_SHA_256, client.initial_data())
    else:
        step = connection.connect(SCRAM_SHA_256, None, client.initial_data())
    assert step is not None
    while isinstance(step, Continue):
        step = connection.auth(CONTINUE, SCRAM_SHA_256, client.challenge(step.data))
    if isinstance(step, Success):
        client.finish(step.data)
    return step


def reauthenticating(connection: ConnectionAuth) -> bool:
    """Read afresh (mypy would keep an earlier assert's narrowing of the property)."""
    return connection.reauthenticating


def connected(user: str = "alice", password: str = "wonderland") -> ConnectionAuth:
    connection = ConnectionAuth(registry())
    assert isinstance(authenticate(connection, ScramSha256Client(user, password)), Success)
    return connection


def test_scram_over_connect_and_auth_succeeds_and_names_the_identity() -> None:
    connection = ConnectionAuth(registry())
    client = ScramSha256Client("alice", "wonderland")
    first = connection.connect(SCRAM_SHA_256, None, client.initial_data())
    assert isinstance(first, Continue)  # AUTH 0x18 carrying server-first [MQTT-4.12.0-2]
    last = connection.auth(CONTINUE, SCRAM_SHA_256, client.challenge(first.data))
    assert isinstance(last, Success)  # CONNACK 0x00 carrying server-final
    assert last.data is not None
    assert last.data.startswith(b"v=")
    client.finish(last.data)
    assert connection.authenticated
    assert connection.identity == "alice"
    assert not connection.reauthenticating


def test_wrong_password_is_a_failure_with_reason_0x86_and_invalid_proof() -> None:
    step = authenticate(ConnectionAuth(registry()), ScramSha256Client("alice", "oz"))
    assert step == Failure(ReasonCode.BAD_USER_NAME_OR_PASSWORD, b"e=invalid-proof",
                           "the client's proof does not verify")


def test_unknown_user_fails_exactly_like_a_wrong_password() -> None:
    unknown = authenticate(ConnectionAuth(registry()), ScramSha256Client("mallory", "oz"))
    wrong = authenticate(ConnectionAuth(registry()), ScramSha256Client("alice", "oz"))
    assert unknown == wrong


def test_malformed_client_first_is_a_failure_not_an_exception() -> None:
    step = ConnectionAuth(registry()).connect(SCRAM_SHA_256, None, b"p=tls-unique,,n=a,r=x")
    assert isinstance(step, Failure)
    assert step.reason_code == ReasonCode.NOT_AUTHORIZED
    assert step.data == b"e=channel-binding-not-supported"


def test_unknown_method_is_answered_with_bad_authentication_method() -> None:
    step = ConnectionAuth(registry()).connect("KERBEROS", None, b"x")
    assert isinstance(step, Failure)
    assert step.reason_code == ReasonCode.BAD_AUTHENTICATION_METHOD  # [MQTT-4.12.0-1]


def test_connect_without_a_method_leaves_authentication_to_user_name_and_password() -> None:
    assert ConnectionAuth(registry()).connect(None, "alice", None) is None


def test_authentication_data_without_a_method_is_a_protocol_error() -> None:
    with pytest.raises(AuthError) as caught:
        ConnectionAuth(registry()).connect(None, None, b"x")
    assert caught.value.reason_code == ReasonCode.PROTOCOL_ERROR


def test_auth_on_a_connection_without_a_method_is_a_protocol_error() -> None:
    connection = ConnectionAuth(registry())
    connection.connect(None, None, None)
    with pytest.raises(AuthError) as caught:
        connection.auth(REAUTH, SCRAM_SHA_256, b"n,,n=alice,r=x")
    assert caught.value.reason_code == ReasonCode.PROTOCOL_ERROR
    assert caught.value.ref == "MQTT-4.12.0-7"


def test_auth_naming_another_method_mid_exchange_is_a_protocol_error() -> None:
    connection = ConnectionAuth(registry())
    connection.connect(SCRAM_SHA_256, None, ScramSha256Client("alice", "w").initial_data())
    with pytest.raises(AuthError) as caught:
        connection.auth(CONTINUE, "SCRAM-SHA-1", b"c=biws")
    assert caught.value.reason_code == ReasonCode.PROTOCOL_ERROR


def test_reauthentication_succeeds_with_auth_0x00_data() -> None:
    connection = connected()
    client = ScramSha256Client("alice", "wonderland")
    first = connection.auth(REAUTH, SCRAM_SHA_256, client.initial_data())
    assert isinstance(first, Continue)
    assert reauthenticating(connection)
    assert connection.authenticated
    last = connection.auth(CONTINUE, SCRAM_SHA_256, client.challenge(first.data))
    assert isinstance(last, Success)
    client.finish(last.data)
    assert not reauthenticating(connection)
    assert connection.identity == "alice"


def test_reauthentication_with_another_method_is_a_protocol_error() -> None:
    with pytest.raises(AuthError) as caught:
        connected().auth(REAUTH, "SCRAM-SHA-1", b"n,,n=alice,r=x")
    assert caught.value.reason_code == ReasonCode.PROTOCOL_ERROR
    assert caught.value.ref == "MQTT-4.12.1-1"


def test_reauthentication_with_a_wrong_password_fails_and_unauthenticates() -> None:
    connection = connected()
    step = authenticate(connection, ScramSha256Client("alice", "oz"), reauth=True)
    assert isinstance(step, Failure)  # DISCONNECT 0x86 [MQTT-4.12.1-2]
    assert step.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    assert not connection.authenticated


def test_reauthentication_as_another_user_is_refused() -> None:
    connection = connected()
    step = authenticate(connection, ScramSha256Client("bob", "builder"), reauth=True)
    assert isinstance(step, Failure)
    assert step.reason_code == ReasonCode.NOT_AUTHORIZED


def test_reauthentication_before_connack_is_a_protocol_error() -> None:
    connection = ConnectionAuth(registry())
    connection.connect(SCRAM_SHA_256, None, ScramSha256Client("alice", "w").initial_data())
    with pytest.raises(AuthError):
        connection.auth(REAUTH, SCRAM_SHA_256, ScramSha256Client("alice", "w").initial_data())


def test_reauthentication_while_one_runs_is_a_protocol_error() -> None:
    connection = connected()
    connection.auth(REAUTH, SCRAM_SHA_256, ScramSha256Client("alice", "wonderland").initial_data())
    with pytest.raises(AuthError):
        connection.auth(REAUTH, SCRAM_SHA_256, b"n,,n=alice,r=y")


@pytest.mark.parametrize("reason_code", [0x00, 0x04, 0x87, 0xFF])
def test_auth_with_a_reason_code_a_client_may_not_send_is_a_protocol_error(
    reason_code: int,
) -> None:
    connection = connected()
    with pytest.raises(AuthError) as caught:
        connection.auth(reason_code, SCRAM_SHA_256, None)
    assert caught.value.ref == "MQTT-3.15.2-1"


def test_continue_after_success_is_a_protocol_error() -> None:
    with pytest.raises(AuthError) as caught:
        connected().auth(CONTINUE, SCRAM_SHA_256, b"c=biws")
    assert caught.value.reason_code == ReasonCode.PROTOCOL_ERROR


def test_connect_user_name_must_match_the_scram_user() -> None:
    connection = ConnectionAuth(registry())
    client = ScramSha256Client("alice", "wonderland")
    first = connection.connect(SCRAM_SHA_256, "bob", client.initial_data())
    assert isinstance(first, Continue)
    step = connection.auth(CONTINUE, SCRAM_SHA_256, client.challenge(first.data))
    assert isinstance(step, Failure)
    assert step.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD


def test_a_second_connect_is_a_protocol_error() -> None:
    with pytest.raises(AuthError):
        connected().connect(SCRAM_SHA_256, None, b"n,,n=alice,r=x")


# ------------------------------------------------- the exchange's table, pair by pair


@attrs.define
class Scripted:
    """A real (if trivial) method: answers each call with the next step of a script."""

    script: list[Step]
    method: str = "SCRIPTED"

    def start(self, user_name: str | None, data: bytes | None) -> Step:
        return self.script.pop(0)

    def step(self, data: bytes | None) -> Step:
        return self.script.pop(0)


OUTCOMES: list[Step] = [Continue(b"c"), Success(b"s"), Failure(ReasonCode.NOT_AUTHORIZED)]


def exchange_in(state: ExchangeState) -> Exchange:
    paths: dict[ExchangeState, list[Step]] = {
        ExchangeState.START: [],
        ExchangeState.SERVER_FIRST_SENT: [Continue(b"c")],
        ExchangeState.DONE: [Success()],
        ExchangeState.FAILED: [Failure(ReasonCode.NOT_AUTHORIZED)],
    }
    path = paths[state]
    exchange = Exchange(Scripted([*path, *OUTCOMES]))
    if path:
        exchange.start(None, None)
    assert exchange.state is state
    return exchange


@pytest.mark.parametrize(
    ("state", "event", "outcome"),
    list(itertools.product(ExchangeState, ExchangeInput, OUTCOMES)),
)
def test_every_state_and_input_follows_the_table_or_is_a_protocol_error(
    state: ExchangeState, event: ExchangeInput, outcome: Step
) -> None:
    exchange = exchange_in(state)
    exchange.authenticator = Scripted([outcome])

    def call() -> Step:
        if event is ExchangeInput.CLIENT_FIRST:
            return exchange.start(None, b"x")
        return exchange.step(b"x")

    if (state, event) in ACCEPTS:
        assert call() == outcome
        assert exchange.state is TRANSITIONS[(state, type(outcome))]
    else:
        with pytest.raises(AuthError) as caught:
            call()
        assert caught.value.reason_code == ReasonCode.PROTOCOL_ERROR
        assert exchange.state is state


@attrs.define
class Refusing:
    """A method whose second step refuses by raising, as SCRAM's parser does."""

    method: str = "REFUSING"

    def start(self, user_name: str | None, data: bytes | None) -> Step:
        return Continue(b"c")

    def step(self, data: bytes | None) -> Step:
        raise AuthError("no", ref="test", reason_code=ReasonCode.BANNED)


def test_an_authenticators_auth_error_becomes_a_failure_step() -> None:
    exchange = Exchange(Refusing())
    exchange.start(None, None)
    assert exchange.step(b"x") == Failure(ReasonCode.BANNED, None, "no")
    assert exchange.state is ExchangeState.FAILED


def test_the_scram_client_is_what_the_mqttref_client_takes_as_its_authenticator() -> None:
    # Checked by mypy --strict: the client core's Protocol, structurally.
    from mqttref.impl.client.options import Authenticator as ClientCoreAuthenticator

    authenticator: ClientCoreAuthenticator = ScramSha256Client("alice", "wonderland")
    assert authenticator.method == "SCRAM-SHA-256"


def test_registry_lists_its_methods_and_knows_no_others() -> None:
    assert list(registry()) == [SCRAM_SHA_256]
    assert "PLAIN" not in registry()
    assert registry().exchange("PLAIN") is None
