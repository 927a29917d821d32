"""Proof that the level-5 state machine can fail: it finds every injected 5.0 fault.

Each fault of ``faults5.py`` breaks the in-process broker's MQTT 5.0 behaviour
in one place and declares the 5.0 statements that breaks; ``hunt --level 5``
lets ``BrokerMachine5`` (5.0 clients beside 3.1.1 ones) explore the broken
broker and reports what it found. A fault's budget is spread over
``FAULT_SEEDS``, a process each (the programs of each seed are fixed, so a run
replays the same ones); it is found when one of them finds a disagreement whose
verdict names a statement it declares. A control hunt over ``CONTROL_SEEDS``
(``test_faults``'s), with the same examples and steps, must find nothing in the
unbroken broker and the model must not crash in it. The helpers that run and
judge a hunt are ``test_faults``'s.

``HUNTERS5`` hunts run at a time: they spend their time waiting on sockets
(quiescence windows, the machine's waits for expiry), not computing.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mqttref.oracle.statements import statements
from tests.stateful.faults import Fault
from tests.stateful.faults5 import FAULTS5
from tests.stateful.hunt import NO_FAULT
from tests.stateful.test_faults import (
    CONTROL_SEEDS,
    Job,
    control_jobs,
    crashed,
    describe,
    label,
    names_declared,
    run_hunt,
)

LEVEL = 5
FAULT_SEEDS = (0, 1, 2)
"""Each fault's budget is spread over these seeds, a process each."""
EXAMPLES_PER_SEED = 12
STEPS = 15
SHRINK_SECONDS = 5.0
CI_EXAMPLES = EXAMPLES_PER_SEED * len(FAULT_SEEDS)
"""A fault's examples (the ``ci`` budget of this test); the control gets at least as
many, spread over ``CONTROL_SEEDS``."""
HUNTERS5 = 24
"""Hunts at a time. Each waits on sockets nearly all of its time (all 92 at once took
175 s on 2 cores, so at most about 4 CPU-seconds each), but at once they also started
at once: their start-ups (a Python process
importing Hypothesis and the broker each) took both cores for tens of seconds, and in
CI the other worker's tests starved (an mqttref broker not listening after 30 s, a
subscriber not subscribed after 30 s). 24 at a time ask about one core."""
START_SPACING = 1.0
"""Seconds between the first wave's start-ups; later hunts start as earlier ones end."""
FAULT_COUNT = 29
"""Exactly the faults of faults5.FAULTS5: one dropped or added must be noticed."""


def run_hunt5(name: str, examples: int, seed: int | None) -> dict[str, Any]:
    """One level-5 hunt's JSON report (``test_faults.run_hunt`` at level 5)."""
    return run_hunt(name, examples, seed, level=LEVEL, steps=STEPS, shrink=SHRINK_SECONDS)


def fault_jobs(faults: tuple[Fault, ...]) -> list[Job]:
    return [(f.name, EXAMPLES_PER_SEED, seed) for f in faults for seed in FAULT_SEEDS]


def hunt_all5(jobs: list[Job]) -> dict[str, dict[str, Any]]:
    def start(numbered: tuple[int, Job]) -> dict[str, Any]:
        index, job = numbered
        if index < HUNTERS5:  # the first wave's start-ups spread over its first seconds
            time.sleep(index * START_SPACING)
        return run_hunt5(*job)

    with ThreadPoolExecutor(max_workers=HUNTERS5) as pool:
        results = list(pool.map(start, enumerate(jobs)))
    for result in results:
        print(describe(result))
    return {label(result): result for result in results}


def problems5(results: dict[str, dict[str, Any]], faults: tuple[Fault, ...]) -> list[str]:
    """Everything wrong with the level-5 hunts; empty when they prove the machine: no
    hunt crashed, no control shard found anything, and each fault was found by one of
    its shards with a verdict naming a statement it declares."""
    found: list[str] = []
    for name, result in results.items():
        if crashed(result):
            found.append(f"the hunt {name!r} crashed (exit {result.get('returncode')}):\n"
                         + describe(result))
    for control in (r for r in results.values() if r.get("fault") == NO_FAULT):
        if not crashed(control) and control["found"]:
            found.append("the control hunt found a disagreement in the unbroken broker:\n"
                         + describe(control))
    for fault in faults:
        shards = [r for r in results.values() if r.get("fault") == fault.name]
        if any(names_declared(r, fault) for r in shards):
            continue
        findings = [r for r in shards if r["found"] and not crashed(r)]
        if findings:
            found.append(
                f"the findings for {fault.name!r} name none of the statements the fault"
                f" declares {sorted(fault.declared)}:\n"
                + "\n".join(describe(r) for r in findings)
            )
        elif not any(crashed(r) for r in shards):
            found.append(f"the state machine missed {fault.name!r} within {CI_EXAMPLES}"
                         f" examples (seeds {FAULT_SEEDS})")
    return found


# ------------------------------------------------------------------ fast checks


def test_there_are_exactly_the_expected_level_5_faults_each_named_once() -> None:
    names = [fault.name for fault in FAULTS5]
    assert len(names) == FAULT_COUNT
    assert len(set(names)) == len(names)
    assert NO_FAULT not in names


