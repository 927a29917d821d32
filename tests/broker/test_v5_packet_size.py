"""The client's Maximum Packet Size holds for every packet the broker sends at MQTT 5.0
[MQTT-3.1.2-24], not only PUBLISH: seen byte for byte on a raw socket. A Reason String
or User Properties give way first (MQTT-3.x.2-n of each packet); a packet that still
does not fit closes the connection (DISCONNECT 0x95 after CONNACK, CONNACK 0x80 before
it), as ``impl/broker/packet_size.py`` explains."""

from __future__ import annotations

from collections.abc import Callable

from mqttref.impl.auth import ScramSha256Client
from mqttref.impl.broker.packet_size import fit
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    Properties,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Unsubscribe,
    Will,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peer5 import V5, Peer, R, connack_size, connect_with_scram

__all__ = ["V5", "Wire"]
"""What ``test_v5_payload_format`` and ``test_v5_auth_disconnect`` take from here."""


class Wire(Peer):
    """The ``Peer`` of ``tests/helpers/peer5.py``, opened on a broker, whose ``connect``
    gives the CONNACK as the bytes it was on the wire, so a test can assert exactly what
    was sent."""

    def __init__(self, broker: BrokerThread) -> None:
        super().__init__(broker.port)

    def connect(self, client_id: str, maximum_packet_size: int | None = None, *,
                clean_session: bool = True, will: Will | None = None) -> bytes:
        """CONNECT at 5.0; the CONNACK's bytes, after checking it accepted."""
        self.open_session(client_id, clean_start=clean_session, will=will,
                          properties=Properties(maximum_packet_size=maximum_packet_size))
        return self.frames[-1]


def filters(count: int) -> tuple[Subscription, ...]:
    return tuple(Subscription(f"f/{n}", QoS.AT_MOST_ONCE) for n in range(count))


# The rule itself: what gives way, in which order ------------------------------------


def test_a_packet_that_fits_is_encoded_whole() -> None:
    suback = SubAck(1, (0,), Properties(reason_string="why", user_properties=(("k", "v"),)))
    assert fit(suback, 1000) == encode(suback, V5)
    assert fit(suback, None) == encode(suback, V5)


def test_the_reason_string_goes_first_and_the_user_properties_stay_if_that_fits() -> None:
    kept = Properties(user_properties=(("k", "v"),))
    suback = SubAck(1, (0,), Properties(reason_string="r" * 50, user_properties=(("k", "v"),)))
    limit = len(encode(SubAck(1, (0,), kept), V5))
    assert fit(suback, limit) == encode(SubAck(1, (0,), kept), V5)  # [MQTT-3.9.2-1]


def test_then_the_user_properties_go_too() -> None:
    suback = SubAck(1, (0,), Properties(reason_string="r", user_properties=(("k", "v" * 50),)))
    assert fit(suback, 10) == encode(SubAck(1, (0,)), V5) == bytes.fromhex("90 04 00 01 00 00")


def test_a_packet_too_large_even_bare_does_not_fit() -> None:
    assert fit(SubAck(1, (0,) * 20), 10) is None


def test_a_publish_is_never_trimmed_its_user_properties_go_unaltered() -> None:
    publish = Publish("t", b"x", properties=Properties(user_properties=(("k", "v" * 50),)))
    assert fit(publish, 20) is None  # [MQTT-3.3.2-17]; the session drops it [MQTT-3.1.2-25]


# On the wire -------------------------------------------------------------------------


def test_a_suback_larger_than_the_clients_maximum_closes_with_disconnect_0x95(
    broker: BrokerThread,
) -> None:
    with Wire(broker) as client:
        client.connect("small", maximum_packet_size=40)
        client.send(Subscribe(1, filters(50)))  # SUBACK: 2 + 2 + 1 + 50 bytes
        # Its Reason String would not fit either [MQTT-3.14.2-3]: three bytes.
        assert client.frames_until_closed() == [bytes.fromhex("e0 01 95")]


def test_a_suback_within_the_clients_maximum_is_sent(broker: BrokerThread) -> None:
    with Wire(broker) as client:
        client.connect("small", maximum_packet_size=40)
        client.send(Subscribe(1, filters(30)))
        assert client.frame() == bytes.fromhex("90 21 00 01 00") + bytes(30)
        client.send(PingReq())
        assert client.frame() == encode(PingResp(), V5)


