"""The scenarios of issue 9, each a set of generator roles and the figure it yields.

(a) fanin: 4 QoS 0 publishers, 1 subscriber on ``bench/#``, 64-byte payloads.
(b) fanout: 1 QoS 0 publisher, 50 subscribers.
(c) qos1: QoS 1 end to end, the publisher keeping 100 unacknowledged, the subscriber acking each.
(d) qos2: QoS 2 end to end, full handshakes on both sides, 100 in flight.
(c', d') qos1p, qos2p: the same between persistent sessions (clean session 0), the case a disk
    store must write through; for the SQLite target ("keep at least half of the in-memory figure").
(e) storm: 3,000 clients connect and disconnect, 50 at a time (in 4 rounds, for precision).
(f) idle: 5,000 idle connections; broker RSS growth per connection.
(g) latency0 / latency1: p50/p99 at a fixed 1,000 msg/s, QoS 0 and QoS 1.

Every outcome carries delivered/expected, the broker's CPU seconds over the measured window, the
generator's own CPU seconds (so a generator that became the bottleneck shows), and the rate per
wall second and per broker CPU second, the fair figure when generator and broker share two cores.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from brokers import BrokerProcess
from clients import (
    AckingSubscriber,
    ConnectionStorm,
    CountingSubscriber,
    IdleHolder,
    Qos0Publisher,
    Role,
    WindowPublisher,
)
from latency import PacedPublisher, StampReader
from workers import Measured, run_roles

SETTLE_S = 1.0
"""Time the idle connections are left alone before the broker's RSS is read."""


@dataclass(frozen=True)
class Size:
    """How big a run is: ``full`` for figures, ``quick`` for a smoke run; and the protocol level
    every client of the run speaks (``dataclasses.replace(size, level=5)``: MQTT 5.0)."""

    fanin_each: int
    fanout_messages: int
    qos1_messages: int
    qos2_messages: int
    storm_clients: int
    storm_rounds: int
    idle_connections: int
    latency_s: float
    deadline_s: float
    idle_s: float
    level: int = 4


FULL = Size(50_000, 4_000, 50_000, 30_000, 3_000, 4, 5_000, 10.0, 120.0, 5.0)
QUICK = Size(2_000, 200, 2_000, 1_000, 300, 1, 500, 0.5, 30.0, 3.0)


@dataclass
class Outcome:
    scenario: str
    broker: str
    delivered: int
    expected: int
    wall_s: float
    broker_cpu_s: float
    gen_cpu_s: float
    unit: str
    figures: dict[str, Any] = field(default_factory=dict)
    level: int = 4
    """The protocol level the generator's clients spoke: 4 (MQTT 3.1.1) or 5 (MQTT 5.0)."""

    @property
    def lost(self) -> int:
        return self.expected - self.delivered

    @property
    def rate_wall(self) -> float | None:
        return self.delivered / self.wall_s if self.wall_s > 0 else None

    @property
    def rate_cpu(self) -> float | None:
        return self.delivered / self.broker_cpu_s if self.broker_cpu_s > 0 else None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(lost=self.lost, rate_wall=self.rate_wall, rate_cpu=self.rate_cpu)
        return data


MEDIAN_FIGURES = ("p50_ms", "p99_ms", "max_ms", "rss_per_conn_bytes")


def combine(runs: list[Outcome]) -> Outcome:
    """Several runs of one scenario on one broker as one outcome (``--repeat``).

    Counts and seconds are summed, so loss in any run shows and the rates are totals over
    totals; latencies and RSS per connection are medians, with their range kept beside them.
    """
    if len(runs) == 1:
        return runs[0]
    figures: dict[str, Any] = {"runs": len(runs)}
    for key in MEDIAN_FIGURES:
        values = [run.figures[key] for run in runs if run.figures.get(key) is not None]
        if values:
            figures[key] = statistics.median(values)
            figures[f"{key}_range"] = (min(values), max(values))
    peaks = [run.figures["peak_rss_bytes"] for run in runs if "peak_rss_bytes" in run.figures]
    if peaks:
        figures["peak_rss_bytes"] = max(peaks)
    warnings = sum(run.figures.get("broker_warnings", 0) for run in runs)
    if warnings:
        figures["broker_warnings"] = warnings
    first = runs[0]
    return Outcome(
        scenario=first.scenario,
        broker=first.broker,
        delivered=sum(run.delivered for run in runs),
        expected=sum(run.expected for run in runs),
        wall_s=sum(run.wall_s for run in runs),
        broker_cpu_s=sum(run.broker_cpu_s for run in runs),
        gen_cpu_s=sum(run.gen_cpu_s for run in runs),
        unit=first.unit,
        figures=figures,
        level=first.level,
    )


