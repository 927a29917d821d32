"""The state machine: several clients drive a real broker, the model judges it.

Theory of operation. Each example talks to one broker (a ``Target`` gives the
address) through five client slots (``s0``-``s4``, one TCP connection each at
a time) and four client ids, so that sessions outlive connections and one id
can take over another's connection. Most rules are one client action (connect,
subscribe, publish, acknowledge or withhold, ping, leave with or without
DISCONNECT, commit a protocol violation, let time pass); four are short client
stories that single actions reach only by chance (``stories.ClientStories``:
``overlapping_subscriptions``, ``away_while_others_publish``,
``falls_silent_with_a_will``, ``retained_round_trip``). After every action
the driver waits for quiescence and judges every packet and close with the
model, then insists on whatever the model says is still owed (``driver.Driver``).

Hypothesis picks among the enabled rules uniformly (with swarm testing turning
some off per example), so the rules are grouped by what they do to the number
of live connections: one rule closes by leaving, one by misbehaving, so that
connections are not closed far more often than opened.

Bundles hold what an example fixes up front (client ids, topic names). What
depends on the broker's answers and their timing (which slots are connected,
which acknowledgements a client owes) is chosen through ``choose``, not from a
Bundle: Hypothesis replays an example by its choices and requires a replay to
make the same kinds of choices, which a Bundle whose length follows the
broker's timing cannot promise (Hypothesis stops with FlakyStrategyDefinition).

Names are readable and isolated: topics and filters are written with ``~``
for the example's unique prefix (``~/a/b`` is ``<prefix>/a/b``, ``$~/a`` a
``$`` topic of the example), client ids ``c0``-``c3`` become
``<prefix>-c0``... The machine never learns which broker it talks to. How long
it runs (budgets, the shrink limit) is ``settings``'.

Nothing here imports pytest: ``mqttref check`` (through
``mqttref.oracle.stateful.explore``) runs the same machine against other brokers.
"""

from __future__ import annotations

import itertools
import secrets
import socket
import time
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

import attrs
from hypothesis import seed as use_seed
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import (
    RuleBasedStateMachine,
    get_state_machine_test,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    Connect,
    Disconnect,
    Packet,
    PingReq,
    ProtocolLevel,
    Publish,
    QoS,
    Subscribe,
    Subscription,
    Unsubscribe,
    Will,
)
from mqttref.model import BrokerModel, Send
from mqttref.model.records import Session
from mqttref.oracle.stateful.adapters import ABUSE_NAMES, abuses, encode_client_packet
from mqttref.oracle.stateful.driver import Disagreement, Driver, Flight
from mqttref.oracle.stateful.settings import shrinking_limited_to
from mqttref.oracle.stateful.stories import (
    CLIENT_IDS,
    TOPICS,
    WILDCARD_FILTERS,
    ClientStories,
    StoryMachine,
    clean_flags,
    client_ids,
    qos_levels,
    topics,
)
from mqttref.oracle.stateful.target import Target

SLOTS = ("s0", "s1", "s2", "s3", "s4")
KEEP_ALIVES = ("none", "short", "long")
"""No keep alive, the target's short one (meant to expire), or a long one."""
LONG_KEEP_ALIVE = 120
CHOICES = 2520
"""Range of ``choose``'s integer: a multiple of every option count up to 10."""
T = TypeVar("T")
SECOND_CONNECTS = ("second CONNECT, clean session 0", "second CONNECT, clean session 1")
VIOLATIONS = (*ABUSE_NAMES, *SECOND_CONNECTS)
"""Every way the machine breaks the protocol on a connected slot: one rule for all."""

wills = st.none() | st.tuples(st.sampled_from(TOPICS), qos_levels, st.booleans())
ConnectOptions = tuple[bool, str, tuple[str, QoS, bool] | None]

_RUN = secrets.token_hex(2)
_EXAMPLES = itertools.count()


class Coverage:
    """Statement ids the model's transitions cited, across every example run."""

    refs: ClassVar[set[str]] = set()


