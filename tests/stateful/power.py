"""The oracle's power, statement by statement: ``python -m tests.stateful.power``.

A verdict is worth something only if a broken broker gets it. Each fault of
``oracle_faults.ORACLE_FAULTS`` breaks the in-process mqttref broker in one known way and
declares the statements it breaks; ``mqttref check`` (the suite, and the model
exploration unless ``--no-exploration``) then runs against that broker, in a
process of its own because a fault patches classes for a whole process. For
each fault the run must FAIL every declared statement (recall) and PASS none
of them; every other FAIL it gives is a false alarm unless the fault declares
it as a cascade, and the share of FAILs that are declared is its precision.

``--protocol 5`` does the same for MQTT 5.0 with the faults of
``oracle_faults5.ORACLE_FAULTS5`` and ``mqttref check --protocol 5``, each against a
broker with the settings the fault asks for (``OracleFault5.config``); where those
settings name ``users``, the run is that of ``-u``/``-P`` with them (the enhanced
authentication checks need a SCRAM-SHA-256 user whose exchange succeeds).

``scripts/oracle-power`` runs every fault and writes ``docs/spec/oracle-power.md``
(one section per protocol, the other left as it was); ``tests/stateful/test_power.py``
runs a fixed sample in CI.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import pytest

from mqttref.impl.broker.config import Config
from mqttref.oracle import checks5  # noqa: F401  (registers the 5.0 checks)
from mqttref.oracle.connection import Connection, Credentials
from mqttref.oracle.runner import Verdict
from mqttref.oracle.scenario import REGISTRIES
from mqttref.oracle.statements import statements
from mqttref.oracle.target import evaluate, protocol_name
from tests.helpers.broker_thread import BrokerThread
from tests.stateful.fault_proxy import FaultProxy, Rewrite
from tests.stateful.faults import Patcher
from tests.stateful.oracle_faults import ORACLE_FAULTS, by_name
from tests.stateful.oracle_faults5 import ORACLE_FAULTS5, by_name5

DOC = Path(__file__).resolve().parents[2] / "docs" / "spec" / "oracle-power.md"


class AnyFault(Protocol):
    """An entry of either corpus (``OracleFault`` or ``OracleFault5``)."""

    @property
    def name(self) -> str: ...
    @property
    def breaks(self) -> tuple[str, ...]: ...
    @property
    def cascades(self) -> Mapping[str, str]: ...
    @property
    def inject(self) -> Callable[[Patcher], None] | None: ...
    @property
    def rewrite(self) -> Rewrite | None: ...


def corpus(protocol: str) -> Sequence[AnyFault]:
    """The faults that measure the oracle at ``protocol`` (3.1.1 or 5.0)."""
    return ORACLE_FAULTS5 if protocol_name(protocol) == "5.0" else ORACLE_FAULTS


def fault_named(name: str, protocol: str) -> AnyFault:
    return by_name5(name) if protocol_name(protocol) == "5.0" else by_name(name)


@attrs.frozen
class PowerRow:
    fault: str
    declared: tuple[str, ...]
    cascades: tuple[str, ...]
    failed: tuple[str, ...]
    passed_broken: tuple[str, ...]
    """Declared statements the run PASSed: the oracle missed the fault there."""
    seconds: float
    error: str = ""
    passed: tuple[str, ...] = ()
    """Every statement the run PASSed, so that a row outlives a change of declarations."""

    @property
    def missed(self) -> tuple[str, ...]:
        return tuple(sid for sid in self.declared if sid not in self.failed)

    @property
    def false_alarms(self) -> tuple[str, ...]:
        return tuple(sid for sid in self.failed
                     if sid not in self.declared and sid not in self.cascades)


def run_one(name: str, *, seed: int, budget: float, explore: bool,
            protocol: str = "3.1.1") -> PowerRow:
    """Inject fault ``name`` into an in-process broker and judge it (this process)."""
    fault = fault_named(name, protocol)
    settings: Mapping[str, Any] = getattr(fault, "config", {})
    logging.disable(logging.CRITICAL)
    patch = pytest.MonkeyPatch()
    if fault.inject is not None:
        fault.inject(patch)
    # A broker with users (the enhanced-authentication faults) is judged as their first
    # user, as `mqttref check -u/-P` would: SCRAM-SHA-256 needs a user who can succeed.
    users = tuple(Credentials(name, password.encode())
                  for name, password in settings.get("users", {}).items())
    connection = Connection(users=users)
    start = time.monotonic()
    try:
        with BrokerThread(Config(port=0, **settings)) as running:
            if fault.rewrite is None:
                report = evaluate(running.host, running.port, seed=seed, budget=budget,
                                  explore=explore, protocol=protocol, connection=connection)
            else:
                with FaultProxy(running.port, fault.rewrite) as proxy:
                    report = evaluate(proxy.host, proxy.port, seed=seed, budget=budget,
                                      explore=explore, protocol=protocol,
                                      connection=connection)
    finally:
        patch.undo()
    verdicts = {v.statement.id: v.verdict for v in report.verdicts}
    return PowerRow(
        fault=name,
        declared=fault.breaks,
        cascades=tuple(fault.cascades),
        failed=tuple(sid for sid, v in verdicts.items() if v is Verdict.FAIL),
        passed_broken=tuple(sid for sid in fault.breaks if verdicts.get(sid) is Verdict.PASS),
        seconds=round(time.monotonic() - start, 1),
        passed=tuple(sid for sid, v in verdicts.items() if v is Verdict.PASS),
    )


def run_in_child(name: str, *, seed: int, budget: float, explore: bool,
                 protocol: str = "3.1.1") -> PowerRow:
    command = [sys.executable, "-m", "tests.stateful.power", "--one", name, "--seed", str(seed),
               "--budget", str(budget), "--protocol", protocol]
    if not explore:
        command.append("--no-exploration")
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          timeout=budget * 3 + 120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        fault = fault_named(name, protocol)
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return PowerRow(name, fault.breaks, tuple(fault.cascades), (), (),
                        round(time.monotonic() - start, 1),
                        error=f"exit {done.returncode}: {' | '.join(tail)}")
    data = json.loads(lines[-1])
    return PowerRow(data["fault"], tuple(data["declared"]), tuple(data["cascades"]),
                    tuple(data["failed"]), tuple(data["passed_broken"]), data["seconds"],
                    passed=tuple(data["passed"]))


def run_many(names: Sequence[str], *, seed: int, budget: float, explore: bool,
             jobs: int, results: Path | None = None, protocol: str = "3.1.1"
             ) -> list[PowerRow]:
    """Each fault in its own process, ``jobs`` at a time (they mostly wait on sockets).

    Each row is printed, and appended to ``results`` (JSON lines), as it ends: a
    matrix takes most of an hour, and a rerun of a few faults can then be merged
    into it (``--merge``) instead of running the whole matrix again.
    """
    rows: dict[str, PowerRow] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_in_child, name, seed=seed, budget=budget, explore=explore,
                               protocol=protocol): name
                   for name in names}
        for future in concurrent.futures.as_completed(futures):
            row = future.result()
            rows[row.fault] = row
            print(row_line(row), flush=True)
            if results is not None:
                with results.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(attrs.asdict(row)) + "\n")
    return [rows[name] for name in names]


def row_line(row: PowerRow) -> str:
    status = "ok" if not (row.missed or row.passed_broken or row.error) else "MISSED"
    alarms = f"; false alarm {' '.join(row.false_alarms)}" if row.false_alarms else ""
    return (f"{status:6} {row.fault}: declared {' '.join(row.declared)}; FAIL"
            f" {' '.join(row.failed) or '-'}{alarms}; {row.seconds:.0f}s {row.error}")


def load_rows(path: Path, protocol: str = "3.1.1") -> dict[str, PowerRow]:
    """The newest row of each fault in a results file, with current declarations (a
    fault no longer in the corpus is left out)."""
    rows: dict[str, PowerRow] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        try:
            fault = fault_named(data["fault"], protocol)
        except KeyError:
            continue
        rows[fault.name] = PowerRow(
            fault.name, fault.breaks, tuple(fault.cascades), tuple(data["failed"]),
            tuple(sid for sid in fault.breaks if sid in data.get("passed", data["passed_broken"])),
            data["seconds"], data.get("error", ""), tuple(data.get("passed", ())))
    return rows


def figures(rows: Sequence[PowerRow]) -> dict[str, float]:
    declared_total = sum(len(r.declared) for r in rows)
    caught = sum(len(r.declared) - len(r.missed) for r in rows)
    fails = sum(len(r.failed) for r in rows)
    # Declared statements and declared cascades are right; anything else is a false alarm.
    right = sum(len(r.failed) - len(r.false_alarms) for r in rows)
    return {
        "recall": caught / declared_total if declared_total else 0.0,
        "precision": right / fails if fails else 1.0,
        "passed_broken": float(sum(len(r.passed_broken) for r in rows)),
    }


def observable(protocol: str = "3.1.1") -> list[str]:
    """The statements the corpus must break: at 3.1.1 every testable server statement;
    at 5.0 every statement a registered 5.0 check cites (the checks grow statement by
    statement, and a check cannot be trusted before a fault has shown it can FAIL)."""
    name = protocol_name(protocol)
    table = statements(name)
    if name == "5.0":
        cited = {sid for check in REGISTRIES["5.0"].values() for sid in check.ids}
        return [sid for sid in table if sid in cited]
    return [sid for sid, s in table.items() if s.testable and s.server_side]


def covered_statements(faults: Sequence[AnyFault] | None = None, protocol: str = "3.1.1",
                       ) -> tuple[list[str], list[str]]:
    """(statements some fault declares, statements of ``observable`` none does)."""
    judgeable = observable(protocol)
    chosen = corpus(protocol) if faults is None else faults
    declared_ids = {sid for fault in chosen for sid in fault.breaks}
    return ([s for s in judgeable if s in declared_ids],
            [s for s in judgeable if s not in declared_ids])


SECTION = "<!-- oracle-power {} -->"
"""The line that opens each protocol's section of the doc: a run rewrites its own."""


