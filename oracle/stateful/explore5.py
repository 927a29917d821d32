"""The model exploration at level 5 for ``mqttref check --protocol 5``.

``mqttref.oracle.exploration`` imports this module for a 5.0 run and calls
``explore(host, port, budget=..., seed=..., profile=...)``. It runs the rounds of
``explore`` (the same budget, seeds, shrinking and verdict sorting as at 3.1.1)
with ``BrokerMachine5``, the machine of ``tests/stateful/test_broker_machine_v5``:
level-5 clients beside 3.1.1 ones, judged by the same model.

Two things differ from the 3.1.1 exploration.

The client keeps to the server's CONNACK (``BrokerProfile5``, read before the run).
A 5.0 server may declare a feature off or limited, and a client that uses it anyway
commits a Protocol Error the server closes on (a QoS above Maximum QoS
[MQTT-3.2.2-11], RETAIN 1 without Retain Available [MQTT-3.2.2-14], a wildcard, a
Subscription Identifier or a shared subscription where they are not available
(3.2.2.3.11-13), more QoS 1 and 2 PUBLISHes in flight than Receive Maximum
[MQTT-3.3.4-7]). That close is no deviation of the server, and a model that knows
only the client's side of the profile would call it one. So every packet the machine
sends passes ``adapt``: it comes out as the nearest packet the profile allows (the
QoS lowered, RETAIN cleared, the filter made plain, the identifier left out), and the
transcript says what was changed. The model judges the packet that was sent. The
same holds for the 3.1.1 clients of the machine: the broker is one. Topic Aliases
already follow the CONNACK (``BrokerMachine5.alias_for``); a Maximum Packet Size
below anything the machine sends makes the exploration not run, with that reason.

The model's statement ids are put in 5.0's numbering. On a level-5 connection the
broker model already cites 5.0 ids only: its level-5 rules and 5.0 charts, and the
shared connection chart's rows through ``model.v5.numbering`` (each row's 5.0
statements, read from 5.0's text). The machine's 3.1.1 clients share the broker, and
what the model judges on their connections cites 3.1.1 ids: such an id stands for the
5.0 statements that require the same thing of the server
(``oracle/statements-3.1.1-to-5.0.json``, "same" matches). A 3.1.1 id with no such
statement is kept in the failure's first trace line; the failure still fails the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from mqttref.impl.codec.packets import (
    Connect,
    Packet,
    Publish,
    QoS,
    Subscribe,
    Subscription,
)
from mqttref.oracle.capabilities import BrokerProfile5
from mqttref.oracle.equivalence import equivalents_5
from mqttref.oracle.exploration import ExplorationFailure, ExplorationOutcome
from mqttref.oracle.stateful import explore as rounds
from mqttref.oracle.stateful.driver import Driver
from mqttref.oracle.stateful.machine import BrokerMachine
from mqttref.oracle.stateful.machine5 import BrokerMachine5
from mqttref.oracle.stateful.target import ExternalTarget
from mqttref.oracle.statements import statements
from mqttref.statecharts.coverage import chart_citations, rule_citations

EXAMPLES_PER_ROUND = 2
STEPS = 15
MIN_ROUND_SECONDS = 25.0
"""A level-5 round is slower than a 3.1.1 one: ``expiry_passes`` waits 2.3 s for the short
expiry intervals, and an example of 15 steps took 10 to 25 s against a local broker."""

SMALLEST_PACKET_LIMIT = 512
"""Bytes: the machine's largest packet (a CONNECT with a will and its properties) is
well below; a broker declaring a smaller Maximum Packet Size is not explored."""


@attrs.frozen
class Adapted:
    """A packet as the profile allows it, and what was changed (empty: nothing)."""

    packet: Packet | None
    changes: tuple[str, ...] = ()


def _plain(topic_filter: str, profile: BrokerProfile5, prefix: str) -> tuple[str, list[str]]:
    """``topic_filter`` without what the profile declares unavailable."""
    changes: list[str] = []
    if topic_filter.startswith("$share/") and not profile.shared_available:
        topic_filter = topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else ""
        changes.append("no shared subscription (Shared Subscription Available 0)")
    if ("+" in topic_filter or "#" in topic_filter) and not profile.wildcard_available:
        topic_filter = f"${prefix}/a" if topic_filter.startswith("$") else f"{prefix}/a"
        changes.append("a plain filter (Wildcard Subscription Available 0)")
    return topic_filter, changes


def adapt(packet: Packet, profile: BrokerProfile5, *, prefix: str, in_flight: int) -> Adapted:
    """``packet`` as a client keeping to ``profile`` sends it. ``in_flight``: the QoS 1
    and 2 PUBLISHes its connection has sent that are not yet complete (Receive Maximum
    counts them [MQTT-3.3.4-7]); at the limit a PUBLISH goes at QoS 0."""
    top = QoS(profile.maximum_qos)
    changes: list[str] = []
    if isinstance(packet, Publish):
        qos, retain = packet.qos, packet.retain
        if qos > top:
            qos = top
            changes.append(f"QoS {int(packet.qos)} -> {int(top)} (Maximum QoS {int(top)})")
        if qos and in_flight >= profile.receive_maximum:
            qos = QoS.AT_MOST_ONCE
            changes.append(f"QoS 0: {in_flight} in flight (Receive Maximum"
                           f" {profile.receive_maximum})")
        if retain and not profile.retain_available:
            retain = False
            changes.append("RETAIN 0 (Retain Available 0)")
        if changes:
            packet_id = packet.packet_id if qos else None
            packet = attrs.evolve(packet, qos=qos, retain=retain, packet_id=packet_id)
    elif isinstance(packet, Connect) and packet.will is not None:
        will = packet.will
        if will.qos > top:
            will = attrs.evolve(will, qos=top)
            changes.append(f"will QoS {int(packet.will.qos)} -> {int(top)}")
        if will.retain and not profile.retain_available:
            will = attrs.evolve(will, retain=False)
            changes.append("will RETAIN 0 (Retain Available 0)")
        packet = attrs.evolve(packet, will=will)
    elif isinstance(packet, Subscribe):
        subscriptions: list[Subscription] = []
        for subscription in packet.subscriptions:
            plain, why = _plain(subscription.topic_filter, profile, prefix)
            changes += why
            subscriptions.append(attrs.evolve(subscription, topic_filter=plain))
        properties = packet.properties
        if properties.subscription_identifiers and not profile.subscription_identifiers_available:
            properties = attrs.evolve(properties, subscription_identifiers=())
            changes.append("no Subscription Identifier (Subscription Identifiers Available 0)")
        packet = attrs.evolve(packet, subscriptions=tuple(subscriptions), properties=properties)
    return Adapted(packet, tuple(dict.fromkeys(changes)))


class ProfiledDriver(Driver):
    """The machine's driver, sending every packet as the CONNACK profile allows it."""

    profile: BrokerProfile5 = BrokerProfile5()
    unsettled: dict[str, int]

    def send(self, slot: str, packet: Packet) -> None:
        client_id = self.client_id(slot)
        in_flight = 0
        if client_id is not None:
            in_flight = self.acks.releases_owed(client_id) + self.unsettled.get(client_id, 0)
        adapted = adapt(packet, self.profile, prefix=self.own_prefix or "",
                        in_flight=in_flight)
        if adapted.changes:
            self.note(f"{slot}    (adapted to the CONNACK: {'; '.join(adapted.changes)})")
        if adapted.packet is None:
            return
        if isinstance(adapted.packet, Publish) and adapted.packet.qos and client_id:
            self.unsettled[client_id] = self.unsettled.get(client_id, 0) + 1
        super().send(slot, adapted.packet)

    def settle(self) -> None:
        super().settle()
        self.unsettled.clear()  # answered by now: PUBACK, or PUBREC (then a PUBREL is owed)


