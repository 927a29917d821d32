"""Hypothesis drives the real client against a real broker; the model's client rules judge it.

The client under test connects through a TCP proxy that the machine can gag
(withhold one direction) or cut, keeps a persistent session, reconnects on
its own, and subscribes to ``st/#`` at QoS 2, so its own messages and those
of a second client come back to it: both directions of QoS 0, 1 and 2 are
exercised across connection losses.

The judge is ``mqttref.model.client.ClientModel``: the model's QoS 1/2 sender
and receiver charts for one side plus the client's share of the connection
rules (CONNECT first and once per connection [MQTT-3.1.0-1/2], nothing after
DISCONNECT [MQTT-3.14.4-1], unused packet ids [MQTT-2.3.1-2], re-sends with
DUP=1 under the original id [MQTT-4.4.0-1], acknowledgements in arrival order
[MQTT-4.6.0-2/3]). Every packet the client sends or receives (its
``on_packet`` trace, in the client's own order) goes to the model; a packet
the rules forbid is a failure. After ``settle`` the client must owe nothing
(``obligations()`` is empty) and the messages must add up: every QoS 1
message arrived at least once, every QoS 2 message exactly once, every
``publish()`` returned, and ``messages`` never held more than its bound.

At level 5 (``ClientAgainstMqttref5``) the broker tells a Receive Maximum
and a Topic Alias Maximum of 2 in CONNACK and aliases the topics it sends; the
model then also judges the client's send quota, its aliases and the server's
(``mqttref.model.client5``, issue 16), across the same losses and re-sends.

Asyncio rules cannot be ``async``: one event loop runs in a thread per
machine and each rule submits a coroutine to it (ORACLE.md's pattern).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mqttref.client import (
    Backoff,
    Client,
    Connected,
    ConnectionEvent,
    Disconnected,
    Message,
    Reconnecting,
    WhenDisconnected,
)
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import Packet, ProtocolLevel
from mqttref.model.client import ClientModel
from mqttref.model.qos import ReceiverState
from tests.client.brokers import Broker, Mosquitto, MqttrefBroker, mosquitto_available
from tests.client.proxy import DOWN, UP, Proxy
from tests.helpers.peers import requires_peer

T = TypeVar("T")
STEP_TIMEOUT = 15.0
MAX_QUEUED = 4
MAX_INFLIGHT = 3
LIMITS_5 = "max_awaiting_rel = 2\ntopic_alias_maximum = 2\nsend_topic_aliases = true\n"
"""The mqttref broker's CONNACK at level 5: Receive Maximum 2, Topic Alias Maximum 2."""


