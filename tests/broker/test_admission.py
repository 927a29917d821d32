"""CONNECT checks: each CONNACK return code from its rule."""

from __future__ import annotations

import pytest

from mqttref.impl.broker.admission import connect_return_code
from mqttref.impl.broker.config import Config
from mqttref.impl.codec.packets import Connect, ConnectReturnCode, ProtocolLevel

V31, V311, V5 = ProtocolLevel.MQTT_3_1, ProtocolLevel.MQTT_3_1_1, ProtocolLevel.MQTT_5
R = ConnectReturnCode


@pytest.mark.parametrize(
    ("connect", "config", "expected"),
    [
        (Connect(V311, "c"), Config(), R.ACCEPTED),
        (Connect(V311, "", clean_session=True), Config(), R.ACCEPTED),
        (Connect(V311, "", clean_session=False), Config(), R.IDENTIFIER_REJECTED),
        (Connect(V311, "x" * 100), Config(), R.ACCEPTED),
        (Connect(V311, "x" * 1024), Config(), R.ACCEPTED),
        (Connect(V311, "x" * 1025), Config(), R.IDENTIFIER_REJECTED),  # max_client_id_length
        (Connect(V311, "é" * 513), Config(), R.IDENTIFIER_REJECTED),  # 1026 UTF-8 bytes
        (Connect(V311, "x" * 65_535), Config(max_client_id_length=65_535), R.ACCEPTED),
        (Connect(V31, "x" * 23), Config(), R.ACCEPTED),
        (Connect(V31, "x" * 24), Config(), R.IDENTIFIER_REJECTED),
        (Connect(V31, ""), Config(), R.IDENTIFIER_REJECTED),
        (Connect(V5, "c"), Config(), R.ACCEPTED),  # 5.0 is spoken (its own reasons: test_v5)
        (Connect(V311, "c", keep_alive=61), Config(max_keep_alive=60), R.IDENTIFIER_REJECTED),
        (Connect(V311, "c"), Config(allow_anonymous=False), R.NOT_AUTHORIZED),
        (Connect(V311, "c", username="u", password=b"p"), Config(users={"u": "p"}), R.ACCEPTED),
        (Connect(V311, "c", username="u", password=b"x"), Config(users={"u": "p"}),
         R.BAD_USER_NAME_OR_PASSWORD),
        (Connect(V311, "c", username="u"), Config(users={"u": "p"}),
         R.BAD_USER_NAME_OR_PASSWORD),
        (Connect(V311, "c", username="anyone"), Config(), R.ACCEPTED),
    ],
)
def test_connect_return_codes(connect: Connect, config: Config, expected: R) -> None:
    assert connect_return_code(connect, config, open_connections=1) is expected


def test_one_connection_over_the_maximum_is_refused_with_0x03() -> None:
    config = Config(max_connections=10)
    connect = Connect(V311, "c")
    assert connect_return_code(connect, config, open_connections=10) is R.ACCEPTED
    assert connect_return_code(connect, config, open_connections=11) is R.SERVER_UNAVAILABLE
