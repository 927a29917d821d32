"""The tables the benchmark prints: every run, then mqttref against mosquitto and the targets.

The targets are issue 9's: per broker CPU-second at least a third of mosquitto's figure for
fan-in, fan-out, QoS 1, QoS 2 and the connection storm, with nothing lost; at most 8 KiB of RSS
per idle connection; p99 latency at most 3 ms at 1,000 msg/s for QoS 0 and QoS 1; and with the
SQLite store on, QoS 1 and QoS 2 at least half of the in-memory figures (a third table, when
``mqttref-sqlite`` ran).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scenarios import Outcome

THROUGHPUT = ("fanin", "fanout", "qos1", "qos2", "qos1p", "qos2p", "storm")
DURABLE = ("qos1", "qos2", "qos1p", "qos2p")
MIN_DISK_RATIO = 1 / 2
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


def _ranged(f: dict[str, Any], key: str, digits: int) -> str:
    text = _num(f[key], digits)
    if f"{key}_range" in f:
        low, high = f[f"{key}_range"]
        text += f" ({_num(low, digits)}-{_num(high, digits)})"
    return text


def _extra(outcome: Outcome) -> str:
    f = outcome.figures
    parts = []
    if "runs" in f:
        parts.append(f"{f['runs']} runs, medians (range)")
    if "p99_ms" in f:
        parts.append(
            f"p50 {_ranged(f, 'p50_ms', 2)} ms, p99 {_ranged(f, 'p99_ms', 2)} ms, "
            f"max {_ranged(f, 'max_ms', 2)} ms"
        )
    if "rss_per_conn_bytes" in f:
        parts.append(f"{_ranged(f, 'rss_per_conn_bytes', 0)} B RSS/conn")
    if "broker_warnings" in f:
        parts.append(f"{f['broker_warnings']} warnings logged")
    if "peak_rss_bytes" in f:
        parts.append(f"peak RSS {f['peak_rss_bytes'] / 2**20:,.1f} MiB")
    return "; ".join(parts)


def _runs_rows(outcomes: Iterable[Outcome]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the per-run table, shared by text and Markdown."""
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
    return header, rows


def runs_table(outcomes: Iterable[Outcome]) -> str:
    header, rows = _runs_rows(outcomes)
    return _table(header, rows)


@dataclass
class Verdict:
    """One figure of a reference broker and of ours, side by side, against a target."""

    scenario: str
    figure: str
    reference: float | None
    ours: float | None
    target: str
    met: bool | None

    @property
    def ratio(self) -> float | None:
        if self.reference and self.ours is not None:
            return self.ours / self.reference
        return None


def _no_loss(outcome: Outcome | None) -> bool:
    return outcome is not None and outcome.lost == 0


def verdicts(outcomes: Iterable[Outcome]) -> list[Verdict]:
    """mqttref (in memory) against mosquitto, scenario by scenario."""
    by_key = {(o.scenario, o.broker): o for o in outcomes}
    found: list[Verdict] = []
    for name in dict.fromkeys(scenario for scenario, _ in by_key):
        mosq, ours = by_key.get((name, "mosquitto")), by_key.get((name, "mqttref"))
        if mosq is None or ours is None:
            continue
        if name in THROUGHPUT:
            a, b = mosq.rate_cpu, ours.rate_cpu
            met = None if not a or b is None else b / a >= MIN_CPU_RATIO and _no_loss(ours)
            target = ">= 1/3 of mosquitto, no loss"
            found.append(Verdict(name, f"{ours.unit}/broker CPU-s", a, b, target, met))
        elif name == "idle":
            a = mosq.figures.get("rss_per_conn_bytes")
            b = ours.figures.get("rss_per_conn_bytes")
            met = None if b is None else b <= MAX_IDLE_BYTES and _no_loss(ours)
            found.append(Verdict(name, "RSS bytes/idle conn", a, b, "<= 8,192 B", met))
        elif name.startswith("latency"):
            a, b = mosq.figures.get("p50_ms"), ours.figures.get("p50_ms")
            found.append(Verdict(name, "p50 ms", a, b, "", None))
            a, b = mosq.figures.get("p99_ms"), ours.figures.get("p99_ms")
            met = None if b is None else b <= MAX_P99_MS and _no_loss(ours)
            found.append(Verdict(name, "p99 ms", a, b, "<= 3 ms, no loss", met))
    return found


def durability_verdicts(outcomes: Iterable[Outcome]) -> list[Verdict]:
    """mqttref with its SQLite store against mqttref in memory, for QoS 1 and QoS 2."""
    by_key = {(o.scenario, o.broker): o for o in outcomes}
    found: list[Verdict] = []
    for name in DURABLE:
        memory, disk = by_key.get((name, "mqttref")), by_key.get((name, "mqttref-sqlite"))
        if memory is None or disk is None:
            continue
        a, b = memory.rate_cpu, disk.rate_cpu
        met = None if not a or b is None else b / a >= MIN_DISK_RATIO and _no_loss(disk)
        target = ">= 1/2 of in memory, no loss"
        found.append(Verdict(name, f"{disk.unit}/broker CPU-s", a, b, target, met))
        found.append(
            Verdict(name, f"{disk.unit}/s (wall)", memory.rate_wall, disk.rate_wall, "", None)
        )
    return found


def _verdict_rows(found: list[Verdict], no: str) -> list[list[str]]:
    rows = []
    for v in found:
        digits = 2 if v.figure.endswith("ms") else 0
        met = "-" if v.met is None else ("yes" if v.met else no)
        rows.append(
            [
                v.scenario,
                v.figure,
                _num(v.reference, digits),
                _num(v.ours, digits),
                _num(v.ratio, 2),
                v.target,
                met,
            ]
        )
    return rows


VERSUS_MOSQUITTO = ("mosquitto", "mqttref", "mqttref/mosquitto")
SQLITE_VERSUS_MEMORY = ("mqttref in memory", "mqttref SQLite", "SQLite/memory")


def verdict_table(found: list[Verdict], names: tuple[str, str, str] = VERSUS_MOSQUITTO) -> str:
    return _table(["scenario", "figure", *names, "target", "met"], _verdict_rows(found, "NO"))


def _markdown_table(header: list[str], rows: list[list[str]], right: int) -> list[str]:
    align = ["---", "---", *["--:"] * right, *["---"] * (len(header) - right - 2)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(outcomes: list[Outcome], found: list[Verdict], durable: list[Verdict]) -> str:
    """The tables as Markdown, for docs/performance.md."""
    header, rows = _runs_rows(outcomes)
    lines = _markdown_table(header, rows, 6)
    for table, names in ((found, VERSUS_MOSQUITTO), (durable, SQLITE_VERSUS_MEMORY)):
        if table:
            lines.append("")
            lines += _markdown_table(
                ["scenario", "figure", *names, "target", "met"], _verdict_rows(table, "**no**"), 3
            )
    return "\n".join(lines) + "\n"
