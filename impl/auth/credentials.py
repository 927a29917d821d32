"""SCRAM credentials: what the server stores instead of a password, and how names are prepared.

A SCRAM server keeps, per user, only ``(salt, iteration count, StoredKey, ServerKey)``
(RFC 5802 section 3). StoredKey lets it check a client's proof, ServerKey lets it prove
itself to the client, and neither lets anyone log in as the user without first
inverting SHA-256 or running PBKDF2 against a guessed password.

User names and passwords pass through SASLprep (RFC 4013) before they are used, so that
"I" written as U+2168 (ROMAN NUMERAL NINE) and "IX" are the same password on every peer
(RFC 5802 section 2.2, "Normalize"). The stdlib ``stringprep`` module holds the RFC 3454
tables at Unicode 3.2, so normalisation uses ``unicodedata.ucd_3_2_0`` to match them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from collections.abc import Callable, Mapping
from typing import Protocol

import attrs

from mqttref.impl.auth.errors import AuthError, ScramServerError
from mqttref.impl.codec.errors import ReasonCode

DEFAULT_ITERATIONS = 4096
"""RFC 7677 section 4: "the hash iteration-count ... SHOULD be at least 4096"."""

SALT_BYTES = 16
_PREFIX = "SCRAM-SHA-256"

# RFC 4013 section 2.3: the characters a prepared string may not hold.
_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_c12,  # non-ASCII space characters
    stringprep.in_table_c21_c22,  # ASCII and non-ASCII control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogate codes
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties or deprecated
    stringprep.in_table_c9,  # tagging characters
)


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """Prepare a user name or password by the SASLprep profile (RFC 4013).

    Stored strings (what credentials are derived from) refuse unassigned code points;
    ``allow_unassigned`` gives the "query" variant of RFC 3454 section 7.
    Raises ``AuthError`` (0x86) naming the rule a string breaks.
    """
    # 2.1 Mapping: non-ASCII spaces to SPACE, "commonly mapped to nothing" removed.
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch
        for ch in text
        if not stringprep.in_table_b1(ch)
    )
    # 2.2 Normalization: form KC, at the Unicode version of the stringprep tables.
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for ch in prepared:
        if any(table(ch) for table in _PROHIBITED):
            raise _prep_error(f"prohibited character U+{ord(ch):04X}", "RFC 4013 section 2.3")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise _prep_error(f"unassigned code point U+{ord(ch):04X}", "RFC 4013 section 2.5")
    _check_bidi(prepared)
    return prepared


def _check_bidi(prepared: str) -> None:
    """RFC 3454 section 6, which RFC 4013 section 2.4 applies."""
    rand_al = [stringprep.in_table_d1(ch) for ch in prepared]
    if not any(rand_al):
        return
    if any(stringprep.in_table_d2(ch) for ch in prepared):
        raise _prep_error("mixes right-to-left and left-to-right characters", "RFC 3454 s. 6")
    if not (rand_al[0] and rand_al[-1]):
        raise _prep_error("right-to-left text must start and end so", "RFC 3454 section 6")


def _prep_error(message: str, ref: str) -> AuthError:
    return AuthError(
        f"SASLprep: {message}",
        ref=ref,
        reason_code=ReasonCode.BAD_USER_NAME_OR_PASSWORD,
    )


def escape_user_name(name: str) -> str:
    """``=`` and ``,`` as ``=3D`` and ``=2C``, the saslname of RFC 5802 section 5.1."""
    return name.replace("=", "=3D").replace(",", "=2C")


def unescape_user_name(saslname: str) -> str:
    """The inverse of ``escape_user_name``; any other ``=`` is an error (RFC 5802 s. 5.1)."""
    parts = saslname.split("=")
    out = [parts[0]]
    for part in parts[1:]:
        if part[:2] == "2C":
            out.append("," + part[2:])
        elif part[:2] == "3D":
            out.append("=" + part[2:])
        else:
            raise AuthError(
                f"user name {saslname!r} holds '=' not followed by 2C or 3D",
                ref="RFC 5802 section 5.1",
                scram_error=ScramServerError.INVALID_USERNAME_ENCODING,
            )
    return "".join(out)


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    """``Hi(Normalize(password), salt, i)``: PBKDF2-HMAC-SHA-256 (RFC 5802 section 2.2)."""
    return hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, iterations)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


@attrs.frozen
class ScramCredentials:
    """One user's SCRAM-SHA-256 verifier: never the password (RFC 5802 section 3)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    def to_string(self) -> str:
        """``SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>``, base64: the form
        PostgreSQL stores, so a configuration file can hold it on one line."""
        b64 = _b64
        return (
            f"{_PREFIX}${self.iterations}:{b64(self.salt)}"
            f"${b64(self.stored_key)}:{b64(self.server_key)}"
        )

    @classmethod
    def from_string(cls, text: str) -> ScramCredentials:
        """Read what ``to_string`` wrote; a ``ValueError`` names what is wrong."""
        try:
            prefix, head, keys = text.split("$")
            iterations, salt = head.split(":")
            stored_key, server_key = keys.split(":")
            creds = cls(
                salt=base64.b64decode(salt, validate=True),
                iterations=int(iterations),
                stored_key=base64.b64decode(stored_key, validate=True),
                server_key=base64.b64decode(server_key, validate=True),
            )
        except (ValueError, binascii.Error) as exc:
            raise ValueError(f"not a SCRAM-SHA-256 verifier: {text!r} ({exc})") from None
        if prefix != _PREFIX or creds.iterations < 1 or len(creds.stored_key) != 32:
            raise ValueError(f"not a SCRAM-SHA-256 verifier: {text!r}")
        return creds