def test_a_disconnect_0x95_keeps_its_reason_string_where_that_fits(
    broker: BrokerThread,
) -> None:
    with Wire(broker) as client:
        client.connect("roomy", maximum_packet_size=120)
        client.send(Subscribe(1, filters(200)))
        [disconnect] = client.frames_until_closed()
        reason = b"a SUBACK larger than the client's Maximum Packet Size of 120"
        properties = bytes([0x1F, 0, len(reason)]) + reason  # Reason String (3.14.2.2.3)
        assert disconnect == (bytes([0xE0, 2 + len(properties), R.PACKET_TOO_LARGE,
                                     len(properties)]) + properties)


def test_an_unsuback_larger_than_the_clients_maximum_closes_with_disconnect_0x95(
    broker: BrokerThread,
) -> None:
    with Wire(broker) as client:
        client.connect("small", maximum_packet_size=40)
        client.send(Unsubscribe(1, tuple(f"f/{n}" for n in range(50))))
        assert client.frames_until_closed() == [bytes.fromhex("e0 01 95")]


def test_the_will_goes_out_when_a_packet_too_large_closes_the_connection(
    broker: BrokerThread,
) -> None:
    with Wire(broker) as watcher, Wire(broker) as client:
        watcher.connect("watcher")
        watcher.send(Subscribe(1, (Subscription("wills/#", QoS.AT_MOST_ONCE),)))
        assert watcher.frame() == bytes.fromhex("90 04 00 01 00 00")
        client.connect("small", maximum_packet_size=40,
                       will=Will("wills/small", b"gone"))
        client.send(Subscribe(1, filters(50)))
        assert client.frames_until_closed() == [bytes.fromhex("e0 01 95")]
        # Closed by the broker, not by the client's DISCONNECT 0x00 (3.14).
        assert watcher.frame() == encode(Publish("wills/small", b"gone"), V5)


def test_a_connack_larger_than_the_clients_maximum_is_a_refusal_0x80(
    broker: BrokerThread,
) -> None:
    with Wire(broker) as client:
        client.send(Connect(V5, "tiny", clean_session=False, properties=Properties(
            maximum_packet_size=8, session_expiry_interval=60)))
        assert client.frames_until_closed() == [bytes.fromhex("20 03 00 80 00")]
    with Wire(broker) as client:  # the refused CONNECT opened no session
        assert client.connect("tiny", clean_session=False)[2] == 0  # session present 0


def test_a_client_whose_maximum_takes_no_connack_at_all_is_closed_silently(
    broker: BrokerThread,
) -> None:
    with Wire(broker) as client:
        client.send(Connect(V5, "tinier", properties=Properties(maximum_packet_size=4)))
        assert client.frames_until_closed() == []


def test_an_auth_larger_than_the_clients_maximum_refuses_the_connect_with_0x80(
    start_broker: Callable[..., BrokerThread],
) -> None:
    broker = start_broker(users={"alice": "pencil"})
    scram = ScramSha256Client("alice", "pencil")
    with Wire(broker) as client:
        # The CONNACK would fit in 60 bytes; the server-first AUTH 0x18 does not.
        client.send(connect_with_scram(scram, 60))
        assert client.frames_until_closed() == [bytes.fromhex("20 03 00 80 00")]


def test_a_client_whose_maximum_is_just_its_connack_gets_acknowledgements_with_reasons(
    broker: BrokerThread,
) -> None:
    """A CONNACK carries at least the broker's Maximum Packet Size: whoever took it takes
    a five-byte PUBACK with a reason code (and the three-byte DISCONNECT 0x95)."""
    size = connack_size(broker, "probe")
    with Wire(broker) as client:
        assert len(client.connect("p", maximum_packet_size=size)) == size
        client.send(Publish("nobody/listens", b"x", QoS.AT_LEAST_ONCE, packet_id=7))
        assert client.frame() == bytes.fromhex("40 03 00 07 10")  # 0x10 No matching subscribers


def test_a_client_without_a_maximum_gets_a_suback_of_any_size(broker: BrokerThread) -> None:
    """No Maximum Packet Size: no limit beyond the protocol's (3.1.2.11.4)."""
    with Wire(broker) as client:
        client.connect("unbounded")
        client.send(Subscribe(1, filters(200)))
        assert client.frame() == encode(SubAck(1, (0,) * 200), V5)
        client.send(Disconnect())
        assert client.frames_until_closed() == []
