"""One side's QoS flows (``SideFlows``), as a client checker would use them."""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import PubAck, PubComp, Publish, PubRec, PubRel, QoS
from mqttref.model.errors import NoTransition
from mqttref.model.flows import SideFlows


def pub(qos: int, packet_id: int, dup: bool = False) -> Publish:
    return Publish("t", b"m", QoS(qos), dup=dup, packet_id=packet_id)


def test_qos1_sender_completes_on_puback_and_frees_the_id() -> None:
    """[MQTT-4.3.2-1] [MQTT-2.3.1-6]"""
    side = SideFlows()
    side.sent(pub(1, 1))
    assert side.in_flight() == 1
    side.received(PubAck(1))
    assert side.outgoing == {}
    with pytest.raises(NoTransition):
        side.received(PubAck(1))


def test_qos1_sender_must_resend_with_dup_after_reconnect() -> None:
    """[MQTT-4.4.0-1] [MQTT-3.3.1-1]"""
    side = SideFlows()
    side.sent(pub(1, 7))
    side.connection_lost()
    assert [(d.packet, d.packet_id) for d in side.due()] == [("PUBLISH (DUP=1)", 7)]
    with pytest.raises(NoTransition):
        side.sent(pub(1, 7))  # DUP=0 is not a re-send
    side.sent(pub(1, 7, dup=True))
    assert side.due() == []


def test_qos2_sender_sends_pubrel_after_pubrec_and_never_publish_again() -> None:
    """[MQTT-4.3.3-1]"""
    side = SideFlows()
    side.sent(pub(2, 3))
    side.received(PubRec(3))
    assert [d.packet for d in side.due()] == ["PUBREL"]
    side.sent(PubRel(3))
    with pytest.raises(NoTransition):
        side.sent(pub(2, 3, dup=True))
    side.connection_lost()
    assert [d.packet for d in side.due()] == ["PUBREL"]
    side.sent(PubRel(3))
    side.received(PubComp(3))
    assert side.outgoing == {}


def test_qos2_receiver_acknowledges_duplicates_and_answers_pubrel() -> None:
    """[MQTT-4.3.3-2]"""
    side = SideFlows()
    _, first = side.received(pub(2, 5)) or (None, None)
    assert first is not None
    assert first.action == "take_ownership"
    side.sent(PubRec(5))
    _, again = side.received(pub(2, 5, dup=True)) or (None, None)
    assert again is not None
    assert again.action is None
    side.sent(PubRec(5))
    side.received(PubRel(5))
    assert [d.packet for d in side.due()] == ["PUBCOMP"]
    side.sent(PubComp(5))
    assert side.incoming == {}
    _, new = side.received(pub(2, 5)) or (None, None)
    assert new is not None
    assert new.action == "take_ownership"


def test_acknowledging_what_was_never_received_is_a_protocol_error() -> None:
    """[MQTT-2.3.1-6]"""
    side = SideFlows()
    for packet in (PubAck(1), PubRec(1), PubComp(1)):
        with pytest.raises(NoTransition):
            side.sent(packet)
    with pytest.raises(NoTransition):
        side.sent(PubRel(1))


def test_qos1_receiver_owes_puback_until_sent() -> None:
    """[MQTT-4.3.2-2]"""
    side = SideFlows()
    side.received(pub(1, 9))
    assert [d.packet for d in side.due()] == ["PUBACK"]
    side.sent(PubAck(9))
    assert side.due() == []


def test_an_acknowledgement_of_the_other_qos_is_a_protocol_error() -> None:
    """[MQTT-4.3.2-1] [MQTT-4.3.3-1]: PUBREC answers QoS 2 only, PUBACK QoS 1 only."""
    side = SideFlows()
    side.sent(pub(1, 1))
    with pytest.raises(NoTransition):
        side.received(PubRec(1))
    side.received(pub(2, 2))
    with pytest.raises(NoTransition):
        side.sent(PubAck(2))
