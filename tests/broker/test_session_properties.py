"""Properties of a session under any interleaving of deliveries, acks, reconnects and time.

Whatever happens, a session never has more than ``max_inflight`` messages in
flight, never uses one packet id twice at once, sends every QoS 1/2 message
it did not drop exactly once with DUP=0 and in the order it was given, and
after reconnecting and being fully acknowledged has had every one of them
received by the client and holds nothing.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.session import Session
from mqttref.impl.codec.packets import Publish, PubRel, QoS
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message
from tests.broker.recording import RecordingSink, make_session

operations = st.lists(
    st.one_of(
        st.tuples(st.just("deliver"), st.sampled_from([QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE])),
        st.tuples(st.just("ack"), st.integers(0, 30)),
        st.tuples(st.just("reconnect"), st.booleans()),
        st.tuples(st.just("time"), st.floats(0, 50)),
        st.tuples(st.just("congest"), st.booleans()),
    ),
    max_size=80,
)


def acknowledge(session: Session, packet: object, now: float, received: set[bytes]) -> None:
    """The client's answer to one packet; a PUBLISH it answers counts as received."""
    if isinstance(packet, Publish):
        received.add(packet.payload)
    if isinstance(packet, PubRel):
        session.on_pubcomp(packet.packet_id, now)
    elif isinstance(packet, Publish) and packet.packet_id is not None:
        if packet.qos is QoS.AT_LEAST_ONCE:
            session.on_puback(packet.packet_id, now)
        else:
            session.on_pubrec(packet.packet_id, now)


@given(operations, st.integers(1, 4), st.integers(1, 6))
def test_a_session_keeps_its_promises(
    ops: list[tuple[str, object]], window: int, queue_limit: int
) -> None:
    config = Config(max_inflight=window, max_queued=queue_limit, retry_interval=10.0)
    session, sink = make_session(persistent=True, config=config)
    now = 0.0
    given_order: list[bytes] = []
    first_sends: list[bytes] = []
    unanswered: list[object] = []
    received: set[bytes] = set()

    def observe(target: RecordingSink) -> None:
        for packet in target.take():
            if isinstance(packet, Publish) and not packet.dup:
                first_sends.append(packet.payload)
            unanswered.append(packet)

    for op, arg in ops:
        if op == "deliver":
            payload = str(len(given_order)).encode()
            given_order.append(payload)
            assert isinstance(arg, QoS)
            session.deliver(Message("t", payload, arg), arg, now)
        elif op == "ack" and unanswered:
            assert isinstance(arg, int)
            packet = unanswered.pop(arg % len(unanswered))
            if session.connection is not None:
                acknowledge(session, packet, now, received)
        elif op == "reconnect":
            session.detach()
            unanswered.clear()  # whatever was on the old connection is gone
            sink = RecordingSink()
            if arg:
                session.attach(sink, now)
        elif op == "time":
            assert isinstance(arg, float)
            now += arg
            session.handle_timer(now)
        elif op == "congest" and session.connection is not None:
            sink.congested = bool(arg)
            if not arg:
                session.pump(now)
        observe(sink)
        assert len(session.inflight) <= window
        ids = [entry.message.packet_id for entry in session.inflight.values()]
        assert len(set(ids)) == len(ids)
        assert len(session.queue) <= queue_limit

    # Reconnect on a healthy socket and acknowledge everything: nothing may remain.
    session.detach()
    unanswered.clear()
    sink = RecordingSink()
    session.attach(sink, now)
    observe(sink)
    for _ in range(10 * (len(given_order) + 1)):
        if not unanswered:
            break
        acknowledge(session, unanswered.pop(0), now, received)
        observe(sink)
    assert session.inflight == {}
    assert not session.queue
    assert len(first_sends) == len(given_order) - session.dropped
    assert first_sends == sorted(first_sends, key=int)  # in the order given
    assert received == set(first_sends)  # nothing sent was lost on a dropped connection
    assert all(
        entry.state is not OutboundState.AWAITING_PUBACK for entry in session.inflight.values()
    )
