"""Side-by-side broker benchmark: mqttref and mosquitto, taking turns, scenario by scenario.

    .venv/bin/python bench/broker.py                     # every scenario, both brokers
    .venv/bin/python bench/broker.py --quick --broker mosquitto --scenario fanin
    .venv/bin/python bench/broker.py --scenario qos1,qos2 --json /tmp/bench.json
    .venv/bin/python bench/broker.py --scenario qos1 --protocol both   # MQTT 3.1.1 and 5.0

Each scenario starts a fresh broker on a free loopback port (mosquitto from a generated config,
mqttref as ``mqttref broker -p PORT --memory``), runs the generator processes against it, stops it,
then does the same with the other broker. The first table lists every run; the second puts the
per-broker-CPU-second figures side by side with the ratios and issue 9's targets. With
``--protocol both`` every scenario runs with its clients at MQTT 3.1.1 and at 5.0 in turns, and a
last table gives each broker's 5.0/3.1.1 ratio and issue 15's target for QoS 1. See
docs/performance.md for what the figures mean and a recorded run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sampling
from brokers import MOSQUITTO, REPO, BrokerGone, BrokerUnavailable, running
from report import (
    FIVE_VERSUS_THREE,
    SQLITE_VERSUS_MEMORY,
    durability_verdicts,
    level_verdicts,
    markdown,
    runs_table,
    verdict_table,
    verdicts,
)
from scenarios import ALIASES, FULL, QUICK, SCENARIOS, Outcome, combine
from workers import ScenarioFailed

BROKERS = ("mosquitto", "mqttref", "mqttref-sqlite")
CHOICES = {
    "both": ["mosquitto", "mqttref"],
    "all": list(BROKERS),
    **{name: [name] for name in BROKERS},
}
PROTOCOLS = {"4": [4], "5": [5], "both": [4, 5]}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--broker",
        choices=list(CHOICES),
        default="both",
        help="both = mosquitto and mqttref (in memory); all adds mqttref-sqlite (its disk store)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        help="scenario names or letters, comma-separated or repeated: "
        + ", ".join(SCENARIOS)
        + " (a-g; 'latency' or 'g' = both latency runs); default: all",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts: a smoke run, not figures"
    )
    parser.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default="4",
        help="the level the generator's clients speak: 4 = MQTT 3.1.1, 5 = MQTT 5.0 (empty "
        "property blocks), both = each scenario at 4 and at 5, with the 5/4 ratios",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument(
        "--mqttref-arg",
        action="append",
        default=[],
        help="an extra argument for 'mqttref broker'; repeat for several",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each scenario N times per broker, in turns; rates are totals, latencies medians",
    )
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help="also write both tables as Markdown"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample each mqttref broker with py-spy; collapsed stacks and summaries into DIR",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    names: list[str] = []
    for item in args.scenario or [",".join(SCENARIOS)]:
        for name in filter(None, (part.strip() for part in item.split(","))):
            if name not in SCENARIOS and name not in ALIASES:
                parser.error(
                    f"unknown scenario {name!r}; choose from {', '.join([*SCENARIOS, *ALIASES])}"
                )
            names += ALIASES.get(name, [name])
    args.scenarios = list(dict.fromkeys(names))
    args.brokers = CHOICES[args.broker]
    args.levels = PROTOCOLS[args.protocol]
    return args


def _raise_fd_limit() -> int:
    """Idle connections need thousands of descriptors: in the generator, and in the brokers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _load() -> tuple[float, ...]:
    """1, 5 and 15 minute load averages: other work on the machine skews latency most."""
    return tuple(round(value, 2) for value in os.getloadavg())


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average": _load(),
        "mqttref_commit": _git("rev-parse", "--short", "HEAD"),
        "mqttref_impl_modified": bool(_git("status", "--porcelain", "--", "impl", "src")),
    }
    if MOSQUITTO.exists():
        version = subprocess.run(
            [str(MOSQUITTO), "-h"], capture_output=True, text=True, check=False
        )
        info["mosquitto"] = (version.stdout or version.stderr).splitlines()[0]
    return info


def _summarize(output: Path) -> None:
    if output.exists():
        summary = sampling.summarize(output)
        output.with_suffix(".summary.txt").write_text(summary + "\n")
        print(summary, flush=True)


