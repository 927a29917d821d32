"""MQTT 5.0 statements of Clean Start (3.1.2.4) that bind the server, each shown by the
broker meeting it on a raw socket: a session discarded, resumed or created, and the
Session Present flag of the CONNACK saying which.

Driven as ``test_v5_statements_packet_format.py`` describes.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Connect,
    Disconnect,
    Publish,
    Subscription,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peer5 import (
    CLOSED,
    KEEP,
    Q1,
    V5,
    R,
    connack_of,
    mark,
    publish,
    session,
)


def test_clean_start_1_discards_the_existing_session(broker: BrokerThread) -> None:
    """Clean Start 1 discards the session there was [MQTT-3.1.2-4], as the server must
    process Clean Start [MQTT-3.1.4-4]: Session Present 0 [MQTT-3.2.2-2], the message
    queued for it is never sent, and its subscription is gone (a publish to it now finds
    no subscriber, PUBACK 0x10)."""
    with session(broker, "s", clean_start=False, properties=KEEP) as first:
        first.subscribe(Subscription("w/s", Q1))
        first.send(Disconnect())
        assert first.next() == CLOSED
    with session(broker, "pub") as pub:
        assert publish(pub, "w/s", b"queued", Q1) == R.SUCCESS  # it had a subscriber
        peer, raw, connack = connack_of(broker.port, Connect(V5, "s", True, properties=KEEP))
        with peer:
            assert raw[2:4] == b"\x00\x00"
            assert not connack.session_present
            peer.subscribe(Subscription("w/marker", Q1))
            assert publish(pub, "w/s", b"after", Q1) == R.NO_MATCHING_SUBSCRIBERS
            assert peer.until(mark(broker)) == []


def test_clean_start_0_resumes_the_session_the_client_id_names(broker: BrokerThread) -> None:
    """Clean Start 0 with a session: the server resumes it [MQTT-3.1.2-5] [MQTT-3.1.4-4],
    says Session Present 1 [MQTT-3.2.2-3], and the state it kept after the close
    (Session Expiry Interval above 0 [MQTT-3.1.2-23]) is the state of that Client
    Identifier [MQTT-3.1.3-2]: its subscription, the message queued for it and no other
    session's."""
    for name, topic in (("one", "w/one"), ("two", "w/two")):
        with session(broker, name, clean_start=False, properties=KEEP) as peer:
            peer.subscribe(Subscription(topic, Q1), Subscription("w/marker", Q1))
            peer.drop()
    with session(broker, "pub") as pub:
        publish(pub, "w/one", b"for one", Q1)
        publish(pub, "w/two", b"for two", Q1)
        peer, raw, connack = connack_of(broker.port, Connect(V5, "one", False,
                                                             properties=KEEP))
        with peer:
            assert raw[2:4] == b"\x01\x00"
            assert connack.session_present
            publish(pub, "w/one", b"after", Q1)
            assert [p.payload for p in peer.until(mark(broker))] == [b"for one", b"after"]


def test_clean_start_0_without_a_session_creates_one(broker: BrokerThread) -> None:
    """Clean Start 0 and no session: the server creates one [MQTT-3.1.2-6] [MQTT-3.1.4-4]
    and says Session Present 0 [MQTT-3.2.2-3]; it is there to resume next time."""
    peer, raw, connack = connack_of(broker.port, Connect(V5, "new", False, properties=KEEP))
    with peer:
        assert raw[2:4] == b"\x00\x00"
        assert not connack.session_present
        peer.subscribe(Subscription("w/new", Q1))
        peer.drop()
    again, raw, connack = connack_of(broker.port, Connect(V5, "new", False, properties=KEEP))
    with again:
        assert raw[2:4] == b"\x01\x00"
        with session(broker, "pub") as pub:
            assert publish(pub, "w/new", b"m", Q1) == R.SUCCESS
        assert again.expect(Publish).payload == b"m"