class ClientAgainstBroker(RuleBasedStateMachine):
    broker_class: type[Broker] = Mosquitto
    level5 = False

    def make_broker(self) -> Broker:
        return self.broker_class(self.directory)

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.directory = Path(tempfile.mkdtemp(prefix="client-stateful-"))
        self.broker = self.make_broker()
        self.broker.start()
        self.proxy = Proxy(self.broker.port)
        self.run(self.proxy.start())
        self.model = ClientModel(name="client under test")
        self.violations: list[str] = []
        self.trace: list[str] = []
        self.connections = 0
        self.received: list[Message] = []
        self.max_queue_seen = 0
        self.expected: dict[bytes, int] = {}
        """Payload -> QoS of every message sent to st/ (payloads are unique)."""
        self.pending: list[Future[None]] = []
        self.payloads = itertools.count()
        self.client: Client | None = None
        self.other: Client | None = None
        self.consumer: Future[None] | None = None
        self.paused = False

    # -- plumbing -----------------------------------------------------------------

    def run(self, coroutine: Awaitable[T], timeout: float = STEP_TIMEOUT) -> T:
        async def wrapper() -> T:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def submit(self, coroutine: Awaitable[object]) -> Future[None]:
        async def wrapper() -> None:
            await coroutine

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop)

    def on_packet(self, direction: str, packet: Packet) -> None:
        """The judge: the model's client rules must allow every packet."""
        self.trace.append(f"{direction} {packet!r}")
        try:
            if direction == "sent":
                level = ProtocolLevel.MQTT_5 if self.level5 else ProtocolLevel.MQTT_3_1_1
                self.model.sent(packet, len(encode(packet, level)))
            else:
                self.model.received(packet)
        except Exception as exc:
            self.violations.append(f"{direction} {packet!r}: {exc!r}")

    def on_event(self, event: ConnectionEvent) -> None:
        self.trace.append(repr(event))
        try:
            if isinstance(event, Disconnected):
                self.connection_lost()
            elif isinstance(event, Reconnecting) and (
                self.model.connecting or self.model.connected
            ):
                self.connection_lost()  # the previous attempt died before or after its CONNACK
            elif isinstance(event, Connected):
                self.connections += 1
                if self.connections > 1 and not event.session_present:
                    self.violations.append("the broker lost the persistent session")
        except Exception as exc:  # the client logs and swallows callback errors: keep them
            self.violations.append(f"{event!r}: {exc!r}")

    def connection_lost(self) -> None:
        # A QoS 1 flow back in ``idle`` holds no message: it is the same as no flow,
        # and the chart has no second connection_lost row for it.
        incoming = self.model.flows.incoming
        for packet_id in [i for i, f in incoming.items() if f.state == ReceiverState.IDLE]:
            del incoming[packet_id]
        self.model.connection_lost()

    async def consume(self) -> None:
        assert self.client is not None
        async for message in self.client.messages:
            self.max_queue_seen = max(self.max_queue_seen, self.client.queued_messages + 1)
            self.received.append(message)
            while self.paused:
                await asyncio.sleep(0.01)

    def next_payload(self, qos: int) -> bytes:
        payload = b"m%d" % next(self.payloads)
        self.expected[payload] = qos
        return payload

    # -- rules ----------------------------------------------------------------------

    @initialize()
    def connect(self) -> None:
        level5: dict[str, int] = {}
        if self.level5:
            # A session that outlives each connection; its own limits for the server.
            level5 = {"protocol": 5, "session_expiry_interval": 3600, "receive_maximum": 3,
                      "topic_alias_maximum": 2}  # fmt: skip
        self.client = Client(
            "127.0.0.1",
            self.proxy.port,
            client_id=f"st-{uuid.uuid4().hex[:12]}",
            clean_session=False,
            keepalive=30,
            reconnect=Backoff(initial=0.02, maximum=0.1),
            when_disconnected=WhenDisconnected.QUEUE,
            max_inflight=MAX_INFLIGHT,
            max_queued_messages=MAX_QUEUED,
            on_event=self.on_event,
            on_packet=self.on_packet,
            **level5,  # type: ignore[arg-type]
        )
        self.other = Client(self.broker.host, self.broker.port)
        self.run(self.client.connect())
        self.run(self.other.connect())
        assert self.run(self.client.subscribe("st/#", qos=2)) == 2
        self.consumer = self.submit(self.consume())

    @rule(qos=st.integers(0, 2), topic=st.sampled_from(["st/a", "st/b/c"]))
    def client_publishes(self, qos: int, topic: str) -> None:
        """Not awaited: publishes overlap, fill the window and cross connection losses."""
        assert self.client is not None
        self.pending.append(self.submit(self.client.publish(topic, self.next_payload(qos), qos)))

    @precondition(lambda self: self.level5)
    @rule(qos=st.integers(0, 2))
    def client_publishes_on_a_third_topic(self, qos: int) -> None:
        """At level 5 a third topic finds the server's two aliases taken: it goes in full."""
        assert self.client is not None
        self.pending.append(self.submit(self.client.publish("st/d", self.next_payload(qos), qos)))

    @rule(qos=st.integers(0, 2))
    def other_client_publishes(self, qos: int) -> None:
        assert self.other is not None
        self.run(self.other.publish("st/other", self.next_payload(qos), qos))

    @rule(direction=st.sampled_from([UP, DOWN]))
    def withhold(self, direction: str) -> None:
        """Acknowledgements (and everything else) in one direction stop arriving."""

        async def hold() -> None:
            self.proxy.held.add(direction)

        self.run(hold())

    @rule()
    def cut_the_network(self) -> None:
        self.run(self.cut())

    async def cut(self) -> None:
        """On the loop's thread: transports are not thread-safe."""
        self.proxy.held.clear()
        self.proxy.cut()

    @rule()
    def consumer_stalls(self) -> None:
        self.paused = True

    @rule()
    def consumer_resumes(self) -> None:
        self.paused = False

    @precondition(lambda self: bool(self.pending) or bool(self.expected))
    @rule()
    def settle(self) -> None:
        """Let everything finish, then check that the messages add up."""
        self.let_everything_finish()
        self.check_deliveries()

    def let_everything_finish(self) -> None:
        assert self.client is not None
        if self.proxy.held:
            self.run(self.cut())  # what was swallowed is gone: the session must recover it
        self.paused = False
        for future in self.pending:
            future.result(STEP_TIMEOUT)
        self.pending.clear()
        self.run(self.client.wait_connected(STEP_TIMEOUT))
        self.wait_for_deliveries()

    def wait_for_deliveries(self) -> None:
        async def quiet() -> None:
            deadline = self.loop.time() + STEP_TIMEOUT
            while self.loop.time() < deadline:
                missing = self.missing()
                if not missing and not self.model.obligations():
                    await asyncio.sleep(0.2)  # duplicates still on their way may arrive
                    return
                await asyncio.sleep(0.02)

        self.run(quiet(), STEP_TIMEOUT + 5)

    def missing(self) -> set[bytes]:
        seen = {m.payload for m in self.received}
        return {p for p, qos in self.expected.items() if qos > 0 and p not in seen}

    def check_deliveries(self) -> None:
        counts = Counter(m.payload for m in self.received)
        assert not self.missing(), f"QoS 1/2 messages never delivered: {sorted(self.missing())}"
        for payload, qos in self.expected.items():
            if qos == 2:
                assert counts[payload] == 1, f"QoS 2 message {payload!r} arrived {counts[payload]}x"
        for message in self.received:
            assert message.payload in self.expected, f"unexpected message {message!r}"
            assert message.qos == self.expected[message.payload]
        owed = self.model.obligations()
        assert not owed, f"the client still owes {owed}"

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def the_qos_charts_allow_every_packet(self) -> None:
        assert not self.violations, "\n".join([*self.violations, "trace:", *self.trace[-30:]])

    @invariant()
    def the_messages_queue_stays_bounded(self) -> None:
        if self.client is not None:
            assert self.client.queued_messages <= MAX_QUEUED
        assert self.max_queue_seen <= MAX_QUEUED

    @invariant()
    def outgoing_flows_stay_within_the_window(self) -> None:
        assert self.model.flows.in_flight() <= MAX_INFLIGHT

    def teardown(self) -> None:
        try:
            if self.client is not None and not self.violations:
                self.let_everything_finish()
                self.check_deliveries()
        finally:
            for client in (self.client, self.other):
                if client is not None:
                    self.run(client.disconnect())
            if self.consumer is not None:
                self.consumer.result(STEP_TIMEOUT)
            self.run(self.proxy.stop())
            self.broker.stop()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
            shutil.rmtree(self.directory, ignore_errors=True)


