"""The server's DISCONNECT and a refused CONNECT (model/v5/disconnect.py): no Session
Expiry Interval on the server's DISCONNECT, nothing processed after a rejected CONNECT."""

from __future__ import annotations

import pytest

from mqttref.model.errors import Violation
from mqttref.model.v5.disconnect import ServerDisconnect5, check_server_disconnect_properties
from mqttref.model.v5.frames import MalformedInput5, Problem


def test_a_server_disconnect_without_session_expiry_interval_is_accepted() -> None:
    connection = ServerDisconnect5()
    connection.connack(0x00)
    connection.disconnect(0x8B)
    check_server_disconnect_properties("c", session_expiry_interval=None)


def test_a_server_disconnect_with_session_expiry_interval_is_a_violation() -> None:
    connection = ServerDisconnect5()
    connection.connack(0x00)
    with pytest.raises(Violation) as raised:
        connection.disconnect(0x8B, session_expiry_interval=0)
    assert raised.value.refs == ("MQTT-3.14.2-2",)


def test_after_a_refusing_connack_an_answer_shows_data_was_processed() -> None:
    connection = ServerDisconnect5()
    connection.connack(0x87)
    with pytest.raises(Violation) as raised:
        connection.server_packet("PUBACK")
    assert "MQTT-3.1.4-6" in raised.value.refs
    connection.closed()


def test_a_malformed_connect_gets_no_answer_to_what_followed_it() -> None:
    input5 = MalformedInput5(Problem(("MQTT-3.1.2-3",), "reserved flag"), connected=False)
    with pytest.raises(Violation) as raised:
        input5.other_packet("SUBACK")
    assert {"MQTT-3.1.2-3", "MQTT-3.1.4-6"} <= set(raised.value.refs)
    input5.connack(0x81)
    input5.close()
    assert input5.obligations() == []
