"""The server-side MQTT 5.0 statements of PUBLISH and its acknowledgements (3.3 to 3.7),
each shown on a raw socket against the running broker.

A test's docstring cites the statements it shows. What the broker sends is read as whole
frames by the ``Peer`` of ``tests/helpers/peer5.py``, so a flag or a property is judged by
its bytes; where a statement says something
must NOT come, the proof is a marker the broker must send after it: a PINGREQ on the same
connection is answered only once everything its earlier packets caused has been written
(the protocol core handles one connection's packets in order and routes a message to every
subscriber before acknowledging it), so what precedes the PINGRESP is all there will be.
Statements about time (Message Expiry) run in the sans-IO core with a made-up clock, as
``test_v5_core.py`` does: no test waits.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mqttref.impl.broker.packet_size import fit
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import (
    Connect,
    Disconnect,
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
)
from tests.broker.test_protocol_core import World
from tests.broker.test_v5_core import accept5, connect5, subscribe5
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.core5 import publishes
from tests.helpers.peer5 import (
    KEEP,
    Q0,
    Q1,
    Q2,
    V5,
    Peer,
    R,
    closes_after,
    decode,
    frame,
    session,
    string,
    subscriber,
    tightest,
    varint,
    within,
)

PUBREC_CODES = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})
"""The PUBREC reason codes (3.5.2.1), written from the specification, not the codec's."""


def raw_publish(topic: bytes, properties: bytes, payload: bytes = b"x") -> bytes:
    """A QoS 0 PUBLISH written by hand, for what the encoder refuses to write."""
    return frame(0x30, topic + varint(len(properties)) + properties + payload)


# --- 3.3.1 the fixed header -----------------------------------------------------------------


@pytest.mark.parametrize("qos", [Q1, Q2])
def test_a_first_sending_has_dup_0_and_a_resend_on_reconnection_has_dup_1(
    broker: BrokerThread, qos: QoS,
) -> None:
    """DUP says whether this PUBLISH is a re-delivery [MQTT-3.3.1-1], and only that: the
    publisher's own DUP 1 does not carry over to the first sending [MQTT-3.3.1-3]."""
    with session(broker, "pub") as pub:
        with subscriber(broker, "sub", Subscription("t", qos), properties=KEEP) as first:
            pub.publish(Publish("t", b"m", qos, dup=True, packet_id=9))
            [sent] = first.publishes()
            assert (sent.dup, sent.payload) == (False, b"m")  # [MQTT-3.3.1-3]
        # Gone without acknowledging it; the session (expiry 60 s) keeps it in flight.
        with session(broker, "sub", clean_start=False, properties=KEEP) as again:
            [resent] = again.publishes()
            assert (resent.dup, resent.packet_id, resent.payload) == (True, sent.packet_id, b"m")


def test_qos_0_messages_go_out_with_dup_0(broker: BrokerThread) -> None:
    """A message downgraded to QoS 0 is sent with DUP 0 [MQTT-3.3.1-2], whatever the DUP
    of the PUBLISH it came in [MQTT-3.3.1-3]: the first byte is 0x30, no flag set."""
    with subscriber(broker, "sub", Subscription("t", Q0)) as sub, \
            session(broker, "pub") as pub:
        pub.publish(Publish("t", b"1", Q1, dup=True, packet_id=1))
        pub.publish(Publish("t", b"2", Q2, dup=True, packet_id=2))
        pub.publish(Publish("t", b"3"))
        frames = sub.publish_frames(3)
        assert [frame[0] for frame in frames] == [0x30, 0x30, 0x30]
        assert [p.payload for p in map(decode, frames) if isinstance(p, Publish)] == [
            b"1", b"2", b"3"]


def test_a_publish_with_both_qos_bits_set_is_malformed_and_goes_nowhere(
    broker: BrokerThread,
) -> None:
    """QoS 3 does not exist [MQTT-3.3.1-4]: the broker closes with DISCONNECT 0x81 and
    answers nothing after it (the PINGREQ behind it stays unanswered), and a subscriber
    to everything never sees it, while the next good message reaches it."""
    with subscriber(broker, "watcher", Subscription("#", Q0)) as watcher, \
            session(broker, "bad") as bad:
        bad.send_bytes(bytes([0x36, 6]) + string("t") + b"\x00\x01\x00" + b"\xc0\x00")
        assert closes_after(bad, Disconnect).reason_code == R.MALFORMED_PACKET
        with session(broker, "good") as good:
            good.publish(Publish("t", b"good"))
        assert [(p.topic, p.payload) for p in watcher.publishes()] == [("t", b"good")]


