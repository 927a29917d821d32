"""Who the broker lets in and what each client may touch: password file and ACL.

Theory of operation. ``Security`` holds what ``password_file`` and ``acl_file``
(``Config``) say, read by the sans-IO parsers of ``impl/auth`` (``passwords``,
``acl``); the protocol core reaches it through ``BrokerPorts.security``:

- the handshake asks ``authenticate`` for a CONNECT's user name and password, and
  gives the accepted session a ``ClientAccess`` for its user name and client id;
- a SUBSCRIBE filter is granted only if ``may_subscribe`` (otherwise SUBACK 0x80,
  at 5.0 0x87); a PUBLISH (and a will) is routed only if ``may_write``; a message is
  handed to a session only if its ``may_read``, checked per subscriber at delivery,
  retained messages and queued ones included.

``reload`` (SIGHUP) reads both files again and swaps them in at once; a file that
no longer reads leaves the old tables in force and says why. Connected clients
stay connected: each ``ClientAccess`` notices the new generation on its next
question and takes its rules from the new file.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

import attrs

from mqttref.impl.auth.acl import AclFile, AclFileError, ClientAcl, parse_acl_file
from mqttref.impl.auth.passwords import PasswordFileError, PasswordTable, parse_password_file
from mqttref.impl.broker.config import Config
from mqttref.impl.codec.errors import ConfigError

log = logging.getLogger("mqttref.broker")


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{what}: {path}:{line}: not UTF-8 text") from exc


def load_passwords(path: str) -> PasswordTable:
    """A password file, or ConfigError naming the file and line of the problem."""
    try:
        return parse_password_file(_read(path, "password_file"), path)
    except PasswordFileError as exc:
        raise ConfigError(f"password_file: {exc}") from exc


def load_acl(path: str) -> AclFile:
    """An ACL file, or ConfigError naming the file and line of the problem."""
    try:
        return parse_acl_file(_read(path, "acl_file"), path)
    except AclFileError as exc:
        raise ConfigError(f"acl_file: {exc}") from exc


@attrs.define
class Security:
    """The password table and ACL in force, swapped whole on ``reload``."""

    config: Config
    passwords: PasswordTable | None = None
    acl: AclFile | None = None
    generation: int = 0
    """Counts reloads, so that each client's rules are rebuilt after one."""

    @classmethod
    def from_config(cls, config: Config) -> Security:
        """Read the files ``config`` names; ConfigError names file and line of a bad one."""
        security = cls(config)
        security.passwords, security.acl = security._load()
        if (not config.anonymous_allowed and security.passwords is None and not config.users
                and not config.scram_users):
            log.warning("a listener is not on loopback and anonymous clients are not "
                        "allowed, but no password file or users are set: every CONNECT "
                        "will be refused (see docs/security.md)")
        return security

    def _load(self) -> tuple[PasswordTable | None, AclFile | None]:
        config = self.config
        passwords = None if config.password_file is None else load_passwords(config.password_file)
        acl = None if config.acl_file is None else load_acl(config.acl_file)
        return passwords, acl

    def reload(self) -> None:
        """Read both files again (SIGHUP). On a bad file, ConfigError, and the tables
        in force stay as they were: a typo must not open the broker or lock it."""
        passwords, acl = self._load()
        self.passwords, self.acl = passwords, acl
        self.generation += 1
        log.info("reloaded %s", " and ".join(
            f for f in (self.config.password_file, self.config.acl_file) if f) or "nothing")

    @property
    def checks_passwords(self) -> bool:
        """A user name must come with its password (a users table or a password file)."""
        return bool(self.config.users) or self.passwords is not None

    def authenticate(self, user: str, password: bytes | None) -> bool:
        """Whether ``user`` and ``password`` are known: the ``users`` table first, then
        the password file, which spends the same time on an unknown user."""
        plain = self.config.users.get(user)
        if plain is not None:
            return password is not None and _equal(plain.encode("utf-8"), password)
        if self.passwords is not None:
            return self.passwords.check(user, password)
        return False

    def access_for(self, user: str | None, client_id: str) -> ClientAccess | None:
        """What a client may touch; None when no ACL file is set (everything)."""
        if self.config.acl_file is None:
            return None
        return ClientAccess(self, user, client_id)


def _equal(expected: bytes, given: bytes) -> bool:
    return hmac.compare_digest(expected, given)


class ClientAccess:
    """One connected client's view of the ACL: its user name and client id, the rules
    that apply to them, rebuilt when the file is reloaded."""

    __slots__ = ("_acl", "_generation", "client_id", "security", "user")

    def __init__(self, security: Security, user: str | None, client_id: str) -> None:
        self.security = security
        self.user = user
        self.client_id = client_id
        self._generation = -1
        self._acl: ClientAcl | None = None

    @property
    def rules(self) -> ClientAcl:
        security = self.security
        acl = self._acl
        if acl is None or self._generation != security.generation:
            table = security.acl if security.acl is not None else AclFile()
            acl = self._acl = table.for_client(self.user, self.client_id)
            self._generation = security.generation
        return acl

    def may_read(self, topic: str) -> bool:
        return self.rules.may_read(topic)

    def may_write(self, topic: str) -> bool:
        return self.rules.may_write(topic)

    def may_subscribe(self, topic_filter: str) -> bool:
        return self.rules.may_subscribe(topic_filter)
