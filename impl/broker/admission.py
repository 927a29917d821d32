"""Who may connect: the CONNECT checks that decide the CONNACK return code.

Pure functions over the decoded CONNECT and the configuration, so every
return code is a one-line unit test. The codec has already refused what is
malformed (protocol name, reserved flag, will flags); what remains here is
what the specification answers with a CONNACK instead of a silent close, and
at MQTT 5.0 the terms of the connection that CONNACK states (``Terms``).
"""

from __future__ import annotations

import hmac
import math
import secrets
from typing import Final

import attrs

from mqttref.impl.broker.config import MAX_REMAINING_LENGTH, Config
from mqttref.impl.broker.security import Security
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    Connect,
    ConnectReturnCode,
    Properties,
    ProtocolLevel,
)

MQTT_3_1_MAX_CLIENT_ID = 23
"""MQTT 3.1 (protocol level 3) allows client ids of 1 to 23 characters."""


def connect_return_code(
    connect: Connect, config: Config, *, open_connections: int,
    security: Security | None = None, identified: bool = False,
) -> ConnectReturnCode:
    """The CONNACK return code for a well-formed CONNECT (3.2.2.3); at 5.0, see
    ``connect_reason``.

    Without a user name: 0x05 Not authorized unless anonymous clients are allowed
    (``Config.anonymous_allowed``). With one, where users are known (the ``users``
    table or a password file, ``security``): 0x04 for an unknown user and a wrong
    password alike, so a refusal does not tell which names exist. ``identified``: the
    user name is the client certificate's identity (``use_identity_as_username``),
    which the TLS handshake proved; no password is asked, as in mosquitto."""
    if not client_id_acceptable(connect, config):
        return ConnectReturnCode.IDENTIFIER_REJECTED
    if connect.keep_alive > config.max_keep_alive and connect.protocol_level < ProtocolLevel.MQTT_5:
        # 3.1.1 cannot tell the client another keep alive; mosquitto refuses with 0x02.
        return ConnectReturnCode.IDENTIFIER_REJECTED
    if open_connections > config.max_connections:
        return ConnectReturnCode.SERVER_UNAVAILABLE
    if identified:
        return ConnectReturnCode.ACCEPTED
    if connect.username is None:
        if not config.anonymous_allowed:
            return ConnectReturnCode.NOT_AUTHORIZED
    elif security is not None:
        if security.checks_passwords and not security.authenticate(connect.username,
                                                                   connect.password):
            return ConnectReturnCode.BAD_USER_NAME_OR_PASSWORD
    elif config.users and not _password_matches(config, connect.username, connect.password):
        return ConnectReturnCode.BAD_USER_NAME_OR_PASSWORD
    return ConnectReturnCode.ACCEPTED


V5_REASONS: Final = {
    ConnectReturnCode.ACCEPTED: ReasonCode.SUCCESS,
    ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION: ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
    ConnectReturnCode.IDENTIFIER_REJECTED: ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
    ConnectReturnCode.SERVER_UNAVAILABLE: ReasonCode.SERVER_UNAVAILABLE,
    ConnectReturnCode.BAD_USER_NAME_OR_PASSWORD: ReasonCode.BAD_USER_NAME_OR_PASSWORD,
    ConnectReturnCode.NOT_AUTHORIZED: ReasonCode.NOT_AUTHORIZED,
}
"""The MQTT 5.0 CONNACK reason code for each refusal 3.1.1 also has (3.2.2.2)."""


def connect_reason(connect: Connect, config: Config, *, open_connections: int,
                   security: Security | None = None, identified: bool = False) -> ReasonCode:
    """The CONNACK reason code of an MQTT 5.0 CONNECT (3.2.2.2), before enhanced
    authentication: a CONNECT naming an Authentication Method is judged by its
    exchange (4.12), not by its user name and password."""
    will = connect.will
    if will is not None and will.qos > config.max_qos:
        return ReasonCode.QOS_NOT_SUPPORTED  # [MQTT-3.2.2-12]
    if will is not None and will.retain and not config.retain_available:
        return ReasonCode.RETAIN_NOT_SUPPORTED  # [MQTT-3.2.2-13]
    if (will is not None and config.validate_payload_format
            and not payload_format_valid(will.properties, will.payload)):
        return ReasonCode.PAYLOAD_FORMAT_INVALID  # the MAY of 3.1.3.2.3
    if connect.properties.authentication_method is not None and not identified:
        connect = attrs.evolve(connect, username=None, password=None)
        if not config.anonymous_allowed:
            config = attrs.evolve(config, allow_anonymous=True)
    return V5_REASONS[connect_return_code(connect, config, open_connections=open_connections,
                                          security=security, identified=identified)]


def payload_format_valid(properties: Properties, payload: bytes) -> bool:
    """False when a Payload Format Indicator of 1 announces UTF-8 Encoded Character Data
    and the payload is not "well-formed UTF-8 as defined by the Unicode specification"
    (3.3.2.3.2, 3.1.3.2.3): Python's strict decoder refuses exactly the ill-formed
    sequences (overlong forms, surrogates, beyond U+10FFFF, truncations). U+0000 and
    noncharacters are well-formed: only UTF-8 Encoded Strings exclude them (1.5.4)."""
    if properties.payload_format_indicator != 1:
        return True
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