# --- retained messages ----------------------------------------------------------------------


def retained(broker: BrokerThread, topic_filter: str, client_id: str = "late") -> list[Publish]:
    """What a new subscriber to ``topic_filter`` is sent at once: the retained messages."""
    with subscriber(broker, client_id, Subscription(topic_filter, Q1)) as late:
        got = late.publishes()
    for message in got:
        assert message.packet_id is not None
    return got


def test_a_retained_publish_replaces_the_retained_message_of_its_topic(
    broker: BrokerThread,
) -> None:
    """RETAIN 1 stores the message in place of the one before [MQTT-3.3.1-5]."""
    with session(broker, "pub") as pub:
        pub.publish(Publish("r", b"one", Q1, retain=True, packet_id=1))
        assert [(m.payload, m.retain) for m in retained(broker, "r", "a")] == [(b"one", True)]
        pub.publish(Publish("r", b"two", Q1, retain=True, packet_id=2))
    assert [(m.payload, m.retain) for m in retained(broker, "r", "b")] == [(b"two", True)]


def test_an_empty_retained_publish_is_delivered_and_clears_the_retained_message(
    broker: BrokerThread,
) -> None:
    """A zero-byte retained PUBLISH goes to the subscribers as any other [MQTT-3.3.1-6],
    removes the retained message of its topic and is not stored itself [MQTT-3.3.1-7]:
    a new subscriber to 'r/#' gets the other topic's retained message and nothing else,
    also for a topic that had none to remove."""
    with subscriber(broker, "now", Subscription("r/#", Q0)) as now, \
            session(broker, "pub") as pub:
        pub.publish(Publish("r/cleared", b"kept", Q1, retain=True, packet_id=1))
        pub.publish(Publish("r/control", b"stays", Q1, retain=True, packet_id=2))
        pub.publish(Publish("r/cleared", b"", Q1, retain=True, packet_id=3))
        pub.publish(Publish("r/never", b"", Q1, retain=True, packet_id=4))
        assert [(p.topic, p.payload) for p in now.publishes()] == [
            ("r/cleared", b"kept"), ("r/control", b"stays"), ("r/cleared", b""),
            ("r/never", b"")]
    assert [(m.topic, m.payload) for m in retained(broker, "r/#")] == [
        ("r/control", b"stays")]


def test_a_publish_without_retain_neither_stores_nor_touches_the_retained_message(
    broker: BrokerThread,
) -> None:
    """RETAIN 0: not stored, and the retained message of its topic stays as it was
    [MQTT-3.3.1-8], an empty payload included."""
    with session(broker, "pub") as pub:
        pub.publish(Publish("r/kept", b"retained", Q1, retain=True, packet_id=1))
        pub.publish(Publish("r/kept", b"live", Q1, packet_id=2))
        pub.publish(Publish("r/kept", b"", Q1, packet_id=3))
        pub.publish(Publish("r/plain", b"live", Q1, packet_id=4))
    assert [(m.topic, m.payload, m.retain) for m in retained(broker, "r/#")] == [
        ("r/kept", b"retained", True)]


@pytest.mark.parametrize(("handling", "on_new", "on_existing"), [(0, 1, 1), (1, 1, 0), (2, 0, 0)])
def test_retain_handling_decides_when_the_retained_message_is_sent(
    broker: BrokerThread, handling: int, on_new: int, on_existing: int,
) -> None:
    """Retain Handling 0: on every SUBSCRIBE [MQTT-3.3.1-9]; 1: only when the subscription
    is new [MQTT-3.3.1-10]; 2: never [MQTT-3.3.1-11]. The subscription itself works in
    every case: a live message follows."""
    with session(broker, "pub") as pub, session(broker, "sub") as sub:
        pub.publish(Publish("r", b"kept", Q1, retain=True, packet_id=1))
        option = Subscription("r", Q1, retain_handling=handling)
        sub.subscribe(option)
        assert [(p.payload, p.retain) for p in sub.publishes()] == [(b"kept", True)] * on_new
        sub.subscribe(option, packet_id=2)
        assert [(p.payload, p.retain) for p in sub.publishes()] == [
            (b"kept", True)] * on_existing
        pub.publish(Publish("r", b"live", Q1, packet_id=2))
        assert [p.payload for p in sub.publishes()] == [b"live"]


