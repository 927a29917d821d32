"""SCRAM-SHA-256 (RFC 5802, RFC 7677), both sides, sans-IO; MQTT method "SCRAM-SHA-256".

Theory of operation. Four messages, each a comma-separated list of ``x=value``
attributes (RFC 5802 section 5):

    client-first  n,,n=<user>,r=<client nonce>
    server-first  r=<client nonce><server nonce>,s=<salt>,i=<iterations>
    client-final  c=biws,r=<both nonces>,p=<ClientProof>
    server-final  v=<ServerSignature>            or  e=<error>

The client proves it knows the password without sending it (ClientProof), and the
server proves it holds the user's verifier (ServerSignature), so a client detects a
server that only pretends to accept it. In MQTT the first message rides in CONNECT (or
AUTH 0x19), the next two in AUTH 0x18, the last in CONNACK (or AUTH 0x00).

``ScramServer`` and ``ScramClient`` are single-exchange state machines that take and
return bytes; every problem is an ``AuthError`` (no other exception escapes).
``ScramSha256Server`` and ``ScramSha256Client`` adapt them to the ``Authenticator`` and
``ClientAuthenticator`` interfaces. Channel binding (``p=``) is not supported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from enum import Enum

import attrs

from mqttref.impl.auth.authenticator import Continue, Failure, Step, Success
from mqttref.impl.auth.credentials import (
    DEFAULT_ITERATIONS,
    CredentialStore,
    ScramCredentials,
    escape_user_name,
    fake_credentials,
    hmac_sha256,
    salted_password,
    saslprep,
    unescape_user_name,
)
from mqttref.impl.auth.errors import AuthError, ScramServerError
from mqttref.impl.codec.errors import ReasonCode

METHOD = "SCRAM-SHA-256"
NONCE_BYTES = 24

_BAD = ScramServerError


def new_nonce() -> str:
    """A fresh printable nonce without ',' (RFC 5802 section 5.1, "r=")."""
    return secrets.token_urlsafe(NONCE_BYTES)


# ----------------------------------------------------------------------- parsing


def _decode(message: bytes | None, what: str) -> str:
    if not message:
        raise _malformed(f"{what} is missing", "RFC 5802 section 5")
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(f"{what} is not UTF-8", "RFC 5802 section 5",
                         _BAD.INVALID_ENCODING) from None


def _attributes(text: str, what: str) -> list[tuple[str, str]]:
    """``a=value,b=value`` -> pairs; an attribute is one letter (RFC 5802 section 5.1)."""
    pairs = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isascii() or not part[0].isalpha():
            raise _malformed(f"{what}: {part!r} is not an attribute", "RFC 5802 section 7")
        pairs.append((part[0], part[2:]))
    return pairs


def _expect(pairs: list[tuple[str, str]], index: int, name: str, what: str) -> str:
    if index >= len(pairs) or pairs[index][0] != name:
        raise _malformed(f"{what}: attribute {name}= expected in position {index + 1}",
                         "RFC 5802 section 7")
    return pairs[index][1]


def _check_nonce(nonce: str, what: str) -> str:
    # printable = %x21-2B / %x2D-7E: visible ASCII without ','.
    if not nonce or not all(0x21 <= ord(ch) <= 0x7E for ch in nonce):
        raise _malformed(f"{what}: nonce {nonce!r} is not printable ASCII",
                         "RFC 5802 section 7")
    return nonce


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _malformed(f"{what}: {value!r} is not base64", "RFC 5802 section 7",
                         _BAD.INVALID_ENCODING) from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _malformed(message: str, ref: str, error: ScramServerError = _BAD.OTHER_ERROR) -> AuthError:
    return AuthError(message, ref=ref, reason_code=ReasonCode.NOT_AUTHORIZED, scram_error=error)


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


@attrs.frozen
class ClientFirst:
    """A parsed client-first-message."""

    gs2_header: str
    user_name: str
    nonce: str
    bare: str


def parse_client_first(message: bytes | None) -> ClientFirst:
    """Read ``gs2-header client-first-message-bare`` (RFC 5802 section 7)."""
    text = _decode(message, "client-first-message")
    flag, _, rest = text.partition(",")
    if flag.startswith("p="):
        raise _malformed("the client asks for channel binding, which is not offered",
                         "RFC 5802 section 6", _BAD.CHANNEL_BINDING_NOT_SUPPORTED)
    if flag not in ("n", "y"):  # "y": the client could bind but thinks we cannot
        raise _malformed(f"gs2-cbind-flag {flag!r} is not n, y or p=", "RFC 5802 section 7")
    authzid, sep, bare = rest.partition(",")
    if not sep:
        raise _malformed("the gs2-header does not end with ','", "RFC 5802 section 7")
    if authzid:
        raise _malformed("an authorization identity (a=) is not supported",
                         "RFC 5802 section 5.1")
    pairs = _attributes(bare, "client-first-message")
    if pairs[0][0] == "m":
        raise _malformed("mandatory extension m= is not supported", "RFC 5802 section 5.1",
                         _BAD.EXTENSIONS_NOT_SUPPORTED)
    saslname = _expect(pairs, 0, "n", "client-first-message")
    try:
        user_name = saslprep(unescape_user_name(saslname), allow_unassigned=True)
    except AuthError as exc:
        raise _malformed(exc.detail, exc.ref, _BAD.INVALID_USERNAME_ENCODING) from None
    if not user_name:
        raise _malformed("empty user name", "RFC 5802 section 5.1",
                         _BAD.INVALID_USERNAME_ENCODING)
    nonce = _check_nonce(_expect(pairs, 1, "r", "client-first-message"), "client-first")
    return ClientFirst(f"{flag},,", user_name, nonce, bare)


# ------------------------------------------------------------------------ server


class ServerState(Enum):
    START = "start"
    SERVER_FIRST_SENT = "server first sent"
    DONE = "done"


@attrs.define
class ScramServer:
    """The server side of one SCRAM-SHA-256 exchange.

    ``store`` finds the verifier; an unknown user gets ``fake_credentials`` from
    ``secret`` and fails at the proof exactly like a wrong password: same messages, same
    ``e=invalid-proof``, same reason code, the same hashing work.
    """

    store: CredentialStore
    secret: bytes
    unknown_user_iterations: int = DEFAULT_ITERATIONS
    nonce: str | None = None
    """The server nonce; ``None`` draws a fresh one (tests inject RFC 7677's)."""
    state: ServerState = ServerState.START
    user_name: str | None = None
    _credentials: ScramCredentials | None = None
    _known: bool = False
    _gs2_header: str = ""
    _combined_nonce: str = ""
    _auth_prefix: str = ""

    def first(self, client_first: bytes | None) -> bytes:
        """client-first-message -> server-first-message."""
        self._require(ServerState.START, "client-first-message")
        parsed = parse_client_first(client_first)
        credentials = self.store.lookup(parsed.user_name)
        self._known = credentials is not None
        if credentials is None:
            credentials = fake_credentials(
                self.secret, parsed.user_name, self.unknown_user_iterations)
        server_nonce = self.nonce if self.nonce is not None else new_nonce()
        self.user_name, self._credentials = parsed.user_name, credentials
        self._gs2_header = parsed.gs2_header
        self._combined_nonce = parsed.nonce + _check_nonce(server_nonce, "server nonce")
        server_first = (
            f"r={self._combined_nonce},s={_b64(credentials.salt)},i={credentials.iterations}"
        )
        self._auth_prefix = f"{parsed.bare},{server_first},"
        self.state = ServerState.SERVER_FIRST_SENT
        return server_first.encode("ascii")

    def final(self, client_final: bytes | None) -> bytes:
        """client-final-message -> server-final-message ``v=...``; ``AuthError`` with
        ``e=invalid-proof`` when the proof does not verify (RFC 5802 section 3)."""
        self._require(ServerState.SERVER_FIRST_SENT, "client-final-message")
        self.state = ServerState.DONE
        assert self._credentials is not None
        text = _decode(client_final, "client-final-message")
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        if not sep:
            raise _malformed("client-final-message has no proof (p=) last",
                             "RFC 5802 section 7")
        pairs = _attributes(without_proof, "client-final-message")
        binding = _b64decode(_expect(pairs, 0, "c", "client-final-message"), "c=")
        if binding != self._gs2_header.encode():
            raise _malformed("channel binding c= does not repeat the gs2-header",
                             "RFC 5802 section 5.1", _BAD.CHANNEL_BINDINGS_DONT_MATCH)
        if _expect(pairs, 1, "r", "client-final-message") != self._combined_nonce:
            raise _malformed("nonce r= is not the one the server sent",
                             "RFC 5802 section 5.1")
        proof = _b64decode(proof_b64, "p=")
        auth_message = (self._auth_prefix + without_proof).encode()
        credentials = self._credentials
        signature = hmac_sha256(credentials.stored_key, auth_message)
        client_key = _xor(proof, signature) if len(proof) == len(signature) else signature
        verified = hmac.compare_digest(hashlib.sha256(client_key).digest(),
                                       credentials.stored_key)
        if not (verified and self._known and len(proof) == len(signature)):
            # Never e=unknown-user: it would tell a stranger which user names exist.
            raise AuthError("the client's proof does not verify", ref="RFC 5802 section 3",
                            reason_code=ReasonCode.BAD_USER_NAME_OR_PASSWORD,
                            scram_error=_BAD.INVALID_PROOF)
        server_signature = hmac_sha256(credentials.server_key, auth_message)
        return f"v={_b64(server_signature)}".encode("ascii")

    def _require(self, state: ServerState, what: str) -> None:
        if self.state is not state:
            was, self.state = self.state, ServerState.DONE
            raise AuthError(f"{what} while the SCRAM exchange is {was.value!r}",
                            ref="RFC 5802 section 5", reason_code=ReasonCode.PROTOCOL_ERROR)


# ------------------------------------------------------------------------ client


class ClientState(Enum):
    START = "start"
    CLIENT_FIRST_SENT = "client first sent"
    CLIENT_FINAL_SENT = "client final sent"
    DONE = "done"


@attrs.define
class ScramClient:
    """The client side of one SCRAM-SHA-256 exchange.

    ``min_iterations`` refuses a server that asks for fewer PBKDF2 rounds than RFC 7677
    section 4 recommends, which would make a stolen exchange cheap to brute-force; lower
    it only on purpose (tests, constrained devices).
    """

    user_name: str
    password: str
    nonce: str | None = None
    """The client nonce; ``None`` draws a fresh one (tests inject RFC 7677's)."""
    min_iterations: int = DEFAULT_ITERATIONS
    state: ClientState = ClientState.START
    _bare: str = ""
    _server_signature: bytes = b""

    def first(self) -> bytes:
        """The client-first-message, ``n,,n=<user>,r=<nonce>``."""
        self._require(ClientState.START, "client-first-message")
        user = escape_user_name(saslprep(self.user_name))
        nonce = _check_nonce(self.nonce if self.nonce is not None else new_nonce(), "nonce")
        self.nonce = nonce
        self._bare = f"n={user},r={nonce}"
        self.state = ClientState.CLIENT_FIRST_SENT
        return f"n,,{self._bare}".encode()

    def final(self, server_first: bytes | None) -> bytes:
        """server-first-message -> client-final-message with the ClientProof."""
        self._require(ClientState.CLIENT_FIRST_SENT, "server-first-message")
        self.state = ClientState.DONE
        text = _decode(server_first, "server-first-message")
        pairs = _attributes(text, "server-first-message")
        if pairs[0][0] == "m":
            raise _malformed("mandatory extension m= is not supported", "RFC 5802 section 5.1")
        nonce = _check_nonce(_expect(pairs, 0, "r", "server-first-message"), "server-first")
        assert self.nonce is not None
        if not nonce.startswith(self.nonce) or nonce == self.nonce:
            raise _malformed("the server's nonce does not extend the client's",
                             "RFC 5802 section 5.1")
        salt = _b64decode(_expect(pairs, 1, "s", "server-first-message"), "s=")
        count = _expect(pairs, 2, "i", "server-first-message")
        if not salt or not count.isdigit() or not count.isascii() or count[0] == "0":
            raise _malformed(f"salt or iteration count {count!r} is not valid",
                             "RFC 5802 section 7")
        iterations = int(count)
        if iterations < self.min_iterations:
            raise _malformed(f"the server asks for {iterations} iterations, fewer than "
                             f"{self.min_iterations}", "RFC 7677 section 4")
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._bare},{text},{without_proof}".encode()
        salted = salted_password(self.password, salt, iterations)
        client_key = hmac_sha256(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        proof = _xor(client_key, hmac_sha256(stored_key, auth_message))
        self._server_signature = hmac_sha256(hmac_sha256(salted, b"Server Key"), auth_message)
        self.state = ClientState.CLIENT_FINAL_SENT
        return f"{without_proof},p={_b64(proof)}".encode("ascii")

    def verify(self, server_final: bytes | None) -> None:
        """Check ``v=ServerSignature``; ``AuthError`` for ``e=...`` or a wrong signature
        (the server does not hold the user's verifier: RFC 5802 section 3)."""
        self._require(ClientState.CLIENT_FINAL_SENT, "server-final-message")
        self.state = ClientState.DONE
        text = _decode(server_final, "server-final-message")
        key, value = _attributes(text, "server-final-message")[0]
        if key == "e":
            raise _malformed(f"the server refused: e={value}", "RFC 5802 section 7")
        if key != "v":
            raise _malformed("server-final-message is neither v= nor e=", "RFC 5802 section 7")
        if not hmac.compare_digest(_b64decode(value, "v="), self._server_signature):
            raise _malformed("the server's signature is wrong: it does not know the "
                             "password's verifier", "RFC 5802 section 3")

    def _require(self, state: ClientState, what: str) -> None:
        if self.state is not state:
            was, self.state = self.state, ClientState.DONE
            raise AuthError(f"{what} while the SCRAM exchange is {was.value!r}",
                            ref="RFC 5802 section 5", reason_code=ReasonCode.PROTOCOL_ERROR)


# --------------------------------------------------------------- MQTT adapters


@attrs.define
class ScramAuthenticator:
    """``Authenticator`` for one MQTT exchange of method SCRAM-SHA-256."""

    server: ScramServer
    connect_user_name: str | None = None
    method: str = METHOD

    def start(self, user_name: str | None, data: bytes | None) -> Step:
        self.connect_user_name = user_name
        return Continue(self.server.first(data))

    def step(self, data: bytes | None) -> Step:
        server_final = self.server.final(data)
        who = self.server.user_name
        if self.connect_user_name is not None and saslprep(
                self.connect_user_name, allow_unassigned=True) != who:
            return Failure(ReasonCode.BAD_USER_NAME_OR_PASSWORD,
                           reason="CONNECT's user name is not SCRAM's")
        return Success(server_final, identity=who)


@attrs.define
class ScramSha256Server:
    """The registry's factory for SCRAM-SHA-256: one secret per broker, so an unknown
    user's fake salt is the same on every attempt."""

    store: CredentialStore
    secret: bytes = attrs.field(factory=lambda: secrets.token_bytes(32))
    unknown_user_iterations: int = DEFAULT_ITERATIONS
    method: str = METHOD

    def __call__(self) -> ScramAuthenticator:
        return ScramAuthenticator(
            ScramServer(self.store, self.secret, self.unknown_user_iterations))


@attrs.define
class ScramSha256Client:
    """``ClientAuthenticator`` for SCRAM-SHA-256; ``initial_data`` begins a fresh
    exchange, so one object serves CONNECT and every re-authentication."""

    user_name: str
    password: str
    min_iterations: int = DEFAULT_ITERATIONS
    method: str = METHOD
    _scram: ScramClient | None = None

    def initial_data(self) -> bytes:
        self._scram = ScramClient(self.user_name, self.password,
                                  min_iterations=self.min_iterations)
        return self._scram.first()

    def challenge(self, data: bytes | None) -> bytes:
        return self._exchange().final(data)

    def finish(self, data: bytes | None) -> None:
        self._exchange().verify(data)

    def _exchange(self) -> ScramClient:
        if self._scram is None:
            raise AuthError("SCRAM data before the exchange started", ref="4.12",
                            reason_code=ReasonCode.PROTOCOL_ERROR)
        return self._scram
