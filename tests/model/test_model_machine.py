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

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mqttref.impl.codec.packets import (
    Connect,
    Disconnect,
    Packet,
    PingReq,
    ProtocolLevel,
    PubAck,
    Publish,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Unsubscribe,
    Will,
)
from mqttref.model import (
    BrokerModel,
    ClientEvent,
    Closed,
    Drop,
    Observation,
    Open,
    Send,
    SendMalformed,
    TimePasses,
    Violation,
)
from mqttref.model.connection import ConnectionState
from mqttref.model.session import SessionState
from tests import strategies

SLOTS = ("s0", "s1", "s2", "s3", "s4")
CLIENT_IDS = ("A", "B", "C", "D")
TOPICS = ("a", "a/b", "a/c", "b", "$SYS/x")
FILTERS = ("a", "a/+", "a/#", "#", "+", "b", "$SYS/#")

slots = st.sampled_from(SLOTS)
qos = st.sampled_from([QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE])


class ModelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model = BrokerModel(max_inflight=2)
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

    def connected_slots(self) -> list[str]:
        return [s for s in SLOTS if self.connected(s)]

    def free(self, slot: str) -> bool:
        """No connection is open in ``slot``: a CONNECT may start one."""
        return self.state(slot) in (None, ConnectionState.CLOSED)

    def pick(self, data: st.DataObject, among: list[str] | None = None) -> str:
        """A slot drawn from ``among``, the connected ones by default."""
        choices = self.connected_slots() if among is None else among
        return data.draw(st.sampled_from(choices), label="client")

    def any_connection(self, data: st.DataObject) -> str:
        """A slot with a connection in any state, open or closed."""
        return self.pick(data, sorted(self.model.connections))

    def send(self, slot: str, packet: Packet) -> None:
        """The client in ``slot`` sends ``packet``; the server then sends what is owed."""
        self.model.apply(Send(slot, packet))
        self.settle()

    def judge(self, slot: str, observation: Observation) -> None:
        """Whatever a server sends is judged: accepted, or a ``Violation`` that changes
        nothing."""
        before = self.snapshot()
        try:
            self.model.observe(slot, observation)
        except Violation:
            assert self.snapshot() == before
        self.settle()

    def settle(self) -> None:
        """Be a server that sends exactly what is owed, until nothing is."""
        careful = False
        for _ in range(200):
            owed = self.model.obligations()
            if not owed:
                break
            first = owed[0]
            before = owed_count(self.model, first.client, first.what)
            choice = self.answer(first.client, first.what, careful=careful)
            self.model.observe(first.client, choice)
            # An allowed packet that discharged nothing (the likely one of ``answer``):
            # from now on each one is tried on a copy first.
            careful = careful or owed_count(self.model, first.client, first.what) >= before
        assert self.model.check_quiescent() == []

    def answer(self, slot: str, what: str, *, careful: bool = True) -> Observation:
        """An allowed observation that discharges an obligation of ``slot``. Not
        ``careful``: the first allowed packet of the owed kind (and topic), without
        trying it on a copy of the model (the copies cost most of a run's time)."""
        allowed = self.model.allowed(slot)
        assert allowed, f"{slot} owes {what} but nothing is allowed"
        if what.startswith("close"):
            return Closed()
        before = owed_count(self.model, slot, what)
        ranked = sorted(allowed, key=lambda o: (isinstance(o, Closed), getattr(o, "dup", False)))
        if not careful:
            kind = what.split(" ", 1)[0]
            for candidate in ranked:
                if type(candidate).__name__.upper() != kind or getattr(candidate, "dup", False):
                    continue
                if not isinstance(candidate, Publish) or repr(candidate.topic) in what:
                    return candidate
        for candidate in ranked:
            trial = copy.deepcopy(self.model)
            trial.observe(slot, candidate)
            if owed_count(trial, slot, what) < before:
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
        """A new connection (a takeover when the client id is connected elsewhere)."""
        if not self.free(slot):
            return
        packet_will = None if will is None else Will(will[0], b"will " + slot.encode(), *will[1:])
        connect = Connect(ProtocolLevel.MQTT_3_1_1, client_id, clean, keep_alive, packet_will)
        self.send(slot, connect)

    @rule(slot=slots)
    def connect_refused_or_early_packet(self, slot: str) -> None:
        """An empty client id with CleanSession=0, or a PINGREQ before CONNECT."""
        if not self.free(slot):
            return
        if self.packet_ids.get(slot, 0) % 2:
            self.model.apply(Send(slot, Connect(ProtocolLevel.MQTT_3_1_1, "", False)))
        else:
            self.model.apply(Open(slot))
            self.model.apply(Send(slot, PingReq()))
        self.next_id(slot)
        self.settle()

    @precondition(lambda self: self.connected_slots())
    @rule(
        data=st.data(),
        requests=st.lists(st.tuples(st.sampled_from(FILTERS), qos), min_size=1, max_size=3),
    )
    def subscribe(self, data: st.DataObject, requests: list[tuple[str, QoS]]) -> None:
        """One SUBSCRIBE, possibly naming a filter twice (two in a row [MQTT-3.8.4-4])."""
        slot = self.pick(data)
        packet = Subscribe(self.next_id(slot), tuple(Subscription(f, q) for f, q in requests))
        self.send(slot, packet)

    @precondition(lambda self: self.connected_slots())
    @rule(data=st.data(), topic_filter=st.sampled_from(FILTERS))
    def unsubscribe(self, data: st.DataObject, topic_filter: str) -> None:
        slot = self.pick(data)
        self.send(slot, Unsubscribe(self.next_id(slot), (topic_filter,)))

    @precondition(lambda self: self.connected_slots())
    @rule(
        data=st.data(),
        topic=st.sampled_from(TOPICS),
        qos=qos,
        retain=st.booleans(),
        payload=st.sampled_from([b"", b"x", b"y"]),
    )
    def publish(
        self, data: st.DataObject, topic: str, qos: QoS, retain: bool, payload: bytes
    ) -> None:
        slot = self.pick(data)
        packet_id = self.next_id(slot) if qos else None
        self.send(slot, Publish(topic, payload, qos, retain, False, packet_id))

    @precondition(lambda self: any(self.model.client_acknowledgements(s) for s in SLOTS))
    @rule(data=st.data())
    def client_acknowledges(self, data: st.DataObject) -> None:
        """The client sends PUBACK/PUBREC/PUBCOMP for deliveries, PUBREL for its own QoS 2."""
        choices = [s for s in SLOTS if self.model.client_acknowledgements(s)]
        slot = self.pick(data, choices)
        ack = data.draw(st.sampled_from(self.model.client_acknowledgements(slot)), label="ack")
        self.send(slot, ack)

    @rule()
    def every_accepted_message_arrives_eventually(self) -> None:
        """Reconnect every offline persistent session and acknowledge everything:
        each QoS 1/2 message the server accepted for a matching persistent (or
        connected) subscriber arrives [MQTT-3.1.2-5] [MQTT-4.4.0-1] [MQTT-4.5.0-1]."""
        for client_id, session in sorted(self.model.sessions.items()):
            if session.state == SessionState.PERSISTENT_DISCONNECTED:
                slot = f"resume-{client_id}"
                if not self.free(slot):
                    continue
                self.model.apply(Send(slot, Connect(ProtocolLevel.MQTT_3_1_1, client_id, False)))
        for _ in range(100):
            self.settle()
            acks = [
                (s, a)
                for s in self.model.connections
                for a in self.model.client_acknowledgements(s)
            ]
            if not acks:
                break
            for slot, ack in acks:
                self.model.apply(Send(slot, ack))
        delivered = {id(d) for _, _, d, _ in self.model.delivered}
        for client_id, generation, delivery in self.model.owed:
            session = self.model.sessions[client_id]
            if session.generation != generation or not delivery.filters:
                continue  # a clean session discarded it, or the client unsubscribed
            if (client_id, delivery.message.seq) in self.model.expired:
                continue  # its Message Expiry Interval passed first [MQTT-3.3.2-5]
            assert id(delivery) in delivered, (client_id, delivery.message)

    @precondition(lambda self: self.connected_slots())
    @rule(data=st.data(), what=st.sampled_from(["ping", "disconnect", "malformed", "connect"]))
    def client_sends_control_packet(self, data: st.DataObject, what: str) -> None:
        """PINGREQ, DISCONNECT, a malformed packet or a second CONNECT."""
        slot = self.pick(data)
        events: dict[str, ClientEvent] = {
            "ping": Send(slot, PingReq()),
            "disconnect": Send(slot, Disconnect()),
            "malformed": SendMalformed(slot),
            "connect": Send(slot, Connect(ProtocolLevel.MQTT_3_1_1, "again")),
        }
        self.model.apply(events[what])
        self.settle()

    @precondition(lambda self: len(self.connected_slots()) >= 2)
    @rule(data=st.data(), topic=st.sampled_from(TOPICS), qos=qos)
    def publish_while_a_subscriber_drops(self, data: st.DataObject, topic: str, qos: QoS) -> None:
        """A subscriber's connection is lost before the server sent what it owes."""
        publisher, subscriber = data.draw(
            st.lists(st.sampled_from(self.connected_slots()), min_size=2, max_size=2, unique=True),
            label="publisher, subscriber",
        )
        packet_id = self.next_id(publisher) if qos else None
        self.model.apply(Send(publisher, Publish(topic, b"z", qos, False, False, packet_id)))
        self.model.apply(Drop(subscriber))
        self.settle()

    @rule(slot=slots)
    def drop(self, slot: str) -> None:
        if not self.free(slot):
            self.model.apply(Drop(slot))
            self.settle()

    @rule(seconds=st.sampled_from([1.0, 4.0, 9.0]))
    def time_passes(self, seconds: float) -> None:
        self.model.apply(TimePasses(seconds))
        self.settle()

    @precondition(lambda self: any(self.model.allowed(s) for s in self.model.connections))
    @rule(data=st.data())
    def server_takes_an_allowed_choice(self, data: st.DataObject) -> None:
        """Any allowed packet (retries, extra copies, optional closes) is accepted."""
        choices = [s for s in sorted(self.model.connections) if self.model.allowed(s)]
        slot = self.pick(data, choices)
        observation = data.draw(st.sampled_from(self.model.allowed(slot)), label="observed")
        self.model.observe(slot, observation)
        self.settle()

    @precondition(lambda self: any(self.model.connections))
    @rule(
        data=st.data(),
        bogus=st.sampled_from(
            [
                Publish("never/matched", b"?", QoS.AT_MOST_ONCE),
                Publish("a", b"x", QoS.AT_LEAST_ONCE, False, True, 999),
                PubRel(999),
                PubAck(999),
                SubAck(999, (0,)),
                Closed(),
            ]
        ),
    )
    def a_rejected_observation_changes_nothing(
        self, data: st.DataObject, bogus: Observation
    ) -> None:
        self.judge(self.any_connection(data), bogus)

    def snapshot(self) -> tuple[object, ...]:
        return (
            [repr(o) for o in self.model.obligations()],
            {s: [repr(o) for o in self.model.allowed(s)] for s in self.model.connections},
            len(self.model.delivered),
            sorted(self.model.refs_hit),
        )

    @precondition(lambda self: any(self.model.connections))
    @rule(data=st.data(), packet=strategies.packets(ProtocolLevel.MQTT_3_1_1))
    def the_server_sends_any_packet(self, data: st.DataObject, packet: Packet) -> None:
        """Whatever a server sends is judged: accepted, or a ``Violation``; never a crash."""
        self.judge(self.any_connection(data), packet)

    @precondition(lambda self: self.connected_slots())
    @rule(data=st.data(), packet=strategies.client_packets(ProtocolLevel.MQTT_3_1_1))
    def a_client_sends_any_packet(self, data: st.DataObject, packet: Packet) -> None:
        """Any well-typed client packet is an event the model can take."""
        self.send(self.pick(data), packet)

    # ---------------------------------------------------------- invariants

    @invariant()
    def model_invariants_hold(self) -> None:
        assert self.model.check_invariants() == []


def owed_count(model: BrokerModel, slot: str, what: str) -> int:
    """How many obligations of ``slot`` read ``what``."""
    return sum(1 for o in model.obligations(slot) if o.what == what)


# The profile (conftest.py) sets the number of examples; runs are cheap, so longer ones.
ModelMachine.TestCase.settings = settings(stateful_step_count=60)
TestModelMachine = ModelMachine.TestCase
