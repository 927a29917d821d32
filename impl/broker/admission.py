"""Who may connect: the CONNECT checks that decide the CONNACK return code.

Pure functions over the decoded CONNECT and the configuration, so every
return code is a one-line unit test. The codec has already refused what is
malformed (protocol name, reserved flag, will flags); what remains here is
what the specification answers with a CONNACK instead of a silent close.
"""

from __future__ import annotations

import hmac
import secrets

from mqttref.impl.broker.config import Config
from mqttref.impl.codec.packets import Connect, ConnectReturnCode, ProtocolLevel

MQTT_3_1_MAX_CLIENT_ID = 23
"""MQTT 3.1 (protocol level 3) allows client ids of 1 to 23 characters."""


def connect_return_code(
    connect: Connect, config: Config, *, open_connections: int
) -> ConnectReturnCode:
    """The CONNACK return code for a well-formed CONNECT (3.2.2.3)."""
    if connect.protocol_level is ProtocolLevel.MQTT_5:
        # This broker speaks 3.1 and 3.1.1; a 3.1.1 server answers 0x01 [MQTT-3.1.2-2].
        return ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION
    if not client_id_acceptable(connect, config):
        return ConnectReturnCode.IDENTIFIER_REJECTED
    if connect.keep_alive > config.max_keep_alive:
        # 3.1.1 cannot tell the client another keep alive; mosquitto refuses with 0x02.
        return ConnectReturnCode.IDENTIFIER_REJECTED
    if open_connections > config.max_connections:
        return ConnectReturnCode.SERVER_UNAVAILABLE
    if connect.username is None:
        if not config.allow_anonymous:
            return ConnectReturnCode.NOT_AUTHORIZED
    elif config.users and not _password_matches(config, connect.username, connect.password):
        return ConnectReturnCode.BAD_USER_NAME_OR_PASSWORD
    return ConnectReturnCode.ACCEPTED


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
