"""The 3.1.1 state machine over the three-node cluster, with a rule that kills a node.

The machine (``oracle.stateful.machine.BrokerMachine``) places its slots on the nodes
in turn, as ``mqttref check --broker n1 --broker n2 --broker n3`` does (``oracle.nodes``):
a client id comes back on another node than its last connection. One rule is added:
``kill_a_node_and_restart_it`` sends SIGKILL to one mqttref node, starts it again on its
port, and the clients that were connected to it reconnect (as they last connected:
persistent or clean) on another node.

What the model is told is what a client sees: its connection broke without DISCONNECT,
which to an MQTT client is a network failure. That is the model's ``Drop`` (a connection
lost without DISCONNECT), nothing new: the server must publish the will [MQTT-3.1.2-8],
a QoS 0 message for the now offline client may be lost [MQTT-3.1.2-5], a clean session
ends, and a persistent session keeps everything else [MQTT-3.1.2-4]: its subscriptions,
its queued QoS 1/2 messages and its unacknowledged QoS 1/2 deliveries, re-sent after the
reconnect [MQTT-4.4.0-1]. So the one broker the model judges may lose with a killed node
exactly what it may lose with a broken connection, and no more: every QoS 1/2 message a
publisher had acknowledged and a persistent session was owed must arrive after the
reconnect, on whichever node it lands, and a QoS 2 one exactly once. The model is not
loosened anywhere; the kill is an event its existing vocabulary already covers.

The cluster's choice for wills (docs/cluster.md, "Wills and sessions of a node that
dies"): a will of a killed node's client goes out when another node takes its session
(at the reconnect here, at once since the dead node answers no release request), or
else after the lease. Every killed client reconnects within this rule, so the will is
owed within the driver's usual bound; the lease (10 s) never has to be waited for.

The sockets of the killed node's clients are taken out of the driver's reading before
the kill, so that what the kernel says when the process dies (a FIN or RST on each) is
not taken for the *server* closing a connection (which the model would rightly blame):
the client's view is the network failing, told to the model as ``Drop``.

CI time: the machine keeps only the rules that make or move what a kill must not lose
(connect, reconnect, leave, subscribe, publish, bursts, acknowledgements,
a persistent client away while others publish), so that the kill, one rule in ten,
comes several times in a few short examples; the rules left out (protocol violations,
keep-alive expiry, packets before CONNECT, pings, UNSUBSCRIBE, the other
stories) are about one
node's conduct, which ``tests/stateful`` and ``test_check_cluster.py`` explore. The
test asserts that nodes were in fact killed.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import attrs
from hypothesis import seed as use_seed
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import get_state_machine_test, rule

from mqttref.impl.codec.packets import QoS
from mqttref.model import Drop
from mqttref.oracle.nodes import Nodes, clustered, use
from mqttref.oracle.stateful.driver import Disagreement
from mqttref.oracle.stateful.machine import BrokerMachine
from mqttref.oracle.stateful.settings import (
    machine_settings,
    profile_name,
    shrinking_limited_to,
)
from mqttref.oracle.stateful.stories import (
    TOPICS,
    persistent_slots,
    subscribe_and_settle,
    topics_heard_by,
)
from mqttref.oracle.stateful.target import ExternalTarget, slow_multiplier
from tests.cluster.conftest import Cluster
from tests.helpers.peers import HOST

LEFT_OUT = (
    "protocol_violation", "packet_before_connect", "ping", "time_passes", "unsubscribe",
    "overlapping_subscriptions", "falls_silent_with_a_will", "retained_round_trip",
)
"""Rules of ``BrokerMachine`` this machine does without (module docstring: CI time)."""

EXAMPLES = 8
STEPS = 17
ATTEMPTS = 3
"""Runs of the budget at most, each with its own seed (``SEED``, ``SEED + 1``...), while
a run ends without a kill: a run that judged no kill proves nothing here. (Seen in CI:
after other state machines in the same process, the derandomized run drew the kill
rule in none of its examples, though it drew it 6 times alone.)"""
SEED = 19


@attrs.frozen
class Kill:
    """One kill: the node, how many connected clients it took, and how many QoS 1/2
    messages the model then held owed to their persistent sessions (queued or in flight)."""

    node: str
    clients: int
    owed: int


class KillingMachine(BrokerMachine):
    """``BrokerMachine`` over the cluster's nodes, plus killing one of them."""

    cluster: ClassVar[Cluster]
    kills: ClassVar[list[Kill]] = []
    """What each kill did, across the run (the test insists there were some)."""

    def __init__(self) -> None:
        self.cluster.ensure_running()  # whatever an earlier example's failure left down
        super().__init__()

    @rule(data=st.data(), topic=st.sampled_from(TOPICS),
          qos=st.sampled_from([QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE]),
          count=st.integers(min_value=1, max_value=2))
    def kill_a_node_and_restart_it(
        self, data: st.DataObject, topic: str, qos: QoS, count: int
    ) -> Any:
        """``kill -9`` one node and start it again on its port; its clients saw their
        connection break (``Drop``: the will is owed [MQTT-3.1.2-8], a persistent
        session keeps its QoS 1/2 messages [MQTT-3.1.2-4] [MQTT-4.4.0-1], QoS 0 to an
        offline client may be lost [MQTT-3.1.2-5]) and reconnect on another node.

        First, when a persistent client is connected, ``count`` (1 or 2) QoS ``qos`` messages on
        ``topic`` reach it (subscribed if it was not) and stay unacknowledged: the
        kill then falls on messages in flight, not only by chance (the story
        ``away_while_others_publish`` covers messages queued for an absent client)."""
        target = self.choose(data, persistent_slots(self) or [None], "subscriber")
        publisher = self.choose(data, self.connected_slots() or [None], "publisher")
        self.prepare()
        if target is not None and publisher is not None and count:
            if topic not in topics_heard_by(self, target):
                subscribe_and_settle(self, target, topic, qos)
            for _ in range(count):
                self.send_publish(publisher, topic, qos)
            self.driver.settle()
        worth = self.nodes_worth_killing()
        index = self.choose(data, worth, "node")  # drawn always: the same kinds of draws
        held = self.driver.links.get(target or "")
        if held is not None and held.node in worth:
            index = held.node  # the subscriber just given messages to hold
        self.driver.settle()  # what the broker said before the kill is judged first
        driver = self.driver
        victims = [link for slot, link in sorted(driver.links.items())
                   if link.node == index and driver.connected(slot)]
        for link in victims:
            driver.selector.unregister(link.sock)  # its close is the kill's, not the server's
        node = self.cluster.nodes[index]
        driver.note(f"kill -9 node {index + 1} ({node.name}, port {node.port}): "
                    f"{[link.slot for link in victims]} lose their connection")
        node.kill()
        comebacks: list[tuple[str, str]] = []
        try:
            for link in victims:
                driver.links.pop(link.slot, None)
                link.sock.close()
                if link.client_id is not None:
                    short = link.client_id.removeprefix(self.prefix + "-")
                    comebacks.append((link.slot, short))
                driver.tick()
                driver.note(f"{link.slot} sees its connection break (its node died)")
                driver.apply(Drop(link.slot))
                nodes = clustered()
                if link.shared_state and nodes is not None:
                    nodes.changed(link.node)  # the session it left is the cluster's to keep
        finally:
            # Even when the model objected: the next example (or a shrink's replay)
            # needs every node.
            started = time.monotonic()
            node.start()
            driver.note(f"node {index + 1} ({node.name}) listens again after "
                        f"{time.monotonic() - started:.1f}s")
        owed = self.owed_to_persistent_sessions([client_id for _, client_id in comebacks])
        KillingMachine.kills.append(Kill(node.name, len(comebacks), owed))
        for slot, client_id in comebacks:
            if client_id in self.last_connect and driver.free(slot):
                self.come_back(slot, client_id,
                               clean=self.last_connect[client_id].clean_session)
        return self.step_done()

    def nodes_worth_killing(self) -> list[int]:
        """The nodes of connected persistent clients that are owed QoS 1/2 messages (a
        kill there puts the promise to the test), else every node."""
        worth = sorted({
            link.node for slot, link in self.driver.links.items()
            if self.driver.connected(slot) and link.client_id is not None
            and self.owed_to_persistent_sessions(
                [link.client_id.removeprefix(self.prefix + "-")])})
        return worth or list(range(len(self.cluster.nodes)))

    def owed_to_persistent_sessions(self, client_ids: list[str]) -> int:
        """QoS 1/2 messages the model holds owed to these clients' persistent sessions:
        what the kill must not lose."""
        owed = 0
        for client_id in client_ids:
            session = self.model.sessions.get(self.full_client_id(client_id))
            if session is not None and not session.clean:
                owed += sum(d.required for d in session.pending)
                owed += len(session.flows.outgoing)
        return owed