class BrokerMachine(ClientStories, RuleBasedStateMachine):
    """Clients against one broker, judged by ``BrokerModel``; the client stories
    (``ClientStories``) are rules of it too."""

    target: ClassVar[Target]
    discard_model_crashes: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        host, port = self.target.start_example()
        self.prefix = f"x{_RUN}{next(_EXAMPLES)}"
        timing = self.target.timing
        self.model = BrokerModel(
            max_inflight=self.target.max_inflight, keep_alive_grace=timing.grace
        )
        self.driver = Driver(
            host, port, timing, self.model, discard_model_crashes=self.discard_model_crashes
        )
        self.driver.own_prefix = self.prefix
        self.last_connect: dict[str, Connect] = {}
        """Client id (short) -> its last CONNECT, for ``reconnect``."""
        self.retained_topics: set[str] = set()
        self.messages = 0

    # ------------------------------------------------------------------ names

    def full(self, name: str) -> str:
        """A topic or filter with the example's prefix in place of ``~``."""
        return name.replace("~", self.prefix)

    def full_client_id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def connected_slots(self) -> list[str]:
        return [s for s in SLOTS if self.driver.connected(s)]

    def free_slots(self) -> list[str]:
        return [s for s in SLOTS if self.driver.free(s)]

    def step_done(self) -> None:
        """Settle: judge everything the broker said, insist on what it owes."""
        self.driver.settle()
        Coverage.refs |= self.model.refs_hit

    def choose(self, data: st.DataObject, options: Sequence[T], label: str) -> T:
        """One of ``options``, which depend on what the broker did so far.

        Hypothesis replays and shrinks by the choices an example made, and insists
        that a replay draws the same kinds of choices: ``sampled_from`` a list whose
        length depends on the broker's timing would break that (FlakyStrategyDefinition).
        So the choice is an integer from a fixed range, mapped onto the options, and a
        rule makes all its choices before it looks at whether it can go on."""
        return data.draw(
            st.integers(0, CHOICES - 1).map(lambda i: options[i % len(options)]), label=label
        )

    def prepare(self) -> None:
        self.driver.poll(0)
        self.driver.keep_alive_pings()

    # ----------------------------------------------------------- initialisers

    @initialize(target=client_ids)
    def four_client_ids(self) -> Any:
        return multiple(*CLIENT_IDS)

    @initialize(target=topics)
    def topic_names(self) -> Any:
        return multiple(*TOPICS)

    # ------------------------------------------------------------ connections

    @initialize(
        first=st.tuples(clean_flags, st.sampled_from(KEEP_ALIVES), wills),
        second=st.tuples(clean_flags, st.sampled_from(KEEP_ALIVES), wills),
        listens=st.tuples(st.sampled_from(TOPICS + WILDCARD_FILTERS), qos_levels),
        also=st.none() | st.tuples(st.sampled_from(TOPICS + WILDCARD_FILTERS), qos_levels),
    )
    def two_clients_connect(
        self,
        first: ConnectOptions,
        second: ConnectOptions,
        listens: tuple[str, QoS],
        also: tuple[str, QoS] | None,
    ) -> Any:
        """Every example starts with c0 on s0 and c1 on s1 connected, c0 subscribed
        and c1 perhaps (most interesting sequences need a listener)."""
        self.send_connect("s0", "c0", *first)
        self.send_connect("s1", "c1", *second)
        self.driver.settle()
        for slot, client_id, request in (("s0", "c0", listens), ("s1", "c1", also)):
            if request is not None and self.driver.connected(slot):
                topic_filter, qos = request
                packet_id = self.driver.next_packet_id(self.full_client_id(client_id))
                subscription = Subscription(self.full(topic_filter), qos)
                self.driver.send(slot, Subscribe(packet_id, (subscription,)))
        return self.step_done()

    @precondition(lambda self: self.free_slots())
    @rule(
        data=st.data(),
        client_id=client_ids,
        clean=clean_flags,
        keep_alive=st.sampled_from(KEEP_ALIVES),
        will=wills,
    )
    def connect(
        self,
        data: st.DataObject,
        client_id: str,
        clean: bool,
        keep_alive: str,
        will: tuple[str, QoS, bool] | None,
    ) -> Any:
        """CONNECT on a free slot; CONNACK must come [MQTT-3.2.0-1]."""
        slot = self.choose(data, self.free_slots(), "slot")
        self.send_connect(slot, client_id, clean, keep_alive, will)
        return self.step_done()

    def send_connect(
        self,
        slot: str,
        client_id: str,
        clean: bool,
        keep_alive: str,
        will: tuple[str, QoS, bool] | None,
    ) -> None:
        seconds = {
            "none": 0,
            "short": self.target.timing.short_keep_alive,
            "long": LONG_KEEP_ALIVE,
        }[keep_alive]
        packet_will = None
        if will is not None:
            topic, qos, retain = will
            self.messages += 1  # unique: two wills of one client are told apart
            payload = f"will of {client_id} #{self.messages}".encode()
            packet_will = Will(self.full(topic), payload, qos, retain)
            if retain:
                self.retained_topics.add(self.full(topic))
        packet = Connect(
            ProtocolLevel.MQTT_3_1_1, self.full_client_id(client_id), clean, seconds, packet_will
        )
        self.last_connect[client_id] = packet
        self.prepare()
        self.driver.send(slot, packet)

    @precondition(lambda self: self.last_connect and self.free_slots())
    @rule(data=st.data(), clean=clean_flags)
    def reconnect(self, data: st.DataObject, clean: bool) -> Any:
        """A client that connected before comes back, persistent or clean."""
        slot = self.choose(data, self.free_slots(), "slot")
        client_id = self.choose(data, sorted(self.last_connect), "client_id")
        self.prepare()
        self.come_back(slot, client_id, clean=clean)
        return self.step_done()

    @precondition(lambda self: self.connected_slots())
    @rule(data=st.data(), graceful=st.booleans())
    def leave(self, data: st.DataObject, graceful: bool) -> Any:
        """The client goes: with DISCONNECT the will is discarded [MQTT-3.14.4-3] and
        the client closes [MQTT-3.14.4-1]; a socket closed without it sends the will
        [MQTT-3.1.2-8]. (One rule for both, so that closing a connection is no likelier
        than opening one.)"""
        slot = self.choose(data, self.connected_slots(), "slot")
        self.prepare()
        if graceful and self.driver.connected(slot):
            self.driver.send(slot, Disconnect())
        self.driver.drop(slot)
        return self.step_done()

    @precondition(lambda self: self.connected_slots())
    @rule(data=st.data())
    def ping(self, data: st.DataObject) -> Any:
        slot = self.choose(data, self.connected_slots(), "slot")
        self.prepare()
        if self.driver.connected(slot):
            self.driver.send(slot, PingReq())
        return self.step_done()

    @precondition(lambda self: self.connected_slots())
    @rule(seconds=st.sampled_from([0.2, 1.6]))
    def time_passes(self, seconds: float) -> Any:
        """Nobody sends anything: keep alives may expire, retries may come."""
        self.driver.wait(seconds * self.target.timing.multiplier)
        return self.step_done()

    # --------------------------------------------------------------- messages

    @precondition(lambda self: self.connected_slots())
    @rule(
        data=st.data(),
        requests=st.lists(
            st.tuples(topics | st.sampled_from(WILDCARD_FILTERS), qos_levels),
            min_size=1,
            max_size=2,
        ),
    )
    def subscribe(self, data: st.DataObject, requests: list[tuple[str, QoS]]) -> Any:
        slot = self.choose(data, self.connected_slots(), "slot")
        self.prepare()
        client_id = self.driver.client_id(slot)
        if self.driver.connected(slot) and client_id is not None:
            subscriptions = tuple(Subscription(self.full(f), q) for f, q in requests)
            self.driver.send(
                slot, Subscribe(self.driver.next_packet_id(client_id), subscriptions)
            )
        return self.step_done()

    @precondition(lambda self: self.connected_slots())
    @rule(data=st.data(), known=st.booleans())
    def unsubscribe(self, data: st.DataObject, known: bool) -> Any:
        """UNSUBSCRIBE one of the session's filters (or, with ``known=False``, any)."""
        slot = self.choose(data, self.connected_slots(), "slot")
        subscribed = sorted(self.subscriptions_of(slot))
        if known and subscribed:
            topic_filter = self.choose(data, subscribed, "filter")
        else:
            names = (*TOPICS, *WILDCARD_FILTERS)
            topic_filter = self.full(self.choose(data, names, "filter"))
        self.prepare()
        client_id = self.driver.client_id(slot)
        if self.driver.connected(slot) and client_id is not None:
            self.driver.send(
                slot, Unsubscribe(self.driver.next_packet_id(client_id), (topic_filter,))
            )
        return self.step_done()

    def session_of(self, slot: str) -> Session | None:
        conn = self.model.connections.get(slot)
        return self.model.sessions.get(conn.session_key or "") if conn else None

    def subscriptions_of(self, slot: str) -> list[str]:
        session = self.session_of(slot)
        return list(session.subscriptions) if session is not None else []

    @precondition(lambda self: self.connected_slots())
    @rule(
        data=st.data(),
        topic=topics,
        qos=qos_levels,
        count=st.integers(min_value=2, max_value=3),
    )
    def publish_burst(self, data: st.DataObject, topic: str, qos: QoS, count: int) -> Any:
        """Several messages on one topic at once, without waiting in between: their
        order must hold for every subscriber [MQTT-4.6.0-6], online or queued."""
        slot = self.choose(data, self.connected_slots(), "slot")
        self.prepare()
        for _ in range(count):
            self.send_publish(slot, topic, qos)
        return self.step_done()

    def send_publish(
        self, slot: str, topic: str, qos: QoS, *, retain: bool = False, empty: bool = False
    ) -> None:
        """One PUBLISH (payload ``m<n>``, unique in the example, or empty) from ``slot``."""
        client_id = self.driver.client_id(slot)
        if not (self.driver.connected(slot) and client_id is not None):
            return
        packet_id = self.driver.next_packet_id(client_id) if qos else None
        if retain:
            self.retained_topics.add(self.full(topic))
        self.messages += 1
        payload = b"" if empty else f"m{self.messages}".encode()
        self.driver.send(slot, Publish(self.full(topic), payload, qos, retain, False, packet_id))

    def come_back(self, slot: str, client_id: str, *, clean: bool) -> None:
        """CONNECT again as ``client_id`` did last time (a fresh will payload)."""
        packet = self.last_connect[client_id]
        will = packet.will
        if will is not None:
            self.messages += 1
            will = attrs.evolve(will, payload=f"will of {client_id} #{self.messages}".encode())
        self.driver.send(
            slot, Connect(packet.protocol_level, packet.client_id, clean, packet.keep_alive, will)
        )

    @precondition(lambda self: self.connected_slots())
    @rule(
        data=st.data(),
        topic=topics,
        qos=qos_levels,
        retain=st.booleans(),
        empty=st.booleans(),
    )
    def publish(
        self, data: st.DataObject, topic: str, qos: QoS, retain: bool, empty: bool
    ) -> Any:
        """PUBLISH a message (payload ``m<n>``, unique in the example, or empty)."""
        slot = self.choose(data, self.connected_slots(), "slot")
        self.prepare()
        self.send_publish(slot, topic, qos, retain=retain, empty=empty)
        return self.step_done()

    @precondition(lambda self: self.connected_slots())
    @rule(data=st.data())
    def acknowledge(self, data: st.DataObject) -> Any:
        """Send one owed PUBACK, PUBREC, PUBREL or PUBCOMP; the others stay withheld
        (also across a reconnect: they are owed again when the client is back).

        Enabled whenever a client is connected, not only when one owes something:
        what is owed follows the broker's timing (a message expiring, or a session,
        near its interval; which member of a group gets a message), and a precondition
        that reads it makes a replay draw other rules (see ``choose``). With nothing
        owed the step sends nothing and says so in the transcript."""
        owed: list[Flight | None] = [*self.driver.owed_by_connected()]
        flight = self.choose(data, owed or [None], "flight")
        self.prepare()
        if flight is None:
            self.driver.note("(no acknowledgement chosen: nothing sent)")
        else:
            self.driver.acknowledge(flight)
        return self.step_done()

    @precondition(lambda self: self.connected_slots())
    @rule(data=st.data())
    def acknowledge_everything(self, data: st.DataObject) -> Any:
        """A well-behaved client catches up on every acknowledgement it owes."""
        slot = self.choose(data, self.connected_slots(), "slot")
        self.prepare()
        for flight in self.driver.acks_owed_by(slot):
            self.driver.acknowledge(flight)
        return self.step_done()

    # -------------------------------------------------------------- violations

    @precondition(lambda self: self.connected_slots())
    @rule(data=st.data(), name=st.sampled_from(VIOLATIONS), topic=topics)
    def protocol_violation(self, data: st.DataObject, name: str, topic: str) -> Any:
        """A malformed or forbidden packet: the server must close [MQTT-4.8.0-1]. A
        second CONNECT is one too (D1) [MQTT-3.1.0-2]: the server acts on nothing in it."""
        slot = self.choose(data, self.connected_slots(), "slot")
        self.prepare()
        client_id = self.driver.client_id(slot)
        if self.driver.connected(slot) and client_id is not None:
            if name in SECOND_CONNECTS:
                clean = name == SECOND_CONNECTS[1]
                self.driver.send(slot, Connect(ProtocolLevel.MQTT_3_1_1, client_id, clean, 0))
            else:
                abuse = abuses(self.full(topic), client_id)[name]
                self.driver.act(abuse.event(slot), abuse.data)
        return self.step_done()

    @precondition(lambda self: self.free_slots() and self.connected_slots())
    @rule(
        data=st.data(),
        packet=st.sampled_from(["PINGREQ", "PUBLISH", "SUBSCRIBE", "DISCONNECT"]),
    )
    def packet_before_connect(self, data: st.DataObject, packet: str) -> Any:
        """Anything but CONNECT first: the server must close [MQTT-3.1.0-1] (D2)."""
        slot = self.choose(data, self.free_slots(), "slot")
        firsts: dict[str, Packet] = {
            "PINGREQ": PingReq(),
            "PUBLISH": Publish(self.full("~/a"), b"early"),
            "SUBSCRIBE": Subscribe(1, (Subscription(self.full("~/#"), QoS.AT_MOST_ONCE),)),
            "DISCONNECT": Disconnect(),
        }
        first = firsts[packet]
        self.prepare()
        self.driver.open_without_connect(slot)
        self.driver.act(Send(slot, first), encode_client_packet(first))
        return self.step_done()

    # -------------------------------------------------------------- invariants

    @invariant()
    def model_invariants_hold(self) -> None:
        """The model's own invariants, over what this broker did (issue 4)."""
        broken = self.model.check_invariants()
        if broken:
            raise self.driver.disagree("; ".join(broken), ())

    def teardown(self) -> None:
        try:
            self.driver.close()
            cleanup(self.driver.host, self.driver.port, self)
        finally:
            self.target.end_example()


