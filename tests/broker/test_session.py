"""The session's flows, driven without sockets: packets out, acknowledgements in, time told."""

from __future__ import annotations

import pytest

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.session import Session
from mqttref.impl.codec.errors import ProtocolError
from mqttref.impl.codec.packets import Packet, PubAck, PubComp, Publish, PubRec, PubRel, QoS
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message
from mqttref.impl.store import MemoryStore
from tests.broker.recording import RecordingSink, make_session

Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE


def message(n: int, qos: QoS = Q1, topic: str = "t") -> Message:
    return Message(topic, f"m{n}".encode(), qos)


def payloads(packets: list[Packet]) -> list[bytes]:
    return [p.payload for p in packets if isinstance(p, Publish)]


def test_qos0_is_sent_at_once_with_retain_0_and_no_packet_id() -> None:
    session, sink = make_session()
    session.deliver(Message("t", b"x", Q0, retain=True), Q0, 0.0)
    assert sink.take() == [Publish("t", b"x")]


def test_qos1_gets_a_packet_id_and_puback_frees_it() -> None:
    session, sink = make_session()
    session.deliver(message(1), Q1, 0.0)
    [packet] = sink.take()
    assert isinstance(packet, Publish)
    assert packet.qos is Q1
    assert packet.packet_id is not None
    assert not packet.dup
    session.on_puback(packet.packet_id, 1.0)
    assert session.inflight == {}


def test_the_inflight_window_queues_the_rest_and_acks_release_them_in_order() -> None:
    session, sink = make_session(config=Config(max_inflight=2))
    for n in range(5):
        session.deliver(message(n), Q1, 0.0)
    first = sink.take()
    assert payloads(first) == [b"m0", b"m1"]
    assert len(session.queue) == 3
    for packet in first:
        assert isinstance(packet, Publish)
        assert packet.packet_id is not None
        session.on_puback(packet.packet_id, 1.0)
    assert payloads(sink.take()) == [b"m2", b"m3"]


def test_qos2_outbound_walks_pubrec_pubrel_pubcomp() -> None:
    session, sink = make_session()
    session.deliver(message(1, Q2), Q2, 0.0)
    [publish] = sink.take()
    assert isinstance(publish, Publish)
    assert publish.packet_id is not None
    pid = publish.packet_id
    assert session.inflight[pid].state is OutboundState.AWAITING_PUBREC
    session.on_pubrec(pid, 1.0)
    assert sink.take() == [PubRel(pid)]
    assert session.inflight[pid].state is OutboundState.AWAITING_PUBCOMP
    session.on_pubrec(pid, 1.5)  # a duplicate PUBREC is answered again
    assert sink.take() == [PubRel(pid)]
    session.on_pubcomp(pid, 2.0)
    assert session.inflight == {}


def test_acks_for_unknown_or_wrong_state_packet_ids_change_nothing() -> None:
    session, sink = make_session()
    session.deliver(message(1, Q1), Q1, 0.0)
    [publish] = sink.take()
    assert isinstance(publish, Publish)
    assert publish.packet_id is not None
    session.on_pubcomp(publish.packet_id, 1.0)
    session.on_pubrec(publish.packet_id, 1.0)
    session.on_puback(999, 1.0)
    assert list(session.inflight) == [publish.packet_id]
    assert sink.take() == []


def test_inbound_qos2_duplicate_is_acknowledged_but_not_routed_again() -> None:
    """[MQTT-4.3.3-2]: exactly once, method A."""
    session, sink = make_session()
    first = Publish("t", b"x", Q2, packet_id=7)
    assert session.on_publish(first, 0.0) is not None
    assert session.on_publish(Publish("t", b"x", Q2, dup=True, packet_id=7), 0.1) is None
    assert sink.take() == [PubRec(7), PubRec(7)]
    session.on_pubrel(7, 0.2)
    assert sink.take() == [PubComp(7)]
    assert session.on_publish(first, 0.3) is not None  # the id is free again: a new message


def test_inbound_qos1_is_acknowledged_and_routed_every_time() -> None:
    session, sink = make_session()
    assert session.on_publish(Publish("t", b"x", Q1, packet_id=3), 0.0) is not None
    assert sink.take() == [PubAck(3)]


def test_pubrel_for_an_unknown_id_still_gets_pubcomp() -> None:
    session, sink = make_session()
    session.on_pubrel(42, 0.0)
    assert sink.take() == [PubComp(42)]


def test_too_many_qos2_awaiting_pubrel_is_a_protocol_error() -> None:
    """CVE-2023-28366: unanswered QoS 2 ids cannot grow without bound."""
    session, _sink = make_session(config=Config(max_awaiting_rel=2))
    session.on_publish(Publish("t", b"", Q2, packet_id=1), 0.0)
    session.on_publish(Publish("t", b"", Q2, packet_id=2), 0.0)
    session.on_publish(Publish("t", b"", Q2, packet_id=2), 0.0)  # duplicate: fine
    with pytest.raises(ProtocolError):
        session.on_publish(Publish("t", b"", Q2, packet_id=3), 0.0)


def test_the_queue_limit_drops_the_newest_and_counts_it() -> None:
    session, _sink = make_session(persistent=True, connected=False,
                                  config=Config(max_queued=3))
    for n in range(5):
        session.deliver(message(n), Q1, 0.0)
    assert [out.payload for _seq, out in session.queue] == [b"m0", b"m1", b"m2"]
    assert session.dropped == 2


