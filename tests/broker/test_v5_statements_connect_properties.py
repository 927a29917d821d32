"""MQTT 5.0 statements of Keep Alive and the CONNECT properties (3.1.2.10, 3.1.2.11) that
bind the server, each shown by the broker meeting them: on a raw socket (the client's
Maximum Packet Size, Topic Alias Maximum, Request Response and Problem Information), in
the sans-IO core with a made-up clock for Keep Alive, so no test waits.

Driven as ``test_v5_statements_packet_format.py`` describes.
"""

from __future__ import annotations

from collections.abc import Callable

from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    Properties,
    Publish,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    Unsubscribe,
)
from tests.broker.test_protocol_core import World
from tests.broker.test_v5_core import connect5
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peer5 import (
    Q0,
    Q1,
    Q2,
    V5,
    R,
    connack_of,
    mark,
    publish,
    session,
)

# --- keep alive and the CONNECT properties ----------------------------------------------------


def test_without_server_keep_alive_the_clients_keep_alive_times_the_connection() -> None:
    """No Server Keep Alive in CONNACK: the server uses the client's Keep Alive
    [MQTT-3.2.2-22], and with no packet for one and a half times it, closes the connection
    [MQTT-3.1.2-22] (DISCONNECT 0x8D first); any packet, PINGREQ here, starts the time
    again. Keep Alive 0 means no such close at all."""
    world = World()
    client, connack = connect5(world, "k", keep_alive=10)
    assert connack.properties.server_keep_alive is None
    client.inner.core.timer(14.9)
    assert not client.closed()
    client.send(PingReq(), now=14.9)
    assert client.received() == [PingResp()]
    client.inner.core.timer(29.8)
    assert not client.closed()
    client.inner.core.timer(30.0)
    assert [p.reason_code for p in client.received() if isinstance(p, Disconnect)] == [
        R.KEEP_ALIVE_TIMEOUT]
    assert client.closed()
    idle, connack = connect5(world, "idle", keep_alive=0)
    assert connack.properties.server_keep_alive is None
    idle.inner.core.timer(100_000.0)
    assert not idle.closed()


def test_the_broker_sends_nothing_above_the_clients_maximum_packet_size(
    broker: BrokerThread,
) -> None:
    """No packet above the client's Maximum Packet Size [MQTT-3.1.2-24]; one too large is
    discarded and counts as sent [MQTT-3.1.2-25]: with a Receive Maximum of 1 the QoS 1
    message after it still comes, which it could not if the large one held the quota."""
    limit = 64
    with session(broker, "small", properties=Properties(maximum_packet_size=limit,
                                                        receive_maximum=1)) as small:
        small.subscribe(Subscription("w/big", Q1), Subscription("w/marker", Q1))
        with session(broker, "pub") as pub:
            publish(pub, "w/big", b"x" * 200, Q1)
            publish(pub, "w/big", b"fits", Q1, packet_id=2)
        assert [p.payload for p in small.until(mark(broker))] == [b"fits"]
        assert max(len(raw) for raw in small.frames) <= limit


def test_topic_aliases_the_broker_sends_stay_within_the_clients_maximum(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """The server sends no Topic Alias above the client's Topic Alias Maximum
    [MQTT-3.1.2-26], and none at all where it is absent or 0 [MQTT-3.1.2-27]; with a
    maximum of 2 and three topics repeated, aliases 1 and 2 are used and none beyond."""
    broker = start_broker(send_topic_aliases=True)
    topics = ("w/a/long/topic", "w/b/long/topic", "w/c/long/topic")
    peers = {maximum: session(broker, f"max{maximum}", properties=Properties(
        topic_alias_maximum=maximum)) for maximum in (None, 0, 2)}
    for peer in peers.values():
        peer.subscribe(Subscription("w/#", Q0))
    with session(broker, "pub") as pub:
        for _round in range(3):
            for topic in topics:
                publish(pub, topic, b"m")
    marker = mark(broker)
    for maximum, peer in peers.items():
        got = peer.until(marker)
        assert len(got) == 9
        aliases = {p.properties.topic_alias for p in got} - {None}
        if maximum:
            assert aliases == {1, 2}
        else:
            assert aliases == set()
        peer.sock.close()


def test_response_information_only_to_a_client_that_requests_it(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """Request Response Information 0 (or absent): the server returns no Response
    Information [MQTT-3.1.2-28]; 1 gets it, so the broker has some to give."""
    broker = start_broker(response_information="reply/%c/")
    for request, expected in ((None, None), (0, None), (1, "reply/asks/")):
        peer, _raw, connack = connack_of(broker.port, Connect(V5, "asks", properties=Properties(
            request_response_information=request)))
        with peer:
            assert connack.properties.response_information == expected, request


def test_request_problem_information_0_keeps_reason_strings_off_other_packets(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """Request Problem Information 0: no Reason String nor User Property on any packet but
    PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29], seen on every acknowledgement that
    has something to explain (a refused filter 0xA2, no subscription 0x11, no subscriber
    0x10, an unknown packet identifier 0x92), on PINGRESP and on PUBREL. (The broker
    puts a Reason String on CONNACK and DISCONNECT only, where this rule allows it.)"""
    broker = start_broker(refuse_wildcard_subscriptions=True)
    quiet = Properties(request_problem_information=0)
    with session(broker, "quiet", properties=quiet) as peer:
        peer.send(Subscribe(1, (Subscription("w/+", Q1), Subscription("w/q", Q2))),
                  Unsubscribe(2, ("w/none",)), Publish("w/nobody", b"m", Q1, packet_id=3),
                  Publish("w/nobody", b"m", Q2, packet_id=4), PubRel(9), PingReq())
        answers = [peer.next() for _ in range(6)]
        assert [type(p).__name__ for p in answers] == [
            "SubAck", "UnsubAck", "PubAck", "PubRec", "PubComp", "PingResp"]
        assert isinstance(answers[0], SubAck)
        assert answers[0].return_codes == (R.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, Q2)
        peer.send(Publish("w/q", b"own", Q2, packet_id=5))
        while not isinstance(packet := peer.next(), PubRel):
            answers.append(packet)
            if isinstance(packet, Publish):
                peer.acknowledge(packet)
        answers.append(packet)
        for packet in answers:
            props = getattr(packet, "properties", NO_PROPERTIES)
            assert props.reason_string is None, packet
            assert props.user_properties == (), packet