def _outcome(
    name: str, broker: BrokerProcess, size: Size, measured: Measured, unit: str
) -> Outcome:
    counted = [r for r in measured.results if "delivered" in r]
    ends = [r["t_last"] for r in counted if "t_last" in r]
    wall = (max(ends) if ends else measured.t_end) - measured.t_go
    figures: dict[str, Any] = {"peak_rss_bytes": broker.memory_bytes("VmHWM")}
    warnings = broker.warnings()
    if warnings:
        figures.update(broker_warnings=len(warnings), first_warning=warnings[0])
    figures.update(measured.notes)
    return Outcome(
        scenario=name,
        broker=broker.name,
        delivered=sum(r["delivered"] for r in counted),
        expected=sum(r["expected"] for r in counted),
        wall_s=wall,
        broker_cpu_s=measured.broker_cpu_s,
        gen_cpu_s=sum(r.get("gen_cpu_s", 0.0) for r in measured.results),
        unit=unit,
        figures=figures,
        level=size.level,
    )


def fanin(broker: BrokerProcess, size: Size) -> Outcome:
    roles: list[Role] = [
        CountingSubscriber(
            broker.port,
            size.deadline_s,
            level=size.level,
            client_prefix="fanin-sub",
            expected_each=4 * size.fanin_each,
            idle_s=size.idle_s,
        )
    ]
    roles += [
        Qos0Publisher(
            broker.port,
            size.deadline_s,
            level=size.level,
            ends_scenario=False,
            client_id=f"fanin-pub-{i}",
            topic=f"bench/{i}",
            count=size.fanin_each,
        )
        for i in range(4)
    ]
    return _outcome("fanin", broker, size, run_roles(roles, broker), "msg")


def fanout(broker: BrokerProcess, size: Size, subscribers: int = 50, processes: int = 2) -> Outcome:
    per_process = subscribers // processes
    roles: list[Role] = [
        CountingSubscriber(
            broker.port,
            size.deadline_s,
            level=size.level,
            client_prefix=f"fanout-sub-{p}",
            clients=per_process,
            expected_each=size.fanout_messages,
            idle_s=size.idle_s,
        )
        for p in range(processes)
    ]
    roles.append(
        Qos0Publisher(
            broker.port,
            size.deadline_s,
            level=size.level,
            ends_scenario=False,
            client_id="fanout-pub",
            topic="bench/fanout",
            count=size.fanout_messages,
            batch=100,
        )
    )
    return _outcome("fanout", broker, size, run_roles(roles, broker), "delivery")


def _end_to_end(
    name: str,
    qos: int,
    messages: int,
    broker: BrokerProcess,
    size: Size,
    *,
    persistent: bool = False,
) -> Outcome:
    roles: list[Role] = [
        AckingSubscriber(
            broker.port,
            size.deadline_s,
            level=size.level,
            client_id=f"{name}-sub",
            clean_session=not persistent,
            qos=qos,
            expected=messages,
            idle_s=size.idle_s,
        ),
        WindowPublisher(
            broker.port,
            size.deadline_s,
            level=size.level,
            client_id=f"{name}-pub",
            clean_session=not persistent,
            topic=f"bench/{name}",
            qos=qos,
            count=messages,
            window=100,
            idle_s=size.idle_s,
        ),
    ]
    return _outcome(name, broker, size, run_roles(roles, broker), "msg")