def _run_once(
    name: str,
    broker_name: str,
    args: argparse.Namespace,
    workdir: Path,
    machine: dict[str, Any],
    *,
    level: int,
) -> Outcome:
    """One scenario on a freshly started broker (sampled with py-spy under ``--profile``)."""
    size = dataclasses.replace(QUICK if args.quick else FULL, level=level)
    extra = args.mqttref_arg if broker_name.startswith("mqttref") else []
    with running(broker_name, workdir, extra) as broker:
        if broker_name.startswith("mqttref"):
            machine["mqttref_uvloop"] = broker.uses_uvloop()
        sampler = None
        if args.profile and broker_name.startswith("mqttref"):
            args.profile.mkdir(parents=True, exist_ok=True)
            stem = f"{name}-{broker_name}" + ("-v5" if level == 5 else "")
            sampler = sampling.attach(broker.pid, args.profile / f"{stem}.txt")
        try:
            outcome = SCENARIOS[name](broker, size)
        finally:
            if sampler is not None:
                sampler.stop()
                _summarize(sampler.output)
        status = broker.process.poll()
    if status is not None:
        raise ScenarioFailed(f"{broker_name} died during {name} (exit {status})")
    return outcome


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    machine = _machine()
    machine["fd_limit"] = _raise_fd_limit()
    print(f"# {machine}", flush=True)
    outcomes: list[Outcome] = []
    errors: list[dict[str, str]] = []
    unavailable: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="mqttref-bench-") as tmp:
        for name in args.scenarios:
            turns = [(level, b) for level in args.levels for b in args.brokers]
            runs: dict[tuple[int, str], list[Outcome]] = {turn: [] for turn in turns}
            for _ in range(args.repeat):
                for level, broker_name in turns:  # taking turns, so noise falls on all
                    if broker_name in unavailable:
                        continue
                    where = {"scenario": name, "broker": broker_name, "level": str(level)}
                    try:
                        outcome = _run_once(
                            name, broker_name, args, Path(tmp), machine, level=level
                        )
                    except BrokerUnavailable as exc:
                        unavailable.add(broker_name)
                        errors.append({**where, "error": str(exc)})
                        print(f"! {broker_name} unavailable: {exc}", file=sys.stderr, flush=True)
                        continue
                    except (ScenarioFailed, BrokerGone) as exc:
                        errors.append({**where, "error": str(exc)})
                        print(
                            f"! {name} on {broker_name} at level {level} failed:\n{exc}",
                            file=sys.stderr,
                            flush=True,
                        )
                        continue
                    runs[level, broker_name].append(outcome)
                    print(
                        f"  {name:9} {broker_name:14} v{level} "
                        f"{outcome.delivered:,}/{outcome.expected:,} "
                        f"in {outcome.wall_s:.2f} s, broker CPU {outcome.broker_cpu_s:.2f} s, "
                        f"generator CPU {outcome.gen_cpu_s:.2f} s",
                        flush=True,
                    )
            outcomes += [combine(done) for done in runs.values() if done]
    print()
    print(runs_table(outcomes))
    found = verdicts(outcomes)
    if found:
        print()
        print(verdict_table(found))
    durable = durability_verdicts(outcomes)
    if durable:
        print()
        print(verdict_table(durable, SQLITE_VERSUS_MEMORY))
    levels = level_verdicts(outcomes)
    if levels:
        print()
        print(verdict_table(levels, FIVE_VERSUS_THREE))
    if "mqttref_uvloop" in machine:
        print(
            "\nmqttref event loop: "
            + ("uvloop" if machine["mqttref_uvloop"] else "asyncio (standard)")
        )
    machine["load_average_after"] = _load()
    print(f"load average before {machine['load_average']}, after {machine['load_average_after']}")
    if args.markdown:
        args.markdown.write_text(markdown(outcomes, found, durable, levels))
    if args.json:
        report = {
            "machine": machine,
            "size": "quick" if args.quick else "full",
            "repeat": args.repeat,
            "levels": args.levels,
            "outcomes": [o.as_json() for o in outcomes],
            "verdicts": [dict(vars(v), ratio=v.ratio) for v in found],
            "durability": [dict(vars(v), ratio=v.ratio) for v in durable],
            "levels_5_vs_4": [dict(vars(v), ratio=v.ratio) for v in levels],
            "errors": errors,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
