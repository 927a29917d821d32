"""MQTT 5.0 statements of the server's answer to CONNECT (3.1.4) and of CONNACK (3.2) that
bind the server, each shown by the broker meeting them on a raw socket: nothing processed
after a refusal, CONNACK first and once, its flags, its reason codes, Maximum QoS, and a
Reason String that gives way to the client's Maximum Packet Size.

Driven as ``test_v5_statements_packet_format.py`` describes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mqttref.impl.auth import SCRAM_SHA_256
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    Properties,
    Publish,
    Subscribe,
    Subscription,
    Will,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peer5 import (
    CLOSED,
    KEEP,
    Q0,
    Q1,
    Q2,
    V5,
    Peer,
    R,
    connack_of,
    publish,
    session,
)

# --- 3.1.4 and 3.2 the server's answer ---------------------------------------------------------


def test_nothing_a_client_sends_after_a_refused_connect_is_processed(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """After a refused CONNECT the server processes nothing the client sent after it but
    AUTH [MQTT-3.1.4-6]: a retained PUBLISH and a SUBSCRIBE sent with the bad CONNECT in
    one write are neither forwarded, kept nor answered; the same write after a good
    CONNECT is (so the broker does read what follows a CONNECT at once)."""
    broker = start_broker(users={"u": "p"})

    def attempt(client_id: str, password: bytes, topic: str) -> list[Packet | str]:
        with Peer(broker.port) as peer:
            peer.send(Connect(V5, client_id, username="u", password=password),
                      Publish(topic, b"m", Q1, retain=True, packet_id=1),
                      Subscribe(2, (Subscription("w/#", Q0),)), Disconnect())
            return peer.rest()

    watcher_peer, _raw, _connack = connack_of(broker.port, Connect(
        V5, "watcher", username="u", password=b"p"))
    with watcher_peer:
        watcher_peer.subscribe(Subscription("w/#", Q1))
        refused = attempt("bad", b"wrong", "w/refused")
        assert [type(p).__name__ if p != CLOSED else p for p in refused] == [
            "ConnAck", CLOSED]
        assert isinstance(refused[0], ConnAck)
        assert refused[0].return_code == R.BAD_USER_NAME_OR_PASSWORD
        accepted = attempt("good", b"p", "w/accepted")
        assert {type(p).__name__ for p in accepted} >= {"ConnAck", "PubAck", "SubAck"}
        got = watcher_peer.expect(Publish)
        assert got.topic == "w/accepted"  # the refused one's came nowhere before it
        watcher_peer.acknowledge(got)
    late, _raw, _connack = connack_of(broker.port, Connect(
        V5, "late", username="u", password=b"p"))
    with late:
        late.subscribe(Subscription("w/#", Q0))
        assert late.expect(Publish).topic == "w/accepted"  # the only retained message
        assert late.pinged()
        assert [f[0] >> 4 for f in late.frames].count(3) == 1


def test_connack_comes_before_any_other_packet_and_only_once(broker: BrokerThread) -> None:
    """The server sends CONNACK 0x00 before any packet but AUTH [MQTT-3.2.0-1] and no more
    than one per connection [MQTT-3.2.0-2]: with PINGREQ and SUBSCRIBE in the CONNECT's
    own write, and on resuming a session whose queued message is waiting."""
    with Peer(broker.port) as peer:
        peer.send(Connect(V5, "eager", False, properties=KEEP), PingReq(),
                  Subscribe(1, (Subscription("w/e", Q1),)))
        assert [type(peer.next()).__name__ for _ in range(3)] == [
            "ConnAck", "PingResp", "SubAck"]
        peer.drop()
    with session(broker, "pub") as pub:
        publish(pub, "w/e", b"waiting", Q1)
    with Peer(broker.port) as again:
        again.send(Connect(V5, "eager", False, properties=KEEP))
        assert again.expect(ConnAck).session_present
        assert again.expect(Publish).payload == b"waiting"
        assert again.pinged()
        assert [f[0] >> 4 for f in again.frames].count(2) == 1


def test_connack_flags_bits_7_to_1_are_zero(start_broker: Callable[..., BrokerThread]) -> None:
    """Bits 7-1 of the Connect Acknowledge Flags are 0 [MQTT-3.2.2-1], on a new session,
    a resumed one and a refusal."""
    broker = start_broker(users={"u": "p"})
    flags = []
    for connect in (Connect(V5, "f", False, username="u", password=b"p", properties=KEEP),
                    Connect(V5, "f", False, username="u", password=b"p", properties=KEEP),
                    Connect(V5, "f", False, username="u", password=b"no", properties=KEEP)):
        peer, raw, _connack = connack_of(broker.port, connect)
        flags.append(raw[2])
        peer.drop()
    assert flags == [0x00, 0x01, 0x00]


def test_a_refusal_says_session_present_0_though_the_session_exists(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """A CONNACK with a non-zero Reason Code has Session Present 0 [MQTT-3.2.2-6], even for
    a Client Identifier whose session the server holds (a wrong password), and a code of
    0x80 or more is followed by the close [MQTT-3.2.2-7]; the session is still there for
    the right password."""
    broker = start_broker(users={"u": "p"})
    ok = Connect(V5, "held", False, username="u", password=b"p", properties=KEEP)
    peer, _raw, _connack = connack_of(broker.port, ok)
    peer.drop()
    bad = Connect(V5, "held", False, username="u", password=b"wrong", properties=KEEP)
    peer, raw, connack = connack_of(broker.port, bad)
    with peer:
        assert connack.return_code == R.BAD_USER_NAME_OR_PASSWORD
        assert raw[2:4] == b"\x00\x86"
        assert peer.next() == CLOSED
    peer, raw, connack = connack_of(broker.port, ok)
    with peer:
        assert raw[2:4] == b"\x01\x00"


CONNECT_REASON_CODES = frozenset({
    # Table 3-1 (3.2.2.2), written here from the specification on purpose.
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
    0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
})


def test_every_refusal_uses_a_connect_reason_code(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """Each CONNACK the broker sends has a Connect Reason Code [MQTT-3.2.2-8] (Table 3-1):
    seen for a bad password, an invalid Client Identifier, an unknown authentication
    method, a will above Maximum QoS, a will retained where retain is unavailable, and a
    protocol error in the properties; each refusal then closes [MQTT-3.2.2-7]."""
    broker = start_broker(users={"u": "p"}, max_qos=1, retain_available=False)
    refusals = {
        Connect(V5, "a", username="u", password=b"wrong"): R.BAD_USER_NAME_OR_PASSWORD,
        Connect(V5, "x" * 2000, username="u", password=b"p"): R.CLIENT_IDENTIFIER_NOT_VALID,
        Connect(V5, "b", properties=Properties(authentication_method="KERBEROS")):
            R.BAD_AUTHENTICATION_METHOD,
        Connect(V5, "c", username="u", password=b"p", will=Will("w/w", b"", Q2)):
            R.QOS_NOT_SUPPORTED,
        Connect(V5, "d", username="u", password=b"p", will=Will("w/w", b"", retain=True)):
            R.RETAIN_NOT_SUPPORTED,
        Connect(V5, "e", username="u", password=b"p", properties=Properties(
            authentication_data=b"x")): R.PROTOCOL_ERROR,
    }
    for connect, code in refusals.items():
        peer, raw, connack = connack_of(broker.port, connect)
        with peer:
            assert raw[3] in CONNECT_REASON_CODES
            assert (raw[3], connack.return_code) == (code, code)
            assert peer.next() == CLOSED


@pytest.mark.parametrize(("max_qos", "stated"), [(0, 0), (1, 1), (2, None)])
def test_connack_states_a_maximum_qos_below_2(
    start_broker: Callable[..., BrokerThread], max_qos: int, stated: int | None,
) -> None:
    """A server that does not support QoS 1 or 2 PUBLISH sends Maximum QoS in CONNACK,
    the highest it supports [MQTT-3.2.2-9] (absent means 2); and it still accepts a
    SUBSCRIBE requesting QoS 0, 1 or 2 [MQTT-3.2.2-10], granting at most its maximum."""
    broker = start_broker(max_qos=max_qos)
    peer, _raw, connack = connack_of(broker.port, Connect(V5, "q"))
    with peer:
        assert connack.properties.maximum_qos == stated
        granted = peer.subscribe(Subscription("w/0", Q0), Subscription("w/1", Q1),
                                 Subscription("w/2", Q2)).return_codes
        assert granted == tuple(min(q, max_qos) for q in (0, 1, 2))
        assert peer.pinged()


def test_a_connack_reason_string_gives_way_to_the_clients_maximum_packet_size(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """CONNACK carries no Reason String that would take it above the client's Maximum
    Packet Size [MQTT-3.2.2-19]: a SCRAM-SHA-256 exchange refused at its first message
    (not SCRAM's syntax) has one where there is room, and none where there is not, the
    CONNACK within the limit and still saying why in its Reason Code."""
    broker = start_broker(users={"alice": "pencil"})

    def refusal(limit: int | None) -> tuple[bytes, ConnAck]:
        peer, raw, connack = connack_of(broker.port, Connect(
            V5, "c", username="alice", properties=Properties(
                authentication_method=SCRAM_SHA_256, authentication_data=b"not scram",
                maximum_packet_size=limit)))
        with peer:
            assert peer.next() == CLOSED
        return raw, connack

    raw, connack = refusal(None)
    assert connack.return_code >= 0x80
    assert connack.properties.reason_string  # there is one to leave out
    limit = len(raw) - 1
    raw, bare = refusal(limit)
    assert bare.return_code == connack.return_code
    assert bare.properties.reason_string is None
    assert len(raw) <= limit
