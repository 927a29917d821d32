"""MQTT 5.0 statements of chapter 4 (operational behaviour) that bind the server, each
shown by the broker meeting it: sessions, the QoS flows, resending, ordering, topics,
shared subscriptions, flow control and enhanced authentication.

Driven like ``test_v5_statements_connect.py``: a raw 5.0 socket whose packets are read as
the broker wrote them, or the sans-IO core with one made-up clock where the statement is
about time. What must not happen is watched up to a marker message that must come after.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mqttref.impl.auth import SCRAM_SHA_256, ScramSha256Client
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from tests.broker.test_protocol_core import World
from tests.broker.test_v5_core import Client5, accept5, connect5, subscribe5
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.core5 import clocked_world, publishes
from tests.helpers.peer5 import (
    CLOSED,
    KEEP,
    Q0,
    Q1,
    Q2,
    V5,
    Peer,
    R,
    closes_after,
    connack_of,
    connect_with_scram,
    frame,
    mark,
    publish,
    scram_answer,
    scram_reauthenticate,
    session,
    string,
)


def reconnect5(world: World, client_id: str, now: float,
               properties: Properties = KEEP) -> tuple[Client5, list[Packet]]:
    """Clean Start 0 in the sans-IO core: the client and all it was sent, CONNACK first."""
    client = accept5(world, now)
    client.send(Connect(V5, client_id, clean_session=False, properties=properties), now=now)
    return client, client.received()


def resumed(broker: BrokerThread, client_id: str) -> Peer:
    """Clean Start 0 on a raw socket; the CONNACK must say Session Present 1."""
    peer, _raw, connack = connack_of(broker.port, Connect(V5, client_id, False,
                                                          properties=KEEP))
    assert connack.session_present, connack
    return peer


# --- 4.1 session state -----------------------------------------------------------------------


def test_a_session_is_kept_however_long_its_connection_stays_open() -> None:
    """While the connection is open the session state stays [MQTT-4.1.0-1], though its
    Session Expiry Interval (1 s) passes ten thousand times: the subscription still
    delivers, and the message in flight since the start is still owed on reconnection."""
    world, clock = clocked_world()
    sub, _ = connect5(world, "s", keep_alive=0,
                      properties=Properties(session_expiry_interval=1))
    subscribe5(sub, Subscription("t", Q1))
    pub, _ = connect5(world, "pub", keep_alive=0)
    pub.send(Publish("t", b"held", Q1, packet_id=1), now=clock.at(1.0))
    [held] = publishes(sub)
    world.table.tick(clock.at(10_000.0))
    pub.send(Publish("t", b"later", Q1, packet_id=2), now=10_000.0)
    [later] = publishes(sub)
    assert later.payload == b"later"
    sub.inner.core.connection_lost(clock.at(10_000.5))
    _again, sent = reconnect5(world, "s", clock.at(10_000.6),
                              Properties(session_expiry_interval=1))
    assert isinstance(sent[0], ConnAck)
    assert sent[0].session_present
    assert [(p.payload, p.packet_id, p.dup) for p in sent if isinstance(p, Publish)] == [
        (b"held", held.packet_id, True), (b"later", later.packet_id, True)]


def test_a_session_is_discarded_once_closed_past_its_expiry_interval() -> None:
    """Once the connection is closed and the Session Expiry Interval has passed, the server
    discards the session [MQTT-4.1.0-2]: its subscription no longer matches (PUBACK 0x10)
    and Clean Start 0 finds none; a session with a longer interval, left at the same time,
    is still there, as is the short one just before its time."""
    world, clock = clocked_world()
    for name, expiry in (("short", 10), ("long", 100)):
        client, _ = connect5(world, name, properties=Properties(session_expiry_interval=expiry))
        subscribe5(client, Subscription(f"t/{name}", Q1))
        client.inner.core.connection_lost(clock.at(1.0))
    world.table.tick(clock.at(10.9))
    assert {"short", "long"} <= set(world.table.sessions)
    world.table.tick(clock.at(11.1))
    pub, _ = connect5(world, "pub", 11.2)
    pub.send(Publish("t/short", b"m", Q1, packet_id=1),
             Publish("t/long", b"m", Q1, packet_id=2), now=11.2)
    assert pub.received() == [PubAck(1, R.NO_MATCHING_SUBSCRIBERS), PubAck(2)]
    for name, present in (("short", False), ("long", True)):
        _client, sent = reconnect5(world, name, clock.at(11.3))
        assert isinstance(sent[0], ConnAck)
        assert sent[0].session_present is present


# --- 4.3 the QoS flows ------------------------------------------------------------------------


def test_a_new_publish_from_the_broker_has_dup_0_at_every_qos(broker: BrokerThread) -> None:
    """The sender of a new message sends DUP 0: at QoS 0 [MQTT-4.3.1-1], QoS 1
    [MQTT-4.3.2-2] and QoS 2 [MQTT-4.3.3-2], the broker's first send to each subscriber,
    though the publisher's own PUBLISH had DUP 1."""
    subscribers = {qos: session(broker, f"sub{qos}") for qos in (Q0, Q1, Q2)}
    for qos, peer in subscribers.items():
        peer.subscribe(Subscription("w/d", qos), Subscription("w/marker", Q1))
    with session(broker, "pub") as pub:
        pub.send(Publish("w/d", b"q1", Q1, dup=True, packet_id=1))
        pub.expect(PubAck)
        pub.send(Publish("w/d", b"q2", Q2, dup=True, packet_id=2))
        pub.expect(PubRec)
        pub.send(PubRel(2))
        pub.expect(PubComp)
    marker = mark(broker)
    for qos, peer in subscribers.items():
        assert [p.payload for p in peer.until(marker)] == [b"q1", b"q2"]
        firsts = [raw[0] for raw in peer.frames if raw[0] >> 4 == 3 and b"q" in raw[-2:]]
        assert firsts == [0x30 | min(qos, q) << 1 for q in (1, 2)], (qos, firsts)
        peer.sock.close()