def killing_machine(cluster: Cluster) -> type[KillingMachine]:
    """``KillingMachine`` bound to ``cluster`` (its n1 the nominal address), without the
    rules of ``LEFT_OUT``: a rule attribute set to None is no rule for Hypothesis."""
    target = ExternalTarget(HOST, cluster.nodes[0].port)
    target.timing = target.timing.scaled(slow_multiplier())
    body: dict[str, Any] = {"target": target, "cluster": cluster}
    body.update(dict.fromkeys(LEFT_OUT))
    return type("KillingMachine", (KillingMachine,), body)


def disagreements(error: BaseException) -> list[Disagreement]:
    """The model's verdicts inside ``error`` (nested groups too)."""
    if isinstance(error, Disagreement):
        return [error]
    if isinstance(error, BaseExceptionGroup):
        return [found for inner in error.exceptions for found in disagreements(inner)]
    return []


def budget() -> settings:
    """CI (any profile but ``thorough``): ``EXAMPLES`` x ``STEPS``, seeded (measured:
    8 kills, 35 QoS 1/2 messages owed to killed nodes' persistent clients, after
    another state machine's test in the same process; which programs run still follows
    the broker's answers, so the counts may vary).
    ``MQTTREF_PROFILE=thorough`` hunts with fresh randomness, as many examples
    as ``MQTTREF_STATEFUL_EXAMPLES`` says (400 unless told), of ``STEPS`` steps."""
    if profile_name() == "thorough":
        return machine_settings("thorough", stateful_step_count=STEPS)
    return machine_settings("ci", max_examples=EXAMPLES, stateful_step_count=STEPS,
                            database=None,  # no hunt's saved example in CI's budget
                            derandomize=False)  # seeded instead: SEED, SEED + 1...


