"""Password files: mosquitto's format, salted hashes, constant-time checks. Sans-IO.

Theory of operation. A password file holds one ``user:hash`` line per user, as
mosquitto 2.0's ``mosquitto_passwd`` writes it, so a file moves between the two
brokers unchanged:

- ``$7$<iterations>$<base64 salt>$<base64 hash>``: PBKDF2-HMAC-SHA512 (RFC 8018)
  of the password with the salt, 64 bytes (mosquitto 2.0's default, ``-H
  sha512-pbkdf2``, 101 iterations and a 12-byte salt there);
- ``$6$<base64 salt>$<base64 hash>``: one SHA-512 of password then salt
  (mosquitto 1.6 and earlier, ``-H sha512``), read so such files keep working.

Blank lines and lines starting with ``#`` are skipped. Anything else that is not a
user name, a colon and one of those hashes is an error naming the line: a broker
that half-reads its password file would lock out the users on the lines it
skipped, or worse, so a bad file refuses to load at all.

``PasswordTable.check`` answers every CONNECT in the same time whether the user
exists or not: an unknown user (or a CONNECT with no password) is hashed against a
dummy entry of the table's highest iteration count, and digests are compared with
``hmac.compare_digest``, so timing tells an attacker neither which names exist nor
how much of a hash matched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

import attrs

PBKDF2_SHA512: Final = "sha512-pbkdf2"
"""``$7$``: PBKDF2-HMAC-SHA512, mosquitto 2.0's default."""
SHA512: Final = "sha512"
"""``$6$``: salted SHA-512, mosquitto 1.6's; read, and written only when asked for."""
ALGORITHMS: Final = (PBKDF2_SHA512, SHA512)
_PREFIX: Final = {PBKDF2_SHA512: "7", SHA512: "6"}

DEFAULT_ITERATIONS: Final = 1000
"""PBKDF2 iterations ``mqttref passwd`` uses unless told (``-I``). mosquitto 2.0 uses 101.
More resists an offline attack on a stolen file longer, but the broker hashes once per
CONNECT on its event loop, for unknown users too: at 1000 that is about 0.6 ms, so a
flood of bad CONNECTs cannot stall the broker. Any count a file states is honoured."""
MAX_ITERATIONS: Final = 10_000_000
"""A file stating more is refused: each CONNECT would cost seconds."""
SALT_BYTES: Final = 12
"""mosquitto_passwd's salt length."""
DIGEST_BYTES: Final = 64


class PasswordFileError(ValueError):
    """A password file line that is not ``user:hash``; ``str()`` names the source and line."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line
        self.message = message


@attrs.frozen
class PasswordHash:
    """One user's salted hash, as a password file line states it."""

    algorithm: str
    salt: bytes
    digest: bytes
    iterations: int = 1
    """PBKDF2 rounds; 1 for ``$6$``, which has none."""

    def matches(self, password: bytes) -> bool:
        """Whether ``password`` hashes to this digest, compared in constant time."""
        return hmac.compare_digest(_digest(self.algorithm, password, self.salt,
                                           self.iterations), self.digest)

    def to_string(self) -> str:
        """The hash as it stands after ``user:`` in the file."""
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        if self.algorithm == SHA512:
            return f"$6${salt}${digest}"
        return f"$7${self.iterations}${salt}${digest}"

    @classmethod
    def from_string(cls, text: str) -> PasswordHash:
        """Parse ``$7$...`` or ``$6$...``; ValueError says what is wrong."""
        parts = text.split("$")
        if len(parts) < 2 or parts[0] or parts[1] not in ("6", "7"):
            raise ValueError("the password is not hashed ($7$ or $6$); hash the file with "
                             "'mqttref passwd -U' or 'mosquitto_passwd -U'")
        if parts[1] == "7":
            if len(parts) != 5:
                raise ValueError("a $7$ hash is $7$<iterations>$<salt>$<hash>")
            iterations_text, salt_text, digest_text = parts[2:]
            if not iterations_text.isdigit() or not 1 <= int(iterations_text) <= MAX_ITERATIONS:
                raise ValueError(f"iterations must be 1 to {MAX_ITERATIONS}, "
                                 f"got {iterations_text!r}")
            algorithm, iterations = PBKDF2_SHA512, int(iterations_text)
        else:
            if len(parts) != 4:
                raise ValueError("a $6$ hash is $6$<salt>$<hash>")
            salt_text, digest_text = parts[2:]
            algorithm, iterations = SHA512, 1
        salt = _base64(salt_text, "salt")
        digest = _base64(digest_text, "hash")
        if not salt:
            raise ValueError("the salt is empty")
        if len(digest) != DIGEST_BYTES:
            raise ValueError(f"the hash is {len(digest)} bytes, not the {DIGEST_BYTES} "
                             "of SHA-512")
        return cls(algorithm, salt, digest, iterations)


def _base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the {what} is not base64: {text!r}") from None