def write_doc(rows: Sequence[PowerRow], *, seed: int, budget: float, explore: bool,
              path: Path = DOC, merged: int = 0, protocol: str = "3.1.1") -> None:
    """Rewrite ``protocol``'s section of the doc and keep the other one as it is."""
    name = protocol_name(protocol)
    sections = dict.fromkeys(("3.1.1", "5.0"), "")
    if path.exists():
        current = None
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            opened = [p for p in sections if line.strip() == SECTION.format(p)]
            if opened:
                current = opened[0]
            if current is not None:
                sections[current] += line
    sections[name] = section(rows, seed=seed, budget=budget, explore=explore, merged=merged,
                             protocol=name)
    head = [
        "# The oracle's power, statement by statement",
        "",
        "Generated by `scripts/oracle-power` (`python -m tests.stateful.power`, with"
        " `--protocol 5` for MQTT 5.0); do not edit.",
        "Each fault breaks the in-process mqttref broker in one way and declares the statements"
        " it breaks; `mqttref check` runs against it.",
        "",
        "- **Recall**: the share of declared statements the run FAILs.",
        "- **Precision**: the share of FAIL verdicts that are declared statements or declared"
        " cascades (each with its reason in the fault's module).",
        "- A **false alarm** is a FAIL on a statement the fault neither breaks nor declares as a"
        " cascade. Most come from the model exploration, whose verdicts name every statement"
        " a disagreement could break when the model cannot tell which; the suite's checks name"
        " one. The exploration can only add FAILs: it can raise recall and lower precision,"
        " never turn a FAIL into a PASS.",
        "",
    ]
    path.write_text("\n".join(head) + "\n" + "".join(
        sections[p].rstrip("\n") + "\n\n" for p in ("3.1.1", "5.0") if sections[p]
    ).rstrip("\n") + "\n", encoding="utf-8")


