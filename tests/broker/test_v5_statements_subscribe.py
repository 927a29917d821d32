"""The server-side MQTT 5.0 statements of SUBSCRIBE to AUTH (3.8 to 3.15), each shown on a
raw socket against the running broker.

Driven like ``test_v5_statements_publish.py``, by the ``Peer`` of ``tests/helpers/peer5.py``
that keeps each frame's bytes: what must not come is shown absent before a PINGRESP the
broker sends after it, and every rule about a refused packet is checked against the same
packet done right, so that a broker closing for any reason could not pass.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mqttref.impl.auth import ScramSha256Client
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peer5 import (
    CLOSED_FRAME,
    KEEP,
    Q0,
    Q1,
    Q2,
    V5,
    Peer,
    R,
    closes_after,
    connack_size,
    connect_with_scram,
    decode,
    frame,
    scram_answer,
    scram_reauthenticate,
    session,
    string,
    subscriber,
    tightest,
    within,
)

# The reason codes each packet may carry, from the specification's tables (written here,
# not taken from the codec, so that the two cannot share a mistake).
SUBACK_CODES = frozenset({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1,
                          0xA2})  # 3.9.3
UNSUBACK_CODES = frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91})  # 3.11.3
DISCONNECT_CODES = frozenset({0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E,
                              0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B,
                              0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2})  # 3.14.2.1
AUTH_CODES = frozenset({0x00, 0x18, 0x19})  # 3.15.2.1


def subscribe_bytes(first: int, options: int, topic_filter: str = "t") -> bytes:
    """A SUBSCRIBE written by hand (packet identifier 1, no properties), for what the
    encoder refuses to write: other fixed header flags, reserved option bits."""
    return frame(first, b"\x00\x01\x00" + string(topic_filter) + bytes([options]))


def unsubscribe_bytes(first: int, topic_filter: str = "t") -> bytes:
    return frame(first, b"\x00\x01\x00" + string(topic_filter))


# --- 3.8 SUBSCRIBE --------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [0x0, 0x3, 0xA])
def test_a_subscribe_with_other_flags_is_malformed_and_closes(
    broker: BrokerThread, flags: int,
) -> None:
    """SUBSCRIBE flags other than 0010 are malformed and close the connection
    [MQTT-3.8.1-1]: DISCONNECT 0x81 and no SUBACK, where the same bytes with 0010 are
    answered."""
    with session(broker, "bad") as bad:
        bad.send_bytes(subscribe_bytes(0x80 | flags, 0x01) + b"\xc0\x00")
        assert closes_after(bad, Disconnect).reason_code == R.MALFORMED_PACKET
    with session(broker, "good") as good:
        good.send_bytes(subscribe_bytes(0x82, 0x01))
        assert good.expect(SubAck) == SubAck(1, (1,))


@pytest.mark.parametrize("options", [0x41, 0x81, 0xC1])
def test_reserved_bits_in_the_subscription_options_are_malformed(
    broker: BrokerThread, options: int,
) -> None:
    """Bits 6 and 7 of the Subscription Options are reserved: set, the SUBSCRIBE is
    malformed [MQTT-3.8.3-5], DISCONNECT 0x81 and no SUBACK."""
    with session(broker, "bad") as bad:
        bad.send_bytes(subscribe_bytes(0x82, options) + b"\xc0\x00")
        assert closes_after(bad, Disconnect).reason_code == R.MALFORMED_PACKET
    with session(broker, "good") as good:
        good.send_bytes(subscribe_bytes(0x82, options & 0x3F))
        assert good.expect(SubAck) == SubAck(1, (1,))


def test_no_local_keeps_a_clients_own_messages_from_it(broker: BrokerThread) -> None:
    """A No Local subscription forwards nothing the same Client ID published
    [MQTT-3.8.3-3], and everything another client published."""
    with subscriber(broker, "me", Subscription("t", Q1, no_local=True)) as me, \
            session(broker, "other") as other:
        me.publish(Publish("t", b"own", Q1, packet_id=1))
        other.publish(Publish("t", b"other's", Q1, packet_id=1))
        assert [p.payload for p in me.publishes()] == [b"other's"]


@pytest.mark.parametrize("packet_id", [1, 0x1234, 0xFFFF])
def test_every_subscribe_gets_a_suback_with_its_packet_identifier(
    start_broker: Callable[..., BrokerThread], packet_id: int,
) -> None:
    """A SUBSCRIBE is answered by a SUBACK [MQTT-3.8.4-1] with its Packet Identifier
    [MQTT-3.8.4-2], a refused filter too."""
    broker = start_broker(shared_subscriptions=False)
    with session(broker, "c") as client:
        client.send(Subscribe(packet_id, (Subscription("t", Q1),)))
        assert client.expect(SubAck) == SubAck(packet_id, (1,))
        client.send(Subscribe(packet_id, (Subscription("$share/g/t", Q1),)))
        assert client.expect(SubAck) == SubAck(packet_id, (R.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,))


def test_subscribing_to_the_same_filter_again_replaces_the_subscription(
    broker: BrokerThread,
) -> None:
    """The same filter again replaces the subscription [MQTT-3.8.4-3]: one copy of each
    message, at the new QoS and with the new Retain As Published."""
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        sub.subscribe(Subscription("t", Q0))
        sub.subscribe(Subscription("t", Q2, retain_as_published=True), packet_id=2)
        pub.publish(Publish("t", b"1", Q2, retain=True, packet_id=1))
        pub.publish(Publish("t", b"2", Q2, packet_id=2))
        got = sub.publishes()
        assert [(p.payload, p.qos, p.retain) for p in got] == [
            (b"1", Q2, True), (b"2", Q2, False)]


def test_replacing_a_subscription_resends_retained_messages_and_loses_none(
    broker: BrokerThread,
) -> None:
    """With Retain Handling 0 the retained message is sent again on the replacing
    SUBSCRIBE, and no message is lost by the replacement [MQTT-3.8.4-4]: the one in
    flight and the two waiting behind a Receive Maximum of 1 all come, in order."""
    with session(broker, "pub") as pub, Peer(broker.port) as sub:
        pub.publish(Publish("t", b"kept", Q1, retain=True, packet_id=1))
        sub.open_session("sub", properties=Properties(receive_maximum=1))
        sub.subscribe(Subscription("t", Q1))
        [retained] = sub.publishes()
        sub.send(PubAck(retained.packet_id or 0))
        for n in (1, 2, 3):
            pub.publish(Publish("t", b"%d" % n, Q1, packet_id=n + 1))
        [in_flight] = sub.publishes()
        sub.subscribe(Subscription("t", Q1), packet_id=2)  # replaces it
        got = [in_flight]
        while len(got) < 4:
            sub.send(PubAck(got[-1].packet_id or 0))
            got.extend(sub.publishes())
        assert sorted((p.payload, p.retain) for p in got) == [
            (b"1", False), (b"2", False), (b"3", False), (b"kept", True)]
        assert [p.payload for p in got if not p.retain] == [b"1", b"2", b"3"]


def test_a_subscribe_of_several_filters_is_handled_as_one_subscribe_after_another(
    broker: BrokerThread,
) -> None:
    """Several filters in one SUBSCRIBE act as that many SUBSCRIBEs in a row, answered in
    one SUBACK [MQTT-3.8.4-5]: the same filter twice with Retain Handling 1 gets the
    retained message once (the second finds the subscription there) and ends at the
    second's QoS."""
    with session(broker, "pub") as pub, session(broker, "sub") as sub:
        pub.publish(Publish("t", b"kept", Q1, retain=True, packet_id=1))
        sub.send(Subscribe(7, (Subscription("t", Q0, retain_handling=1),
                               Subscription("t", Q1, retain_handling=1))))
        assert sub.expect(SubAck) == SubAck(7, (0, 1))
        assert [(p.payload, p.retain) for p in sub.publishes()] == [(b"kept", True)]
        pub.publish(Publish("t", b"live", Q2, packet_id=2))
        assert [(p.payload, p.qos) for p in sub.publishes()] == [(b"live", Q1)]


