"""The 5.0 rules that judge bytes and answers (frames, answers, connack, forwarding,
qos2_receiver) applied to the real mqttref broker: every frame it sends over a short
session is well-formed, its answers are the ones the rules allow, and it reacts to
malformed packets as the rules demand. (The rules reject the faults in the
``test_v5_rules_*`` tests beside this one; here they must accept a conforming server.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from mqttref.impl.broker.config import Config
from mqttref.impl.codec.codec import Decoder, Role
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    ProtocolLevel,
    PubComp,
    Publish,
    PubRec,
    SubAck,
    UnsubAck,
)
from mqttref.impl.codec.packets import Properties as Props
from mqttref.model.v5 import forwarding
from mqttref.model.v5.answers import Answers5, unsubscribe_in_sequence
from mqttref.model.v5.connack import Connack5
from mqttref.model.v5.frames import (
    MalformedInput5,
    check_server_frame,
    client_frame_problem,
)
from mqttref.model.v5.qos2_receiver import Qos2Receiver5
from mqttref.model.v5.reason_codes import PacketKind
from tests.client.brokers import running_broker
from tests.helpers.broker_thread import BrokerThread
from tests.model.frames5 import CLOSED, WireClient, connect, frame, props, s


@pytest.fixture(params=["mqttref", "mosquitto"])
def port(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    """The mqttref broker, and mosquitto as a second, independent conforming server: a
    rule that rejected either would be judging against the text's allowances."""
    if request.param == "mqttref":
        with BrokerThread(Config(port=0, connect_timeout=2.0)) as running:
            yield running.port
    else:
        with running_broker("mosquitto", tmp_path) as broker:
            yield broker.port


def decoded(raw: bytes) -> Packet:
    (packet,) = Decoder(role=Role.CLIENT, protocol_level=ProtocolLevel.MQTT_5).feed(raw)
    return packet


_P = TypeVar("_P")


def expect(client: WireClient, kind: type[_P]) -> _P:
    packet = decoded(judged(client))
    assert isinstance(packet, kind), packet
    return packet


def judged(client: WireClient) -> bytes:
    """The next frame, checked against every wire rule of 5.0."""
    raw = client.next()
    assert raw != CLOSED
    check_server_frame("c", raw)
    return raw


