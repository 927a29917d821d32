"""Proof that the state machine can fail: it finds every injected broker fault.

Each fault (``faults.py``) breaks the in-process mqttref broker in one place,
through ``monkeypatch``, and declares the statements that breaks; a hunt
(``hunt.py``, one process per fault, several at a time) lets the state machine
explore with a bounded, derandomized budget and reports what it found. A
control hunt against the unbroken broker, with the same budget, must find
nothing, and the model must not crash in it: so a finding is the fault's
doing, not the machine's or the model's. Every finding prints the model's
verdict and the rule sequence that found it (run with ``-s`` to read them).

A hunt passes only by finding its fault: every fault must be found within
``CI_EXAMPLES`` examples (the ``ci`` budget; the hunts are derandomized, so a
run replays the same programs) by a disagreement whose verdict names at least
one statement the fault declares. A hunt that exits non-zero (a crash, an
import error, the model raising) fails the test, whatever it printed. Under
``MQTTREF_PROFILE=thorough`` a longer control hunt must find nothing too.
Faults always target the in-process broker, whatever ``MQTTREF_TARGET`` says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mqttref.oracle.stateful.settings import profile_name
from mqttref.oracle.statements import statements
from tests.stateful.faults import FAULTS, Fault
from tests.stateful.hunt import NO_FAULT

CI_EXAMPLES = 150
THOROUGH_EXAMPLES = 500
STEPS = 30
SHRINK_SECONDS = 10.0
HUNTERS = 7
"""Hunts at a time: they mostly wait for quiescence windows, so several share a core."""
CONTROL_SEEDS = (0, 1, 2, 3, 4)
"""The control budget is spread over these seeds, a process each with an equal share
of the examples: one control hunt of 150 examples took 8 of CI's 45 minutes, nearly
all of it waiting on sockets, while every fault's hunt ended sooner."""
ROOT = Path(__file__).resolve().parents[2]
FAULT_COUNT = 21
"""Exactly the faults of faults.FAULTS: one dropped or added must be noticed."""


def run_hunt(name: str, examples: int, seed: int | None = None, *, level: int | None = None,
             steps: int = STEPS, shrink: float = SHRINK_SECONDS) -> dict[str, Any]:
    """One hunt's JSON report, with its exit status (``returncode``) and, when it
    exited non-zero or printed no report, the end of its output (``error``). With
    ``seed``, the programs of that seed instead of the derandomized ones; with
    ``level`` 5, a hunt of the level-5 machine."""
    command = [
        sys.executable, "-m", "tests.stateful.hunt", name,
        *(["--level", str(level)] if level is not None else []),
        "--examples", str(examples), "--steps", str(steps), "--shrink", str(shrink),
        *(["--seed", str(seed)] if seed is not None else []),
    ]
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=3600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result: dict[str, Any] = {"fault": name, "seed": seed, "found": False}
    if lines:
        result.update(json.loads(lines[-1]))
    result["returncode"] = done.returncode
    if done.returncode != 0 or not lines:
        result["error"] = (done.stderr[-3000:] or done.stdout[-3000:]).strip() or "(no output)"
    return result


def crashed(result: dict[str, Any]) -> bool:
    return result.get("returncode", 0) != 0 or "error" in result


def names_declared(result: dict[str, Any], fault: Fault) -> bool:
    """Whether the finding's verdict names a statement the fault declares."""
    return bool(result["found"]) and bool(set(result.get("refs", [])) & fault.declared)


def describe(result: dict[str, Any]) -> str:
    head = f"=== {label(result)}"
    if crashed(result):
        crash = result.get("model_crash") or result.get("error", "")
        return f"{head}: the hunt exited with {result.get('returncode')}\n{crash}"
    if not result["found"]:
        return f"{head}: nothing found"
    return (
        f"{head}: found in {result['seconds']}s, naming {result.get('refs', [])}"
        f" (declared: {result.get('declared', [])})\n{result['verdict']}\n{result['program']}"
    )


Job = tuple[str, int, int | None]
"""A hunt to run: the fault's name (or ``NO_FAULT``), its examples, its seed or None."""


