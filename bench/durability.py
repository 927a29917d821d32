"""What durability costs: QoS 1 throughput with the SQLite store on and off (issue 8).

    .venv/bin/python bench/durability.py              # 3 rounds of 50,000 messages per store
    .venv/bin/python bench/durability.py --quick      # a smoke run, not figures
    .venv/bin/python bench/durability.py --rounds 5 --messages 100000

Each round runs the ``qos1p`` scenario of bench/scenarios.py (one publisher keeping 100 QoS 1
messages unacknowledged, one subscriber acknowledging each, both with clean session 0, so every
message passes through the store: queued or in flight, then acknowledged) against
``mqttref broker --memory``, against ``mqttref broker --data-dir DIR`` (SQLite, WAL, the
default ``store_sync = "normal"``: each group commit written to the log before its
acknowledgements leave, safe against kill -9) and against the same with ``store_sync = "full"``
(an fsync per group commit, safe against power loss too), taking turns so that machine noise
falls on all. It prints every run (with the messages per group commit, from the count the store
logs when it closes), the median msg/s of each store, and the ratios; the target is that the
store on (the default) keeps at least half of the in-memory throughput. Exit status 0 when every
message arrived (whatever the ratios), 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from brokers import MQTTREF_CONF, running
from scenarios import FULL, QUICK, Outcome, qos1p

OFF, ON, ON_FSYNC = "off (--memory)", "on (SQLite)", "on, fsync"
STORES = {OFF: "mqttref", ON: "mqttref-sqlite", ON_FSYNC: "mqttref-sqlite"}
TARGET = 0.5
TRANSACTIONS = re.compile(r"closed after (\d+) transactions")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per store (default 3)")
    parser.add_argument("--messages", type=int, default=None,
                        help="QoS 1 messages per run (default 50,000; 2,000 with --quick)")
    return parser.parse_args(argv)


def _row(label: str, outcome: Outcome, transactions: int | None) -> str:
    wall = outcome.rate_wall or 0.0
    cpu = outcome.rate_cpu or 0.0
    batch = (f"{outcome.delivered / transactions:>8.1f} msg/commit" if transactions
             else "")
    return (f"  {label:<16} {outcome.delivered:>8}/{outcome.expected:<8} "
            f"{outcome.wall_s:>7.2f} s {wall:>10,.0f} msg/s {cpu:>10,.0f} msg/CPU-s {batch}")


def _transactions(log: Path) -> int | None:
    """The store's own count, logged when the broker stops (the SQLite store only)."""
    found = TRANSACTIONS.findall(log.read_text(errors="replace")) if log.exists() else []
    return int(found[-1]) if found else None


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
    print(f"  {'store':<16} {'delivered':>17} {'wall':>9} {'rate':>16} {'per broker CPU':>20}"
          f" {'batch':>17}")
    with tempfile.TemporaryDirectory(prefix="mqttref-durability-bench-") as tmp:
        fsync_conf = Path(tmp) / "fsync.toml"
        fsync_conf.write_text(MQTTREF_CONF + 'store_sync = "full"\n')
        extra = {ON_FSYNC: ["-c", str(fsync_conf)]}  # the later -c wins
        for _round in range(args.rounds):
            for label, broker_name in STORES.items():
                with running(broker_name, Path(tmp), extra.get(label)) as broker:
                    outcome = qos1p(broker, size)
                print(_row(label, outcome, _transactions(broker.log)), flush=True)
                complete = complete and outcome.lost == 0
                rates[label].append(outcome.rate_wall or 0.0)
                cpu_rates[label].append(outcome.rate_cpu or 0.0)
    wall = {label: statistics.median(rates[label]) for label in STORES}
    cpu = {label: statistics.median(cpu_rates[label]) for label in STORES}
    print()
    for label in STORES:
        print(f"median QoS 1 throughput, store {label + ':':<16} {wall[label]:>10,.0f} msg/s "
              f"({cpu[label]:,.0f} per broker CPU-s)")
    for label in (ON, ON_FSYNC):
        ratio = wall[label] / wall[OFF] if wall[OFF] else 0.0
        cpu_ratio = cpu[label] / cpu[OFF] if cpu[OFF] else 0.0
        verdict = "meets" if ratio >= TARGET else "MISSES"
        print(f"ratio {label} / off: {ratio:.2f} per wall second, {cpu_ratio:.2f} per broker "
              f"CPU second ({verdict} the target of {TARGET:.2f})")
    if not complete:
        print("some messages were lost: the figures mean nothing", file=sys.stderr)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