def test_the_suback_has_one_code_per_filter_in_order_each_from_the_table(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """One reason code per filter [MQTT-3.8.4-6] [MQTT-3.9.3-2], in the order of the
    filters [MQTT-3.9.3-1], each the QoS granted or a failure [MQTT-3.8.4-7]: with Maximum
    QoS 1 and neither shared nor wildcard subscriptions, QoS 2 is granted as 1, and the
    shared and wildcard filters fail with 0x9E and 0xA2."""
    broker = start_broker(max_qos=1, shared_subscriptions=False,
                          refuse_wildcard_subscriptions=True)
    filters = (Subscription("a", Q2), Subscription("$share/g/b", Q1), Subscription("c", Q0),
               Subscription("d/+", Q1), Subscription("e", Q1))
    with session(broker, "c") as client:
        client.send(Subscribe(3, filters))
        suback = client.expect(SubAck)
        assert suback.return_codes == (1, R.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, 0,
                                       R.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, 1)
        assert set(suback.return_codes) <= SUBACK_CODES


def test_the_granted_qos_is_the_most_the_subscription_delivers_at(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """The code shows the QoS granted [MQTT-3.8.4-7]: granted 1 for a request of 2, a QoS 1
    message comes at 1; a failed filter delivers nothing, a granted one beside it does."""
    broker = start_broker(max_qos=1, refuse_wildcard_subscriptions=True)
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        assert sub.subscribe(Subscription("t", Q2), Subscription("#", Q1)).return_codes == (
            1, R.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED)
        pub.publish(Publish("t", b"1", Q1, packet_id=1))
        pub.publish(Publish("u", b"2", Q1, packet_id=2))
        assert [(p.topic, p.qos) for p in sub.publishes()] == [("t", Q1)]


def test_a_message_comes_at_the_lower_of_its_qos_and_the_granted_qos(
    broker: BrokerThread,
) -> None:
    """Each message goes at the minimum of the QoS it was published with and the QoS the
    subscription was granted [MQTT-3.8.4-8], all nine pairs, live and retained."""
    qos_levels = (Q0, Q1, Q2)
    subs = {granted: subscriber(broker, f"s{granted}", Subscription("t", granted))
            for granted in qos_levels}
    with session(broker, "pub") as pub:
        for published in qos_levels:
            pub.publish(Publish("t", bytes([published]), published,
                                packet_id=published or None))
            pub.publish(Publish(f"r/{published}", bytes([published]), published, retain=True,
                                packet_id=published or None))
    for granted, sub in subs.items():
        with sub:
            got = [(p.payload[0], p.qos) for p in sub.publishes()]
            assert got == [(published, min(published, granted)) for published in qos_levels]
    for granted in qos_levels:  # the retained ones, r/0, r/1 and r/2, sent on SUBSCRIBE
        with subscriber(broker, f"late{granted}", Subscription("r/+", granted)) as late:
            got = sorted((p.payload[0], p.qos) for p in late.publishes())
            assert got == [(published, min(published, granted)) for published in qos_levels]


# --- 3.10 UNSUBSCRIBE -----------------------------------------------------------------------


@pytest.mark.parametrize("flags", [0x0, 0x3, 0xA])
def test_an_unsubscribe_with_other_flags_is_malformed_and_closes(
    broker: BrokerThread, flags: int,
) -> None:
    """UNSUBSCRIBE flags other than 0010 are malformed and close the connection
    [MQTT-3.10.1-1]: DISCONNECT 0x81, no UNSUBACK, where 0010 is answered."""
    with session(broker, "bad") as bad:
        bad.send_bytes(unsubscribe_bytes(0xA0 | flags) + b"\xc0\x00")
        assert closes_after(bad, Disconnect).reason_code == R.MALFORMED_PACKET
    with session(broker, "good") as good:
        good.send_bytes(unsubscribe_bytes(0xA2))
        assert good.expect(UnsubAck) == UnsubAck(1, (R.NO_SUBSCRIPTION_EXISTED,))


def test_unsubscribe_deletes_only_the_filter_equal_character_for_character(
    broker: BrokerThread,
) -> None:
    """Filters are compared character by character, wildcards as characters: 'a/#' and
    'A/b' delete nothing, 'a/+' deletes 'a/+' and leaves 'a/b' [MQTT-3.10.4-1]."""
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        sub.subscribe(Subscription("a/+", Q1), Subscription("a/b", Q1))
        sub.send(Unsubscribe(2, ("a/#", "A/b", "a/+")))
        assert sub.expect(UnsubAck) == UnsubAck(2, (R.NO_SUBSCRIPTION_EXISTED,
                                                    R.NO_SUBSCRIPTION_EXISTED, R.SUCCESS))
        pub.publish(Publish("a/c", b"only a/+", Q1, packet_id=1))
        pub.publish(Publish("a/b", b"a/b", Q1, packet_id=2))
        assert [p.payload for p in sub.publishes()] == [b"a/b"]


def test_after_unsubscribe_no_new_message_is_added(broker: BrokerThread) -> None:
    """Once UNSUBSCRIBE is handled, no new message matching it is added for the client
    [MQTT-3.10.4-2], while its other subscription still delivers."""
    with subscriber(broker, "sub", Subscription("t", Q1), Subscription("u", Q1)) as sub, \
            session(broker, "pub") as pub:
        sub.send(Unsubscribe(2, ("t",)))
        sub.expect(UnsubAck)
        pub.publish(Publish("t", b"gone", Q1, packet_id=1))
        pub.publish(Publish("u", b"still", Q1, packet_id=2))
        assert [p.payload for p in sub.publishes()] == [b"still"]


def test_a_qos_2_delivery_begun_before_unsubscribe_is_completed(broker: BrokerThread) -> None:
    """A QoS 2 message sent before the UNSUBSCRIBE goes on to completion [MQTT-3.10.4-3]:
    its PUBREC after the UNSUBACK is answered by PUBREL."""
    with subscriber(broker, "sub", Subscription("t", Q2)) as sub, \
            session(broker, "pub") as pub:
        pub.publish(Publish("t", b"m", Q2, packet_id=1))
        [message] = sub.publishes()
        sub.send(Unsubscribe(2, ("t",)))
        sub.expect(UnsubAck)
        sub.send(PubRec(message.packet_id or 0))
        assert sub.expect(PubRel) == PubRel(message.packet_id or 0)
        sub.send(PubComp(message.packet_id or 0))
        assert sub.before_pingresp() == []


def test_a_qos_1_delivery_begun_before_unsubscribe_is_resent_until_acknowledged(
    broker: BrokerThread,
) -> None:
    """A QoS 1 message sent before the UNSUBSCRIBE and never acknowledged is still the
    broker's to deliver [MQTT-3.10.4-3]: the session re-sends it on reconnection."""
    with session(broker, "pub") as pub:
        with subscriber(broker, "sub", Subscription("t", Q1), properties=KEEP) as sub:
            pub.publish(Publish("t", b"m", Q1, packet_id=1))
            [message] = sub.publishes()
            sub.send(Unsubscribe(2, ("t",)))
            sub.expect(UnsubAck)
        with session(broker, "sub", clean_start=False, properties=KEEP) as again:
            [resent] = again.publishes()
            assert (resent.payload, resent.dup, resent.packet_id) == (
                b"m", True, message.packet_id)


@pytest.mark.parametrize("packet_id", [1, 0x1234, 0xFFFF])
def test_every_unsubscribe_gets_an_unsuback_with_its_packet_identifier(
    broker: BrokerThread, packet_id: int,
) -> None:
    """An UNSUBSCRIBE is answered by an UNSUBACK [MQTT-3.10.4-4] with its Packet Identifier,
    also when it deleted nothing [MQTT-3.10.4-5]."""
    with subscriber(broker, "c", Subscription("t", Q1)) as client:
        client.send(Unsubscribe(packet_id, ("t",)))
        assert client.expect(UnsubAck) == UnsubAck(packet_id, (R.SUCCESS,))
        client.send(Unsubscribe(packet_id, ("t",)))
        assert client.expect(UnsubAck) == UnsubAck(packet_id, (R.NO_SUBSCRIPTION_EXISTED,))


def test_an_unsubscribe_of_several_filters_is_handled_as_one_after_another(
    broker: BrokerThread,
) -> None:
    """Several filters in one UNSUBSCRIBE act as that many UNSUBSCRIBEs in a row, with one
    UNSUBACK [MQTT-3.10.4-6]: the same filter twice deletes it and then finds none."""
    with subscriber(broker, "c", Subscription("t", Q1)) as client:
        client.send(Unsubscribe(2, ("t", "t")))
        assert client.expect(UnsubAck) == UnsubAck(2, (R.SUCCESS, R.NO_SUBSCRIPTION_EXISTED))
        assert client.before_pingresp() == []  # just the one UNSUBACK


def test_the_unsuback_has_one_code_per_filter_in_order_each_from_the_table(
    broker: BrokerThread,
) -> None:
    """The UNSUBACK's codes follow the order of the filters [MQTT-3.11.3-1], one each, from
    the UNSUBSCRIBE reason codes [MQTT-3.11.3-2]."""
    with subscriber(broker, "c", Subscription("a", Q1), Subscription("c", Q0)) as client:
        client.send(Unsubscribe(2, ("a", "b", "c", "d")))
        unsuback = client.expect(UnsubAck)
        assert unsuback.reason_codes == (R.SUCCESS, R.NO_SUBSCRIPTION_EXISTED, R.SUCCESS,
                                         R.NO_SUBSCRIPTION_EXISTED)
        assert set(unsuback.reason_codes) <= UNSUBACK_CODES


def test_suback_and_unsuback_stay_within_the_clients_maximum_packet_size(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """To a client whose maximum is its CONNACK's size, SUBACK [MQTT-3.9.2-1]
    [MQTT-3.9.2-2] and UNSUBACK [MQTT-3.11.2-1] [MQTT-3.11.2-2] come within it, failure
    codes included, with no Reason String or User Property that would not fit. (The
    broker puts neither on them; a SUBACK too large even bare is DISCONNECT 0x95, see
    ``test_v5_packet_size.py``.)"""
    broker = start_broker(shared_subscriptions=False)
    client, maximum = tightest(broker, "small")
    with client:
        client.send(Subscribe(1, (Subscription("t", Q2), Subscription("$share/g/t", Q1))))
        assert within(client.frame(), maximum) == SubAck(1, (
            2, R.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED))
        client.send(Unsubscribe(2, ("t", "never")))
        assert within(client.frame(), maximum) == UnsubAck(2, (R.SUCCESS,
                                                                R.NO_SUBSCRIPTION_EXISTED))


# --- 3.12 PINGREQ ---------------------------------------------------------------------------


def test_pingreq_is_answered_with_pingresp(broker: BrokerThread) -> None:
    """PINGREQ gets PINGRESP [MQTT-3.12.4-1], each time, on its two bytes."""
    with session(broker, "c") as client:
        for _ in range(3):
            client.send_bytes(b"\xc0\x00")
            assert client.frame() == b"\xd0\x00"


# --- 3.14 DISCONNECT ------------------------------------------------------------------------


def scram_connect(peer: Peer, scram: ScramSha256Client) -> Auth:
    """CONNECT with SCRAM-SHA-256; the broker's first AUTH, judged by its bytes too."""
    peer.send(connect_with_scram(scram))
    raw = peer.frame()
    assert raw[0] == 0xF0, raw.hex(" ")  # AUTH, flags 0000 [MQTT-3.15.1-1]
    auth = decode(raw)
    assert isinstance(auth, Auth)
    return auth


BEFORE_CONNACK = {
    "a packet before CONNECT": b"\xc0\x00",
    "a malformed CONNECT": b"\x10\x03\x00\x04M",
    "an unknown protocol version": b"\x10\x0d" + string("MQTT") + b"\x07\x02\x00\x3c"
                                   + string("c"),
}


@pytest.mark.parametrize("case", BEFORE_CONNACK)
def test_no_disconnect_goes_before_a_successful_connack(broker: BrokerThread, case: str) -> None:
    """The broker sends no DISCONNECT until it has sent a CONNACK below 0x80
    [MQTT-3.14.0-1]: a connection refused before that is closed, with a refusing CONNACK
    at most."""
    with Peer(broker.port) as client:
        client.send_bytes(BEFORE_CONNACK[case])
        frames = client.frames_until_closed()
        assert all(frame[0] >> 4 == 2 for frame in frames), [f.hex(" ") for f in frames]


def test_no_disconnect_goes_to_a_refused_or_misbehaving_connect_with_authentication(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """Neither a wrong password nor a packet out of place during enhanced authentication
    makes the broker send DISCONNECT before a successful CONNACK [MQTT-3.14.0-1]: CONNACK
    with the reason and the close; once connected the same PINGREQ is simply answered and
    the same bad AUTH flags get DISCONNECT 0x81."""
    broker = start_broker(users={"alice": "pencil"})
    with Peer(broker.port) as client:
        client.send(Connect(V5, "c", username="alice", password=b"wrong"))
        assert client.frames_until_closed() == [bytes.fromhex("20 03 00 86 00")]
    for bad in (b"\xc0\x00", b"\xf1\x00"):
        with Peer(broker.port) as client:
            scram_connect(client, ScramSha256Client("alice", "pencil"))
            client.send_bytes(bad)
            frames = client.frames_until_closed()
            assert [frame[0] for frame in frames] == [0x20], [f.hex(" ") for f in frames]
            connack = decode(frames[0])
            assert isinstance(connack, ConnAck)
            assert connack.return_code >= 0x80
    with session(broker, "c", username="alice", password=b"pencil") as client:
        client.send_bytes(b"\xc0\x00")
        assert client.frame() == b"\xd0\x00"
        client.send_bytes(b"\xf1\x00")
        assert closes_after(client, Disconnect).reason_code == R.MALFORMED_PACKET


def will_watcher(broker: BrokerThread) -> Peer:
    return subscriber(broker, "watcher", Subscription("wills/#", Q0))


@pytest.mark.parametrize("flags", [0x1, 0x2, 0x8])
def test_a_disconnect_with_reserved_bits_set_is_malformed_and_answered_with_0x81(
    broker: BrokerThread, flags: int,
) -> None:
    """The broker checks DISCONNECT's reserved bits and, set, sends DISCONNECT 0x81
    [MQTT-3.14.1-1]; the close is then an error, so the will is published, as it is not
    after a DISCONNECT with flags 0000."""
    with will_watcher(broker) as watcher:
        with session(broker, "bad", will=Will("wills/bad", b"gone")) as bad:
            bad.send_bytes(bytes([0xE0 | flags, 0]))
            assert closes_after(bad, Disconnect).reason_code == R.MALFORMED_PACKET
        with session(broker, "good", will=Will("wills/good", b"gone")) as good:
            good.send_bytes(b"\xe0\x00")
            assert good.frames_until_closed() == []
        assert [p.topic for p in watcher.publishes()] == ["wills/bad"]


def broker_disconnects(broker: BrokerThread) -> list[Disconnect]:
    """DISCONNECTs the broker sends for six reasons, to clients whose session would
    outlive the connection (Session Expiry Interval 60)."""
    cases = {
        "malformed": bytes([0x36, 6]) + string("t") + b"\x00\x01\x00",
        "protocol error": encode(Connect(V5, "again"), V5),  # a second CONNECT
        "topic alias invalid": bytes([0x30, 7]) + string("t") + b"\x03\x23\x00\x00",
        "topic name invalid": bytes([0x30, 6]) + string("a/#") + b"\x00",
        "receive maximum exceeded": b"".join(
            bytes([0x34, 6]) + string("t") + bytes([0, n, 0]) for n in range(1, 3)),
    }
    seen = []
    for n, data in enumerate(cases.values()):
        with session(broker, f"c{n}", properties=KEEP) as client:
            client.send_bytes(data)
            *before, last = client.frames_until_closed()
            assert [frame[0] for frame in before] in ([], [0x50])  # the first QoS 2's PUBREC
            disconnect = decode(last)
            assert isinstance(disconnect, Disconnect), disconnect
            seen.append(disconnect)
    with session(broker, "same", properties=KEEP) as first, \
            session(broker, "same", clean_start=False, properties=KEEP):
        seen.append(closes_after(first, Disconnect))  # taken over
    return seen


def test_the_brokers_disconnect_reason_codes_come_from_the_table_and_say_why(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """Each DISCONNECT the broker sends has a DISCONNECT reason code [MQTT-3.14.2-1], the
    one for its cause."""
    broker = start_broker(max_awaiting_rel=1)
    codes = [d.reason_code for d in broker_disconnects(broker)]
    assert codes == [R.MALFORMED_PACKET, R.PROTOCOL_ERROR, R.TOPIC_ALIAS_INVALID,
                     R.TOPIC_NAME_INVALID, R.RECEIVE_MAXIMUM_EXCEEDED, R.SESSION_TAKEN_OVER]
    assert set(codes) <= DISCONNECT_CODES


def test_the_brokers_disconnect_never_carries_a_session_expiry_interval(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """No DISCONNECT from the broker has the Session Expiry Interval [MQTT-3.14.2-2], though
    each of these clients set one."""
    broker = start_broker(max_awaiting_rel=1)
    disconnects = broker_disconnects(broker)
    assert len(disconnects) == 6
    assert [d.properties.session_expiry_interval for d in disconnects] == [None] * 6


def test_the_brokers_disconnect_leaves_its_reason_string_out_where_it_would_not_fit(
    broker: BrokerThread,
) -> None:
    """The Reason String and User Properties go only where the DISCONNECT stays within the
    client's Maximum Packet Size [MQTT-3.14.2-3] [MQTT-3.14.2-4]: a client that takes 1000
    bytes is told why in words; one whose maximum is just its CONNACK, fewer bytes than
    those words, gets the three bytes of the code."""
    smallest = connack_size(broker, "probe")
    frames = {}
    for maximum in (1000, smallest):
        with Peer(broker.port) as client:
            client.open_session("c", properties=Properties(maximum_packet_size=maximum))
            client.send_bytes(bytes([0x36, 6]) + string("t") + b"\x00\x01\x00")
            [frames[maximum]] = client.frames_until_closed()
    told = decode(frames[1000])
    assert isinstance(told, Disconnect)
    assert told.reason_code == R.MALFORMED_PACKET
    assert told.properties.reason_string
    assert smallest < len(frames[1000]) <= 1000
    assert frames[smallest] == bytes.fromhex("e0 01 81")


def test_after_its_disconnect_the_broker_sends_nothing_and_closes(broker: BrokerThread) -> None:
    """After sending DISCONNECT the broker sends no other packet [MQTT-3.14.4-1] and closes
    the connection [MQTT-3.14.4-2]: the PINGREQ and SUBSCRIBE behind the bad packet, in
    the same write, stay unanswered, and a message for the client's subscription too."""
    with subscriber(broker, "c", Subscription("t", Q0)) as client, \
            session(broker, "pub") as pub:
        client.send_bytes(bytes([0x36, 6]) + string("t") + b"\x00\x01\x00"
                          + b"\xc0\x00" + subscribe_bytes(0x82, 0x01))
        [raw] = client.frames_until_closed()
        assert raw[0] == 0xE0
        pub.publish(Publish("t", b"after"))
        assert client.frame() == CLOSED_FRAME


def test_a_disconnect_0x00_discards_the_will_and_0x04_publishes_it(broker: BrokerThread) -> None:
    """DISCONNECT with 0x00 discards the Will Message unpublished [MQTT-3.14.4-3]; the
    same client with 0x04 has it published, so the watcher is shown to hear wills."""
    with will_watcher(broker) as watcher:
        for n, reason in enumerate((R.SUCCESS, R.DISCONNECT_WITH_WILL)):
            with session(broker, "w", will=Will(f"wills/{n}", b"gone")) as client:
                client.send(Disconnect(reason))
                assert client.frames_until_closed() == []
        assert [p.topic for p in watcher.publishes()] == ["wills/1"]


# --- 3.15 AUTH ------------------------------------------------------------------------------


def auth_step(peer: Peer, scram: ScramSha256Client, challenge: Auth) -> bytes:
    """Answer the broker's challenge; the frame it sends next."""
    peer.send(scram_answer(scram, challenge))
    return peer.frame()


def test_the_brokers_auth_packets_have_flags_0000_and_auth_reason_codes(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """Through a SCRAM-SHA-256 exchange and a re-authentication, every AUTH from the broker
    has fixed header 0xF0 [MQTT-3.15.1-1] and an Authenticate Reason Code [MQTT-3.15.2-1]:
    0x18 to continue, 0x00 when re-authentication succeeded."""
    broker = start_broker(users={"alice": "pencil"})
    scram = ScramSha256Client("alice", "pencil")
    with Peer(broker.port) as client:
        first = scram_connect(client, scram)
        connack = decode(auth_step(client, scram, first))
        assert isinstance(connack, ConnAck)
        assert connack.return_code == R.SUCCESS
        scram.finish(connack.properties.authentication_data)
        client.send(scram_reauthenticate(scram))
        again = client.frame()
        challenge = decode(again)
        assert isinstance(challenge, Auth)
        done = auth_step(client, scram, challenge)
        assert (again[0], done[0]) == (0xF0, 0xF0)
        success = decode(done)
        assert isinstance(success, Auth)
        codes = [first.reason_code, challenge.reason_code, success.reason_code]
        assert codes == [R.CONTINUE_AUTHENTICATION, R.CONTINUE_AUTHENTICATION, R.SUCCESS]
        assert set(codes) <= AUTH_CODES


@pytest.mark.parametrize("flags", [0x1, 0x2, 0xF])
def test_an_auth_with_other_flags_is_malformed_and_closes(
    start_broker: Callable[..., BrokerThread], flags: int,
) -> None:
    """AUTH flags other than 0000 are malformed and close the connection [MQTT-3.15.1-1]:
    the re-authentication that 0xF0 would start gets DISCONNECT 0x81 instead."""
    broker = start_broker(users={"alice": "pencil"})
    scram = ScramSha256Client("alice", "pencil")
    with Peer(broker.port) as client:
        connack = decode(auth_step(client, scram, scram_connect(client, scram)))
        assert isinstance(connack, ConnAck)
        reauth = scram_reauthenticate(ScramSha256Client("alice", "pencil"))
        data = encode(reauth, V5)
        client.send_bytes(bytes([0xF0 | flags]) + data[1:])
        assert closes_after(client, Disconnect).reason_code == R.MALFORMED_PACKET


def test_the_brokers_auth_packets_stay_within_the_clients_maximum_packet_size(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """A client whose maximum is the size of the broker's first AUTH gets every AUTH of
    the exchange and of a re-authentication within it, with no Reason String or User
    Property [MQTT-3.15.2-2] [MQTT-3.15.2-3]. (The broker puts neither on AUTH; an AUTH
    too large even bare refuses the CONNECT with 0x80, see ``test_v5_packet_size.py``.)"""
    broker = start_broker(users={"alice": "pencil"})
    with Peer(broker.port) as probe:
        scram = ScramSha256Client("alice", "pencil")
        size = len(encode(scram_connect(probe, scram), V5))
    scram = ScramSha256Client("alice", "pencil")
    with Peer(broker.port) as client:
        client.send(connect_with_scram(scram, size))
        first = within(client.frame(), size)
        assert isinstance(first, Auth)
        connack = within(auth_step(client, scram, first), size)
        assert isinstance(connack, ConnAck)
        assert connack.return_code == R.SUCCESS
        client.send(scram_reauthenticate(scram))
        challenge = within(client.frame(), size)
        assert isinstance(challenge, Auth)
        done = within(auth_step(client, scram, challenge), size)
        assert isinstance(done, Auth)
        assert done.reason_code == R.SUCCESS