def derive_credentials(
    password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> ScramCredentials:
    """What to store for a user whose password is ``password``; a fresh random 16-byte
    salt unless one is given (tests give RFC 7677's)."""
    if iterations < 1:
        raise ValueError(f"iterations must be positive, not {iterations}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    salted = salted_password(password, salt, iterations)
    client_key = hmac_sha256(salted, b"Client Key")
    return ScramCredentials(
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.sha256(client_key).digest(),
        server_key=hmac_sha256(salted, b"Server Key"),
    )


def fake_credentials(secret: bytes, user_name: str, iterations: int) -> ScramCredentials:
    """A verifier for a user who does not exist, the same for the same name on every try.

    RFC 5802 section 9 asks a server not to reveal whether a user exists: a random salt
    per attempt would (the real salt never changes), and so would failing early. These
    keys come from a per-server secret, cost one HMAC each, and match no password.
    """
    name = user_name.encode()
    return ScramCredentials(
        salt=hmac_sha256(secret, b"salt\0" + name)[:SALT_BYTES],
        iterations=iterations,
        stored_key=hmac_sha256(secret, b"stored\0" + name),
        server_key=hmac_sha256(secret, b"server\0" + name),
    )


class CredentialStore(Protocol):
    """Where a SCRAM server finds a user's verifier; ``None`` for an unknown user."""

    def lookup(self, user_name: str) -> ScramCredentials | None: ...


@attrs.define
class Credentials:
    """An in-memory ``CredentialStore``: user name (SASLprepped) -> verifier."""

    users: dict[str, ScramCredentials] = attrs.field(factory=dict)

    @classmethod
    def from_passwords(
        cls, passwords: Mapping[str, str], *, iterations: int = DEFAULT_ITERATIONS
    ) -> Credentials:
        store = cls()
        for user_name, password in passwords.items():
            store.add(user_name, password, iterations=iterations)
        return store

    def add(self, user_name: str, password: str, *, iterations: int = DEFAULT_ITERATIONS) -> None:
        self.users[saslprep(user_name)] = derive_credentials(password, iterations=iterations)

    def lookup(self, user_name: str) -> ScramCredentials | None:
        return self.users.get(user_name)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
