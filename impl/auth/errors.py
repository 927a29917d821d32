"""The one error class of enhanced authentication, inside the project's exception tree.

``AuthError`` is a ``ProtocolError`` so that the broker core, which already closes the
connection on any ``ProtocolError`` with its ``reason_code``, handles an authentication
failure with no new branch. Two kinds of failure share it:

- the peer broke MQTT's rules of the exchange (an AUTH in the wrong state, a different
  method on re-authentication): reason 0x82, ``ref`` an ``MQTT-4.12...`` statement;
- a SCRAM message is malformed or does not verify: reason 0x87/0x86/0x8C, ``ref`` the
  RFC 5802 section, and ``scram_error`` the ``e=`` value a SCRAM server tells its client.
"""

from __future__ import annotations

from enum import Enum

from mqttref.impl.codec.errors import ProtocolError, ReasonCode


class ScramServerError(Enum):
    """The ``server-error-value`` names of RFC 5802 section 7 that this server sends."""

    INVALID_ENCODING = "invalid-encoding"
    EXTENSIONS_NOT_SUPPORTED = "extensions-not-supported"
    INVALID_PROOF = "invalid-proof"
    CHANNEL_BINDINGS_DONT_MATCH = "channel-bindings-dont-match"
    CHANNEL_BINDING_NOT_SUPPORTED = "channel-binding-not-supported"
    UNKNOWN_USER = "unknown-user"
    INVALID_USERNAME_ENCODING = "invalid-username-encoding"
    OTHER_ERROR = "other-error"


class AuthError(ProtocolError):
    """An enhanced-authentication exchange cannot go on; the connection must close.

    Before CONNACK the broker answers with CONNACK ``reason_code`` [MQTT-4.12.0-4]; on
    re-authentication with DISCONNECT ``reason_code`` [MQTT-4.12.1-2].
    """

    default_reason = ReasonCode.NOT_AUTHORIZED

    def __init__(
        self,
        message: str,
        *,
        ref: str,
        reason_code: ReasonCode | None = None,
        scram_error: ScramServerError | None = None,
    ) -> None:
        super().__init__(message, ref=ref, reason_code=reason_code)
        self.scram_error = scram_error

    @property
    def server_final(self) -> bytes | None:
        """The ``e=`` server-final-message that tells a SCRAM client why (RFC 5802 s. 7)."""
        if self.scram_error is None:
            return None
        return f"e={self.scram_error.value}".encode("ascii")