def test_a_session_with_the_broker_meets_the_wire_and_answer_rules(port: int) -> None:
    with WireClient(port) as client:
        client.send(connect("", properties=props(b"\x11" + (60).to_bytes(4, "big"))))
        connack = expect(client, ConnAck)
        judge = Connack5(Connect(ProtocolLevel(5), "", keep_alive=60,
                                 properties=Props(session_expiry_interval=60)))
        judge.connack(connack)
        assert judge.session_key  # the assigned ClientID

        answers = Answers5()
        filters = (("t/#", 2), ("u", 1), ("t/#", 1))  # "t/#" twice: the later options stand
        client.send(frame(0x82, b"\x00\x05\x00" + b"".join(s(f) + bytes([q])
                                                           for f, q in filters)))
        answers.request(PacketKind.SUBACK, 5, [f for f, _ in filters],
                        [judge.suback_situations(q) for _, q in filters])
        answers.answer(PacketKind.SUBACK, 5, expect(client, SubAck).return_codes)

        # A QoS 2 PUBLISH with DUP 1 as if re-sent: the forwarded copy is a first delivery.
        body = s("t/x") + b"\x00\x09" + props(b"\x08" + s("reply/1"), b"\x03" + s("text"),
                                               b"\x26" + s("k") + s("v")) + b"payload"
        client.send(frame(0x3C, body))
        receiver = Qos2Receiver5(9)
        receiver.publish()
        ordered = forwarding.OrderedTopics5()
        forwarded = False
        # Onward delivery may start at the PUBLISH or at the PUBREL (4.3.3, methods A and
        # B): the forwarded copy may come before the PUBREC or after the PUBREL.
        while receiver.state != "free":
            packet = decoded(judged(client))
            if isinstance(packet, Publish):
                forwarding.check_match("c", "t/#", packet.topic)
                forwarding.check_topic("c", "t/x", packet.topic)
                forwarding.check_identity("c", qos=packet.qos, packet_id=packet.packet_id,
                                          dup=packet.dup, retransmission=False)
                ordered.forwarded("c", packet.topic, packet.qos, 1)
                assert packet.qos == 1  # the later "t/#" subscription asked for QoS 1
                client.send(frame(0x40, (packet.packet_id or 0).to_bytes(2, "big")))
                forwarded = True
            elif isinstance(packet, PubRec):
                receiver.pubrec(packet.reason_code)
                receiver.pubrel()
                client.send(frame(0x62, b"\x00\x09"))
            else:
                assert isinstance(packet, PubComp), packet
                receiver.pubcomp(packet.reason_code)
        if not forwarded:
            packet = expect(client, Publish)
            forwarding.check_identity("c", qos=packet.qos, packet_id=packet.packet_id,
                                      dup=packet.dup, retransmission=False)
            client.send(frame(0x40, (packet.packet_id or 0).to_bytes(2, "big")))
        assert receiver.obligations() == []

        situations = unsubscribe_in_sequence(["t/#", "t/#", "none"], {"t/#", "u"})
        answers.request(PacketKind.UNSUBACK, 6, ["t/#", "t/#", "none"], situations)
        client.send(frame(0xA2, b"\x00\x06\x00" + s("t/#") + s("t/#") + s("none")))
        answers.answer(PacketKind.UNSUBACK, 6, expect(client, UnsubAck).reason_codes)
        client.send(frame(0xE0, b""))


@pytest.mark.parametrize("malformed", [
    frame(0x82, b"\x00\x01\x00" + s("a") + b"\x81"),  # reserved option bits [MQTT-3.8.3-5]
    frame(0x80, b"\x00\x01\x00" + s("a") + b"\x01"),  # SUBSCRIBE flags 0000 [MQTT-3.8.1-1]
    frame(0xA0, b"\x00\x01\x00" + s("a")),  # UNSUBSCRIBE flags 0000 [MQTT-3.10.1-1]
    frame(0x36, s("a") + b"\x00\x01\x00"),  # QoS 3 [MQTT-3.3.1-4]
], ids=["subscribe-options", "subscribe-flags", "unsubscribe-flags", "publish-qos-3"])
def test_the_broker_closes_on_a_malformed_packet_as_the_rules_demand(
        port: int, malformed: bytes) -> None:
    problem = client_frame_problem(malformed)
    assert problem is not None
    with WireClient(port) as client:
        client.send(connect("m1"))
        assert expect(client, ConnAck).return_code == 0
        client.send(malformed)
        reaction = MalformedInput5(problem, connected=True)
        while (raw := client.next()) != CLOSED:
            check_server_frame("c", raw)
            packet = decoded(raw)
            if isinstance(packet, Disconnect):
                reaction.disconnect(packet.reason_code)
            else:
                reaction.other_packet(type(packet).__name__)
        reaction.close()
        assert reaction.obligations() == []


def test_the_broker_refuses_a_connect_with_the_reserved_flag_set(port: int) -> None:
    malformed = connect("m2", flags=0x03)
    problem = client_frame_problem(malformed)
    assert problem is not None
    with WireClient(port) as client:
        client.send(malformed + frame(0xC0, b""))  # a PINGREQ after it must go unanswered
        reaction = MalformedInput5(problem, connected=False)
        while (raw := client.next()) != CLOSED:
            check_server_frame("c", raw)
            packet = decoded(raw)
            if isinstance(packet, ConnAck):
                reaction.connack(packet.return_code)
            else:
                reaction.other_packet(type(packet).__name__)
        reaction.close()