def test_packet_identifiers_of_new_publishes_are_non_zero_and_not_in_use(
    broker: BrokerThread,
) -> None:
    """Each new QoS 1 or 2 PUBLISH the broker sends has a non-zero Packet Identifier not
    in use [MQTT-2.2.1-4] [MQTT-4.3.2-1] [MQTT-4.3.3-1]: twenty in flight at once differ,
    and those sent as acknowledgements make room avoid the ones still unacknowledged and
    the one whose PUBREL awaits PUBCOMP."""
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        sub.subscribe(Subscription("w/1", Q1), Subscription("w/2", Q2))
        for n in range(10):
            publish(pub, "w/1", b"%d" % n, Q1)
            publish(pub, "w/2", b"%d" % n, Q2)
        first = [sub.expect(Publish) for _ in range(20)]
        ids = [p.packet_id for p in first]
        assert 0 not in ids
        assert None not in ids
        assert len(set(ids)) == 20
        acked = next(p for p in first if p.qos is Q1)
        released = next(p for p in first if p.qos is Q2)
        assert acked.packet_id is not None
        assert released.packet_id is not None
        sub.send(PubAck(acked.packet_id), PubRec(released.packet_id))
        assert sub.expect(PubRel).packet_id == released.packet_id
        publish(pub, "w/1", b"new", Q1)
        publish(pub, "w/1", b"newer", Q1)
        in_use = set(ids) - {acked.packet_id}
        new = sub.expect(Publish)
        assert new.payload == b"new"
        assert new.packet_id not in in_use
        assert new.packet_id
        in_use = (in_use | {new.packet_id}) - {released.packet_id}
        sub.send(PubComp(released.packet_id))
        newer = sub.expect(Publish)
        assert newer.payload == b"newer"
        assert newer.packet_id not in in_use
        assert newer.packet_id


def test_acknowledgements_carry_the_packet_identifier_of_their_publish(
    broker: BrokerThread,
) -> None:
    """PUBACK, PUBREC, PUBREL and PUBCOMP carry the Packet Identifier of the PUBLISH
    [MQTT-2.2.1-5]: the broker answers a QoS 1 PUBLISH with PUBACK [MQTT-4.3.2-4] and a
    QoS 2 one with PUBREC [MQTT-4.3.3-8], both after taking the message on (its subscriber
    gets it), PUBREL with PUBCOMP [MQTT-4.3.3-11]; and for its own QoS 2 PUBLISH, after a
    PUBREC below 0x80 it sends PUBREL [MQTT-4.3.3-4], each with the identifier of its
    PUBLISH."""
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        sub.subscribe(Subscription("w/#", Q2))
        pub.send(Publish("w/1", b"one", Q1, packet_id=0x1234))
        assert pub.expect(PubAck) == PubAck(0x1234)
        pub.send(Publish("w/2", b"two", Q2, packet_id=0xBEEF))
        assert pub.expect(PubRec) == PubRec(0xBEEF)
        pub.send(PubRel(0xBEEF))
        assert pub.expect(PubComp) == PubComp(0xBEEF)
        one, two = sub.expect(Publish), sub.expect(Publish)
        assert (one.payload, two.payload) == (b"one", b"two")
        assert two.packet_id is not None
        sub.send(PubRec(two.packet_id))
        assert sub.expect(PubRel) == PubRel(two.packet_id)
        assert sub.frames[-1][0] == 0x62
        sub.send(PubComp(two.packet_id))
        assert sub.pinged()


