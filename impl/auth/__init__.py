"""MQTT 5.0 enhanced authentication (section 4.12), sans-IO, for the broker and the client.

``authenticator`` is the pluggable interface (``Authenticator``, ``ConnectionAuth``, the
registry); ``scram`` is SCRAM-SHA-256 (RFC 7677) on both sides; ``credentials`` derives
and stores SCRAM verifiers. docs/auth.md describes how the broker and client use them.
"""

from mqttref.impl.auth.authenticator import (
    Authenticator,
    AuthenticatorFactory,
    AuthenticatorRegistry,
    ClientAuthenticator,
    ConnectionAuth,
    Continue,
    Exchange,
    ExchangeState,
    Failure,
    Step,
    Success,
)
from mqttref.impl.auth.credentials import (
    Credentials,
    CredentialStore,
    ScramCredentials,
    derive_credentials,
    saslprep,
)
from mqttref.impl.auth.errors import AuthError, ScramServerError
from mqttref.impl.auth.scram import (
    METHOD as SCRAM_SHA_256,
)
from mqttref.impl.auth.scram import (
    ScramClient,
    ScramServer,
    ScramSha256Client,
    ScramSha256Server,
)

__all__ = [
    "SCRAM_SHA_256",
    "AuthError",
    "Authenticator",
    "AuthenticatorFactory",
    "AuthenticatorRegistry",
    "ClientAuthenticator",
    "ConnectionAuth",
    "Continue",
    "CredentialStore",
    "Credentials",
    "Exchange",
    "ExchangeState",
    "Failure",
    "ScramClient",
    "ScramCredentials",
    "ScramServer",
    "ScramServerError",
    "ScramSha256Client",
    "ScramSha256Server",
    "Step",
    "Success",
    "derive_credentials",
    "saslprep",
]