def test_a_killed_node_loses_nothing_a_broken_connection_may_not_lose(
        cluster: Cluster) -> None:
    """Acknowledged QoS 1/2 messages owed to persistent sessions arrive after the
    reconnect on another node, each QoS 2 once; wills come; only QoS 0 may be lost."""
    KillingMachine.kills.clear()
    nodes = Nodes(tuple((HOST, node.port) for node in cluster.nodes), propagation=0.2)
    how = budget()
    cut_short = []
    for attempt in range(ATTEMPTS):
        test = get_state_machine_test(killing_machine(cluster), settings=how)
        if not how.derandomize and profile_name() != "thorough":
            test = use_seed(SEED + attempt)(test)
        with use(nodes), shrinking_limited_to(20.0):
            try:
                test()
            except Flaky as error:
                # The broker's timing reached a precondition, so Hypothesis could not
                # replay a recorded prefix (as in ``oracle.stateful.explore``): the run
                # ends there, inconclusive beyond what it judged. A disagreement inside
                # was observed all the same, and fails the test.
                seen = disagreements(error)
                if seen:
                    raise AssertionError(f"observed once, did not replay: {seen[0]}\n"
                                         f"{cluster.logs()}") from error
                cut_short.append(str(error).splitlines()[0] if str(error) else "Flaky")
            except AssertionError as error:
                raise AssertionError(f"{error}\n{cluster.logs()}") from error
        if KillingMachine.kills:
            break
    kills = KillingMachine.kills
    print(f"{len(kills)} kills, {sum(k.owed for k in kills)} QoS 1/2 messages owed across"
          f" them: {kills}")  # seen with -s: what a hunt (MQTTREF_PROFILE=thorough) did
    assert kills, (f"no node was killed in {ATTEMPTS} runs: the rule never ran"
                   f" (runs cut short: {cut_short})")
    # The run must put the promise to the test: a kill with QoS 1/2 messages owed to a
    # persistent session of a killed node's client.
    assert any(kill.owed for kill in kills), kills
    assert all(nodes.turns), nodes.turns  # every node had clients