def test_unacknowledged_publishes_are_resent_on_reconnection_with_their_identifiers(
    broker: BrokerThread,
) -> None:
    """A QoS 1 PUBLISH is unacknowledged until PUBACK [MQTT-4.3.2-3], a QoS 2 one until
    PUBREC [MQTT-4.3.3-3]: on reconnection with Clean Start 0 the broker resends those,
    and only those, with their original Packet Identifiers [MQTT-4.4.0-1] (DUP 1), not
    the ones acknowledged."""
    sub = session(broker, "sub", clean_start=False, properties=KEEP)
    sub.subscribe(Subscription("w/1", Q1), Subscription("w/2", Q2),
                  Subscription("w/marker", Q1))
    with session(broker, "pub") as pub:
        for payload in (b"a1", b"a2"):
            publish(pub, "w/1", payload, Q1)
        for payload in (b"b1", b"b2"):
            publish(pub, "w/2", payload, Q2)
    got = {p.payload: p for p in (sub.expect(Publish) for _ in range(4))}
    assert got[b"a1"].packet_id is not None
    assert got[b"b1"].packet_id is not None
    sub.send(PubAck(got[b"a1"].packet_id), PubRec(got[b"b1"].packet_id))
    sub.expect(PubRel)
    sub.send(PubComp(got[b"b1"].packet_id))
    assert sub.pinged()
    sub.drop()
    with resumed(broker, "sub") as again:
        resent = again.until(mark(broker))
        assert sorted((p.payload, p.packet_id, p.dup) for p in resent) == [
            (b"a2", got[b"a2"].packet_id, True), (b"b2", got[b"b2"].packet_id, True)]


def test_a_pubrel_not_completed_is_resent_on_reconnection_and_its_publish_is_not(
    broker: BrokerThread,
) -> None:
    """The PUBREL is unacknowledged until PUBCOMP [MQTT-4.3.3-5]: on reconnection the
    broker resends it with its identifier [MQTT-4.4.0-1], and not the PUBLISH, which it
    must not resend once it has sent PUBREL [MQTT-4.3.3-6]."""
    sub = session(broker, "sub", clean_start=False, properties=KEEP)
    sub.subscribe(Subscription("w/2", Q2), Subscription("w/marker", Q1))
    with session(broker, "pub") as pub:
        publish(pub, "w/2", b"once", Q2)
    sent = sub.expect(Publish)
    assert sent.packet_id is not None
    sub.send(PubRec(sent.packet_id))
    assert sub.expect(PubRel).packet_id == sent.packet_id
    sub.drop()
    with resumed(broker, "sub") as again:
        assert again.expect(PubRel) == PubRel(sent.packet_id)
        again.send(PubComp(sent.packet_id))
        assert again.until(mark(broker)) == []


def test_a_qos_2_message_once_sent_is_not_expired_and_its_exchange_goes_on() -> None:
    """Once the broker has sent a QoS 2 PUBLISH it applies no Message Expiry to it
    [MQTT-4.3.3-7]: resent on reconnection well after its interval, while one queued
    for the same session and never sent has expired; and the exchange continues, PUBREC
    answered with PUBREL [MQTT-4.3.3-13]."""
    world, clock = clocked_world()
    sub, _ = connect5(world, "sub", properties=KEEP)
    subscribe5(sub, Subscription("t", Q2))
    pub, _ = connect5(world, "pub")
    expiring = Properties(message_expiry_interval=5)
    pub.send(Publish("t", b"sent", Q2, packet_id=1, properties=expiring), PubRel(1),
             now=clock.at(1.0))
    [sent] = publishes(sub)
    sub.inner.core.connection_lost(clock.at(2.0))
    pub.send(Publish("t", b"queued", Q2, packet_id=2, properties=expiring), PubRel(2),
             now=clock.at(3.0))
    again, received = reconnect5(world, "sub", clock.at(20.0))
    resent = [p for p in received if isinstance(p, Publish)]
    assert [(p.payload, p.packet_id, p.dup) for p in resent] == [
        (b"sent", sent.packet_id, True)]
    assert sent.packet_id is not None
    again.send(PubRec(sent.packet_id), now=clock.at(21.0))
    assert again.received() == [PubRel(sent.packet_id)]


def test_the_broker_completes_a_qos_2_exchange_whose_message_has_expired() -> None:
    """The receiver goes on with the QoS 2 acknowledgements though the message expired
    [MQTT-4.3.3-13]: a PUBREL long after the Message Expiry Interval (the copy queued for
    an absent subscriber gone) is answered PUBCOMP 0x00, not 0x92."""
    world, clock = clocked_world()
    away, _ = connect5(world, "away", properties=KEEP)
    subscribe5(away, Subscription("t", Q2))
    away.inner.core.connection_lost(clock.at(0.5))
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"m", Q2, packet_id=7,
                     properties=Properties(message_expiry_interval=1)), now=clock.at(1.0))
    assert pub.received() == [PubRec(7)]
    pub.send(PubRel(7), now=clock.at(10.0))
    assert pub.received() == [PubComp(7)]
    _again, received = reconnect5(world, "away", clock.at(11.0))
    assert [p for p in received if isinstance(p, Publish)] == []  # it did expire


