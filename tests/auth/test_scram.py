"""SCRAM-SHA-256 (RFC 5802, RFC 7677): the test vector, agreement, refusal and robustness."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.auth.credentials import Credentials, derive_credentials
from mqttref.impl.auth.errors import AuthError, ScramServerError
from mqttref.impl.auth.scram import ScramClient, ScramServer
from mqttref.impl.codec.errors import ReasonCode

# RFC 7677 section 3.
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_MESSAGES = (
    b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
)
SECRET = b"s" * 32
ITERATIONS = 4096

passwords = st.text(st.characters(codec="ascii", min_codepoint=0x20, max_codepoint=0x7E),
                    min_size=1, max_size=20)
user_names = st.text(st.characters(codec="ascii", min_codepoint=0x21, max_codepoint=0x7E),
                     min_size=1, max_size=12)


def rfc_store() -> Credentials:
    return Credentials({"user": derive_credentials("pencil", salt=RFC_SALT)})


def store_with(user_name: str, password: str) -> Credentials:
    store = Credentials()
    store.add(user_name, password, iterations=ITERATIONS)
    return store


def run(client: ScramClient, server: ScramServer) -> list[bytes]:
    """Pump the four messages between two pure objects, as the wire would."""
    client_first = client.first()
    server_first = server.first(client_first)
    client_final = client.final(server_first)
    server_final = server.final(client_final)
    client.verify(server_final)
    return [client_first, server_first, client_final, server_final]


def refusal(client: ScramClient, server: ScramServer) -> AuthError:
    server_first = server.first(client.first())
    with pytest.raises(AuthError) as caught:
        server.final(client.final(server_first))
    return caught.value


def test_rfc_7677_vector_gives_exactly_the_rfcs_four_messages() -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    server = ScramServer(rfc_store(), SECRET, nonce=RFC_SERVER_NONCE)
    assert run(client, server) == list(RFC_MESSAGES)
    assert server.user_name == "user"


def test_rfc_7677_verifier_is_what_the_server_stores_not_the_password() -> None:
    credentials = derive_credentials("pencil", salt=RFC_SALT)
    assert credentials.iterations == 4096
    assert b"pencil" not in credentials.to_string().encode()
    assert type(credentials).from_string(credentials.to_string()) == credentials


def test_derived_credentials_get_a_fresh_16_byte_salt_each_time() -> None:
    first, second = derive_credentials("pencil"), derive_credentials("pencil")
    assert len(first.salt) == 16
    assert first.salt != second.salt
    assert first.stored_key != second.stored_key


@given(user_name=user_names, password=passwords)
def test_client_and_server_with_the_same_password_always_agree(
    user_name: str, password: str
) -> None:
    server = ScramServer(store_with(user_name, password), SECRET)
    run(ScramClient(user_name, password), server)
    assert server.user_name == user_name


@given(user_name=user_names, stored=passwords, given_=passwords)
def test_a_different_password_always_fails_with_invalid_proof(
    user_name: str, stored: str, given_: str
) -> None:
    if stored == given_:
        given_ += "x"
    error = refusal(ScramClient(user_name, given_), ScramServer(store_with(user_name, stored),
                                                                SECRET))
    assert error.server_final == b"e=invalid-proof"
    assert error.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD


def test_unknown_user_and_wrong_password_look_the_same_to_the_client() -> None:
    store = store_with("alice", "right")

    def attempt(user_name: str) -> tuple[bytes, bytes, ReasonCode, bytes | None]:
        server = ScramServer(store, SECRET, nonce="N")
        client = ScramClient(user_name, "wrong", nonce="C")
        server_first = server.first(client.first())
        with pytest.raises(AuthError) as caught:
            server.final(client.final(server_first))
        shape = server_first.replace(b"s=", b"").split(b",")
        return shape[0], shape[2], caught.value.reason_code, caught.value.server_final

    assert attempt("alice") == attempt("mallory")
    # The unknown user's salt is stable, as a real one is, and the salt looks real.
    first = ScramServer(store, SECRET, nonce="N").first(b"n,,n=mallory,r=C")
    assert first == ScramServer(store, SECRET, nonce="N").first(b"n,,n=mallory,r=C")
    assert len(base64.b64decode(first.split(b",")[1][2:])) == 16


def test_unknown_user_fails_even_with_the_password_of_someone_else() -> None:
    error = refusal(ScramClient("mallory", "right"), ScramServer(store_with("alice", "right"),
                                                                 SECRET))
    assert error.server_final == b"e=invalid-proof"


def test_client_catches_a_server_that_signs_with_the_wrong_key() -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    client.first()
    client.final(RFC_MESSAGES[1])
    with pytest.raises(AuthError, match="signature is wrong"):
        client.verify(b"v=" + base64.b64encode(bytes(32)))


def test_client_catches_a_server_that_does_not_hold_the_users_verifier() -> None:
    # An impostor that waves any proof through must still sign with a ServerKey, and
    # without the user's verifier it can only sign with a key of its own.
    impostor = derive_credentials("not pencil", salt=RFC_SALT)
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    client.first()
    client_final = client.final(RFC_MESSAGES[1])
    auth_message = b",".join(
        [RFC_MESSAGES[0][3:], RFC_MESSAGES[1], client_final.rpartition(b",p=")[0]])
    signature = hmac.new(impostor.server_key, auth_message, hashlib.sha256).digest()
    with pytest.raises(AuthError, match="signature is wrong"):
        client.verify(b"v=" + base64.b64encode(signature))


def test_client_reports_the_servers_error() -> None:
    client = ScramClient("user", "pencil")
    server = ScramServer(rfc_store(), SECRET)
    server_first = server.first(client.first())
    client.final(server_first)
    with pytest.raises(AuthError, match="e=invalid-proof"):
        client.verify(b"e=invalid-proof")


def test_user_names_with_comma_and_equals_are_escaped_and_still_agree() -> None:
    client = ScramClient("a,b=c", "pw")
    assert client.first().startswith(b"n,,n=a=2Cb=3Dc,r=")
    server = ScramServer(store_with("a,b=c", "pw"), SECRET)
    client = ScramClient("a,b=c", "pw")
    run(client, server)
    assert server.user_name == "a,b=c"


def test_y_flag_is_accepted_and_bound_as_eSws() -> None:
    """A client that could bind a channel but believes the server cannot says ``y,,``
    (RFC 5802 section 6); its proof is computed here from the formulas of section 3."""
    server = ScramServer(rfc_store(), SECRET, nonce="S")
    server_first = server.first(b"y,,n=user,r=C")
    without_proof = b"c=eSws,r=CS"
    auth_message = b"n=user,r=C," + server_first + b"," + without_proof
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", RFC_SALT, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message,
                         hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    server_final = server.final(without_proof + b",p=" + base64.b64encode(proof))
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    expected = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert server_final == b"v=" + base64.b64encode(expected)


def test_c_attribute_must_repeat_the_gs2_header() -> None:
    server = ScramServer(rfc_store(), SECRET, nonce=RFC_SERVER_NONCE)
    server.first(RFC_MESSAGES[0])
    with pytest.raises(AuthError) as caught:
        server.final(RFC_MESSAGES[2].replace(b"c=biws", b"c=eSws"))
    assert caught.value.scram_error is ScramServerError.CHANNEL_BINDINGS_DONT_MATCH


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"p=tls-unique,,n=user,r=abc", ScramServerError.CHANNEL_BINDING_NOT_SUPPORTED),
        (b"x,,n=user,r=abc", ScramServerError.OTHER_ERROR),
        (b"n,a=admin,n=user,r=abc", ScramServerError.OTHER_ERROR),
        (b"n,,m=ext,n=user,r=abc", ScramServerError.EXTENSIONS_NOT_SUPPORTED),
        (b"n,,n=us=ZZer,r=abc", ScramServerError.INVALID_USERNAME_ENCODING),
        (b"n,,n=,r=abc", ScramServerError.INVALID_USERNAME_ENCODING),
        (b"n,,n=a\x07b,r=abc", ScramServerError.INVALID_USERNAME_ENCODING),
        (b"n,,r=abc,n=user", ScramServerError.OTHER_ERROR),
        (b"n,,n=user", ScramServerError.OTHER_ERROR),
        (b"n,,n=user,r=", ScramServerError.OTHER_ERROR),
        (b"n,,n=user,r=a b", ScramServerError.OTHER_ERROR),
        (b"n,,n=user,r=abc,", ScramServerError.OTHER_ERROR),
        (b"n,,n=\xff,r=abc", ScramServerError.INVALID_ENCODING),
        (b"n,", ScramServerError.OTHER_ERROR),
        (b"", ScramServerError.OTHER_ERROR),
    ],
)
def test_malformed_client_first_is_refused_with_its_scram_error(
    message: bytes, error: ScramServerError
) -> None:
    with pytest.raises(AuthError) as caught:
        ScramServer(rfc_store(), SECRET).first(message)
    assert caught.value.scram_error is error
    assert caught.value.reason_code == ReasonCode.NOT_AUTHORIZED
    assert caught.value.ref.startswith("RFC")


@pytest.mark.parametrize(
    "message",
    [
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",  # no proof
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,c=biws,p=AAAA",
        b"c=%%%,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!",
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",  # short proof
    ],
)
def test_malformed_client_final_is_refused(message: bytes) -> None:
    server = ScramServer(rfc_store(), SECRET, nonce=RFC_SERVER_NONCE)
    server.first(RFC_MESSAGES[0])
    with pytest.raises(AuthError) as caught:
        server.final(message)
    assert caught.value.server_final is not None


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (b"r=someone-else,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend"),
        (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1024", "fewer than 4096"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", "not valid"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1", "not valid"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=,i=4096", "not valid"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=***,i=4096", "not base64"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,i=4096", "s= expected"),
        (b"m=x,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "extension"),
        (b"e=other-error", "r= expected"),
    ],
)
def test_client_refuses_a_bad_server_first(message: bytes, why: str) -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    client.first()
    with pytest.raises(AuthError, match=why):
        client.final(message)


def test_client_accepts_fewer_iterations_only_when_told() -> None:
    client = ScramClient("user", "pencil", min_iterations=1024)
    store = Credentials({"user": derive_credentials("pencil", iterations=1024)})
    run(client, ScramServer(store, SECRET))


def test_steps_out_of_order_are_protocol_errors() -> None:
    server = ScramServer(rfc_store(), SECRET)
    with pytest.raises(AuthError) as caught:
        server.final(RFC_MESSAGES[2])
    assert caught.value.reason_code == ReasonCode.PROTOCOL_ERROR
    client = ScramClient("user", "pencil")
    with pytest.raises(AuthError):
        client.verify(RFC_MESSAGES[3])
    client = ScramClient("user", "pencil")
    client.first()
    with pytest.raises(AuthError):
        client.first()


@given(data=st.binary(max_size=80) | st.text(max_size=80).map(str.encode))
def test_no_bytes_make_the_server_raise_anything_but_auth_error(data: bytes) -> None:
    server = ScramServer(rfc_store(), SECRET, nonce=RFC_SERVER_NONCE)
    with contextlib.suppress(AuthError):
        server.first(data)
    server = ScramServer(rfc_store(), SECRET, nonce=RFC_SERVER_NONCE)
    server.first(RFC_MESSAGES[0])
    with pytest.raises(AuthError):
        server.final(data)


@given(data=st.binary(max_size=80) | st.text(max_size=80).map(str.encode))
def test_no_bytes_make_the_client_raise_anything_but_auth_error(data: bytes) -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    client.first()
    with pytest.raises(AuthError):
        client.final(data)
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    client.first()
    client.final(RFC_MESSAGES[1])
    with pytest.raises(AuthError):
        client.verify(data)


attribute_soup = st.lists(
    st.tuples(st.sampled_from("cnprsiemay="), st.sampled_from(["=", ""]),
              st.text(alphabet="abc=,+/2CD3", max_size=8)).map("".join),
    max_size=6,
).map(lambda parts: ",".join(parts).encode())


@given(data=attribute_soup)
def test_near_valid_attribute_lists_raise_only_auth_error(data: bytes) -> None:
    for message in (data, b"n,," + data):
        with contextlib.suppress(AuthError):
            ScramServer(rfc_store(), SECRET).first(message)
    client = ScramClient("user", "pencil", nonce="abc")
    client.first()
    with contextlib.suppress(AuthError):
        client.final(data)