def control_jobs(examples: int) -> list[Job]:
    """The control budget, spread over ``CONTROL_SEEDS``."""
    share = -(-examples // len(CONTROL_SEEDS))
    return [(NO_FAULT, share, seed) for seed in CONTROL_SEEDS]


def label(result: dict[str, Any]) -> str:
    seed = result.get("seed")
    return result["fault"] if seed is None else f"{result['fault']} (seed {seed})"


def hunt_all(jobs: list[Job]) -> dict[str, dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=HUNTERS) as pool:
        results = list(pool.map(lambda job: run_hunt(*job), jobs))
    for result in results:
        print(describe(result))
    return {label(result): result for result in results}


def problems(results: dict[str, dict[str, Any]], examples: int) -> list[str]:
    """Everything wrong with a set of hunt results; empty when they prove the machine."""
    found: list[str] = []
    for name, result in results.items():
        if crashed(result):
            found.append(f"the hunt {name!r} crashed (exit {result.get('returncode')}):\n"
                         + describe(result))
    for control in (r for r in results.values() if r.get("fault") == NO_FAULT):
        if not crashed(control) and control["found"]:
            found.append("the control hunt found a disagreement in the unbroken broker:\n"
                         + describe(control))
    for fault in FAULTS:
        hunted = results.get(fault.name)
        if hunted is None or crashed(hunted):
            continue
        result = hunted
        if not result["found"]:
            found.append(f"the state machine missed {fault.name!r} within {examples} examples")
        elif not names_declared(result, fault):
            found.append(
                f"the finding for {fault.name!r} names {result.get('refs', [])}, none of the"
                f" statements the fault declares {sorted(fault.declared)}:\n" + describe(result)
            )
    return found


def check(results: dict[str, dict[str, Any]], examples: int) -> None:
    wrong = problems(results, examples)
    assert not wrong, "\n\n".join(wrong)


# ------------------------------------------------------------------ fast checks


def test_there_are_exactly_the_expected_faults_each_named_once() -> None:
    names = [fault.name for fault in FAULTS]
    assert len(names) == FAULT_COUNT
    assert len(set(names)) == FAULT_COUNT
    assert NO_FAULT not in names


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
def test_every_fault_declares_known_server_statements(fault: Fault) -> None:
    """A fault of the broker breaks statements that bind the server and that a client
    can observe; each is an id of oracle/statements-3.1.1.json, written as such."""
    table = statements()
    assert fault.breaks, f"{fault.name!r} declares no statement it breaks"
    assert isinstance(fault.breaks, tuple)
    for sid in fault.declared:
        assert sid in table, f"{fault.name!r} declares {sid!r}, no statement of MQTT 3.1.1"
        assert table[sid].server_side, f"{sid} binds only the client"
        assert table[sid].testable, f"{sid} is not observable by a client"
    for sid, why in fault.cascades.items():
        assert sid not in fault.breaks, f"{sid} is both broken and a cascade"
        assert why.strip(), f"the cascade {sid} of {fault.name!r} gives no reason"


def _result(name: str, **fields: Any) -> dict[str, Any]:
    return {"fault": name, "found": False, "returncode": 0, **fields}


def _found(name: str, refs: list[str]) -> dict[str, Any]:
    return _result(name, found=True, seconds=1.0, verdict="v", program="p", refs=refs)


def _all_found() -> dict[str, dict[str, Any]]:
    results = {NO_FAULT: _result(NO_FAULT)}
    for fault in FAULTS:
        results[fault.name] = _found(fault.name, [fault.breaks[0]])
    return results


def test_the_judgement_passes_only_findings_that_name_a_declared_statement() -> None:
    results = _all_found()
    assert problems(results, 1) == []
    first, second, third = FAULTS[:3]
    results[first.name] = _found(first.name, ["MQTT-9.9.9-9"])
    results[second.name] = _result(second.name)
    results[third.name] = _found(third.name, [])  # an assertion of the machine: no ids
    wrong = problems(results, 1)
    assert len(wrong) == 3
    assert f"the finding for {first.name!r} names ['MQTT-9.9.9-9']" in wrong[0]
    assert f"missed {second.name!r}" in wrong[1]
    assert f"the finding for {third.name!r} names []" in wrong[2]


def test_a_crashed_hunt_fails_even_when_it_reported_a_finding() -> None:
    results = _all_found()
    fault = FAULTS[0]
    results[fault.name] = {**results[fault.name], "returncode": 1, "error": "Traceback ..."}
    results[NO_FAULT] = _result(NO_FAULT, returncode=1, model_crash="the model crashed: ...")
    wrong = problems(results, 1)
    assert len(wrong) == 2
    assert wrong[0].startswith(f"the hunt {NO_FAULT!r} crashed (exit 1)")
    assert "the model crashed" in wrong[0]
    assert wrong[1].startswith(f"the hunt {fault.name!r} crashed (exit 1)")


def test_a_control_finding_fails() -> None:
    results = _all_found()
    results[NO_FAULT] = _found(NO_FAULT, ["MQTT-4.8.0-1"])
    assert problems(results, 1)[0].startswith("the control hunt found a disagreement")


def test_a_finding_of_any_control_shard_fails_and_names_its_seed() -> None:
    results = _all_found()
    del results[NO_FAULT]
    for seed in CONTROL_SEEDS:
        shard = _result(NO_FAULT, seed=seed)
        results[label(shard)] = shard
    last = _found(NO_FAULT, ["MQTT-4.8.0-1"]) | {"seed": CONTROL_SEEDS[-1]}
    results[label(last)] = last
    wrong = problems(results, 1)
    assert len(wrong) == 1
    assert f"=== {NO_FAULT} (seed {CONTROL_SEEDS[-1]})" in wrong[0]


def test_the_control_shards_add_up_to_at_least_the_budget() -> None:
    jobs = control_jobs(CI_EXAMPLES)
    assert {name for name, _, _ in jobs} == {NO_FAULT}
    assert sorted(seed for _, _, seed in jobs if seed is not None) == sorted(CONTROL_SEEDS)
    assert sum(examples for _, examples, _ in jobs) >= CI_EXAMPLES


def test_a_hunt_that_cannot_start_is_a_crash() -> None:
    """A hunt process that fails before its report (here: an unknown fault name, which
    argparse refuses with exit 2) counts as crashed, not as "nothing found"."""
    result = run_hunt("no such fault", examples=1)
    assert crashed(result)
    assert result["returncode"] == 2
    assert "invalid choice" in result["error"]


# ------------------------------------------------------------------ the hunts


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_state_machine_finds_every_fault_and_nothing_in_the_unbroken_broker() -> None:
    names = [fault.name for fault in FAULTS]
    assert len(names) == FAULT_COUNT
    control = control_jobs(CI_EXAMPLES)
    # The control shards first: they run longest (nothing ends them early).
    check(hunt_all([*control, *[(name, CI_EXAMPLES, None) for name in names]]), CI_EXAMPLES)


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.skipif(profile_name() != "thorough", reason="needs MQTTREF_PROFILE=thorough")
def test_a_long_control_hunt_finds_nothing_in_the_unbroken_broker() -> None:
    check(hunt_all(control_jobs(THOROUGH_EXAMPLES)), THOROUGH_EXAMPLES)