def test_a_repeated_qos_2_publish_before_pubrel_is_answered_pubrec_and_delivered_once(
    broker: BrokerThread,
) -> None:
    """Until PUBREL the broker answers every PUBLISH with that Packet Identifier with
    PUBREC and delivers no duplicate [MQTT-4.3.3-10]; PUBREL then gets PUBCOMP."""
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        sub.subscribe(Subscription("w/2", Q2), Subscription("w/marker", Q1))
        pub.send(Publish("w/2", b"once", Q2, packet_id=5))
        assert pub.expect(PubRec) == PubRec(5)
        for _ in range(2):
            pub.send(Publish("w/2", b"once", Q2, dup=True, packet_id=5))
            assert pub.expect(PubRec) == PubRec(5)
        pub.send(PubRel(5))
        assert pub.expect(PubComp) == PubComp(5)
        assert [p.payload for p in sub.until(mark(broker))] == [b"once"]


def test_a_packet_identifier_reused_after_its_exchange_is_a_new_message(
    broker: BrokerThread,
) -> None:
    """After PUBACK, a PUBLISH with the same identifier is a new message, DUP 1 or not
    [MQTT-4.3.2-5]; after PUBCOMP likewise at QoS 2 [MQTT-4.3.3-12]: each reaches the
    subscriber, payloads alike."""
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        sub.subscribe(Subscription("w/#", Q2))
        pub.send(Publish("w/1", b"same", Q1, packet_id=7))
        pub.expect(PubAck)
        pub.send(Publish("w/1", b"same", Q1, dup=True, packet_id=7))
        pub.expect(PubAck)
        for dup in (False, True):
            pub.send(Publish("w/2", b"same", Q2, dup=dup, packet_id=9))
            pub.expect(PubRec)
            pub.send(PubRel(9))
            pub.expect(PubComp)
        got = sub.until(mark(broker))
        assert [(p.topic, p.payload) for p in got] == [("w/1", b"same")] * 2 + [
            ("w/2", b"same")] * 2