def machine5_keeping_to(profile: BrokerProfile5) -> Callable[[ExternalTarget],
                                                                type[BrokerMachine]]:
    """A ``rounds.Bind`` for ``BrokerMachine5`` whose driver keeps to ``profile``."""

    def bind(target: ExternalTarget) -> type[BrokerMachine]:
        def __init__(self: BrokerMachine5) -> None:
            BrokerMachine5.__init__(self)
            old = self.driver
            driver = ProfiledDriver(old.host, old.port, old.timing, self.model,
                                    discard_model_crashes=old.discard_model_crashes)
            driver.own_prefix = old.own_prefix
            driver.profile = profile
            driver.unsettled = {}
            old.close()
            self.driver = driver

        namespace: dict[str, Any] = {"target": target, "__init__": __init__}
        return type("BrokerMachine5", (BrokerMachine5,), namespace)

    return bind


def in_5_0_numbering(ids: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The model's ids as 5.0 statement ids, and the 3.1.1 ids with no 5.0 statement
    requiring the same (see the module's docstring)."""
    own = _own_5_0_ids()
    known = statements("5.0")
    out: list[str] = []
    without: list[str] = []
    for sid in ids:
        if sid in own and sid in known:
            out.append(sid)
            continue
        try:
            same = equivalents_5(sid, same_only=True)
        except (KeyError, ValueError):  # no 3.1.1 statement: a 5.0 id
            same = (sid,) if sid in known else ()
        if same:
            out += same
        else:
            without.append(sid)
    return tuple(dict.fromkeys(out)), tuple(without)


_OWN: set[str] = set()


def _own_5_0_ids() -> set[str]:
    if not _OWN:
        _OWN.update(chart_citations() | rule_citations())
    return _OWN


def shrink_limit(remaining: float, longest: float) -> float:
    """Seconds a round may shrink a failure: a level-5 round is long, and after shrinking
    Hypothesis replays the minimal example, so the shrink gets half of what a round as
    long as the longest so far leaves of the budget (at most 30 s, at least 5 s)."""
    return max(5.0, min(30.0, (remaining - max(longest, MIN_ROUND_SECONDS)) / 2))


def _renumbered(outcome: ExplorationOutcome) -> ExplorationOutcome:
    failures = []
    for failure in outcome.failures:
        ids, without = in_5_0_numbering(failure.ids)
        line = f"model cites {' '.join(failure.ids)}; in MQTT 5.0: {' '.join(ids) or 'none'}"
        if without:
            line += f" (3.1.1 only: {' '.join(without)})"
        failures.append(ExplorationFailure(ids, failure.message, (line, *failure.trace),
                                           failure.seed))
    covered = sorted(in_5_0_numbering(outcome.covered)[0])
    return attrs.evolve(outcome, failures=tuple(failures), covered=tuple(covered),
                        note=f"level 5: {outcome.note}")


def explore(
    host: str,
    port: int,
    *,
    budget: float,
    seed: int,
    partial: Callable[[ExplorationOutcome], None] | None = None,
    profile: BrokerProfile5 | None = None,
    examples: int = EXAMPLES_PER_ROUND,
    steps: int = STEPS,
) -> ExplorationOutcome:
    """``explore.explore`` with ``BrokerMachine5`` keeping to ``profile`` (every feature
    available when None), its statement ids in 5.0's numbering; a round is ``examples``
    examples of up to ``steps`` steps."""
    profile = profile or BrokerProfile5()
    limit = profile.maximum_packet_size
    if limit is not None and limit < SMALLEST_PACKET_LIMIT:
        return ExplorationOutcome(
            False, f"model exploration at level 5 not run: the broker declares Maximum Packet"
            f" Size {limit}, below the machine's packets (up to {SMALLEST_PACKET_LIMIT} bytes)")

    def renumbered(outcome: ExplorationOutcome) -> None:
        if partial is not None:
            partial(_renumbered(outcome))

    if budget < MIN_ROUND_SECONDS + 1:  # the rounds would start none
        return ExplorationOutcome(
            False, f"model exploration at level 5 not run: {budget:.0f}s of budget left, a"
            f" round needs {MIN_ROUND_SECONDS:.0f}s")
    found = rounds.explore(host, port, budget=budget, seed=seed, partial=renumbered,
                           bind=machine5_keeping_to(profile), examples=examples,
                           steps=steps, min_round=MIN_ROUND_SECONDS,
                           shrink_limit=shrink_limit)
    return _renumbered(found) if found.ran else found


__all__ = ["ProfiledDriver", "adapt", "explore", "in_5_0_numbering", "machine5_keeping_to"]