@pytest.mark.parametrize("fault", FAULTS5, ids=lambda fault: fault.name)
def test_every_level_5_fault_declares_known_server_side_observable_5_0_statements(
    fault: Fault,
) -> None:
    """A fault of the broker's 5.0 behaviour breaks statements of MQTT 5.0 that bind
    the server and that a client can observe (ids of oracle/statements-5.0.json)."""
    table = statements("5.0")
    assert fault.breaks, f"{fault.name!r} declares no statement it breaks"
    assert isinstance(fault.breaks, tuple)
    for sid in fault.declared:
        assert sid in table, f"{fault.name!r} declares {sid!r}, no statement of MQTT 5.0"
        assert table[sid].server_side, f"{sid} binds only the client"
        assert table[sid].testable, f"{sid} is not observable by a client"
    for sid, why in fault.cascades.items():
        assert sid not in fault.breaks, f"{sid} is both broken and a cascade"
        assert why.strip(), f"the cascade {sid} of {fault.name!r} gives no reason"


def _shard(name: str, seed: int, **fields: Any) -> dict[str, Any]:
    return {"fault": name, "seed": seed, "found": False, "returncode": 0, **fields}


def _finding(name: str, seed: int, refs: list[str]) -> dict[str, Any]:
    return _shard(name, seed, found=True, seconds=1.0, verdict="v", program="p", refs=refs)


def _every_fault_found_by_its_last_shard() -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for seed in CONTROL_SEEDS:
        results[label(_shard(NO_FAULT, seed))] = _shard(NO_FAULT, seed)
    for fault in FAULTS5:
        for seed in FAULT_SEEDS:
            shard = _shard(fault.name, seed)
            if seed == FAULT_SEEDS[-1]:
                shard = _finding(fault.name, seed, [fault.breaks[0]])
            results[label(shard)] = shard
    return results


def test_a_fault_counts_as_found_when_one_shard_names_a_declared_statement() -> None:
    results = _every_fault_found_by_its_last_shard()
    assert problems5(results, FAULTS5) == []
    first, second, third = FAULTS5[:3]
    last = FAULT_SEEDS[-1]
    results[label(_shard(first.name, last))] = _finding(first.name, last, ["MQTT-9.9.9-9"])
    results[label(_shard(second.name, last))] = _shard(second.name, last)
    results[label(_shard(third.name, last))] = _finding(third.name, last, [])
    wrong = problems5(results, FAULTS5)
    assert len(wrong) == 3
    assert f"the findings for {first.name!r} name none" in wrong[0]
    assert "MQTT-9.9.9-9" in wrong[0]
    assert f"missed {second.name!r} within {CI_EXAMPLES} examples" in wrong[1]
    assert f"the findings for {third.name!r} name none" in wrong[2]


def test_a_crashed_shard_or_a_control_finding_fails() -> None:
    results = _every_fault_found_by_its_last_shard()
    fault = FAULTS5[0]
    crashed_shard = _shard(fault.name, FAULT_SEEDS[0], returncode=1, error="Traceback ...")
    results[label(crashed_shard)] = crashed_shard
    control = _finding(NO_FAULT, CONTROL_SEEDS[-1], ["MQTT-3.3.4-9"])
    results[label(control)] = control
    wrong = problems5(results, FAULTS5)
    assert len(wrong) == 2
    assert wrong[0].startswith(f"the hunt '{fault.name} (seed {FAULT_SEEDS[0]})' crashed")
    assert wrong[1].startswith("the control hunt found a disagreement")


def test_each_fault_gets_its_examples_over_its_seeds_and_the_control_as_many() -> None:
    jobs = fault_jobs(FAULTS5)
    assert len(jobs) == len(FAULTS5) * len(FAULT_SEEDS)
    for fault in FAULTS5:
        mine = [(n, seed) for n, n_examples, seed in jobs if n == fault.name]
        assert sorted(seed for _, seed in mine if seed is not None) == sorted(FAULT_SEEDS)
    assert sum(e for _, e, _ in jobs) == CI_EXAMPLES * len(FAULTS5)
    assert sum(e for _, e, _ in control_jobs(CI_EXAMPLES)) >= CI_EXAMPLES


def test_a_level_5_hunt_refuses_a_fault_of_the_other_level() -> None:
    """``--level 5`` takes only FAULTS5's names (and the control): a 3.1.1 fault's
    name is refused by the argument parser (exit 2), counted as a crash."""
    result = run_hunt5("drop a PUBACK", examples=1, seed=None)
    assert crashed(result)
    assert result["returncode"] == 2
    assert "invalid choice" in result["error"]


# ------------------------------------------------------------------ the hunts


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_level_5_machine_finds_every_5_0_fault_and_nothing_in_the_unbroken_broker(
) -> None:
    assert len(FAULTS5) == FAULT_COUNT
    control = control_jobs(CI_EXAMPLES)
    results = hunt_all5([*control, *fault_jobs(FAULTS5)])
    wrong = problems5(results, FAULTS5)
    assert not wrong, "\n\n".join(wrong)