def test_after_a_pubrec_of_0x80_or_more_the_same_identifier_is_a_new_message(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """Once the broker has answered PUBREC of 0x80 or more, a PUBLISH with that Packet
    Identifier is a new message [MQTT-4.3.3-9], though it says DUP 1: delivered, where a
    retransmission awaiting PUBREL would not be. (The broker refuses with PUBREC 0x99 a
    payload that is not the UTF-8 its Payload Format Indicator says, under
    ``validate_payload_format``.)"""
    broker = start_broker(validate_payload_format=True)
    utf8 = Properties(payload_format_indicator=1)
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        sub.subscribe(Subscription("w/2", Q2), Subscription("w/marker", Q1))
        pub.send(Publish("w/2", b"\xff", Q2, packet_id=5, properties=utf8))
        assert pub.expect(PubRec) == PubRec(5, R.PAYLOAD_FORMAT_INVALID)
        pub.send(Publish("w/2", b"fine", Q2, dup=True, packet_id=5, properties=utf8))
        assert pub.expect(PubRec) == PubRec(5)
        pub.send(PubRel(5))
        assert pub.expect(PubComp) == PubComp(5)
        assert [p.payload for p in sub.until(mark(broker))] == [b"fine"]


def test_a_publish_refused_by_the_subscriber_is_not_sent_again(broker: BrokerThread) -> None:
    """PUBACK or PUBREC of 0x80 or more acknowledges the PUBLISH: it is not retransmitted
    [MQTT-4.4.0-2], not on reconnection either, and a refused QoS 2 one gets no PUBREL."""
    sub = session(broker, "sub", clean_start=False, properties=KEEP)
    sub.subscribe(Subscription("w/1", Q1), Subscription("w/2", Q2),
                  Subscription("w/marker", Q1))
    with session(broker, "pub") as pub:
        publish(pub, "w/1", b"refused", Q1)
        publish(pub, "w/2", b"refused", Q2)
    one, two = sub.expect(Publish), sub.expect(Publish)
    assert one.packet_id is not None
    assert two.packet_id is not None
    sub.send(PubAck(one.packet_id, R.UNSPECIFIED_ERROR),
             PubRec(two.packet_id, R.IMPLEMENTATION_SPECIFIC_ERROR), PingReq())
    assert sub.expect(PingResp) == PingResp()  # no PUBREL before it
    sub.drop()
    with resumed(broker, "sub") as again:
        assert again.until(mark(broker)) == []


# --- 4.5 and 4.6 message receipt and ordering --------------------------------------------------


def test_a_message_the_broker_took_on_joins_every_matching_session(
    broker: BrokerThread,
) -> None:
    """Once the server owns a message it adds it to the session of each client with a
    matching subscription [MQTT-4.5.0-1]: the one connected, and the one away, which gets
    it on return; a client whose filter does not match gets nothing."""
    away = session(broker, "away", clean_start=False, properties=KEEP)
    away.subscribe(Subscription("w/+", Q1), Subscription("w/marker", Q1))
    away.drop()
    with session(broker, "here") as here, session(broker, "other") as other:
        here.subscribe(Subscription("w/#", Q1))
        other.subscribe(Subscription("w/x/#", Q1), Subscription("w/marker", Q1))
        with session(broker, "pub") as pub:
            assert publish(pub, "w/m", b"owned", Q1) == R.SUCCESS
        marker = mark(broker)
        assert [p.payload for p in here.until(marker)] == [b"owned"]
        assert other.until(marker) == []
    with resumed(broker, "away") as again:  # the marker was queued for it too, after
        assert [p.payload for p in again.until(marker)] == [b"owned"]


def pipelined(pub: Peer, messages: list[Publish]) -> None:
    """Send every PUBLISH in one write, then finish each exchange."""
    pub.send(*messages)
    owed = sum(1 for m in messages if m.qos is not Q0)
    while owed:
        packet = pub.next()
        if isinstance(packet, PubRec):
            pub.send(PubRel(packet.packet_id))
        else:
            assert isinstance(packet, (PubAck, PubComp)), packet
            owed -= 1


def test_messages_from_one_client_reach_a_subscriber_in_the_order_sent(
    broker: BrokerThread,
) -> None:
    """A topic's messages from one client go to each subscriber, for each QoS, in the
    order they were received [MQTT-4.6.0-5]: sixty sent in one write, QoS 0, 1 and 2
    interleaved."""
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        sub.subscribe(Subscription("w/o", Q2), Subscription("w/marker", Q1))
        messages = [Publish("w/o", b"%d:%d" % (n % 3, n), QoS(n % 3),
                            packet_id=n + 1 if n % 3 else None) for n in range(60)]
        pipelined(pub, messages)
        got = sub.until(mark(broker))
        for qos in (Q0, Q1, Q2):
            sent = [m.payload for m in messages if m.qos is qos]
            assert [p.payload for p in got if p.qos is qos] == sent


def test_every_topic_is_ordered_for_non_shared_subscriptions(broker: BrokerThread) -> None:
    """Every topic is an Ordered Topic for non-shared subscriptions [MQTT-4.6.0-6]: three
    topics interleaved in one write reach a wildcard subscriber and an exact one, each
    topic's messages in the order sent."""
    with (session(broker, "wild") as wild, session(broker, "exact") as exact,
          session(broker, "pub") as pub):
        wild.subscribe(Subscription("w/+", Q1), Subscription("w/marker", Q1))
        exact.subscribe(Subscription("w/b", Q1), Subscription("w/marker", Q1))
        messages = [Publish(f"w/{'abc'[n % 3]}", b"%d" % n, Q1, packet_id=n + 1)
                    for n in range(45)]
        pipelined(pub, messages)
        marker = mark(broker)
        for peer, topics in ((wild, "abc"), (exact, "b")):
            got = peer.until(marker)
            for topic in (f"w/{t}" for t in topics):
                assert [p.payload for p in got if p.topic == topic] == [
                    m.payload for m in messages if m.topic == topic]
            assert {p.topic for p in got} == {f"w/{t}" for t in topics}


# --- 4.7 topic names and filters -----------------------------------------------------------------


def will_connect(topic: bytes) -> bytes:
    """CONNECT with a will on ``topic`` as given (the encoder refuses bad ones)."""
    return frame(0x10, string("MQTT") + b"\x05\x06\x00\x3c\x00" + string("c") + b"\x00"
                 + string(topic) + string(b"x"))


def refused_will(broker: BrokerThread, topic: bytes) -> list[Packet | str]:
    with Peer(broker.port) as peer:
        peer.send_bytes(will_connect(topic))
        answer = peer.rest()
    assert answer == [CLOSED] or (isinstance(answer[0], ConnAck)
                                  and answer[0].return_code >= 0x80), answer
    return answer


@pytest.mark.parametrize("topic", [b"w/+", b"w/#", b"+", b"w/a+b", b"w/#/c"])
def test_a_wildcard_in_a_topic_name_is_refused(broker: BrokerThread, topic: bytes) -> None:
    """Wildcards may stand in a Topic Filter, never in a Topic Name [MQTT-4.7.0-1]: a
    PUBLISH with one gets DISCONNECT of 0x80 or more and the close, and reaches no
    subscriber (not even '#'); a will topic with one refuses the CONNECT."""
    with session(broker, "all") as everything:
        everything.subscribe(Subscription("#", Q0))
        with session(broker, "offender") as offender:
            offender.send_bytes(frame(0x30, string(topic) + b"\x00x"))
            assert closes_after(offender, Disconnect).reason_code >= 0x80
        refused_will(broker, topic)
        assert everything.until(mark(broker)) == []


def test_a_topic_filter_starting_with_a_wildcard_does_not_match_a_dollar_topic(
    broker: BrokerThread,
) -> None:
    """Filters beginning with '#' or '+' do not match Topic Names beginning with '$'
    [MQTT-4.7.2-1]; '$w/#' does, and the wildcard filters match the same message on a
    topic without '$'."""
    with (session(broker, "hash") as hash_, session(broker, "plus") as plus,
          session(broker, "dollar") as dollar):
        hash_.subscribe(Subscription("#", Q1))
        plus.subscribe(Subscription("+/x", Q1), Subscription("+/marker", Q1))
        dollar.subscribe(Subscription("$w/#", Q1), Subscription("w/marker", Q1))
        with session(broker, "pub") as pub:
            publish(pub, "$w/x", b"dollar", Q1)
            publish(pub, "w/x", b"plain", Q1)
        marker = mark(broker)
        assert [(p.topic, p.payload) for p in hash_.until(marker)] == [("w/x", b"plain")]
        assert [(p.topic, p.payload) for p in plus.until(marker)] == [("w/x", b"plain")]
        assert [(p.topic, p.payload) for p in dollar.until(marker)] == [("$w/x", b"dollar")]


def test_an_empty_topic_name_or_filter_is_refused(broker: BrokerThread) -> None:
    """Topic Names and Topic Filters are at least one character long [MQTT-4.7.3-1]: an
    empty topic with no Topic Alias, an empty filter in SUBSCRIBE, an empty will topic,
    each refused with a code of 0x80 or more (or a close) and nothing delivered."""
    with session(broker, "all") as everything:
        everything.subscribe(Subscription("#", Q0))
        for bad in (frame(0x30, string(b"") + b"\x00x"),
                    frame(0x82, b"\x00\x01\x00" + string(b"") + b"\x01")):
            with session(broker, "offender") as offender:
                offender.send_bytes(bad)
                assert closes_after(offender, Disconnect).reason_code >= 0x80
        refused_will(broker, b"")
        assert everything.until(mark(broker)) == []


def test_a_u0000_will_topic_is_refused(broker: BrokerThread) -> None:
    """A Topic Name holds no U+0000 [MQTT-4.7.3-2], a will's neither: its CONNECT is not
    accepted (PUBLISH and SUBSCRIBE are in test_v5_statements_packet_format.py)."""
    refused_will(broker, b"w/a\x00b")
    assert not broker.call(lambda b: "c" in b.sessions)


def test_topics_are_matched_as_written_without_normalisation(broker: BrokerThread) -> None:
    """Matching neither normalises Topic Names or Filters nor changes or replaces
    characters it does not know [MQTT-4.7.3-4]: 'e' with a combining accent is not the
    precomposed 'é', case and empty levels count, and characters from the private use
    areas match and arrive exactly as sent."""
    names = ["w/\u00e9", "w/e\u0301", "w/Caf", "w/caf", "w//caf", "w/caf/", "w/\ue000",
             "w/\U0010fffd"]
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        sub.subscribe(Subscription("w/\u00e9", Q1), Subscription("w/caf", Q1),
                      Subscription("w/\ue000", Q1), Subscription("w/\U0010fffd", Q1),
                      Subscription("w/marker", Q1))
        for name in names:
            publish(pub, name, name.encode(), Q1)
        got = sub.until(mark(broker))
        assert [p.topic for p in got] == ["w/\u00e9", "w/caf", "w/\ue000", "w/\U0010fffd"]
        assert all(p.payload == p.topic.encode() for p in got)


# --- 4.8 shared subscriptions ------------------------------------------------------------------


def test_a_shared_subscription_is_served_at_each_members_granted_qos(
    broker: BrokerThread,
) -> None:
    """The server respects the QoS granted to each client's shared subscription
    [MQTT-4.8.2-3]: QoS 2 messages reach the member granted QoS 0 at QoS 0 and the one
    granted QoS 1 at QoS 1."""
    members = {qos: session(broker, f"m{qos}") for qos in (Q0, Q1)}
    for qos, peer in members.items():
        assert peer.subscribe(Subscription("$share/g/w/s", qos),
                              Subscription("w/marker", Q1)).return_codes == (qos, Q1)
    with session(broker, "pub") as pub:
        for n in range(6):
            publish(pub, "w/s", b"%d" % n, Q2)
    marker = mark(broker)
    total = 0
    for qos, peer in members.items():
        got = peer.until(marker)
        assert got  # both members serve the group
        assert {p.qos for p in got} == {qos}
        total += len(got)
        peer.sock.close()
    assert total == 6


def test_a_qos_2_shared_message_is_completed_with_its_member_when_it_returns(
    broker: BrokerThread,
) -> None:
    """A QoS 2 shared message whose member lost its connection before completing is
    completed with that member when it reconnects [MQTT-4.8.2-4], resent with its
    identifier, and the other member never gets it."""
    away = session(broker, "away", clean_start=False, properties=KEEP)
    with session(broker, "here") as here:
        for peer in (away, here):
            peer.subscribe(Subscription("$share/g/w/s", Q2), Subscription("w/marker", Q1))
        with session(broker, "pub") as pub:
            for n in range(4):
                publish(pub, "w/s", b"%d" % n, Q2)
        held = away.expect(Publish)
        away.drop()
        marker = mark(broker)
        assert held.payload not in {p.payload for p in here.until(marker)}
    with resumed(broker, "away") as again:
        first = again.expect(Publish)
        assert (first.payload, first.packet_id, first.dup) == (held.payload, held.packet_id,
                                                               True)


def test_a_shared_message_refused_by_its_member_goes_to_no_other(
    broker: BrokerThread,
) -> None:
    """A member that answers PUBACK of 0x80 or more: the server discards the message and
    sends it to no other subscriber [MQTT-4.8.2-6], not even once the refuser has left."""
    refuser = session(broker, "refuser")
    with session(broker, "other") as other:
        for peer in (refuser, other):
            peer.subscribe(Subscription("$share/g/w/s", Q1), Subscription("w/marker", Q1))
        with session(broker, "pub") as pub:
            for n in range(4):
                publish(pub, "w/s", b"%d" % n, Q1)
        refused = refuser.expect(Publish)
        assert refused.packet_id is not None
        refuser.send(PubAck(refused.packet_id, R.UNSPECIFIED_ERROR))
        assert refuser.pinged()
        refuser.send(Disconnect())
        assert refuser.next() == CLOSED
        assert refused.payload not in {p.payload for p in other.until(mark(broker))}


# --- 4.9 flow control -----------------------------------------------------------------------------


def test_with_its_send_quota_spent_the_broker_still_answers_everything_else(
    broker: BrokerThread,
) -> None:
    """The initial send quota is above 0 and at most the client's Receive Maximum
    [MQTT-4.9.0-1]: two QoS 1 messages of four come. At quota 0 no more QoS 1 or 2 PUBLISH
    [MQTT-4.9.0-2], while PINGREQ, SUBSCRIBE, UNSUBSCRIBE, PUBLISH and PUBREL are all
    answered [MQTT-4.9.0-3]; each PUBACK lets one more through."""
    with (session(broker, "sub", properties=Properties(receive_maximum=2)) as sub,
          session(broker, "pub") as pub):
        sub.subscribe(Subscription("w/q", Q1))
        for n in range(4):
            publish(pub, "w/q", b"%d" % n, Q1)
        first = [sub.expect(Publish) for _ in range(2)]
        assert [p.payload for p in first] == [b"0", b"1"]
        sub.send(PingReq(), Subscribe(5, (Subscription("w/other", Q0),)),
                 Unsubscribe(6, ("w/none",)), Publish("w/self", b"s", Q1, packet_id=1),
                 Publish("w/self", b"s", Q2, packet_id=2), PubRel(2))
        answers = [sub.next() for _ in range(6)]
        assert [type(p) for p in answers] == [PingResp, SubAck, UnsubAck, PubAck, PubRec,
                                              PubComp]
        for done in first:
            assert done.packet_id is not None
            sub.send(PubAck(done.packet_id))
            assert sub.expect(Publish).payload in {b"2", b"3"}


# --- 4.12 enhanced authentication ---------------------------------------------------------------


@pytest.fixture
def scram_broker(start_broker: Callable[..., BrokerThread]) -> BrokerThread:
    """A broker offering SCRAM-SHA-256 for alice/pencil."""
    return start_broker(users={"alice": "pencil"})


def scram_exchange(broker: BrokerThread, password: str) -> tuple[Peer, list[Packet | str]]:
    """CONNECT with SCRAM-SHA-256, answer the challenge; the peer and the server's packets."""
    scram = ScramSha256Client("alice", password)
    peer = Peer(broker.port)
    peer.send(connect_with_scram(scram))
    challenge = peer.expect(Auth)
    peer.send(scram_answer(scram, challenge))
    return peer, [challenge, peer.next()]


@pytest.mark.parametrize("method", ["KERBEROS", "scram-sha-256", "SCRAM-SHA-1"])
def test_an_authentication_method_the_broker_lacks_is_refused_and_closed(
    scram_broker: BrokerThread, method: str,
) -> None:
    """An Authentication Method the server does not support: CONNACK 0x8C or 0x87 MAY come,
    and the connection MUST close [MQTT-4.12.0-1]; the name is matched exactly."""
    peer, _raw, connack = connack_of(scram_broker.port, Connect(V5, "c", properties=Properties(
        authentication_method=method)))
    with peer:
        assert connack.return_code in (R.BAD_AUTHENTICATION_METHOD, R.NOT_AUTHORIZED)
        assert peer.next() == CLOSED


def test_every_auth_and_the_connack_carry_the_method_and_a_challenge_is_0x18(
    scram_broker: BrokerThread,
) -> None:
    """A server asking for more sends AUTH with Reason Code 0x18 [MQTT-4.12.0-2]; every
    AUTH and the successful CONNACK carry the CONNECT's Authentication Method
    [MQTT-4.12.0-5], at CONNECT and at re-authentication (AUTH 0x18, then 0x00); each
    AUTH's fixed header is 0xF0 [MQTT-2.1.3-1]."""
    peer, (challenge, connack) = scram_exchange(scram_broker, "pencil")
    with peer:
        assert isinstance(challenge, Auth)
        assert isinstance(connack, ConnAck)
        assert connack.return_code == R.SUCCESS
        scram = ScramSha256Client("alice", "pencil")
        peer.send(scram_reauthenticate(scram))
        again = peer.expect(Auth)
        peer.send(scram_answer(scram, again))
        done = peer.expect(Auth)
        assert [(p.reason_code, p.properties.authentication_method)
                for p in (challenge, again, done)] == [
            (R.CONTINUE_AUTHENTICATION, SCRAM_SHA_256),
            (R.CONTINUE_AUTHENTICATION, SCRAM_SHA_256), (R.SUCCESS, SCRAM_SHA_256)]
        assert connack.properties.authentication_method == SCRAM_SHA_256
        assert [raw[0] for raw in peer.frames if raw[0] >> 4 == 15] == [0xF0] * 3
        assert peer.pinged()


def test_a_failed_authentication_is_refused_with_0x80_or_more_and_closed(
    scram_broker: BrokerThread,
) -> None:
    """The server may reject the authentication at any step: CONNACK of 0x80 or more MAY
    come, and the connection MUST close [MQTT-4.12.0-4]; a wrong password fails at the
    client's proof."""
    peer, (_challenge, connack) = scram_exchange(scram_broker, "wrong")
    with peer:
        assert isinstance(connack, ConnAck)
        assert connack.return_code >= 0x80
        assert peer.next() == CLOSED


def test_without_a_method_in_connect_the_broker_sends_no_auth(
    scram_broker: BrokerThread,
) -> None:
    """No Authentication Method in CONNECT: no AUTH from the server and no method in
    CONNACK [MQTT-4.12.0-6]; an AUTH from the client then is a Protocol Error, answered by
    DISCONNECT 0x82, not by AUTH."""
    peer, _raw, connack = connack_of(scram_broker.port, Connect(V5, "plain", username="alice",
                                                                password=b"pencil"))
    with peer:
        assert connack.return_code == R.SUCCESS
        assert connack.properties.authentication_method is None
        peer.send(scram_reauthenticate(ScramSha256Client("alice", "pencil")))
        assert closes_after(peer, Disconnect).reason_code == R.PROTOCOL_ERROR
        assert all(raw[0] >> 4 != 15 for raw in peer.frames)


def test_a_failed_re_authentication_closes_the_connection(scram_broker: BrokerThread) -> None:
    """A re-authentication that fails: the server SHOULD send DISCONNECT and MUST close
    [MQTT-4.12.1-2], on a real connection; the will goes out as for any close but 0x00."""
    peer, (_challenge, connack) = scram_exchange(scram_broker, "pencil")
    with peer:
        assert isinstance(connack, ConnAck)
        assert connack.return_code == R.SUCCESS
        impostor = ScramSha256Client("alice", "wrong")
        peer.send(scram_reauthenticate(impostor))
        challenge = peer.expect(Auth)
        peer.send(scram_answer(impostor, challenge))
        assert closes_after(peer, Disconnect).reason_code >= 0x80


# --- 4.13 errors --------------------------------------------------------------------------------


def test_a_reason_code_of_0x80_or_more_always_ends_the_connection(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """CONNACK or DISCONNECT of 0x80 or more: the connection is closed [MQTT-4.13.2-1];
    after a Malformed Packet or Protocol Error with a reason code the server closes
    [MQTT-4.13.1-1]: a refused CONNECT (0x86), a QoS beyond Maximum QoS (0x9B), a topic
    alias out of range (0x94), a malformed SUBSCRIBE (0x81) and a PUBREL in place of
    PUBLISH's flags (0x81) each end with the close."""
    broker = start_broker(users={"u": "p"}, max_qos=1)
    peer, _raw, connack = connack_of(broker.port, Connect(V5, "c", username="u",
                                                          password=b"no"))
    with peer:
        assert connack.return_code == R.BAD_USER_NAME_OR_PASSWORD
        assert peer.next() == CLOSED
    for bad, code in ((encode(Publish("t", b"x", Q2, packet_id=1), V5), R.QOS_NOT_SUPPORTED),
                      (frame(0x30, string("t") + b"\x03\x23\x00\x63x"), R.TOPIC_ALIAS_INVALID),
                      (frame(0x82, b"\x00\x01\x00" + string("t")), R.MALFORMED_PACKET),
                      (b"\x60\x02\x00\x01", R.MALFORMED_PACKET)):
        peer, _raw, connack = connack_of(broker.port, Connect(V5, "c", username="u",
                                                              password=b"p"))
        with peer:
            peer.send_bytes(bad)
            assert closes_after(peer, Disconnect).reason_code == code
