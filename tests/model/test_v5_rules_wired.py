"""The 5.0 byte and answer rules as the broker model applies them to every packet a
level-5 connection observes (what the stateful machines judge): each frame's bytes
(``frames``, through ``observe_frame``), each SUBACK and UNSUBACK (``answers``), each
CONNACK (``connack``), each PUBCOMP for a client's QoS 2 message (``qos2_receiver``).
A 3.1.1 connection's bytes are not judged by 5.0's rules.
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Properties,
    ProtocolLevel,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from mqttref.model import BrokerModel, Drop, Send, TimePasses
from mqttref.model.errors import Violation
from mqttref.model.events import Closed
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


def qos2_publish(model: BrokerModel, client: str, payload: bytes) -> None:
    model.apply(Send(client, Publish("t", payload, QoS.EXACTLY_ONCE, packet_id=1)))


def test_a_pubcomp_for_an_exchange_the_server_accepted_is_0x00() -> None:
    """PUBREC 0x00 made the exchange the server's: PUBCOMP 0x92 (Packet Identifier
    not found) for its PUBREL is wrong [MQTT-3.7.2-1] [MQTT-4.3.3-11]."""
    model = BrokerModel()
    connected5(model, "a")
    qos2_publish(model, "a", b"m1")
    model.observe("a", PubRec(1))
    model.apply(Send("a", PubRel(1)))
    assert refs_of(model, "a", PubComp(1, 0x92)) == ("MQTT-3.7.2-1", "MQTT-4.3.3-11")
    model.observe("a", PubComp(1))
    assert model.check_quiescent() == []


def test_a_refusing_pubrec_ends_the_exchange() -> None:
    """After PUBREC 0x80 the server holds no exchange for the identifier: a PUBREL for
    it may get PUBCOMP 0x92 (Packet Identifier not found) or 0x00 (3.7.2.1)."""
    model = BrokerModel()
    connected5(model, "a")
    qos2_publish(model, "a", b"m1")
    model.observe("a", PubRec(1, 0x80))
    model.apply(Send("a", PubRel(1)))
    model.observe("a", PubComp(1, 0x92))
    assert model.check_quiescent() == []


def test_after_a_refusing_pubrec_the_next_publish_is_a_new_message() -> None:
    """The next PUBLISH with a refused identifier is a new Application Message
    [MQTT-4.3.3-9]: owed to a subscriber once released, and its exchange is the
    server's, so its PUBCOMP is 0x00 only."""
    model = BrokerModel()
    connected5(model, "a")
    connected5(model, "b")
    model.apply(Send("b", Subscribe(1, (Subscription("t", QoS.AT_MOST_ONCE),))))
    model.observe("b", SubAck(1, (0x00,)))
    qos2_publish(model, "a", b"m1")
    model.observe("a", PubRec(1, 0x80))
    qos2_publish(model, "a", b"m2")
    model.observe("a", PubRec(1))
    model.apply(Send("a", PubRel(1)))
    assert refs_of(model, "a", PubComp(1, 0x92)) == (
        "MQTT-3.7.2-1", "MQTT-4.3.3-9")
    model.observe("a", PubComp(1))
    assert model.check_quiescent() != []  # m2 is owed to b
    model.observe("b", Publish("t", b"m2"))
    assert model.check_quiescent() == []


def subscribed_to_everything(model: BrokerModel) -> None:
    connected5(model, "a")
    connected5(model, "b")
    model.apply(Send("b", Subscribe(1, (Subscription("#", QoS.AT_MOST_ONCE),))))
    model.observe("b", SubAck(1, (0x00,)))


def test_a_dollar_topic_sent_for_a_leading_wildcard_names_4_7_2_1() -> None:
    """"#" never matches a Topic Name starting with "$" [MQTT-4.7.2-1]: the message
    is not due, and why the server may have thought so is named."""
    model = BrokerModel()
    subscribed_to_everything(model)
    model.apply(Send("a", Publish("$x/t", b"m")))
    assert refs_of(model, "b", Publish("$x/t", b"m")) == ("MQTT-4.7.2-1",)


def test_a_topic_name_forwarded_without_its_bom_names_1_5_4_3() -> None:
    """U+FEFF is a character of the Topic Name, never stripped [MQTT-1.5.4-3]."""
    model = BrokerModel()
    subscribed_to_everything(model)
    model.apply(Send("a", Publish("\ufeffx/t", b"m")))
    assert refs_of(model, "b", Publish("x/t", b"m")) == ("MQTT-1.5.4-3",)
    model.observe("b", Publish("\ufeffx/t", b"m"))