NEVER_EXPIRES: Final = 0xFFFF_FFFF
"""A Session Expiry Interval of 4294967295 means the session does not expire (3.1.2.11.2)."""


@attrs.frozen
class Terms:
    """What an MQTT 5.0 CONNACK states, and the limits it sets on this connection."""

    keep_alive: int
    """The keep alive in force: the client's, or the Server Keep Alive [MQTT-3.2.2-21]."""
    session_expiry_interval: int
    """Seconds, as granted: the client's, at most ``max_session_expiry_interval``."""
    receive_maximum: int
    """The client's: QoS 1/2 PUBLISHes in flight towards it at once [MQTT-3.3.4-9]."""
    maximum_packet_size: int
    """The client's: no larger packet may go to it [MQTT-3.1.2-24]."""
    topic_alias_maximum: int
    """The client's: aliases the broker may give the topics it sends (0: none) (3.1.2.11.5)."""
    problem_information: bool
    """False: no Reason String or User Property except on PUBLISH, CONNACK and
    DISCONNECT [MQTT-3.1.2-29]."""
    connack: Properties
    """The CONNACK's properties."""

    @property
    def expiry_seconds(self) -> float:
        """The granted interval as seconds, ``math.inf`` for never."""
        interval = self.session_expiry_interval
        return math.inf if interval == NEVER_EXPIRES else float(interval)


def connect_terms(connect: Connect, config: Config, *, assigned_id: str | None) -> Terms:
    """The terms of an accepted MQTT 5.0 CONNECT: the client's requests bounded by the
    configuration, and the CONNACK properties that say what the broker chose.

    Only what differs from the specification's defaults is stated: an absent
    Receive Maximum means 65,535, an absent Maximum QoS means 2 (3.2.2.3)."""
    props = connect.properties
    keep_alive = connect.keep_alive
    server_keep_alive = None
    if keep_alive > config.max_keep_alive or (keep_alive == 0 and config.max_keep_alive < 65_535):
        keep_alive = server_keep_alive = config.max_keep_alive
    requested = props.session_expiry_interval or 0
    granted = min(requested, config.max_session_expiry_interval)
    max_packet = min(config.max_packet_size, MAX_REMAINING_LENGTH + 5)
    response = None
    if props.request_response_information == 1 and config.response_information:
        response = config.response_information.replace(
            "%c", assigned_id or connect.client_id)
    connack = Properties(
        session_expiry_interval=granted if granted != requested else None,
        assigned_client_identifier=assigned_id,
        server_keep_alive=server_keep_alive,
        receive_maximum=config.max_awaiting_rel if config.max_awaiting_rel < 65_535 else None,
        maximum_qos=config.max_qos if config.max_qos < 2 else None,
        retain_available=None if config.retain_available else 0,
        maximum_packet_size=max_packet,
        topic_alias_maximum=config.topic_alias_maximum or None,
        wildcard_subscription_available=0 if config.refuse_wildcard_subscriptions else None,
        subscription_identifier_available=None if config.subscription_identifiers else 0,
        response_information=response,
        shared_subscription_available=None if config.shared_subscriptions else 0,
    )
    return Terms(
        keep_alive=keep_alive,
        session_expiry_interval=granted,
        receive_maximum=props.receive_maximum or 65_535,
        maximum_packet_size=props.maximum_packet_size or MAX_REMAINING_LENGTH + 5,
        topic_alias_maximum=props.topic_alias_maximum or 0,
        problem_information=props.request_problem_information != 0,
        connack=connack if connack != NO_PROPERTIES else NO_PROPERTIES,
    )


def client_id_acceptable(connect: Connect, config: Config) -> bool:
    """Client id rules: 3.1 wants 1-23 characters; 3.1.1 accepts an empty id only
    with clean session 1 [MQTT-3.1.3-7, MQTT-3.1.3-8], and up to ``max_client_id_length``
    UTF-8 bytes otherwise [MQTT-3.1.3-5 allows more than 23].

    Accepting an empty id at all is the server's choice: it MAY allow it, and then
    assigns a unique one [MQTT-3.1.3-6]; ``allow_zero_length_clientid = false``
    rejects it, which is answered 0x02 and closed [MQTT-3.1.3-9] (mosquitto's option).
    """
    if connect.protocol_level is ProtocolLevel.MQTT_3_1:
        return 1 <= len(connect.client_id) <= MQTT_3_1_MAX_CLIENT_ID
    if connect.client_id:
        # More than 23 bytes is the server's choice [MQTT-3.1.3-5]; ``max_client_id_length``
        # bounds what one id costs in memory, the store and the log.
        return len(connect.client_id.encode("utf-8")) <= config.max_client_id_length
    return connect.clean_session and config.allow_zero_length_clientid


def _password_matches(config: Config, username: str, password: bytes | None) -> bool:
    expected = config.users.get(username)
    if expected is None or password is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), password)


def generate_client_id() -> str:
    """A unique id for a client that sent none with clean session 1 [MQTT-3.1.3-6]."""
    return f"mqttref-{secrets.token_hex(8)}"
