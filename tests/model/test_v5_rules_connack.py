"""What a MQTT 5.0 CONNACK promises (model/v5/connack.py): the Assigned Client
Identifier, Response Information, Maximum QoS and the Keep Alive in force."""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import ConnAck, Connect, ProtocolLevel
from mqttref.impl.codec.packets import Properties as Props
from mqttref.model.errors import Violation
from mqttref.model.v5.connack import Connack5
from mqttref.model.v5.reason_codes import Situation
from mqttref.model.v5.session import SESSION_5, Session5, SessionEvent5, SessionState5


def connect(client_id: str = "c1", keep_alive: int = 60, props: Props | None = None) -> Connect:
    return Connect(ProtocolLevel(5), client_id, keep_alive=keep_alive,
                   properties=props or Props())


def accepted(packet: Connect, props: Props | None = None) -> Connack5:
    judge = Connack5(packet, other_sessions=frozenset({"taken"}))
    judge.connack(ConnAck(False, 0x00, props or Props()))
    return judge


def refs(error: pytest.ExceptionInfo[Violation]) -> set[str]:
    return set(error.value.refs)


def test_a_zero_length_client_id_gets_a_new_assigned_one_that_keys_the_session() -> None:
    judge = accepted(connect(""), Props(assigned_client_identifier="auto-7"))
    assert judge.session_key == "auto-7"
    assert accepted(connect("c1")).session_key == "c1"


def test_accepting_a_zero_length_client_id_without_assigning_one_is_a_violation() -> None:
    with pytest.raises(Violation) as raised:
        accepted(connect(""))
    assert {"MQTT-3.1.3-6", "MQTT-3.1.3-7", "MQTT-3.2.2-16"} <= refs(raised)


def test_an_assigned_client_id_another_session_uses_is_a_violation() -> None:
    with pytest.raises(Violation) as raised:
        accepted(connect(""), Props(assigned_client_identifier="taken"))
    assert refs(raised) == {"MQTT-3.2.2-16"}


def test_refusing_a_zero_length_client_id_needs_no_assigned_one() -> None:
    judge = Connack5(connect(""))
    judge.connack(ConnAck(False, 0x85))
    assert judge.accepted is False


def test_response_information_only_when_requested() -> None:
    answer = Props(response_information="resp/")
    accepted(connect(props=Props(request_response_information=1)), answer)
    for asked in (Props(), Props(request_response_information=0)):
        with pytest.raises(Violation) as raised:
            accepted(connect(props=asked), answer)
        assert refs(raised) == {"MQTT-3.1.2-28"}


def test_a_qos_refusal_is_allowed_only_above_the_announced_maximum() -> None:
    accepted(connect(), Props(maximum_qos=1)).check_qos_refusal(2)
    with pytest.raises(Violation) as raised:
        accepted(connect()).check_qos_refusal(2)  # no Maximum QoS: QoS 2 is supported
    assert refs(raised) == {"MQTT-3.2.2-9"}
    with pytest.raises(Violation):
        accepted(connect(), Props(maximum_qos=1)).check_qos_refusal(1)


def test_a_subscribe_above_the_maximum_qos_is_accepted_with_a_lower_grant() -> None:
    judge = accepted(connect(), Props(maximum_qos=0))
    assert Situation.GRANT_UP_TO_QOS_0 in judge.suback_situations(2)
    assert Situation.GRANT_UP_TO_QOS_2 not in judge.suback_situations(2)
    with pytest.raises(Violation) as raised:
        judge.check_subscribe_closed([0, 2])
    assert refs(raised) == {"MQTT-3.2.2-10"}
    judge.check_subscribe_closed([0])  # a close for another reason is judged elsewhere


def test_without_server_keep_alive_the_clients_keep_alive_is_in_force() -> None:
    judge = accepted(connect(keep_alive=10))
    assert judge.keep_alive == 10
    judge.check_keep_alive_close(15.5)
    with pytest.raises(Violation) as raised:
        judge.check_keep_alive_close(12)
    assert {"MQTT-3.2.2-22", "MQTT-3.1.2-22"} <= refs(raised)


def test_a_server_keep_alive_replaces_the_clients() -> None:
    judge = accepted(connect(keep_alive=100), Props(server_keep_alive=4))
    assert judge.keep_alive == 4
    judge.check_keep_alive_close(6.5)
    with pytest.raises(Violation) as raised:
        judge.check_keep_alive_close(5)
    assert refs(raised) == {"MQTT-3.1.2-22"}


def test_keep_alive_zero_never_allows_a_keep_alive_close() -> None:
    judge = accepted(connect(keep_alive=0))
    assert not judge.keep_alive_close_allowed(10_000)


def test_the_session_chart_rows_accepting_a_connect_process_clean_start() -> None:
    clean = [t for t in SESSION_5.transitions if t.event == SessionEvent5.CONNACK_CLEAN]
    assert clean
    assert all("MQTT-3.1.4-4" in t.refs and t.action in ("new_session", "discard_and_start")
               for t in clean)
    session = Session5(client="c1")
    session.connect(clean_start=False, session_expiry=60)
    session.connack(0x00, False)
    session.closed()
    assert session.state == SessionState5.DISCONNECTED
    session.connect(clean_start=True, session_expiry=60)
    with pytest.raises(Violation) as raised:
        session.connack(0x00, True)  # Clean Start 1 was not processed: the old session kept
    assert raised.value.refs == ("MQTT-3.2.2-2",)


def test_a_newly_assigned_client_id_has_no_session_to_resume() -> None:
    judge = Connack5(Connect(ProtocolLevel(5), "", clean_session=False))
    with pytest.raises(Violation) as raised:
        judge.connack(ConnAck(True, 0x00, Props(assigned_client_identifier="auto-9")))
    assert refs(raised) == {"MQTT-3.1.3-2", "MQTT-3.1.3-7"}