def test_retain_as_published_decides_the_retain_flag_of_a_forwarded_message(
    broker: BrokerThread,
) -> None:
    """Retain As Published 0 forwards with RETAIN 0 whatever the PUBLISH said
    [MQTT-3.3.1-12]; 1 keeps the publisher's flag, 1 or 0 [MQTT-3.3.1-13]."""
    with subscriber(broker, "plain", Subscription("t", Q0)) as plain, \
            subscriber(broker, "rap", Subscription("t", Q0, retain_as_published=True)) as rap, \
            session(broker, "pub") as pub:
        pub.publish(Publish("t", b"retained", Q1, retain=True, packet_id=1))
        pub.publish(Publish("t", b"live", Q1, packet_id=2))
        assert [(p.payload, p.retain) for p in plain.publishes()] == [
            (b"retained", False), (b"live", False)]
        assert [(p.payload, p.retain) for p in rap.publishes()] == [
            (b"retained", True), (b"live", False)]


# --- 3.3.2 topic name and properties --------------------------------------------------------


def test_the_topic_name_goes_first_as_a_utf8_string(broker: BrokerThread) -> None:
    """The variable header starts with the Topic Name, a UTF-8 Encoded String: two bytes
    of length and then the UTF-8 bytes [MQTT-3.3.2-1], here with letters outside ASCII."""
    topic = "capteur/température/水"
    with subscriber(broker, "sub", Subscription("capteur/#", Q0)) as sub, \
            session(broker, "pub") as pub:
        pub.publish(Publish(topic, b"21"))
        [frame] = sub.publish_frames(1)
        assert frame[2:4 + len(topic.encode())] == string(topic)


@pytest.mark.parametrize("topic", ["a/+", "a/#", "+"])
def test_a_topic_name_with_a_wildcard_is_refused_and_never_forwarded(
    broker: BrokerThread, topic: str,
) -> None:
    """A Topic Name has no wildcards [MQTT-3.3.2-2]: the broker closes the publisher with a
    DISCONNECT reason (0x90 Topic Name invalid) and a subscriber to '#' never gets it,
    while the next good message reaches it."""
    with subscriber(broker, "watcher", Subscription("#", Q0)) as watcher, \
            session(broker, "bad") as bad:
        bad.send_bytes(raw_publish(string(topic), b""))
        assert closes_after(bad, Disconnect).reason_code == R.TOPIC_NAME_INVALID
        with session(broker, "good") as good:
            good.publish(Publish("a/b", b"good"))
        assert [p.topic for p in watcher.publishes()] == ["a/b"]


def test_a_subscriber_is_sent_only_topic_names_its_filter_matches(broker: BrokerThread) -> None:
    """The Topic Name the broker sends matches the subscriber's filter [MQTT-3.3.2-3]."""
    topics = ["a/b/c", "a/b/d", "a/x/c", "a/b/c/d", "b/b/c", "a//c", "/a/b/c"]
    with subscriber(broker, "sub", Subscription("a/+/c", Q1)) as sub, \
            session(broker, "pub") as pub:
        for n, topic in enumerate(topics, start=1):
            pub.publish(Publish(topic, b"m", Q1, packet_id=n))
        assert [p.topic for p in sub.publishes()] == ["a/b/c", "a/x/c", "a//c"]


@pytest.mark.parametrize("indicator", [0, 1, None])
def test_the_payload_format_indicator_reaches_every_subscriber_unaltered(
    broker: BrokerThread, indicator: int | None,
) -> None:
    """Each subscriber, at each QoS, gets the Payload Format Indicator as it was sent, and
    none where none was sent [MQTT-3.3.2-4]."""
    subscribers = [subscriber(broker, f"s{qos}", Subscription("t", qos)) for qos in (Q0, Q1, Q2)]
    with session(broker, "pub") as pub:
        pub.publish(Publish("t", "é".encode(), Q2, packet_id=1,
                            properties=Properties(payload_format_indicator=indicator)))
    for sub in subscribers:
        with sub:
            [got] = sub.publishes()
            assert got.properties.payload_format_indicator == indicator


APPLICATION_PROPERTIES = Properties(
    payload_format_indicator=1, content_type="texte/plain; charset=utf-8",
    response_topic="réponse/client-7", correlation_data=b"\x00\xffid\x00",
    user_properties=(("z", "last?"), ("a", "1"), ("z", "again"), ("", ""), ("ключ", "значение")),
)


