"""The tables the benchmark prints: every run, then mqttref against mosquitto and the targets.

The targets are issue 9's: per broker CPU-second at least a third of mosquitto's figure for
fan-in, fan-out, QoS 1, QoS 2 and the connection storm, with nothing lost; at most 8 KiB of RSS
per idle connection; p99 latency at most 3 ms at 1,000 msg/s for QoS 0 and QoS 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scenarios import Outcome

THROUGHPUT = ("fanin", "fanout", "qos1", "qos2", "storm")
MIN_CPU_RATIO = 1 / 3
MAX_IDLE_BYTES = 8 * 1024
MAX_P99_MS = 3.0


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _extra(outcome: Outcome) -> str:
    f = outcome.figures
    parts = []
    if "p99_ms" in f:
        parts.append(
            f"p50 {_num(f['p50_ms'], 2)} ms, p99 {_num(f['p99_ms'], 2)} ms, "
            f"max {_num(f['max_ms'], 2)} ms"
        )
    if "rss_per_conn_bytes" in f:
        parts.append(f"{_num(f['rss_per_conn_bytes'])} B RSS/conn")
    if "broker_warnings" in f:
        parts.append(f"{f['broker_warnings']} warnings logged")
    if "peak_rss_bytes" in f:
        parts.append(f"peak RSS {f['peak_rss_bytes'] / 2**20:,.1f} MiB")
    return "; ".join(parts)


def runs_table(outcomes: Iterable[Outcome]) -> str:
    header = [
        "scenario",
        "broker",
        "delivered/expected",
        "wall s",
        "broker CPU s",
        "gen CPU s",
        "per s",
        "per broker CPU-s",
        "notes",
    ]
    rows = [
        [
            o.scenario,
            o.broker,
            f"{o.delivered:,}/{o.expected:,}",
            _num(o.wall_s, 2),
            _num(o.broker_cpu_s, 2),
            _num(o.gen_cpu_s, 2),
            f"{_num(o.rate_wall)} {o.unit}",
            f"{_num(o.rate_cpu)} {o.unit}",
            _extra(o),
        ]
        for o in outcomes
    ]
    return _table(header, rows)


@dataclass
class Verdict:
    scenario: str
    figure: str
    mosquitto: float | None
    mqttref: float | None
    target: str
    met: bool | None

    @property
    def ratio(self) -> float | None:
        if self.mosquitto and self.mqttref is not None:
            return self.mqttref / self.mosquitto
        return None


def verdicts(outcomes: Iterable[Outcome]) -> list[Verdict]:
    by_key = {(o.scenario, o.broker): o for o in outcomes}
    scenarios = list(dict.fromkeys(o.scenario for o in by_key.values()))
    found: list[Verdict] = []
    for name in scenarios:
        mosq, ours = by_key.get((name, "mosquitto")), by_key.get((name, "mqttref"))
        if name in THROUGHPUT:
            a = mosq.rate_cpu if mosq else None
            b = ours.rate_cpu if ours else None
            met = None
            if a and b is not None and ours is not None:
                met = b / a >= MIN_CPU_RATIO and ours.lost == 0
            unit = (ours or mosq).unit if (ours or mosq) else ""
            found.append(
                Verdict(name, f"{unit}/broker CPU-s", a, b, ">= 1/3 of mosquitto, no loss", met)
            )
        elif name == "idle":
            a = mosq.figures.get("rss_per_conn_bytes") if mosq else None
            b = ours.figures.get("rss_per_conn_bytes") if ours else None
            met = None if b is None else b <= MAX_IDLE_BYTES and ours is not None and ours.lost == 0
            found.append(Verdict(name, "RSS bytes/idle conn", a, b, "<= 8,192 B", met))
        elif name.startswith("latency"):
            for key, label in (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")):
                a = mosq.figures.get(key) if mosq else None
                b = ours.figures.get(key) if ours else None
                target, met = "", None
                if key == "p99_ms":
                    target = "<= 3 ms, no loss"
                    met = (
                        None
                        if b is None
                        else b <= MAX_P99_MS and ours is not None and ours.lost == 0
                    )
                found.append(Verdict(name, label, a, b, target, met))
    return found


def verdict_table(found: list[Verdict]) -> str:
    header = ["scenario", "figure", "mosquitto", "mqttref", "mqttref/mosquitto", "target", "met"]
    rows = []
    for v in found:
        digits = 2 if v.figure.endswith("ms") else 0
        met = "-" if v.met is None else ("yes" if v.met else "NO")
        rows.append(
            [
                v.scenario,
                v.figure,
                _num(v.mosquitto, digits),
                _num(v.mqttref, digits),
                _num(v.ratio, 2),
                v.target,
                met,
            ]
        )
    return _table(header, rows)


def markdown(outcomes: list[Outcome], found: list[Verdict]) -> str:
    """Both tables as Markdown, for docs/performance.md."""
    lines = [
        "| scenario | broker | delivered/expected | wall s | broker CPU s | gen CPU s | per s "
        "| per broker CPU-s | notes |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.scenario} | {o.broker} | {o.delivered:,}/{o.expected:,} | {_num(o.wall_s, 2)} "
            f"| {_num(o.broker_cpu_s, 2)} | {_num(o.gen_cpu_s, 2)} | {_num(o.rate_wall)} {o.unit} "
            f"| {_num(o.rate_cpu)} {o.unit} | {_extra(o)} |"
        )
    if found:
        lines += [
            "",
            "| scenario | figure | mosquitto | mqttref | mqttref/mosquitto | target | met |",
            "|---|---|--:|--:|--:|---|---|",
        ]
        for v in found:
            digits = 2 if v.figure.endswith("ms") else 0
            met = "-" if v.met is None else ("yes" if v.met else "**no**")
            lines.append(
                f"| {v.scenario} | {v.figure} | {_num(v.mosquitto, digits)} "
                f"| {_num(v.mqttref, digits)} | {_num(v.ratio, 2)} | {v.target} | {met} |"
            )
    return "\n".join(lines) + "\n"
