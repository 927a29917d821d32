"""The sans-IO client core, driven packet by packet with a clock the test moves.

Each test plays the broker's side by hand: what the core sends is read with
``packets_to_send()``, what the broker answers goes in with ``receive_packet``
(or as bytes through the real codec with ``receive_data``).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.client.errors import (
    InvalidArgument,
    MQTTTimeout,
    PayloadTooLarge,
    ProtocolViolation,
    SessionDiscarded,
)
from mqttref.impl.client.events import (
    CloseConnection,
    Connected,
    ConnectRefused,
    MessageReceived,
    PublishCompleted,
    PublishFailed,
    Resubscribed,
    SubscribeCompleted,
    UnsubscribeCompleted,
)
from mqttref.impl.client.protocol import (
    RECEIVE_TABLE,
    ClientOptions,
    ClientProtocol,
    ConnectionState,
)
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
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


def connected(options: ClientOptions | None = None, *, now: float = 0.0) -> ClientProtocol:
    core = ClientProtocol(options or ClientOptions(client_id="c1"))
    core.connection_made(now)
    core.receive_packet(ConnAck(session_present=False, return_code=0), now)
    core.packets_to_send()
    core.events()
    return core


def reconnect(core: ClientProtocol, *, session_present: bool, now: float = 10.0) -> None:
    core.connection_lost(now)
    core.connection_made(now)
    assert isinstance(core.packets_to_send()[0], Connect)
    core.receive_packet(ConnAck(session_present=session_present, return_code=0), now)


def test_connection_made_sends_connect_with_the_options() -> None:
    core = ClientProtocol(ClientOptions(client_id="abc", clean_session=False, keep_alive=30))
    core.connection_made(0.0)
    (connect,) = core.packets_to_send()
    assert isinstance(connect, Connect)
    assert (connect.client_id, connect.clean_session, connect.keep_alive) == ("abc", False, 30)
    assert core.state is ConnectionState.CONNECTING


def test_accepting_connack_reports_connected_with_session_present() -> None:
    core = ClientProtocol(ClientOptions(client_id="abc", clean_session=False))
    core.connection_made(0.0)
    core.receive_packet(ConnAck(session_present=True, return_code=0), 0.1)
    assert core.events() == [Connected(session_present=True)]
    assert core.state is ConnectionState.CONNECTED


def test_refusing_connack_reports_the_return_code_and_stops_sending() -> None:
    core = ClientProtocol(ClientOptions(client_id="abc"))
    core.connection_made(0.0)
    core.packets_to_send()
    core.receive_packet(ConnAck(session_present=False, return_code=5), 0.1)
    assert core.events() == [ConnectRefused(5)]
    core.publish("a", b"x", 0, False, 0.2)
    assert core.packets_to_send() == []


def test_session_present_with_clean_session_is_a_protocol_violation() -> None:
    core = ClientProtocol(ClientOptions(client_id="abc", clean_session=True))
    core.connection_made(0.0)
    core.receive_packet(ConnAck(session_present=True, return_code=0), 0.1)
    (event,) = core.events()
    assert isinstance(event, CloseConnection)
    assert isinstance(event.error, ProtocolViolation)
    assert event.error.error.ref == "MQTT-3.2.2-1"


def test_no_connack_within_the_connect_timeout_closes_with_a_timeout() -> None:
    core = ClientProtocol(ClientOptions(client_id="abc", connect_timeout=5.0))
    core.connection_made(100.0)
    assert core.get_timer() == 105.0
    core.handle_timer(104.9)
    assert core.events() == []
    core.handle_timer(105.0)
    (event,) = core.events()
    assert isinstance(event, CloseConnection)
    assert isinstance(event.error, MQTTTimeout)


def test_publish_before_connack_is_a_protocol_violation() -> None:
    core = ClientProtocol(ClientOptions(client_id="abc"))
    core.connection_made(0.0)
    core.receive_packet(Publish("a", b"x"), 0.1)
    (event,) = core.events()
    assert isinstance(event, CloseConnection)
    assert isinstance(event.error, ProtocolViolation)
    assert event.error.error.ref == "MQTT-3.2.0-1"


@given(
    state=st.sampled_from([ConnectionState.CONNECTING, ConnectionState.CONNECTED]),
    packet=st.sampled_from(
        [
            ConnAck(False, 0),
            Publish("t", b"", QoS.AT_MOST_ONCE),
            PubAck(1),
            PubRec(1),
            PubRel(1),
            PubComp(1),
            SubAck(1, (0,)),
            UnsubAck(1),
            PingResp(),
            PingReq(),
            Disconnect(),
            Subscribe(1, (Subscription("t", QoS.AT_MOST_ONCE),)),
        ]
    ),
)
def test_every_state_and_packet_pair_is_handled_or_closes(
    state: ConnectionState, packet: Packet
) -> None:
    """A pair in RECEIVE_TABLE is handled without a protocol violation caused by the
    table itself; any other pair closes the connection with a protocol violation."""
    core = ClientProtocol(ClientOptions(client_id="abc"))
    core.connection_made(0.0)
    if state is ConnectionState.CONNECTED:
        core.receive_packet(ConnAck(False, 0), 0.0)
        core.subscribe([("t", 0)], 0.0)  # packet id 1 is a pending SUBSCRIBE
    core.events()
    core.receive_packet(packet, 1.0)
    closes = [e for e in core.events() if isinstance(e, CloseConnection)]
    if (state, packet.packet_type) not in RECEIVE_TABLE:
        assert len(closes) == 1
        assert isinstance(closes[0].error, ProtocolViolation)
        assert core.state is ConnectionState.CLOSING
    elif packet.packet_type is not PacketType.UNSUBACK:
        assert closes == []


def test_qos0_publish_is_sent_and_completes_at_once() -> None:
    core = connected()
    handle = core.publish("a/b", b"hi", 0, False, 1.0)
    assert core.packets_to_send() == [Publish("a/b", b"hi")]
    assert core.events() == [PublishCompleted(handle)]


def test_qos1_publish_completes_on_puback() -> None:
    core = connected()
    handle = core.publish("a/b", b"hi", 1, True, 1.0)
    (publish,) = core.packets_to_send()
    assert isinstance(publish, Publish)
    assert publish.qos is QoS.AT_LEAST_ONCE
    assert publish.retain
    assert publish.packet_id is not None
    assert core.events() == []
    core.receive_packet(PubAck(publish.packet_id), 1.1)
    assert core.events() == [PublishCompleted(handle)]
    assert core.inflight_count == 0


def test_qos2_publish_sends_pubrel_on_pubrec_and_completes_on_pubcomp() -> None:
    core = connected()
    handle = core.publish("a/b", b"hi", 2, False, 1.0)
    (publish,) = core.packets_to_send()
    assert isinstance(publish, Publish)
    assert publish.packet_id is not None
    core.receive_packet(PubRec(publish.packet_id), 1.1)
    assert core.packets_to_send() == [PubRel(publish.packet_id)]
    assert core.events() == []
    core.receive_packet(PubComp(publish.packet_id), 1.2)
    assert core.events() == [PublishCompleted(handle)]


@pytest.mark.parametrize(
    ("qos", "wrong_ack"),
    [(1, PubRec), (1, PubComp), (2, PubAck), (2, PubComp)],
)
def test_an_acknowledgement_of_the_wrong_kind_is_a_protocol_violation(
    qos: int, wrong_ack: type[PubAck | PubRec | PubComp]
) -> None:
    core = connected()
    core.publish("a", b"x", qos, False, 1.0)
    (publish,) = core.packets_to_send()
    assert isinstance(publish, Publish)
    assert publish.packet_id is not None
    core.receive_packet(wrong_ack(publish.packet_id), 1.1)
    (event,) = core.events()
    assert isinstance(event, CloseConnection)
    assert isinstance(event.error, ProtocolViolation)


def test_packet_ids_in_flight_are_never_reused() -> None:
    core = connected(ClientOptions(client_id="c", max_inflight=100))
    for _ in range(100):
        core.publish("a", b"x", 1, False, 1.0)
    ids = [p.packet_id for p in core.packets_to_send() if isinstance(p, Publish)]
    assert len(set(ids)) == 100
    assert all(pid is not None and 1 <= pid <= 65535 for pid in ids)


def test_packet_ids_wrap_after_65535_and_skip_ids_in_use() -> None:
    core = connected(ClientOptions(client_id="c", max_inflight=2))
    core.publish("a", b"x", 1, False, 1.0)  # id 1 stays in flight
    (first,) = core.packets_to_send()
    assert isinstance(first, Publish)
    assert first.packet_id == 1
    for _ in range(65535):
        core.publish("a", b"x", 1, False, 1.0)
        (publish,) = core.packets_to_send()
        assert isinstance(publish, Publish)
        assert publish.packet_id is not None
        assert publish.packet_id != 1
        core.receive_packet(PubAck(publish.packet_id), 1.0)


def test_the_inflight_window_holds_further_messages_until_an_ack_frees_a_slot() -> None:
    core = connected(ClientOptions(client_id="c", max_inflight=2))
    for n in range(3):
        core.publish("a", bytes([n]), 1, False, 1.0)
    sent = core.packets_to_send()
    assert [p.payload for p in sent if isinstance(p, Publish)] == [b"\x00", b"\x01"]
    assert core.queued_count == 1
    first = sent[0]
    assert isinstance(first, Publish)
    assert first.packet_id is not None
    core.receive_packet(PubAck(first.packet_id), 1.1)
    (third,) = core.packets_to_send()
    assert isinstance(third, Publish)
    assert third.payload == b"\x02"


def test_publishes_made_while_disconnected_are_sent_after_connack() -> None:
    core = ClientProtocol(ClientOptions(client_id="c"))
    core.publish("a", b"queued", 1, False, 0.0)
    assert core.packets_to_send() == []
    core.connection_made(1.0)
    core.receive_packet(ConnAck(False, 0), 1.1)
    sent = core.packets_to_send()
    assert isinstance(sent[0], Connect)
    assert isinstance(sent[1], Publish)
    assert sent[1].payload == b"queued"


def test_resumed_session_resends_unacknowledged_publish_with_dup_and_same_id() -> None:
    core = connected(ClientOptions(client_id="c", clean_session=False))
    core.publish("a", b"one", 1, False, 1.0)
    core.publish("a", b"two", 2, False, 1.0)
    core.publish("a", b"three", 2, False, 1.0)
    one, two, three = core.packets_to_send()
    assert isinstance(three, Publish)
    assert three.packet_id is not None
    core.receive_packet(PubRec(three.packet_id), 1.1)  # "three" now awaits PUBCOMP
    core.packets_to_send()
    reconnect(core, session_present=True)
    resent = core.packets_to_send()
    assert resent == [
        Publish("a", b"one", QoS.AT_LEAST_ONCE, dup=True, packet_id=one.packet_id),  # type: ignore[union-attr]
        Publish("a", b"two", QoS.EXACTLY_ONCE, dup=True, packet_id=two.packet_id),  # type: ignore[union-attr]
        PubRel(three.packet_id),
    ]


def test_clean_session_reconnect_fails_messages_that_were_in_flight() -> None:
    core = connected(ClientOptions(client_id="c", clean_session=True))
    handle = core.publish("a", b"one", 1, False, 1.0)
    core.packets_to_send()
    core.connection_lost(2.0)
    core.connection_made(3.0)
    (event,) = core.events()
    assert isinstance(event, PublishFailed)
    assert event.handle == handle
    assert isinstance(event.error, SessionDiscarded)


def test_lost_session_triggers_resubscription_to_granted_filters() -> None:
    core = connected(ClientOptions(client_id="c", clean_session=False))
    packet_id = core.subscribe([("a/+", 1), ("b/#", 2)], 1.0)
    core.packets_to_send()
    core.receive_packet(SubAck(packet_id, (1, 0x80)), 1.1)
    assert core.events() == [SubscribeCompleted(packet_id, (1, 0x80))]
    reconnect(core, session_present=False)
    sent = core.packets_to_send()
    (subscribe,) = [p for p in sent if isinstance(p, Subscribe)]
    assert subscribe.subscriptions == (Subscription("a/+", QoS.AT_LEAST_ONCE),)
    core.receive_packet(SubAck(subscribe.packet_id, (1,)), 11.0)
    assert core.events()[-1] == Resubscribed(("a/+",), (1,))


def test_resumed_session_does_not_resubscribe() -> None:
    core = connected(ClientOptions(client_id="c", clean_session=False))
    packet_id = core.subscribe([("a/+", 1)], 1.0)
    core.receive_packet(SubAck(packet_id, (1,)), 1.1)
    core.packets_to_send()
    reconnect(core, session_present=True)
    assert not [p for p in core.packets_to_send() if isinstance(p, Subscribe)]


def test_unsubscribe_completes_on_unsuback_and_forgets_the_filter() -> None:
    core = connected()
    sub_id = core.subscribe([("a/+", 1)], 1.0)
    core.receive_packet(SubAck(sub_id, (1,)), 1.1)
    unsub_id = core.unsubscribe(["a/+"], 1.2)
    assert core.packets_to_send()[-1] == Unsubscribe(unsub_id, ("a/+",))
    core.receive_packet(UnsubAck(unsub_id), 1.3)
    assert core.events()[-1] == UnsubscribeCompleted(unsub_id)
    assert core.subscriptions == {}


def test_received_qos1_is_acknowledged_only_once_the_application_took_it() -> None:
    core = connected()
    core.receive_packet(Publish("a", b"x", QoS.AT_LEAST_ONCE, packet_id=7), 1.0)
    (event,) = core.events()
    assert isinstance(event, MessageReceived)
    assert core.packets_to_send() == []
    core.acknowledge(event.message, 1.1)
    assert core.packets_to_send() == [PubAck(7)]


def test_received_qos2_is_delivered_once_even_when_resent_before_pubrel() -> None:
    core = connected()
    publish = Publish("a", b"x", QoS.EXACTLY_ONCE, packet_id=9)
    core.receive_packet(publish, 1.0)
    (event,) = core.events()
    assert isinstance(event, MessageReceived)
    core.acknowledge(event.message, 1.0)
    assert core.packets_to_send() == [PubRec(9)]
    core.receive_packet(Publish("a", b"x", QoS.EXACTLY_ONCE, dup=True, packet_id=9), 1.1)
    assert core.events() == []
    assert core.packets_to_send() == [PubRec(9)]
    core.receive_packet(PubRel(9), 1.2)
    assert core.packets_to_send() == [PubComp(9)]
    core.receive_packet(publish, 1.3)  # the id is free again: a new message
    assert len(core.events()) == 1


def test_pubrel_for_an_unknown_id_is_still_answered_with_pubcomp() -> None:
    core = connected()
    core.receive_packet(PubRel(42), 1.0)
    assert core.packets_to_send() == [PubComp(42)]


def test_keep_alive_sends_pingreq_when_nothing_was_sent_for_keep_alive_seconds() -> None:
    core = connected(ClientOptions(client_id="c", keep_alive=10), now=0.0)
    assert core.get_timer() == 10.0
    core.handle_timer(9.9)
    assert core.packets_to_send() == []
    core.handle_timer(10.0)
    assert core.packets_to_send() == [PingReq()]


def test_sending_anything_postpones_the_next_pingreq() -> None:
    core = connected(ClientOptions(client_id="c", keep_alive=10), now=0.0)
    core.publish("a", b"", 0, False, 6.0)
    core.packets_to_send()
    assert core.get_timer() == 16.0


def test_missing_pingresp_closes_with_a_timeout() -> None:
    core = connected(ClientOptions(client_id="c", keep_alive=10, ping_timeout=3), now=0.0)
    core.handle_timer(10.0)
    assert core.get_timer() == 13.0
    core.handle_timer(13.0)
    (event,) = core.events()
    assert isinstance(event, CloseConnection)
    assert isinstance(event.error, MQTTTimeout)


def test_pingresp_clears_the_ping_deadline() -> None:
    core = connected(ClientOptions(client_id="c", keep_alive=10, ping_timeout=3), now=0.0)
    core.handle_timer(10.0)
    core.receive_packet(PingResp(), 10.5)
    core.handle_timer(13.0)
    assert core.events() == []


def test_paused_reading_suspends_the_pingresp_timeout() -> None:
    core = connected(ClientOptions(client_id="c", keep_alive=10, ping_timeout=3), now=0.0)
    core.handle_timer(10.0)
    core.set_reading_paused(True, 11.0)
    assert core.get_timer() is None
    core.handle_timer(50.0)
    assert core.events() == []
    core.set_reading_paused(False, 50.0)
    assert core.get_timer() == 53.0


def test_keep_alive_zero_never_pings() -> None:
    core = connected(ClientOptions(client_id="c", keep_alive=0), now=0.0)
    assert core.get_timer() is None


def test_received_bytes_go_through_the_codec() -> None:
    core = ClientProtocol(ClientOptions(client_id="c"))
    core.connection_made(0.0)
    data = encode(ConnAck(False, 0)) + encode(Publish("a", b"x"))
    core.receive_data(data[:3], 0.1)
    core.receive_data(data[3:], 0.2)
    events = core.events()
    assert isinstance(events[0], Connected)
    assert isinstance(events[1], MessageReceived)


def test_malformed_bytes_close_after_the_whole_packets_before_them() -> None:
    core = ClientProtocol(ClientOptions(client_id="c"))
    core.connection_made(0.0)
    core.receive_data(encode(ConnAck(False, 0)) + b"\x30\x00", 0.1)  # PUBLISH without topic
    events = core.events()
    assert isinstance(events[0], Connected)
    assert isinstance(events[1], CloseConnection)
    assert isinstance(events[1].error, ProtocolViolation)


def test_disconnect_sends_disconnect_and_nothing_after_it() -> None:
    core = connected()
    core.disconnect(1.0)
    assert core.packets_to_send() == [Disconnect()]
    core.publish("a", b"", 0, False, 1.1)
    assert core.packets_to_send() == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.publish("a/+", b"", 0, False, 0.0), "wildcard"),
        (lambda c: c.publish("", b"", 0, False, 0.0), "empty"),
        (lambda c: c.publish("a", b"", 3, False, 0.0), "QoS"),
        (lambda c: c.subscribe([("a/#/b", 0)], 0.0), "'#'"),
        (lambda c: c.subscribe([("a", 3)], 0.0), "QoS"),
        (lambda c: c.subscribe([], 0.0), "at least one"),
        (lambda c: c.unsubscribe(["a+"], 0.0), "whole level"),
    ],
)
def test_bad_arguments_raise_before_anything_is_sent(call: object, message: str) -> None:
    core = connected()
    with pytest.raises(InvalidArgument, match=message):
        call(core)  # type: ignore[operator]
    assert core.packets_to_send() == []


def test_oversized_payload_raises_before_anything_is_sent() -> None:
    core = connected(ClientOptions(client_id="c", max_packet_size=1000))
    with pytest.raises(PayloadTooLarge):
        core.publish("a", b"x" * 1000, 0, False, 0.0)
    core.publish("a", b"x" * 995, 0, False, 0.0)  # 2 + 1 + 995 + ... fits
    assert len(core.packets_to_send()) == 1


@pytest.mark.parametrize(
    "options",
    [
        {"client_id": "", "clean_session": False},
        {"client_id": "c", "keep_alive": 70000},
        {"client_id": "c", "password": b"pw"},
        {"client_id": "", "protocol_level": 3},
    ],
)
def test_impossible_connect_options_are_refused_up_front(options: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        ClientOptions(**options)  # type: ignore[arg-type]