_TELLS_STORIES: type[StoryMachine] = BrokerMachine
"""The stories know the machine only as a ``StoryMachine``: mypy checks that it is one."""


def cleanup(host: str, port: int, machine: BrokerMachine) -> None:
    """Leave a shared broker as found: no retained message, no persistent session.

    Sessions first: taking over a client id that is still connected publishes its will,
    which may be retained, so the retained topics are cleared only after each takeover
    was answered (CONNACK), and the clearing client waits for its PINGRESP, by when the
    broker has handled the empty retained messages before it."""
    level = ProtocolLevel.MQTT_3_1_1
    try:
        for connect in machine.last_connect.values():
            with socket.create_connection((host, port), timeout=2) as sock:
                sock.sendall(encode(Connect(level, connect.client_id, True, 0), level))
                _read_some(sock)  # the CONNACK: the old connection and its will are done
                sock.sendall(encode(Disconnect(), level))
        with socket.create_connection((host, port), timeout=2) as sock:
            data = encode(Connect(level, f"{machine.prefix}-cleanup", True, 0), level)
            for topic in sorted(machine.retained_topics):
                data += encode(Publish(topic, b"", QoS.AT_MOST_ONCE, True), level)
            sock.sendall(data + encode(PingReq(), level))
            _read_some(sock, until=b"\xd0\x00")
            sock.sendall(encode(Disconnect(), level))
    except OSError:
        pass  # the broker went away (the in-process one stops right after)