def _digest(algorithm: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    if algorithm == SHA512:
        return hashlib.sha512(password + salt).digest()
    return hashlib.pbkdf2_hmac("sha512", password, salt, iterations, DIGEST_BYTES)


def hash_password(password: bytes, *, algorithm: str = PBKDF2_SHA512,
                  iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
                  ) -> PasswordHash:
    """A fresh salted hash of ``password`` (a random 12-byte salt unless given)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown hash {algorithm!r} (known: {', '.join(ALGORITHMS)})")
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be 1 to {MAX_ITERATIONS}, got {iterations}")
    if algorithm == SHA512:
        iterations = 1
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    return PasswordHash(algorithm, salt, _digest(algorithm, password, salt, iterations),
                        iterations)


def check_user_name(user: str) -> str | None:
    """What makes ``user`` unfit for a password file line, or None."""
    if not user:
        return "the user name is empty"
    if ":" in user:
        return "a user name cannot hold ':' (it ends the name in the file)"
    if any(c in user for c in "\r\n\x00"):
        return "a user name cannot hold a line break or U+0000"
    if user != user.strip() or user.startswith("#"):
        return "a user name cannot start with '#' or start or end with white space"
    return None


def _read_only(entries: Mapping[str, PasswordHash]) -> Mapping[str, PasswordHash]:
    return MappingProxyType(dict(entries))


@attrs.frozen
class PasswordTable:
    """User name -> salted hash: what a password file says, ready to check CONNECTs."""

    entries: Mapping[str, PasswordHash] = attrs.field(factory=dict, converter=_read_only)
    _dummy: PasswordHash = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        costliest = max(self.entries.values(), default=None,
                        key=lambda h: (h.algorithm == PBKDF2_SHA512, h.iterations))
        dummy = hash_password(secrets.token_bytes(16), algorithm=costliest.algorithm,
                              iterations=costliest.iterations) if costliest else \
            hash_password(b"", iterations=DEFAULT_ITERATIONS)
        object.__setattr__(self, "_dummy", dummy)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, user: object) -> bool:
        return user in self.entries

    def check(self, user: str, password: bytes | None) -> bool:
        """Whether ``user`` exists and ``password`` is its password.

        The work is the same whatever the answer: an unknown user or a missing password
        is hashed against the dummy entry, and ``matches`` compares in constant time."""
        entry = self.entries.get(user)
        if entry is None or password is None:
            (entry or self._dummy).matches(password or b"")
            return False
        return entry.matches(password)

    def with_user(self, user: str, entry: PasswordHash) -> PasswordTable:
        """The table with ``user`` added or its hash replaced (file order kept)."""
        problem = check_user_name(user)
        if problem is not None:
            raise ValueError(problem)
        return PasswordTable({**self.entries, user: entry})

    def without_user(self, user: str) -> PasswordTable:
        return PasswordTable({k: v for k, v in self.entries.items() if k != user})

    def to_text(self) -> str:
        """The file's text, one ``user:hash`` line per user."""
        return "".join(f"{user}:{entry.to_string()}\n" for user, entry in self.entries.items())


def parse_password_file(text: str, source: str = "<password file>") -> PasswordTable:
    """Every line of a password file, or PasswordFileError naming the first bad one.

    A user named twice is an error too: which of the two would count is a guess."""
    return PasswordTable(dict(_entries(text.split("\n"), source)))


def _entries(lines: Iterable[str], source: str) -> Iterable[tuple[str, PasswordHash]]:
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        user, colon, hashed = line.partition(":")
        if not colon:
            raise PasswordFileError(source, number, "expected user:hash, found no ':'")
        problem = check_user_name(user)
        if problem is not None:
            raise PasswordFileError(source, number, problem)
        if user in seen:
            raise PasswordFileError(source, number, f"user {user!r} appears twice")
        try:
            entry = PasswordHash.from_string(hashed.strip())
        except ValueError as exc:
            raise PasswordFileError(source, number, f"user {user!r}: {exc}") from None
        seen.add(user)
        yield user, entry


def plain_lines_to_hashed(text: str, source: str, *, algorithm: str = PBKDF2_SHA512,
                          iterations: int = DEFAULT_ITERATIONS) -> str:
    """``mosquitto_passwd -U``: every ``user:password`` line hashed. A line already
    hashed is an error (hashing a hash twice would lock its user out)."""
    out: list[str] = []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the end of the last line, not a line
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            out.append(line + "\n")
            continue
        user, colon, password = line.partition(":")
        if not colon or (problem := check_user_name(user)) is not None:
            raise PasswordFileError(source, number, "expected user:password"
                                    if not colon else str(problem))
        if password.startswith(("$6$", "$7$")):
            raise PasswordFileError(source, number, f"user {user!r} is hashed already")
        entry = hash_password(password.encode("utf-8"), algorithm=algorithm,
                              iterations=iterations)
        out.append(f"{user}:{entry.to_string()}\n")
    return "".join(out)