STATEFUL_SETTINGS = settings(
    # Each example starts a broker and runs real sockets: a sixth of the profile's count
    # (8 in dev, 16 in ci, 833 in thorough).
    max_examples=max(8, settings().max_examples // 6),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@STATEFUL_SETTINGS
class ClientAgainstMosquitto(ClientAgainstBroker):
    broker_class = Mosquitto


@STATEFUL_SETTINGS
class ClientAgainstMqttref(ClientAgainstBroker):
    broker_class = MqttrefBroker


@settings(STATEFUL_SETTINGS, max_examples=max(4, settings().max_examples // 12))
class ClientAgainstMqttref5(ClientAgainstBroker):
    """Half the 3.1.1 machine's examples (4 in dev and ci, ~11 s): the flows are the same."""

    broker_class = MqttrefBroker
    level5 = True

    def make_broker(self) -> Broker:
        return MqttrefBroker(self.directory, extra_config=LIMITS_5)


TestClientAgainstMosquitto = requires_peer(
    "mosquitto", mosquitto_available(), "the client is tested against mosquitto"
)(ClientAgainstMosquitto.TestCase)
TestClientAgainstMqttref = ClientAgainstMqttref.TestCase
TestClientAgainstMqttref5 = ClientAgainstMqttref5.TestCase
