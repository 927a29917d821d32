"""What durability costs: QoS 1 throughput with the SQLite store on and off (issue 8).

    .venv/bin/python bench/durability.py              # 3 rounds of 50,000 messages each way
    .venv/bin/python bench/durability.py --quick      # a smoke run, not figures
    .venv/bin/python bench/durability.py --rounds 5 --messages 100000

Each round runs the ``qos1p`` scenario of bench/scenarios.py (one publisher keeping 100 QoS 1
messages unacknowledged, one subscriber acknowledging each, both with clean session 0, so every
message passes through the store: queued or in flight, then acknowledged) against
``mqttref broker --memory`` and against ``mqttref broker --data-dir DIR`` (SQLite, WAL,
``synchronous=FULL``: an fsync per group commit), taking turns so that machine noise falls on
both. It prints every run, the median msg/s of each store, and the ratio; the target is that the
store on keeps at least half of the in-memory throughput. Exit status 0 when every message
arrived (whatever the ratio), 1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from brokers import running
from scenarios import FULL, QUICK, Outcome, qos1p

STORES = {"off (--memory)": "mqttref", "on (SQLite)": "mqttref-sqlite"}
TARGET = 0.5


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per store (default 3)")
    parser.add_argument("--messages", type=int, default=None,
                        help="QoS 1 messages per run (default 50,000; 2,000 with --quick)")
    return parser.parse_args(argv)


def _row(label: str, outcome: Outcome) -> str:
    wall = outcome.rate_wall or 0.0
    cpu = outcome.rate_cpu or 0.0
    return (f"  {label:<16} {outcome.delivered:>8}/{outcome.expected:<8} "
            f"{outcome.wall_s:>7.2f} s {wall:>10,.0f} msg/s {cpu:>10,.0f} msg/CPU-s")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    size = QUICK if args.quick else FULL
    if args.messages is not None:
        size = replace(size, qos1_messages=args.messages)
    rates: dict[str, list[float]] = {label: [] for label in STORES}
    cpu_rates: dict[str, list[float]] = {label: [] for label in STORES}
    complete = True
    print(f"QoS 1 between persistent sessions, {size.qos1_messages:,} messages per run, "
          f"{args.rounds} round(s)")
    print(f"  {'store':<16} {'delivered':>17} {'wall':>9} {'rate':>16} {'per broker CPU':>20}")
    with tempfile.TemporaryDirectory(prefix="mqttref-durability-bench-") as tmp:
        for _round in range(args.rounds):
            for label, broker_name in STORES.items():
                with running(broker_name, Path(tmp)) as broker:
                    outcome = qos1p(broker, size)
                print(_row(label, outcome), flush=True)
                complete = complete and outcome.lost == 0
                rates[label].append(outcome.rate_wall or 0.0)
                cpu_rates[label].append(outcome.rate_cpu or 0.0)
    off, on = (statistics.median(rates[label]) for label in STORES)
    cpu_off, cpu_on = (statistics.median(cpu_rates[label]) for label in STORES)
    ratio = on / off if off else 0.0
    cpu_ratio = cpu_on / cpu_off if cpu_off else 0.0
    print()
    print(f"median QoS 1 throughput, store off: {off:,.0f} msg/s ({cpu_off:,.0f} per broker CPU-s)")
    print(f"median QoS 1 throughput, store on:  {on:,.0f} msg/s ({cpu_on:,.0f} per broker CPU-s)")
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(f"ratio on/off: {ratio:.2f} per wall second, {cpu_ratio:.2f} per broker CPU second "
          f"({verdict} the target of {TARGET:.2f})")
    if not complete:
        print("some messages were lost: the figures mean nothing", file=sys.stderr)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
