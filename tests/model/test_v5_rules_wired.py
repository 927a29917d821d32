"""The 5.0 byte and answer rules as the broker model applies them to every packet a
level-5 connection observes (what the stateful machines judge): each frame's bytes
(``frames``, through ``observe_frame``), each SUBACK and UNSUBACK (``answers``), each
CONNACK (``connack``). A 3.1.1 connection's bytes are not judged by 5.0's rules.
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Properties,
    ProtocolLevel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from mqttref.model import BrokerModel, Send
from mqttref.model.errors import Violation
from mqttref.model.v5.frames import FrameSplitter
from tests.model.frames5 import frame
from tests.model.helpers import connect
from tests.model.test_levels_mix import connect5, connected5, refs_of

PINGRESP = bytes((0xD0, 0x00))
SUBACK_1 = frame(0x90, b"\x00\x01\x00\x01")
"""SUBACK 1 granting QoS 1, no properties (Property Length 0)."""


def test_the_splitter_gives_whole_frames_however_the_bytes_come() -> None:
    stream = PINGRESP + SUBACK_1 + PINGRESP
    for cut in range(len(stream) + 1):
        splitter = FrameSplitter()
        frames = splitter.feed(stream[:cut]) + splitter.feed(stream[cut:])
        assert frames == [PINGRESP, SUBACK_1, PINGRESP]
        assert splitter.buffer == b""


def test_the_splitter_stops_at_a_remaining_length_past_four_bytes() -> None:
    splitter = FrameSplitter()
    assert splitter.feed(PINGRESP + b"\x30\xff\xff\xff\xff\x01" + PINGRESP) == [PINGRESP]
    assert splitter.stuck
    assert splitter.feed(PINGRESP) == []


def test_a_level_5_connections_frames_are_judged_by_their_bytes() -> None:
    """A PINGRESP with a reserved flag set breaks [MQTT-2.1.3-1]; a SUBACK whose
    Remaining Length takes two bytes for 4 breaks [MQTT-1.5.5-1]; well-formed ones
    pass."""
    model = BrokerModel()
    connected5(model, "a")
    model.observe_frame("a", PINGRESP)
    model.observe_frame("a", SUBACK_1)
    with pytest.raises(Violation) as caught:
        model.observe_frame("a", bytes((0xD1, 0x00)))
    assert caught.value.refs == ("MQTT-2.1.3-1",)
    with pytest.raises(Violation) as caught:
        model.observe_frame("a", b"\x90\x84\x00\x00\x01\x00\x01")
    assert caught.value.refs == ("MQTT-1.5.5-1",)


def test_a_3_1_1_connections_frames_are_not_judged_by_5_0_rules() -> None:
    """A 3.1.1 SUBACK has no Property Length: 5.0's reader would call it malformed
    [MQTT-2.2.2-1]."""
    model = BrokerModel()
    connect(model, "b")
    model.observe_frame("b", frame(0x90, b"\x00\x01\x01"))
    model.observe_frame("nobody", bytes((0xD1, 0x00)))  # no CONNECT yet: observe's to say


def test_a_level_5_suback_out_of_order_names_the_order() -> None:
    """Two filters granted each other's codes: the order is what is wrong
    [MQTT-3.9.3-1], not the grants."""
    model = BrokerModel()
    connected5(model, "a")
    requests = (Subscription("t", QoS.AT_MOST_ONCE), Subscription("u", QoS.EXACTLY_ONCE))
    model.apply(Send("a", Subscribe(1, requests)))
    assert refs_of(model, "a", SubAck(1, (0x02, 0x00))) == ("MQTT-3.9.3-1",)
    model.observe("a", SubAck(1, (0x00, 0x02)))
    assert refs_of(model, "a", SubAck(1, (0x00, 0x02))) == ("MQTT-3.8.4-5",)


def test_a_level_5_connack_with_unrequested_response_information_is_refused() -> None:
    """Response Information only when the CONNECT asked for it [MQTT-3.1.2-28]."""
    model = BrokerModel()
    model.apply(connect5("a"))
    answer = ConnAck(False, 0x00, Properties(response_information="replies/"))
    assert refs_of(model, "a", answer) == ("MQTT-3.1.2-28",)
    model.observe("a", ConnAck(False, 0x00))
    asked = Connect(ProtocolLevel.MQTT_5, "b", True, 0,
                    properties=Properties(request_response_information=1))
    model.apply(Send("b", asked))
    model.observe("b", answer)