RESULTS_NOTE = {"5.0": ": `docs/spec/oracle-power-5.0.jsonl`, kept in the repository so that a"
                       " later change can rerun only the faults it touches"}
"""Where the committed results file of a level is, for the doc's merge line."""


def section(rows: Sequence[PowerRow], *, seed: int, budget: float, explore: bool,
            merged: int, protocol: str) -> str:
    numbers = figures(rows)
    covered, uncovered = covered_statements(protocol=protocol)
    module = "oracle_faults5.py" if protocol == "5.0" else "oracle_faults.py"
    command = " --protocol 5" if protocol == "5.0" else ""
    what = ("statements a 5.0 check cites" if protocol == "5.0"
            else "testable server statements")
    lines = [
        SECTION.format(protocol),
        f"## MQTT {protocol}",
        "",
        f"The faults of `tests/stateful/{module}`; `mqttref check{command}` "
        f"({'suite and model exploration' if explore else 'suite only'}, budget {budget:.0f} s,"
        f" seed {seed}) against each.",
        "",
        f"- **Recall**: **{numbers['recall']:.0%}**.",
        f"- **Precision**: **{numbers['precision']:.0%}**.",
        f"- **PASS on a broken statement**: **{int(numbers['passed_broken'])}**.",
        f"- **Statements with a fault**: {len(covered)} of {len(covered) + len(uncovered)}"
        f" {what}.",
        f"- Time: {sum(r.seconds for r in rows):.0f} s of runs for {len(rows)} faults.",
        *([f"- {merged} rows come from a results file (`--merge`: the newest row of each"
           " fault, judged against the declarations of today), written by a run of the whole"
           " matrix (`--results`), with any fault changed after it run again and appended"
           f"{RESULTS_NOTE.get(protocol, '')}."
           + (f" {len(rows) - merged} were run with this command." if len(rows) > merged
              else "")] if merged else []),
        "",
        "| fault | declared | FAIL, declared | FAIL, cascade | FAIL, false alarm | missed"
        " | PASS on broken | precision | s |",
        "|---|---|---|---|---|---|---|--:|--:|",
    ]
    for row in rows:
        hit = [sid for sid in row.failed if sid in row.declared]
        cascade = [sid for sid in row.failed if sid in row.cascades and sid not in row.declared]
        cells = [row.fault, " ".join(row.declared), " ".join(hit) or "-",
                 " ".join(cascade) or "-", " ".join(row.false_alarms) or "-",
                 " ".join(row.missed) or "-", " ".join(row.passed_broken) or "-",
                 (f"{1 - len(row.false_alarms) / len(row.failed):.0%}" if row.failed else "-"),
                 f"{row.seconds:.0f}"]
        if row.error:
            cells[2] = f"run failed: {row.error}"
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", f"### {what[0].upper()}{what[1:]} that no fault breaks yet ({protocol})", "",
              " ".join(uncovered) or "none", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stateful.power")
    parser.add_argument("--one", help="run this one fault in this process and print JSON")
    parser.add_argument("--fault", action="append", help="limit to these faults")
    parser.add_argument("--protocol", default="3.1.1",
                        help="3.1.1 (oracle_faults) or 5 (oracle_faults5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=float, default=135.0)
    parser.add_argument("--no-exploration", action="store_true")
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--doc", action="store_true", help=f"write {DOC.name}")
    parser.add_argument("--results", type=Path, help="append each row to this JSON-lines file")
    parser.add_argument("--merge", type=Path,
                        help="take rows from this results file (the newest of each fault) for"
                             " the faults not run now")
    args = parser.parse_args(argv)
    explore = not args.no_exploration
    protocol = protocol_name(args.protocol)
    if args.one:
        row = run_one(args.one, seed=args.seed, budget=args.budget, explore=explore,
                      protocol=protocol)
        print(json.dumps(attrs.asdict(row)))
        return 0
    every = [f.name for f in corpus(protocol)]
    earlier = load_rows(args.merge, protocol) if args.merge else {}
    names = args.fault or [name for name in every if name not in earlier]
    ran = run_many(names, seed=args.seed, budget=args.budget, explore=explore, jobs=args.jobs,
                   results=args.results, protocol=protocol)
    merged = {**earlier, **{row.fault: row for row in ran}}
    rows = [merged[name] for name in every if name in merged]
    if earlier:
        for row in rows:
            print(row_line(row))
    numbers = figures(rows)
    print(f"recall {numbers['recall']:.0%}, precision {numbers['precision']:.0%},"
          f" PASS on broken {int(numbers['passed_broken'])}")
    if args.doc:
        write_doc(rows, seed=args.seed, budget=args.budget, explore=explore,
                  merged=len(rows) - len(ran), protocol=protocol)
    return 0


if __name__ == "__main__":
    sys.exit(main())
