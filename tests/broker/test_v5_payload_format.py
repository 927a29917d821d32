"""Payload Format Indicator 1 says the payload is well-formed UTF-8 (3.3.2.3.2, for a will
3.1.3.2.3); the receiver MAY check it. With ``validate_payload_format`` the broker does, and
refuses what is not: PUBACK or PUBREC 0x99, DISCONNECT 0x99 at QoS 0, CONNACK 0x99 for a
will, the message going to nobody. Without it (the default) the payload passes unread, as
mosquitto 2.0 forwards it. Byte for byte on raw sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import (
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    Properties,
    Publish,
    PubRel,
    QoS,
    Subscribe,
    Subscription,
    Will,
)
from tests.broker.test_v5_packet_size import V5, Wire
from tests.helpers.broker_thread import BrokerThread

R = ReasonCode
UTF8 = Properties(payload_format_indicator=1)
ILL_FORMED = {
    "a byte that never starts a character": b"\xff",
    "a lone continuation byte": b"ok\x80",
    "an overlong '/'": b"\xc0\xaf",
    "a surrogate, U+D800": b"\xed\xa0\x80",
    "beyond U+10FFFF": b"\xf4\x90\x80\x80",
    "a truncated sequence": b"\xe2\x82",
}


@pytest.fixture
def broker(start_broker: Callable[..., BrokerThread]) -> BrokerThread:
    return start_broker(validate_payload_format=True)


@pytest.fixture
def subscriber(broker: BrokerThread) -> Iterator[Wire]:
    with Wire(broker) as wire:
        wire.connect("subscriber")
        wire.send(Subscribe(1, (Subscription("t/#", QoS.AT_LEAST_ONCE),)))
        assert wire.frame() == bytes.fromhex("90 04 00 01 00 01")
        yield wire


def next_message(subscriber: Wire, broker: BrokerThread) -> bytes:
    """What the subscriber gets next, once a QoS 0 fence has been published after what
    the test sent: the fence itself when nothing else reached it."""
    with Wire(broker) as fence:
        fence.connect("fence")
        fence.send(Publish("t/fence", b"after"), Disconnect())
        assert fence.frames_until_closed() == []
    return subscriber.frame()


FENCE = encode(Publish("t/fence", b"after"), V5)


@pytest.mark.parametrize("payload", ILL_FORMED.values(), ids=ILL_FORMED)
def test_a_qos_1_publish_whose_payload_is_not_utf_8_gets_puback_0x99(
    broker: BrokerThread, subscriber: Wire, payload: bytes,
) -> None:
    with Wire(broker) as client:
        client.connect("publisher")
        client.send(Publish("t/x", payload, QoS.AT_LEAST_ONCE, packet_id=7, properties=UTF8))
        assert client.frame() == bytes.fromhex("40 03 00 07 99")
        client.send(PingReq())  # the connection goes on
        assert client.frame() == encode(PingResp(), V5)
    assert next_message(subscriber, broker) == FENCE  # it went to nobody


def test_a_qos_2_publish_whose_payload_is_not_utf_8_gets_pubrec_0x99_and_ends_there(
    broker: BrokerThread, subscriber: Wire,
) -> None:
    with Wire(broker) as client:
        client.connect("publisher")
        client.send(Publish("t/x", b"\xff", QoS.EXACTLY_ONCE, packet_id=7, properties=UTF8))
        assert client.frame() == bytes.fromhex("50 03 00 07 99")
        # The id is not awaiting PUBREL: a PUBREL for it is answered 0x92 (3.7.2.1) ...
        client.send(PubRel(7))
        assert client.frame() == bytes.fromhex("70 03 00 07 92")
        # ... and the same id is a new message [MQTT-4.3.3-9].
        client.send(Publish("t/x", b"fine", QoS.EXACTLY_ONCE, packet_id=7, properties=UTF8))
        assert client.frame() == bytes.fromhex("50 02 00 07")
    assert subscriber.frame() == encode(  # the second one only, at the granted QoS 1
        Publish("t/x", b"fine", QoS.AT_LEAST_ONCE, packet_id=1, properties=UTF8), V5)
    assert next_message(subscriber, broker) == FENCE


def test_a_qos_0_publish_whose_payload_is_not_utf_8_is_disconnect_0x99(
    broker: BrokerThread, subscriber: Wire,
) -> None:
    with Wire(broker) as client:
        client.connect("publisher")
        client.send(Publish("t/x", b"\xff", properties=UTF8))
        [disconnect] = client.frames_until_closed()
        assert disconnect[0] == 0xE0
        assert disconnect[2] == R.PAYLOAD_FORMAT_INVALID
    assert next_message(subscriber, broker) == FENCE


def test_a_retained_message_refused_so_is_not_kept(broker: BrokerThread) -> None:
    with Wire(broker) as client:
        client.connect("publisher")
        client.send(Publish("t/r", b"\xff", QoS.AT_LEAST_ONCE, retain=True, packet_id=1,
                            properties=UTF8))
        assert client.frame() == bytes.fromhex("40 03 00 01 99")
        client.send(Subscribe(2, (Subscription("t/r", QoS.AT_MOST_ONCE),)))
        assert client.frame() == bytes.fromhex("90 04 00 02 00 00")  # and no retained message
        client.send(PingReq())
        assert client.frame() == encode(PingResp(), V5)


def test_a_will_whose_payload_is_not_utf_8_is_refused_with_connack_0x99(
    broker: BrokerThread,
) -> None:
    with Wire(broker) as client:
        client.send(Connect(V5, "c", will=Will("t/will", b"\xff", properties=UTF8)))
        assert client.frames_until_closed() == [bytes.fromhex("20 03 00 99 00")]


@pytest.mark.parametrize("payload", [b"", "caf\u00e9 \u20ac \U0001f600".encode(),
                                     b"nul \x00 inside", "\ufffe\uffff".encode()],
                         ids=["empty", "multibyte", "U+0000", "noncharacters"])
def test_well_formed_utf_8_goes_through_with_its_indicator(
    broker: BrokerThread, subscriber: Wire, payload: bytes,
) -> None:
    """Well-formed in the Unicode sense: U+0000 and noncharacters are barred from UTF-8
    Encoded Strings (1.5.4), not from a payload."""
    with Wire(broker) as client:
        client.connect("publisher")
        client.send(Publish("t/x", payload, QoS.AT_LEAST_ONCE, packet_id=7, properties=UTF8))
        assert client.frame() == bytes.fromhex("40 02 00 07")
    assert subscriber.frame() == encode(
        Publish("t/x", payload, QoS.AT_LEAST_ONCE, packet_id=1, properties=UTF8), V5)


def test_without_the_indicator_any_payload_goes_through(
    broker: BrokerThread, subscriber: Wire,
) -> None:
    with Wire(broker) as client:
        client.connect("publisher")
        client.send(Publish("t/x", b"\xff", QoS.AT_LEAST_ONCE, packet_id=7,
                            properties=Properties(payload_format_indicator=0)))
        assert client.frame() == bytes.fromhex("40 02 00 07")
    assert subscriber.frame() == encode(Publish(
        "t/x", b"\xff", QoS.AT_LEAST_ONCE, packet_id=1,
        properties=Properties(payload_format_indicator=0)), V5)


def test_by_default_the_payload_is_not_read_as_mosquitto_2_0_forwards_it(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker()
    with Wire(broker) as subscriber, Wire(broker) as client:
        subscriber.connect("subscriber")
        subscriber.send(Subscribe(1, (Subscription("t/#", QoS.AT_LEAST_ONCE),)))
        assert subscriber.frame() == bytes.fromhex("90 04 00 01 00 01")
        client.connect("publisher")
        client.send(Publish("t/x", b"\xff", QoS.AT_LEAST_ONCE, packet_id=7, properties=UTF8))
        assert client.frame() == bytes.fromhex("40 02 00 07")
        # Unaltered, indicator and all [MQTT-3.3.2-4].
        assert subscriber.frame() == encode(
            Publish("t/x", b"\xff", QoS.AT_LEAST_ONCE, packet_id=1, properties=UTF8), V5)
    with Wire(broker) as willing:  # and such a will is accepted
        willing.connect("willing", will=Will("t/will", b"\xff", properties=UTF8))
