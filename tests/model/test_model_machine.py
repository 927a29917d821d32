"""The model against itself: a Hypothesis state machine with many clients.

The machine plays both the clients (events) and a server that picks, at every
step, any packet the model says is allowed. Two things must hold after every
step: the model's invariants (a QoS 2 message at most once per subscriber
copy, accepted QoS 1/2 messages never lost for a matching persistent session,
order per publisher/topic/QoS, nothing left of a clean session), and the
model's own consistency: whatever ``allowed()`` offers, ``observe()`` accepts,
and a server that always answers what is owed reaches a state with no
obligations (``check_quiescent() == []``).
"""

from __future__ import annotations

import copy

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mqttref.impl.packets import (
    Connect,
    Disconnect,
    PingReq,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Subscribe,
    Subscription,
    Unsubscribe,
    Will,
)
from mqttref.model import BrokerModel, Closed, Drop, Observation, Send, SendMalformed, TimePasses
from mqttref.model.connection import ConnectionState
from mqttref.model.qos import ReceiverState, SenderState

SLOTS = ("s0", "s1", "s2", "s3", "s4")
CLIENT_IDS = ("A", "B", "C", "D")
TOPICS = ("a", "a/b", "a/c", "b", "$SYS/x")
FILTERS = ("a", "a/+", "a/#", "#", "+", "b", "$SYS/#")

slots = st.sampled_from(SLOTS)
qos = st.sampled_from([QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE])


class ModelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model = BrokerModel(max_inflight=4)
        self.packet_ids: dict[str, int] = {}

    # ------------------------------------------------------------ helpers

    def state(self, slot: str) -> str | None:
        conn = self.model.connections.get(slot)
        return None if conn is None else conn.state

    def connected(self, slot: str) -> bool:
        return self.state(slot) == ConnectionState.CONNECTED

    def next_id(self, slot: str) -> int:
        self.packet_ids[slot] = self.packet_ids.get(slot, 0) % 65535 + 1
        return self.packet_ids[slot]

    def settle(self) -> None:
        """Be a server that sends exactly what is owed, until nothing is."""
        for _ in range(200):
            owed = self.model.obligations()
            if not owed:
                break
            first = owed[0]
            choice = self.answer(first.client, first.what)
            self.model.observe(first.client, choice)
        assert self.model.check_quiescent() == []

    def answer(self, slot: str, what: str) -> Observation:
        """An allowed observation that discharges an obligation of ``slot``."""
        allowed = self.model.allowed(slot)
        assert allowed, f"{slot} owes {what} but nothing is allowed"
        if what.startswith("close"):
            return Closed()

        def count(model: BrokerModel) -> int:
            return sum(1 for o in model.obligations(slot) if o.what == what)

        before = count(self.model)
        ranked = sorted(allowed, key=lambda o: (isinstance(o, Closed), getattr(o, "dup", False)))
        for candidate in ranked:
            trial = copy.deepcopy(self.model)
            trial.observe(slot, candidate)
            if count(trial) < before:
                return candidate
        raise AssertionError(f"{slot} owes {what} but no allowed packet discharges it")

    # -------------------------------------------------------------- rules

    @rule(
        slot=slots,
        client_id=st.sampled_from(CLIENT_IDS),
        clean=st.booleans(),
        will=st.none() | st.tuples(st.sampled_from(TOPICS[:4]), qos, st.booleans()),
        keep_alive=st.sampled_from([0, 0, 5]),
    )
    def connect(
        self,
        slot: str,
        client_id: str,
        clean: bool,
        will: tuple[str, QoS, bool] | None,
        keep_alive: int,
    ) -> None:
        if self.state(slot) not in (None, ConnectionState.CLOSED):
            return
        packet_will = (
            None if will is None else Will(will[0], b"will " + slot.encode(), will[1], will[2])
        )
        self.model.apply(
            Send(slot, Connect(ProtocolLevel.MQTT_3_1_1, client_id, clean, keep_alive, packet_will))
        )
        self.settle()

    @rule(slot=slots, topic_filter=st.sampled_from(FILTERS), qos=qos)
    def subscribe(self, slot: str, topic_filter: str, qos: QoS) -> None:
        if self.connected(slot):
            self.model.apply(
                Send(slot, Subscribe(self.next_id(slot), (Subscription(topic_filter, qos),)))
            )
            self.settle()

    @rule(slot=slots, topic_filter=st.sampled_from(FILTERS))
    def unsubscribe(self, slot: str, topic_filter: str) -> None:
        if self.connected(slot):
            self.model.apply(Send(slot, Unsubscribe(self.next_id(slot), (topic_filter,))))
            self.settle()

    @rule(
        slot=slots,
        topic=st.sampled_from(TOPICS),
        qos=qos,
        retain=st.booleans(),
        payload=st.sampled_from([b"", b"x", b"y"]),
    )
    def publish(self, slot: str, topic: str, qos: QoS, retain: bool, payload: bytes) -> None:
        if self.connected(slot):
            packet_id = self.next_id(slot) if qos else None
            self.model.apply(Send(slot, Publish(topic, payload, qos, retain, False, packet_id)))
            self.settle()

    @rule(slot=slots, data=st.data())
    def client_acknowledges(self, slot: str, data: st.DataObject) -> None:
        """The client sends PUBACK/PUBREC/PUBCOMP for deliveries, PUBREL for its own QoS 2."""
        if not self.connected(slot):
            return
        session = self.model.sessions[self.model.connections[slot].session_key or ""]
        acks = []
        for flow in session.flows.outgoing.values():
            ack = {
                SenderState.AWAITING_PUBACK: PubAck,
                SenderState.AWAITING_PUBREC: PubRec,
                SenderState.AWAITING_PUBCOMP: PubComp,
            }.get(SenderState(flow.state))
            if ack is not None:
                acks.append(ack(flow.packet_id))
        acks += [
            PubRel(f.packet_id)
            for f in session.flows.incoming.values()
            if f.state == ReceiverState.AWAITING_PUBREL
        ]
        if acks:
            self.model.apply(Send(slot, data.draw(st.sampled_from(acks))))
            self.settle()

    @rule(slot=slots)
    def ping(self, slot: str) -> None:
        if self.connected(slot):
            self.model.apply(Send(slot, PingReq()))
            self.settle()

    @rule(slot=slots)
    def disconnect(self, slot: str) -> None:
        if self.connected(slot):
            self.model.apply(Send(slot, Disconnect()))
            self.settle()

    @rule(slot=slots)
    def drop(self, slot: str) -> None:
        if self.state(slot) not in (None, ConnectionState.CLOSED):
            self.model.apply(Drop(slot))
            self.settle()

    @rule(slot=slots)
    def malformed(self, slot: str) -> None:
        if self.connected(slot):
            self.model.apply(SendMalformed(slot))
            self.settle()

    @rule(seconds=st.sampled_from([1.0, 4.0, 9.0]))
    def time_passes(self, seconds: float) -> None:
        self.model.apply(TimePasses(seconds))
        self.settle()

    @precondition(lambda self: any(self.model.connections))
    @rule(data=st.data())
    def server_takes_an_allowed_choice(self, data: st.DataObject) -> None:
        """Any allowed packet (retries, extra copies, optional closes) is accepted."""
        slot = data.draw(st.sampled_from(sorted(self.model.connections)))
        allowed = self.model.allowed(slot)
        if allowed:
            self.model.observe(slot, data.draw(st.sampled_from(allowed)))
            self.settle()

    # ---------------------------------------------------------- invariants

    @invariant()
    def model_invariants_hold(self) -> None:
        assert self.model.check_invariants() == []


ModelMachine.TestCase.settings = ModelMachine.TestCase.settings  # profile from conftest
TestModelMachine = ModelMachine.TestCase