def test_response_topic_correlation_data_user_properties_and_content_type_go_unaltered(
    broker: BrokerThread,
) -> None:
    """Every subscriber, live at each QoS and one sent the retained copy, gets the Response
    Topic [MQTT-3.3.2-15], the Correlation Data [MQTT-3.3.2-16], the User Properties
    unaltered [MQTT-3.3.2-17] in their order, repeats included [MQTT-3.3.2-18], and the
    Content Type [MQTT-3.3.2-20]; strings outside ASCII stay UTF-8 [MQTT-3.3.2-13]
    [MQTT-3.3.2-19]."""
    subscribers = [subscriber(broker, f"s{qos}", Subscription("t", qos)) for qos in (Q0, Q1, Q2)]
    with session(broker, "pub") as pub:
        pub.publish(Publish("t", b"m", Q2, retain=True, packet_id=1,
                            properties=APPLICATION_PROPERTIES))
    subscribers.append(subscriber(broker, "late", Subscription("t", Q1)))
    for sub in subscribers:
        with sub:
            [got] = sub.publishes()
            assert got.properties == APPLICATION_PROPERTIES


@pytest.mark.parametrize(("identifier", "value", "reason"), [
    (0x08, string("r/#"), R.PROTOCOL_ERROR),  # Response Topic with a wildcard
    (0x08, b"\x00\x02\xc0\x80", R.MALFORMED_PACKET),  # Response Topic, overlong UTF-8
    (0x03, b"\x00\x01\xff", R.MALFORMED_PACKET),  # Content Type, not UTF-8
], ids=["response-topic-wildcard", "response-topic-not-utf8", "content-type-not-utf8"])
def test_a_response_topic_or_content_type_that_breaks_its_rules_is_refused_and_not_forwarded(
    broker: BrokerThread, identifier: int, value: bytes, reason: ReasonCode,
) -> None:
    """The Response Topic is a UTF-8 string [MQTT-3.3.2-13] with no wildcard
    [MQTT-3.3.2-14]; the Content Type is a UTF-8 string [MQTT-3.3.2-19]. A PUBLISH that
    breaks one is closed with DISCONNECT and its reason, and no subscriber gets it."""
    with subscriber(broker, "watcher", Subscription("#", Q0)) as watcher, \
            session(broker, "bad") as bad:
        bad.send_bytes(raw_publish(string("t"), bytes([identifier]) + value))
        assert closes_after(bad, Disconnect).reason_code == reason
        with session(broker, "good") as good:
            good.publish(Publish("t", b"good", properties=Properties(response_topic="r/x")))
        assert [(p.payload, p.properties.response_topic) for p in watcher.publishes()] == [
            (b"good", "r/x")]


def test_every_topic_alias_up_to_the_brokers_maximum_is_accepted(broker: BrokerThread) -> None:
    """The broker accepts each Topic Alias from 1 to the Topic Alias Maximum its CONNACK
    gave [MQTT-3.3.2-12], first set with a topic, then used alone."""
    with subscriber(broker, "watcher", Subscription("alias/#", Q0)) as watcher, \
            Peer(broker.port) as pub:
        maximum = pub.open_session("pub").properties.topic_alias_maximum
        assert maximum
        aliases = range(1, maximum + 1)
        for alias in aliases:
            pub.send(Publish(f"alias/{alias}", b"set", properties=Properties(topic_alias=alias)))
        for alias in aliases:
            pub.send(Publish("", b"used", properties=Properties(topic_alias=alias)))
        assert pub.before_pingresp() == []
        got = [(p.topic, p.payload) for p in watcher.publishes()]
        assert got == ([(f"alias/{a}", b"set") for a in aliases]
                       + [(f"alias/{a}", b"used") for a in aliases])


@pytest.mark.parametrize("above", [False, True], ids=["zero", "above-the-maximum"])
def test_a_topic_alias_of_0_or_above_the_maximum_is_refused_and_not_forwarded(
    broker: BrokerThread, above: bool,
) -> None:
    """Topic Alias 0 may not be sent [MQTT-3.3.2-8], nor one above the maximum the broker's
    CONNACK gave: DISCONNECT 0x94, and nobody gets the message."""
    with subscriber(broker, "watcher", Subscription("#", Q0)) as watcher, Peer(broker.port) as bad:
        maximum = bad.open_session("bad").properties.topic_alias_maximum or 0
        alias = maximum + 1 if above else 0
        bad.send_bytes(raw_publish(string("t"), b"\x23" + alias.to_bytes(2, "big")))
        assert closes_after(bad, Disconnect).reason_code == R.TOPIC_ALIAS_INVALID
        with session(broker, "good") as good:
            good.publish(Publish("t", b"good", properties=Properties(topic_alias=1)))
        assert [(p.topic, p.payload) for p in watcher.publishes()] == [("t", b"good")]


