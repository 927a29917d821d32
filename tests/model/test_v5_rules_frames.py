"""The wire form of MQTT 5.0 packets, judged from the bytes (model/v5/frames.py).

Frames are built by hand here, byte by byte, so that neither the model nor the test
leans on the codec under test.
"""

from __future__ import annotations

import pytest

from mqttref.model.errors import UsageError, Violation
from mqttref.model.v5.frames import (
    MalformedInput5,
    Problem,
    check_server_frame,
    client_frame_problem,
    server_frame_problems,
)
from tests.model.frames5 import connect, frame, props, s


def refs(frame_bytes: bytes) -> set[str]:
    return {r for p in server_frame_problems(frame_bytes) for r in p.refs}


def publish(topic: str | bytes = "a/b", *, flags: int = 0b0010, pid: int = 1,
            properties: bytes = b"\x00", payload: bytes = b"hi") -> bytes:
    qos = (flags >> 1) & 3
    body = s(topic) + (pid.to_bytes(2, "big") if qos else b"") + properties + payload
    return frame(0x30 | flags, body)


# -- the server's frames -----------------------------------------------------------------

WELL_FORMED = {
    "CONNACK": frame(0x20, b"\x01\x00" + props(b"\x12" + s("auto-1"))),
    "PUBLISH QoS 0": publish(flags=0, pid=0),
    "PUBLISH QoS 1 with properties": publish(properties=props(
        b"\x08" + s("reply/to"), b"\x03" + s("text/plain"), b"\x26" + s("k") + s("v"))),
    "PUBACK short": frame(0x40, b"\x00\x07"),
    "PUBACK code only": frame(0x40, b"\x00\x07\x10"),
    "PUBREL": frame(0x62, b"\x00\x07"),
    "SUBACK": frame(0x90, b"\x00\x07\x00\x01\x80"),
    "UNSUBACK": frame(0xB0, b"\x00\x07\x00\x11"),
    "PINGRESP": frame(0xD0, b""),
    "DISCONNECT empty": frame(0xE0, b""),
    "DISCONNECT code only": frame(0xE0, b"\x8e"),
    "AUTH": frame(0xF0, b"\x18" + props(b"\x15" + s("SCRAM"))),
}


@pytest.mark.parametrize("name", sorted(WELL_FORMED))
def test_a_well_formed_server_packet_has_no_problem(name: str) -> None:
    assert server_frame_problems(WELL_FORMED[name]) == ()
    check_server_frame("c", WELL_FORMED[name])