def test_an_absent_persistent_session_queues_qos1_and_2_but_not_qos0() -> None:
    session, _sink = make_session(persistent=True, connected=False)
    session.deliver(message(0, Q0), Q0, 0.0)
    session.deliver(message(1, Q1), Q1, 0.0)
    session.deliver(message(2, Q2), Q2, 0.0)
    assert [out.payload for _seq, out in session.queue] == [b"m1", b"m2"]
    sink = RecordingSink()
    session.attach(sink, 1.0)
    assert payloads(sink.take()) == [b"m1", b"m2"]


def test_reconnect_resends_unacknowledged_publishes_with_dup_and_pubrels() -> None:
    """[MQTT-4.4.0-1]"""
    session, sink = make_session(persistent=True)
    session.deliver(message(1, Q1), Q1, 0.0)
    session.deliver(message(2, Q2), Q2, 0.0)
    session.deliver(message(3, Q2), Q2, 0.0)
    sent = sink.take()
    pids = [p.packet_id for p in sent if isinstance(p, Publish) and p.packet_id is not None]
    assert len(pids) == 3
    session.on_pubrec(pids[2], 0.5)  # the third now awaits PUBCOMP
    session.detach()
    again = RecordingSink()
    session.attach(again, 1.0)
    resent = again.take()
    assert resent == [
        Publish("t", b"m1", Q1, False, True, pids[0]),
        Publish("t", b"m2", Q2, False, True, pids[1]),
        PubRel(pids[2]),
    ]


def test_retry_while_connected_doubles_from_the_first_interval_up_to_the_cap() -> None:
    session, sink = make_session(config=Config(retry_interval=20.0, retry_max_interval=50.0))
    session.deliver(message(1), Q1, 0.0)
    [publish] = sink.take()
    assert session.next_deadline() == 20.0
    session.handle_timer(19.9)
    assert sink.take() == []
    resend_times = []
    for now in (20.0, 59.9, 60.0, 110.0, 160.0):
        session.handle_timer(now)
        if sink.take():
            resend_times.append(now)
    assert resend_times == [20.0, 60.0, 110.0, 160.0]  # +40, then capped at +50
    session.handle_timer(1000.0)
    [dup] = sink.take()
    assert isinstance(dup, Publish)
    assert isinstance(publish, Publish)
    assert dup.dup
    assert dup.packet_id == publish.packet_id


def test_retry_interval_0_turns_resending_off() -> None:
    session, sink = make_session(config=Config(retry_interval=0))
    session.deliver(message(1), Q1, 0.0)
    sink.take()
    assert session.next_deadline() is None
    session.handle_timer(10_000.0)
    assert sink.take() == []


def test_a_congested_connection_holds_qos1_until_drained_and_still_gets_qos0() -> None:
    session, sink = make_session()
    sink.congested = True
    session.deliver(message(0, Q0), Q0, 0.0)
    session.deliver(message(1, Q1), Q1, 0.0)
    assert payloads(sink.take()) == [b"m0"]
    sink.congested = False
    session.pump(1.0)
    assert payloads(sink.take()) == [b"m1"]


def test_an_overloaded_connection_drops_qos0_and_counts_it() -> None:
    session, sink = make_session()
    sink.congested = sink.overloaded = True
    session.deliver(message(0, Q0), Q0, 0.0)
    assert sink.take() == []
    assert session.dropped == 1


def test_packet_ids_skip_those_in_flight_and_wrap_after_65535() -> None:
    session, sink = make_session(config=Config(max_inflight=3))
    session._next_packet_id = 65_535
    for n in range(3):
        session.deliver(message(n), Q1, 0.0)
    assert [p.packet_id for p in sink.take() if isinstance(p, Publish)] == [65_535, 1, 2]


def test_a_persistent_session_comes_back_from_the_store_as_it_was() -> None:
    store = MemoryStore()
    session, _sink = make_session(persistent=True, store=store)
    session.subscriptions["t/#"] = Q2
    store.set_subscription("c1", "t/#", Q2)
    session.deliver(message(1, Q1), Q1, 0.0)
    session.deliver(message(2, Q2), Q2, 0.0)
    session.on_publish(Publish("t", b"in", Q2, packet_id=9), 0.0)
    session.detach()
    session.deliver(message(3, Q1), Q1, 0.0)
    record = store.load_session("c1")
    assert record is not None
    restored = Session.restore(record, config=Config(), store=store)
    assert restored.subscriptions == {"t/#": Q2}
    assert restored.awaiting_rel == {9}
    assert [e.message for e in restored.inflight.values()] == [
        e.message for e in session.inflight.values()
    ]
    assert list(restored.queue) == list(session.queue)
    session.discard()
    assert store.load_session("c1") is None
    assert list(store.subscriptions()) == []


def test_a_clean_session_stores_nothing() -> None:
    store = MemoryStore()
    session, _sink = make_session(persistent=False, store=store, connected=False)
    session.deliver(message(1), Q1, 0.0)
    assert store.session_ids() == []


def test_a_session_is_stalled_only_after_stall_timeout_without_an_acknowledgement() -> None:
    session, sink = make_session(config=Config(max_inflight=4, stall_timeout=10.0))
    for n in range(8):
        session.deliver(message(n), Q1, 0.0)
    sent = [p for p in sink.take() if isinstance(p, Publish)]
    assert not session.stalled(9.9)
    session.on_puback(sent[0].packet_id or 0, 9.0)  # it takes one: the clock restarts
    assert not session.stalled(18.9)
    assert session.stalled(19.0)


def test_queued_bytes_are_counted_in_the_session_and_the_broker_and_released() -> None:
    session, _sink = make_session(config=Config(max_inflight=1))
    for n in range(3):
        session.deliver(message(n), Q1, 0.0)
    assert session.queued_bytes > 0
    assert session.memory.queued_bytes == session.queued_bytes
    session.discard()
    assert session.queued_bytes == 0
    assert session.memory.queued_bytes == 0