def test_closing_for_a_requested_qos_above_the_maximum_qos_names_3_2_2_10() -> None:
    """A server announcing Maximum QoS 1 must still accept a SUBSCRIBE requesting QoS
    2 [MQTT-3.2.2-10]: closing instead is named so."""
    model = BrokerModel()
    model.apply(connect5("a"))
    model.observe("a", ConnAck(False, 0x00, Properties(maximum_qos=1)))
    model.apply(Send("a", Subscribe(1, (Subscription("t", QoS.EXACTLY_ONCE),))))
    assert refs_of(model, "a", Closed()) == ("MQTT-3.2.2-10",)
    model.observe("a", SubAck(1, (0x01,)))


def test_an_unexplained_level_5_close_is_named_in_5_0_numbers() -> None:
    """3.1.1's [MQTT-4.8.0-1] does not exist at 5.0 and its [MQTT-3.1.2-24] is the
    Maximum Packet Size there: a level-5 close with no reason breaks [MQTT-4.13.2-1],
    and with a Keep Alive of 10 s in force (the Server Keep Alive) after 1 s of
    silence, the Keep Alive rule [MQTT-3.1.2-22]."""
    model = BrokerModel()
    model.apply(connect5("a"))
    model.observe("a", ConnAck(False, 0x00, Properties(server_keep_alive=10)))
    model.apply(TimePasses(1.0))
    assert refs_of(model, "a", Closed()) == ("MQTT-4.13.2-1", "MQTT-3.1.2-22")
    model.apply(connect5("b"))
    model.observe("b", ConnAck(False, 0x00))
    assert refs_of(model, "b", Closed()) == ("MQTT-4.13.2-1",)


def test_a_publish_above_the_announced_maximum_qos_may_be_closed_with_0x9b() -> None:
    """A client sending QoS 2 after CONNACK's Maximum QoS 1 breaks [MQTT-3.2.2-11]; the
    server closes, with DISCONNECT 0x9B (QoS not supported) first if it likes (3.3.1.2):
    the model owes the close and allows 0x9B."""
    model = BrokerModel()
    model.apply(connect5("a"))
    model.observe("a", ConnAck(False, 0x00, Properties(maximum_qos=1)))
    model.apply(Send("a", Publish("t", b"m", QoS.EXACTLY_ONCE, packet_id=1)))
    assert model.check_quiescent() != []  # the close is owed
    model.observe("a", Disconnect(0x9B))
    model.observe("a", Closed())
    assert model.check_quiescent() == []


def test_a_level_5_copy_out_of_order_names_the_ordered_topic_rules() -> None:
    """On a Non-shared Subscription every Topic is an Ordered Topic [MQTT-4.6.0-6]:
    one publisher's messages go in the order received [MQTT-4.6.0-5]."""
    model = BrokerModel()
    subscribed_to_everything(model)
    model.apply(Send("a", Publish("t", b"m1")))
    model.apply(Send("a", Publish("t", b"m2")))
    assert refs_of(model, "b", Publish("t", b"m2")) == ("MQTT-4.6.0-5", "MQTT-4.6.0-6")
    model.observe("b", Publish("t", b"m1"))
    model.observe("b", Publish("t", b"m2"))


def test_a_level_5_queued_qos_0_message_may_be_dropped_but_not_come_late() -> None:
    """QoS 0 messages queued while the session's client was away may be dropped; one
    that comes after a later one breaks the order [MQTT-4.6.0-5] [MQTT-4.6.0-6]."""
    model = BrokerModel()
    connected5(model, "sub", clean_start=False, session_expiry=60)
    model.apply(Send("sub", Subscribe(1, (Subscription("t", QoS.AT_MOST_ONCE),))))
    model.observe("sub", SubAck(1, (0x00,)))
    model.apply(Drop("sub"))
    connected5(model, "pub")
    model.apply(Send("pub", Publish("t", b"m1")))
    model.apply(Send("pub", Publish("t", b"m2")))
    connected5(model, "sub", clean_start=False, session_expiry=60, present=True)
    model.observe("sub", Publish("t", b"m2"))  # m1 dropped: allowed
    assert model.check_quiescent() == []
    assert refs_of(model, "sub", Publish("t", b"m1")) == ("MQTT-4.6.0-5", "MQTT-4.6.0-6")
