"""Which MQTT 5.0 enhanced authentication methods the broker offers (4.12).

SCRAM-SHA-256 (RFC 7677) is offered when the configuration names users: the
plain ``users`` table (a testing aid: a verifier is derived from each password
at start) and ``scram_users``, verifiers as ``ScramCredentials.to_string``
writes them, so no password need be on disk. The exchange itself is sans-IO in
``impl/auth``; the protocol core drives it through ``ConnectionAuth``.
"""

from __future__ import annotations

from mqttref.impl.auth import (
    SCRAM_SHA_256,
    AuthenticatorRegistry,
    Credentials,
    ScramCredentials,
    ScramSha256Server,
    saslprep,
)
from mqttref.impl.broker.config import Config
from mqttref.impl.codec.errors import ConfigError


def authenticators_for(config: Config) -> AuthenticatorRegistry:
    """The methods this configuration offers; empty (every method refused with 0x8C)
    when it names no users."""
    registry = AuthenticatorRegistry()
    if not config.users and not config.scram_users:
        return registry
    credentials = Credentials.from_passwords(config.users)
    for user_name, verifier in config.scram_users.items():
        try:
            credentials.users[saslprep(user_name)] = ScramCredentials.from_string(verifier)
        except ValueError as exc:
            raise ConfigError(f"scram_users: {user_name!r}: not a SCRAM-SHA-256 verifier "
                              f"({exc})") from exc
    registry.register(SCRAM_SHA_256, ScramSha256Server(credentials))
    return registry