BROKEN = {
    "PUBREL flags 0000": (frame(0x60, b"\x00\x07"), "MQTT-3.6.1-1"),
    "PUBACK flags 0010": (frame(0x42, b"\x00\x07"), "MQTT-2.1.3-1"),
    "AUTH flags 0001": (frame(0xF1, b"\x18\x00"), "MQTT-3.15.1-1"),
    "Remaining Length in two bytes": (b"\xd0\x80\x00", "MQTT-1.5.5-1"),
    "CONNACK reserved flag bits": (frame(0x20, b"\x02\x00\x00"), "MQTT-3.2.2-1"),
    "CONNACK without Property Length": (frame(0x20, b"\x00\x00"), "MQTT-2.2.2-1"),
    "SUBACK without Property Length": (frame(0x90, b"\x00\x07"), "MQTT-2.2.2-1"),
    "PUBLISH QoS 3": (publish(flags=0b0110), "MQTT-3.3.1-4"),
    "PUBLISH QoS 0 with DUP": (publish(flags=0b1000, pid=0), "MQTT-3.3.1-2"),
    "PUBLISH QoS 0 with DUP, the QoS 0 flow": (publish(flags=0b1000, pid=0), "MQTT-4.3.1-1"),
    "PUBLISH wildcard topic": (publish("a/+"), "MQTT-3.3.2-2"),
    "PUBLISH wildcard topic, a Topic Name": (publish("a/#"), "MQTT-4.7.0-1"),
    "PUBLISH U+0000 in topic": (publish("a\x00b"), "MQTT-4.7.3-2"),
    "PUBLISH U+0000 in a string": (publish("a\x00b"), "MQTT-1.5.4-2"),
    "PUBLISH surrogate in topic": (publish(b"a\xed\xa0\x80"), "MQTT-1.5.4-1"),
    "PUBLISH Packet Identifier 0": (publish(pid=0), "MQTT-2.2.1-4"),
    "PUBLISH Response Topic not UTF-8": (
        publish(properties=props(b"\x08" + s(b"\xc0\x80"))), "MQTT-3.3.2-13"),
    "PUBLISH Response Topic with wildcard": (
        publish(properties=props(b"\x08" + s("reply/#"))), "MQTT-3.3.2-14"),
    "PUBLISH Content Type not UTF-8": (
        publish(properties=props(b"\x03" + s(b"\xff"))), "MQTT-3.3.2-19"),
    "PUBLISH User Property value not UTF-8": (
        publish(properties=props(b"\x26" + s("k") + s(b"\xfe"))), "MQTT-1.5.7-1"),
    "PUBLISH property identifier in two bytes": (
        publish(properties=props(b"\x83\x00" + s("text"))), "MQTT-1.5.5-1"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_server_packet_breaks_its_statement(name: str) -> None:
    packet, ref = BROKEN[name]
    assert ref in refs(packet)
    with pytest.raises(Violation) as raised:
        check_server_frame("c", packet)
    assert raised.value.refs  # the first problem's statements


def test_a_frame_whose_length_disagrees_is_the_harness_mistake() -> None:
    with pytest.raises(UsageError):
        server_frame_problems(b"\xd0\x01")


def test_the_server_sending_a_client_packet_is_named() -> None:
    assert server_frame_problems(frame(0x82, b"\x00\x01\x00" + s("a") + b"\x00"))


# -- the client's frames and the server's reaction -----------------------------------------


def subscribe(options: int, flags: int = 0b0010) -> bytes:
    return frame(0x80 | flags, b"\x00\x01\x00" + s("a/b") + bytes([options]))


def test_well_formed_client_packets_are_not_malformed() -> None:
    for packet in (connect(), subscribe(0x2D), frame(0xA2, b"\x00\x01\x00" + s("a/b")),
                   frame(0x62, b"\x00\x01"), frame(0xF0, b"")):
        assert client_frame_problem(packet) is None


CLIENT_BROKEN = {
    "CONNECT reserved flag": (connect(flags=0x03), "MQTT-3.1.2-3"),
    "CONNECT protocol name": (connect(name="MQIsdp"), "MQTT-3.1.2-1"),
    "SUBSCRIBE flags": (subscribe(0x01, flags=0b0000), "MQTT-3.8.1-1"),
    "SUBSCRIBE option reserved bits": (subscribe(0x41), "MQTT-3.8.3-5"),
    "UNSUBSCRIBE flags": (frame(0xA0, b"\x00\x01\x00" + s("a/b")), "MQTT-3.10.1-1"),
    "PUBREL flags": (frame(0x60, b"\x00\x01"), "MQTT-3.6.1-1"),
    "AUTH flags": (frame(0xF4, b""), "MQTT-3.15.1-1"),
    "PINGREQ flags": (frame(0xC1, b""), "MQTT-2.1.3-1"),
    "PUBLISH QoS 3": (publish(flags=0b0110), "MQTT-3.3.1-4"),
    "PUBLISH ill-formed topic": (publish(b"\xe0\x80\x80"), "MQTT-1.5.4-1"),
}


@pytest.mark.parametrize("name", sorted(CLIENT_BROKEN))
def test_a_malformed_client_packet_names_its_statement(name: str) -> None:
    packet, ref = CLIENT_BROKEN[name]
    problem = client_frame_problem(packet)
    assert problem is not None
    assert ref in problem.refs


def bad_subscribe() -> Problem:
    problem = client_frame_problem(subscribe(0x81))
    assert problem is not None
    return problem


def test_after_connack_a_malformed_packet_may_get_disconnect_0x81_then_the_close() -> None:
    input5 = MalformedInput5(bad_subscribe(), connected=True)
    assert input5.obligations()
    input5.disconnect(0x81)
    input5.close()
    assert input5.obligations() == []


def test_after_connack_the_close_alone_meets_the_obligation() -> None:
    input5 = MalformedInput5(bad_subscribe(), connected=True)
    input5.close()
    assert input5.obligations() == []


def test_a_malformed_subscribe_must_not_be_answered_with_suback() -> None:
    input5 = MalformedInput5(bad_subscribe(), connected=True)
    with pytest.raises(Violation) as raised:
        input5.other_packet("SUBACK")
    assert {"MQTT-3.8.3-5", "MQTT-4.13.1-1"} <= set(raised.value.refs)


def test_a_disconnect_that_does_not_describe_a_malformed_packet_is_refused() -> None:
    input5 = MalformedInput5(bad_subscribe(), connected=True)
    with pytest.raises(Violation) as raised:
        input5.disconnect(0x83)  # "valid but cannot be processed": not a Malformed Packet
    assert "MQTT-3.8.3-5" in raised.value.refs


def test_a_malformed_connect_may_be_refused_with_0x81_but_never_accepted() -> None:
    problem = client_frame_problem(connect(flags=0x01))
    assert problem is not None
    MalformedInput5(problem, connected=False).connack(0x81)
    with pytest.raises(Violation) as raised:
        MalformedInput5(problem, connected=False).connack(0x00)
    assert {"MQTT-3.1.2-3", "MQTT-3.1.4-1"} <= set(raised.value.refs)


def test_another_protocol_name_may_get_0x84_and_must_be_closed() -> None:
    problem = client_frame_problem(connect(name="MQTT5"))
    assert problem is not None
    answered = MalformedInput5(problem, connected=False)
    answered.connack(0x84)
    assert answered.obligations()
    with pytest.raises(Violation):
        answered.other_packet("PINGRESP")
    with pytest.raises(Violation):
        MalformedInput5(problem, connected=False).connack(0x00)