def qos1(broker: BrokerProcess, size: Size) -> Outcome:
    return _end_to_end("qos1", 1, size.qos1_messages, broker, size)


def qos2(broker: BrokerProcess, size: Size) -> Outcome:
    return _end_to_end("qos2", 2, size.qos2_messages, broker, size)


def qos1p(broker: BrokerProcess, size: Size) -> Outcome:
    """QoS 1 between persistent sessions: what a disk store has to write through."""
    return _end_to_end("qos1p", 1, size.qos1_messages, broker, size, persistent=True)


def qos2p(broker: BrokerProcess, size: Size) -> Outcome:
    """QoS 2 between persistent sessions."""
    return _end_to_end("qos2p", 2, size.qos2_messages, broker, size, persistent=True)


def storm(broker: BrokerProcess, size: Size) -> Outcome:
    """The storm is repeated ``storm_rounds`` times so that even mosquitto's CPU time spans
    enough clock ticks (10 ms each) for a figure precise to a few percent."""
    role = ConnectionStorm(
        broker.port,
        size.deadline_s,
        level=size.level,
        clients=size.storm_clients,
        total=size.storm_clients * size.storm_rounds,
        concurrency=50,
    )
    return _outcome("storm", broker, size, run_roles([role], broker), "conn")


def idle(broker: BrokerProcess, size: Size) -> Outcome:
    warm = ConnectionStorm(
        broker.port, size.deadline_s, level=size.level, client_prefix="warm", total=50
    )
    run_roles([warm], broker)
    before = broker.memory_bytes()

    def on_held(
        kind: str, held: Any, broker: BrokerProcess, stop: Any, notes: dict[str, Any]
    ) -> None:
        if kind != "held":
            return
        time.sleep(SETTLE_S)
        after = broker.memory_bytes()
        notes.update(rss_before_bytes=before, rss_after_bytes=after, held=held)
        if held:
            notes["rss_per_conn_bytes"] = (after - before) / held
        stop.set()

    holder = IdleHolder(broker.port, size.deadline_s, level=size.level, total=size.idle_connections)
    return _outcome("idle", broker, size, run_roles([holder], broker, on_report=on_held), "conn")


def _latency(name: str, qos: int, broker: BrokerProcess, size: Size) -> Outcome:
    rate = 1000
    total = int(rate * size.latency_s)
    roles: list[Role] = [
        StampReader(
            broker.port,
            size.deadline_s,
            level=size.level,
            client_id=f"{name}-sub",
            qos=qos,
            expected=total,
            idle_s=size.idle_s,
        ),
        PacedPublisher(
            broker.port,
            size.deadline_s,
            level=size.level,
            client_id=f"{name}-pub",
            topic=f"bench/{name}",
            qos=qos,
            rate=rate,
            duration_s=size.latency_s,
        ),
    ]
    measured = run_roles(roles, broker)
    for key in ("p50_ms", "p99_ms", "max_ms"):
        measured.notes[key] = measured.results[0][key]
    return _outcome(name, broker, size, measured, "msg")


def latency0(broker: BrokerProcess, size: Size) -> Outcome:
    return _latency("latency0", 0, broker, size)


def latency1(broker: BrokerProcess, size: Size) -> Outcome:
    return _latency("latency1", 1, broker, size)


SCENARIOS: dict[str, Callable[[BrokerProcess, Size], Outcome]] = {
    "fanin": fanin,
    "fanout": fanout,
    "qos1": qos1,
    "qos2": qos2,
    "qos1p": qos1p,
    "qos2p": qos2p,
    "storm": storm,
    "idle": idle,
    "latency0": latency0,
    "latency1": latency1,
}
ALIASES = {
    "a": ["fanin"],
    "b": ["fanout"],
    "c": ["qos1"],
    "d": ["qos2"],
    "persistent": ["qos1p", "qos2p"],
    "e": ["storm"],
    "f": ["idle"],
    "g": ["latency0", "latency1"],
    "latency": ["latency0", "latency1"],
}