def _read_some(sock: socket.socket, until: bytes = b"", seconds: float = 2.0) -> None:
    """Read until ``until`` arrives (any bytes when empty), the socket closes, or
    ``seconds`` pass: cleanup waits for the broker, never judges it."""
    deadline = time.monotonic() + seconds
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return
        if not chunk:
            return
        received += chunk
        if until in received:
            return


def machine_for(target: Target, *, discard_model_crashes: bool = False) -> type[BrokerMachine]:
    """A ``BrokerMachine`` bound to ``target``."""
    return type(
        "BrokerMachine",
        (BrokerMachine,),
        {"target": target, "discard_model_crashes": discard_model_crashes},
    )


# ---------------------------------------------------------------- running


@attrs.frozen
class Finding:
    """A disagreement the machine found: the verdict and the program that found it."""

    error: BaseException
    program: str
    seconds: float

    @property
    def verdict(self) -> str:
        return str(self.error).split("\nTranscript", 1)[0]

    def report(self) -> str:
        return f"{self.verdict}\n{self.program}\n{self.error}"


def hunt(
    machine: type[BrokerMachine], how: settings, *, shrink_seconds: float = 20.0,
    seed: int | None = None,
) -> Finding | None:
    """Run the machine until it finds a disagreement (or its budget is spent). With
    ``seed`` (and ``how`` not derandomized) the programs are those of that seed, so
    that one budget can be spread over several processes."""
    started = time.monotonic()
    with shrinking_limited_to(shrink_seconds):
        try:
            if seed is None:
                run_state_machine_as_test(machine, settings=how)
            else:
                use_seed(seed)(get_state_machine_test(machine, settings=how))()
        except AssertionError as error:
            program = "\n".join(getattr(error, "__notes__", []))
            return Finding(error, program, time.monotonic() - started)
        except ExceptionGroup as group:  # Hypothesis found several distinct failures
            first = group.exceptions[0]
            notes = [*getattr(group, "__notes__", []), *getattr(first, "__notes__", [])]
            if isinstance(first, AssertionError):
                return Finding(first, "\n".join(notes), time.monotonic() - started)
            raise
        except Flaky as error:
            # A disagreement was observed, then its replay took another path (the broker's
            # timing reached a precondition): it was seen all the same, so it is the
            # finding, with the transcript it was seen in; without one, the hunt crashed.
            seen = _observed_before(error)
            if seen is None:
                raise
            return Finding(seen, "(observed once; the replay took another path)",
                           time.monotonic() - started)
    return None


def _observed_before(error: BaseException) -> AssertionError | None:
    """The first AssertionError in ``error``'s chain of causes and contexts."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AssertionError):
            return current
        current = current.__cause__ or current.__context__
    return None


__all__ = [
    "BrokerMachine",
    "Coverage",
    "Disagreement",
    "Finding",
    "hunt",
    "machine_for",
]
