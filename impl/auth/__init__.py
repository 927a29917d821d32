"""Authentication and authorization, sans-IO, for the broker and the client.

MQTT 5.0 enhanced authentication (section 4.12): ``authenticator`` is the pluggable
interface (``Authenticator``, ``ConnectionAuth``, the registry); ``scram`` is
SCRAM-SHA-256 (RFC 7677) on both sides; ``credentials`` derives and stores SCRAM
verifiers. docs/auth.md describes how the broker and client use them.

User names and passwords, and what each client may touch, in mosquitto 2.0's file
formats: ``passwords`` (``password_file``, salted PBKDF2-SHA512) and ``acl``
(``acl_file``). docs/security.md describes them.
"""

from mqttref.impl.auth.acl import AclFile, AclFileError, ClientAcl, parse_acl_file
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
from mqttref.impl.auth.passwords import (
    PasswordFileError,
    PasswordHash,
    PasswordTable,
    hash_password,
    parse_password_file,
)
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
    "AclFile",
    "AclFileError",
    "AuthError",
    "Authenticator",
    "AuthenticatorFactory",
    "AuthenticatorRegistry",
    "ClientAcl",
    "ClientAuthenticator",
    "ConnectionAuth",
    "Continue",
    "CredentialStore",
    "Credentials",
    "Exchange",
    "ExchangeState",
    "Failure",
    "PasswordFileError",
    "PasswordHash",
    "PasswordTable",
    "ScramClient",
    "ScramCredentials",
    "ScramServer",
    "ScramServerError",
    "ScramSha256Client",
    "ScramSha256Server",
    "Step",
    "Success",
    "derive_credentials",
    "hash_password",
    "parse_acl_file",
    "parse_password_file",
    "saslprep",
]
