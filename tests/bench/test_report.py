"""The benchmark's verdicts apply issue 9's targets to the figures, and loss always fails a target.

Built from hand-made outcomes, so each rule is checked at and around its threshold without
running a broker.
"""

from __future__ import annotations

import pytest
from report import durability_verdicts, markdown, verdict_table, verdicts
from scenarios import Outcome, combine


def _outcome(
    scenario: str, broker: str, delivered: int = 1000, cpu: float = 1.0, **figures: float
) -> Outcome:
    return Outcome(
        scenario=scenario,
        broker=broker,
        delivered=delivered,
        expected=1000,
        wall_s=2.0,
        broker_cpu_s=cpu,
        gen_cpu_s=0.1,
        unit="msg",
        figures=dict(figures),
    )


@pytest.mark.parametrize(
    ("ours_cpu", "delivered", "met"),
    [(3.0, 1000, True), (3.1, 1000, False), (1.0, 999, False)],
)
def test_throughput_needs_a_third_of_mosquitto_per_cpu_second_and_no_loss(
    ours_cpu: float, delivered: int, met: bool
) -> None:
    [verdict] = verdicts(
        [_outcome("qos1", "mosquitto"), _outcome("qos1", "mqttref", delivered, ours_cpu)]
    )
    assert verdict.reference == 1000
    assert verdict.ours == pytest.approx(delivered / ours_cpu)
    assert verdict.met is met


@pytest.mark.parametrize(("per_conn", "met"), [(8192, True), (8193, False)])
def test_idle_connections_may_cost_at_most_8_kib_each(per_conn: float, met: bool) -> None:
    [verdict] = verdicts(
        [
            _outcome("idle", "mosquitto", rss_per_conn_bytes=730),
            _outcome("idle", "mqttref", rss_per_conn_bytes=per_conn),
        ]
    )
    assert verdict.met is met


@pytest.mark.parametrize(("p99", "met"), [(3.0, True), (3.01, False)])
def test_latency_p99_may_be_at_most_3_ms(p99: float, met: bool) -> None:
    p50, p99_verdict = verdicts(
        [
            _outcome("latency1", "mosquitto", p50_ms=0.1, p99_ms=0.3),
            _outcome("latency1", "mqttref", p50_ms=0.2, p99_ms=p99),
        ]
    )
    assert p50.met is None
    assert p99_verdict.met is met


def test_a_scenario_run_on_one_broker_only_has_no_verdict() -> None:
    assert verdicts([_outcome("fanin", "mqttref")]) == []


@pytest.mark.parametrize(("sqlite_cpu", "met"), [(2.0, True), (2.1, False)])
def test_the_sqlite_store_must_keep_half_the_in_memory_rate(sqlite_cpu: float, met: bool) -> None:
    cpu, wall = durability_verdicts(
        [_outcome("qos2p", "mqttref"), _outcome("qos2p", "mqttref-sqlite", cpu=sqlite_cpu)]
    )
    assert cpu.met is met
    assert wall.met is None


def test_tables_show_the_ratio_and_a_missed_target() -> None:
    outcomes = [_outcome("storm", "mosquitto", cpu=0.1), _outcome("storm", "mqttref", cpu=1.0)]
    found = verdicts(outcomes)
    assert "0.10" in verdict_table(found)
    assert "NO" in verdict_table(found)
    assert "| storm | conn" not in markdown(outcomes, found, [])
    assert "**no**" in markdown(outcomes, found, [])


def test_repeated_runs_sum_counts_and_take_median_latencies() -> None:
    runs = [
        _outcome("latency1", "mqttref", 1000, 1.0, p50_ms=0.2, p99_ms=p99, max_ms=9.0)
        for p99 in (1.0, 5.0, 2.0)
    ]
    runs[1].delivered = 990
    combined = combine(runs)
    assert (combined.delivered, combined.expected, combined.lost) == (2990, 3000, 10)
    assert combined.broker_cpu_s == pytest.approx(3.0)
    assert combined.figures["p99_ms"] == 2.0
    assert combined.figures["p99_ms_range"] == (1.0, 5.0)
    assert combined.figures["runs"] == 3