def test_a_topic_alias_the_client_set_does_not_outlive_its_connection(
    broker: BrokerThread,
) -> None:
    """Topic Alias mappings are not carried to the next network connection [MQTT-3.3.2-7],
    not even of the same session: an alias set before is unknown after, a Protocol Error."""
    with subscriber(broker, "watcher", Subscription("t", Q0)) as watcher:
        with session(broker, "pub", properties=KEEP) as pub:
            pub.publish(Publish("t", b"1", properties=Properties(topic_alias=3)))
            pub.publish(Publish("", b"2", properties=Properties(topic_alias=3)))
        with session(broker, "pub", clean_start=False, properties=KEEP) as again:
            again.send(Publish("", b"3", properties=Properties(topic_alias=3)))
            assert closes_after(again, Disconnect).reason_code == R.PROTOCOL_ERROR
        assert [p.payload for p in watcher.publishes()] == [b"1", b"2"]


def aliases_sent(sub: Peer) -> list[tuple[str, int | None]]:
    return [(p.topic, p.properties.topic_alias) for p in sub.publishes()]


def test_the_brokers_own_topic_aliases_stay_within_the_clients_maximum_and_are_never_0(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """With ``send_topic_aliases`` the broker gives repeated topics aliases: none above the
    client's Topic Alias Maximum [MQTT-3.3.2-11] (here 2, with three topics), none 0
    [MQTT-3.3.2-8], and none at all for a client that stated no maximum."""
    broker = start_broker(send_topic_aliases=True)
    with subscriber(broker, "none", Subscription("a/#", Q0)) as none, \
            subscriber(broker, "two", Subscription("a/#", Q0),
                       properties=Properties(topic_alias_maximum=2)) as two, \
            session(broker, "pub") as pub:
        for _ in range(3):
            for topic in ("a/one", "a/two", "a/three"):
                pub.publish(Publish(topic, b"m"))
        sent = aliases_sent(two)
        assert len(sent) == 9
        used = {alias for _topic, alias in sent if alias is not None}
        assert used == {1, 2}  # [MQTT-3.3.2-11] [MQTT-3.3.2-8]
        assert [alias for _topic, alias in aliases_sent(none)] == [None] * 9


def test_the_brokers_topic_aliases_start_afresh_on_each_connection(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """The broker does not carry its own Topic Alias mappings to the client's next
    connection [MQTT-3.3.2-7]: the first message there has its Topic Name in full again."""
    broker = start_broker(send_topic_aliases=True)
    alias_max = Properties(topic_alias_maximum=5, session_expiry_interval=60)
    with session(broker, "pub") as pub:
        with session(broker, "sub", properties=alias_max) as sub:
            sub.subscribe(Subscription("t", Q0))
            pub.publish(Publish("t", b"1"))
            pub.publish(Publish("t", b"2"))
            assert aliases_sent(sub) == [("t", 1), ("", 1)]
        with session(broker, "sub", clean_start=False, properties=alias_max) as again:
            pub.publish(Publish("t", b"3"))
            [(topic, _alias)] = aliases_sent(again)
            assert topic == "t"


# --- 3.3.2 Message Expiry, in the sans-IO core with a made-up clock ---------------------------




def test_a_message_waiting_past_its_expiry_is_not_sent_and_the_rest_carry_what_remains() -> None:
    """A copy still waiting when its Message Expiry Interval passes is deleted
    [MQTT-3.3.2-5]; one sent later carries the interval minus its wait [MQTT-3.3.2-6].
    Here the copies wait behind a Receive Maximum of 1, the subscriber connected."""
    world = World()
    sub, _ = connect5(world, "sub", properties=Properties(receive_maximum=1))
    subscribe5(sub, Subscription("t", Q1))
    pub, _ = connect5(world, "pub")
    for n, expiry in enumerate((None, 5, 100), start=1):
        pub.send(Publish("t", b"%d" % n, Q1, packet_id=n,
                         properties=Properties(message_expiry_interval=expiry)), now=10.0)
    [first] = publishes(sub)
    assert first.payload == b"1"
    sub.send(PubAck(first.packet_id or 0), now=30.0)  # 20 s later: '2' has expired
    [third] = publishes(sub)
    assert third.payload == b"3"
    assert third.properties.message_expiry_interval == 80


def test_a_message_queued_for_an_absent_client_expires_there_too() -> None:
    """The same for a session whose client is away [MQTT-3.3.2-5] [MQTT-3.3.2-6]."""
    world = World()
    sub, _ = connect5(world, "sub", properties=KEEP)
    subscribe5(sub, Subscription("t", Q1))
    sub.inner.core.connection_lost(1.0)
    pub, _ = connect5(world, "pub")
    pub.send(Publish("t", b"short", Q1, packet_id=1,
                     properties=Properties(message_expiry_interval=5)),
             Publish("t", b"long", Q1, packet_id=2,
                     properties=Properties(message_expiry_interval=100)), now=2.0)
    again = accept5(world, 12.0)
    again.send(Connect(V5, "sub", clean_session=False, properties=KEEP), now=12.0)
    got = publishes(again)
    assert [(p.payload, p.properties.message_expiry_interval) for p in got] == [(b"long", 90)]


# --- 3.3.4 actions --------------------------------------------------------------------------


def test_the_broker_answers_each_publish_as_its_qos_says(broker: BrokerThread) -> None:
    """QoS 0: no answer; QoS 1: PUBACK; QoS 2: PUBREC, and PUBCOMP to the PUBREL, each
    with the PUBLISH's packet identifier [MQTT-3.3.4-1]."""
    with session(broker, "pub") as pub:
        pub.send(Publish("t", b"0"))
        assert pub.before_pingresp() == []
        pub.send(Publish("t", b"1", Q1, packet_id=0x1234))
        assert pub.expect(PubAck).packet_id == 0x1234
        pub.send(Publish("t", b"2", Q2, packet_id=0xFFFF))
        assert pub.expect(PubRec).packet_id == 0xFFFF
        pub.send(PubRel(0xFFFF))
        assert pub.expect(PubComp).packet_id == 0xFFFF


def test_overlapping_subscriptions_deliver_at_their_highest_qos_with_every_identifier(
    broker: BrokerThread,
) -> None:
    """'a/#' at QoS 0 with identifier 1, 'a/+' at QoS 2 with identifier 2 and '+/b' at
    QoS 1 without one: the one copy goes at QoS 2 [MQTT-3.3.4-2] and carries identifiers
    1 and 2 [MQTT-3.3.4-3] [MQTT-3.3.4-4]."""
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        sub.subscribe(Subscription("a/#", Q0), properties=Properties(
            subscription_identifiers=(1,)))
        sub.subscribe(Subscription("a/+", Q2), packet_id=2, properties=Properties(
            subscription_identifiers=(2,)))
        sub.subscribe(Subscription("+/b", Q1), packet_id=3)
        pub.publish(Publish("a/b", b"m", Q2, packet_id=1))
        [copy] = sub.publishes()
        assert copy.qos == Q2
        assert sorted(copy.properties.subscription_identifiers) == [1, 2]


def test_each_copy_through_a_shared_and_a_plain_subscription_carries_its_own_identifier(
    broker: BrokerThread,
) -> None:
    """A client in a shared group of one and subscribed plainly to the same topic is sent
    two PUBLISH packets; each carries the identifier of the subscription it came
    through, and only that one [MQTT-3.3.4-5]."""
    with session(broker, "sub") as sub, session(broker, "pub") as pub:
        sub.subscribe(Subscription("$share/g/t", Q1), properties=Properties(
            subscription_identifiers=(42,)))
        sub.subscribe(Subscription("t", Q1), packet_id=2, properties=Properties(
            subscription_identifiers=(7,)))
        pub.publish(Publish("t", b"m", Q1, packet_id=1))
        copies = sub.publishes()
        assert sorted(p.properties.subscription_identifiers for p in copies) == [(7,), (42,)]
        assert {p.payload for p in copies} == {b"m"}


def test_no_more_unacknowledged_publishes_than_the_clients_receive_maximum(
    broker: BrokerThread,
) -> None:
    """With Receive Maximum 2 the broker has at most two QoS 1 and 2 PUBLISH packets
    unacknowledged [MQTT-3.3.4-9]: a PUBACK, a PUBCOMP or a PUBREC of 0x80 or above frees
    a place, a PUBREC below 0x80 does not. Meanwhile it answers PINGREQ, SUBSCRIBE and
    UNSUBSCRIBE at once [MQTT-3.3.4-10]."""
    with session(broker, "pub") as pub, Peer(broker.port) as sub:
        sub.open_session("sub", properties=Properties(receive_maximum=2))
        sub.subscribe(Subscription("t", Q2))
        for n in range(1, 7):
            pub.publish(Publish("t", b"%d" % n, Q2 if n % 2 else Q1, packet_id=n))
        window = sub.publishes()
        assert [p.payload for p in window] == [b"1", b"2"]  # [MQTT-3.3.4-9]
        sub.send(Subscribe(5, (Subscription("other", Q0),)))
        assert sub.expect(SubAck).packet_id == 5  # [MQTT-3.3.4-10]
        sub.send(PubRec(window[0].packet_id or 0))  # QoS 2, received: still in flight
        assert [type(p) for p in sub.before_pingresp()] == [PubRel]
        sub.send(PubAck(window[1].packet_id or 0))  # QoS 1, done: '3' may come
        [third] = sub.publishes()
        assert third.payload == b"3"
        sub.send(PubRec(third.packet_id or 0, R.UNSPECIFIED_ERROR))  # refused: done too
        [fourth] = sub.publishes()
        assert fourth.payload == b"4"
        sub.send(PubComp(window[0].packet_id or 0))
        assert [p.payload for p in sub.publishes()] == [b"5"]


# --- 3.4 to 3.7 acknowledgements ------------------------------------------------------------


def test_puback_and_pubrec_carry_reason_codes_of_their_tables(broker: BrokerThread) -> None:
    """PUBACK says 0x10 when no one subscribed and 0x00 when someone did [MQTT-3.4.2-1],
    PUBREC the same [MQTT-3.5.2-1]; a re-sent QoS 2 PUBLISH is acknowledged again with a
    code of the PUBREC table."""
    with session(broker, "pub") as pub:
        pub.send(Publish("nobody", b"m", Q1, packet_id=1))
        pub.send(Publish("nobody", b"m", Q2, packet_id=2))
        pub.send(Publish("nobody", b"m", Q2, dup=True, packet_id=2))
        acks = [pub.expect(PubAck).reason_code, pub.expect(PubRec).reason_code]
        assert acks == [R.NO_MATCHING_SUBSCRIBERS] * 2
        assert pub.expect(PubRec).reason_code in PUBREC_CODES  # 0x00 or 0x10 both say it
        pub.send(PubRel(2))
        pub.expect(PubComp)
        with subscriber(broker, "sub", Subscription("t", Q0)):
            pub.send(Publish("t", b"m", Q1, packet_id=3), Publish("t", b"m", Q2, packet_id=4))
            acks = [pub.expect(PubAck).reason_code, pub.expect(PubRec).reason_code]
            assert acks == [R.SUCCESS, R.SUCCESS]


def test_the_brokers_pubrel_has_flags_0010_and_a_pubrel_reason_code(broker: BrokerThread) -> None:
    """Sending a QoS 2 message, the broker's PUBREL has fixed header 0x62 [MQTT-3.6.1-1] and
    reason 0x00; to a PUBREC for an identifier it does not know, 0x92 [MQTT-3.6.2-1]."""
    with subscriber(broker, "sub", Subscription("t", Q2)) as sub, \
            session(broker, "pub") as pub:
        pub.publish(Publish("t", b"m", Q2, packet_id=1))
        [message] = sub.publishes()
        sub.send(PubRec(message.packet_id or 0))
        raw = sub.frame()
        assert raw[0] == 0x62
        pubrel = decode(raw)
        assert isinstance(pubrel, PubRel)
        assert (pubrel.packet_id, pubrel.reason_code) == (message.packet_id, 0x00)
        sub.send(PubComp(message.packet_id or 0))
        sub.send(PubRec(4321))
        unknown = sub.frame()
        assert unknown[0] == 0x62
        assert decode(unknown) == PubRel(4321, R.PACKET_IDENTIFIER_NOT_FOUND)


@pytest.mark.parametrize("flags", [0x0, 0x3, 0xA])
def test_a_pubrel_with_other_flags_is_malformed_and_closes(
    broker: BrokerThread, flags: int,
) -> None:
    """The broker treats PUBREL flags other than 0010 as malformed and closes
    [MQTT-3.6.1-1]: DISCONNECT 0x81, no PUBCOMP, nothing after, where the same PUBREL
    with 0010 is answered."""
    with session(broker, "pub") as pub:
        pub.send(Publish("t", b"m", Q2, packet_id=1))
        pub.expect(PubRec)
        pub.send_bytes(bytes([0x60 | flags, 2, 0, 1]) + b"\xc0\x00")
        assert closes_after(pub, Disconnect).reason_code == R.MALFORMED_PACKET
    with session(broker, "pub2") as pub:
        pub.send(Publish("t", b"m", Q2, packet_id=1))
        pub.expect(PubRec)
        pub.send_bytes(bytes([0x62, 2, 0, 1]))
        assert pub.expect(PubComp).packet_id == 1


def test_pubcomp_says_0x00_for_a_known_identifier_and_0x92_for_an_unknown_one(
    broker: BrokerThread,
) -> None:
    """The broker's PUBCOMP uses a PUBCOMP reason code [MQTT-3.7.2-1]: 0x00 completing a
    QoS 2 flow, 0x92 to a PUBREL for a packet identifier it does not hold."""
    with session(broker, "pub") as pub:
        pub.send(Publish("t", b"m", Q2, packet_id=1))
        pub.expect(PubRec)
        pub.send(PubRel(1))
        assert pub.expect(PubComp) == PubComp(1, 0x00)
        pub.send(PubRel(1))  # now completed: unknown
        assert pub.expect(PubComp) == PubComp(1, R.PACKET_IDENTIFIER_NOT_FOUND)


# --- Reason String and User Properties within the client's Maximum Packet Size ----------------






def test_acknowledgements_stay_within_the_clients_maximum_packet_size(
    broker: BrokerThread,
) -> None:
    """To a client whose maximum is its CONNACK's size, PUBACK [MQTT-3.4.2-2]
    [MQTT-3.4.2-3], PUBREC [MQTT-3.5.2-2] [MQTT-3.5.2-3], PUBREL [MQTT-3.6.2-2]
    [MQTT-3.6.2-3] and PUBCOMP [MQTT-3.7.2-2] [MQTT-3.7.2-3] come within it, with their
    reason codes (0x10 too) and no Reason String or User Property that would not fit.
    (The broker puts neither on these packets; ``packet_size.fit``, through which every
    one is encoded, would drop them first.)"""
    client, maximum = tightest(broker, "small")
    with client, session(broker, "pub") as pub:
        client.send(Publish("nobody", b"m", Q1, packet_id=1))
        assert within(client.frame(), maximum) == PubAck(1, R.NO_MATCHING_SUBSCRIBERS)
        client.send(Publish("nobody", b"m", Q2, packet_id=2))
        assert within(client.frame(), maximum) == PubRec(2, R.NO_MATCHING_SUBSCRIBERS)
        client.send(PubRel(2))
        assert within(client.frame(), maximum) == PubComp(2)
        client.send(Subscribe(3, (Subscription("t", Q2),)))
        within(client.frame(), maximum)
        pub.publish(Publish("t", b"m", Q2, packet_id=1))
        message = within(client.frame(), maximum)
        assert isinstance(message, Publish)
        client.send(PubRec(message.packet_id or 0))
        assert within(client.frame(), maximum) == PubRel(message.packet_id or 0)


@pytest.mark.parametrize("packet", [
    PubAck(1, R.NO_MATCHING_SUBSCRIBERS), PubRec(1, R.NO_MATCHING_SUBSCRIBERS), PubRel(1),
    PubComp(1, R.PACKET_IDENTIFIER_NOT_FOUND)], ids=["puback", "pubrec", "pubrel", "pubcomp"])
def test_the_encoding_every_acknowledgement_goes_through_drops_what_would_not_fit(
    packet: PubAck | PubRec | PubRel | PubComp,
) -> None:
    """The rule for the day the broker has a Reason String or User Property to give: the
    one place its packets are encoded drops the Reason String, then the User Properties,
    as the client's maximum requires (MQTT-3.4.2-2 and -3 to MQTT-3.7.2-2 and -3)."""
    told = Properties(reason_string="why" * 10, user_properties=(("k", "v" * 10),))
    bare = encode(packet, V5)
    kept = encode(type(packet)(packet.packet_id, packet.reason_code,
                               Properties(user_properties=told.user_properties)), V5)
    full = type(packet)(packet.packet_id, packet.reason_code, told)
    assert fit(full, len(kept)) == kept
    assert fit(full, len(kept) - 1) == bare
