"""Proof that the state machine can fail: it finds every injected broker fault.

Each fault (``faults.py``) breaks the in-process mqttref broker in one place,
through ``monkeypatch``; a hunt (``hunt.py``, one process per fault, several
at a time) lets the state machine explore with a bounded, derandomized budget
and reports what it found. A control hunt against the unbroken broker, with
the same budget, must find nothing: so a finding is the fault's doing, not
the machine's or the model's. Every finding prints the model's verdict and
the rule sequence that found it (run with ``-s`` to read them).

Every fault must be found within ``CI_EXAMPLES`` examples (the ``ci``
budget; the hunts are derandomized, so a run replays the same programs).
Under ``MQTTREF_PROFILE=thorough`` a longer control hunt must find nothing
too. Faults always target the in-process broker, whatever
``MQTTREF_TARGET`` says.
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

from mqttref.impl.oracle.stateful.machine import profile_name
from tests.stateful.faults import FAULTS
from tests.stateful.hunt import NO_FAULT

CI_EXAMPLES = 150
THOROUGH_EXAMPLES = 500
STEPS = 30
SHRINK_SECONDS = 10.0
HUNTERS = 7
"""Hunts at a time: they mostly wait for quiescence windows, so several share a core."""
ROOT = Path(__file__).resolve().parents[2]


def run_hunt(name: str, examples: int) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "tests.stateful.hunt", name,
        "--examples", str(examples), "--steps", str(STEPS), "--shrink", str(SHRINK_SECONDS),
    ]
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=3600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"fault": name, "found": False, "error": done.stderr[-3000:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def describe(result: dict[str, Any]) -> str:
    if not result["found"]:
        return f"=== {result['fault']}: nothing found {result.get('error', '')}"
    return (
        f"=== {result['fault']}: found in {result['seconds']}s\n{result['verdict']}\n"
        f"{result['program']}"
    )


def hunt_all(names: list[str], examples: int) -> dict[str, dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=HUNTERS) as pool:
        results = list(pool.map(lambda name: run_hunt(name, examples), names))
    for result in results:
        print(describe(result))
    return {result["fault"]: result for result in results}


def check(results: dict[str, dict[str, Any]], examples: int) -> None:
    control = results.pop(NO_FAULT)
    assert not control["found"], (
        "the control hunt found a disagreement in the unbroken broker:\n" + describe(control)
    )
    missed = [name for name, result in results.items() if not result["found"]]
    assert not missed, f"the state machine missed {missed} within {examples} examples"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_state_machine_finds_every_fault_and_nothing_in_the_unbroken_broker() -> None:
    names = [fault.name for fault in FAULTS]
    assert len(names) >= 12
    check(hunt_all([NO_FAULT, *names], CI_EXAMPLES), CI_EXAMPLES)


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.skipif(profile_name() != "thorough", reason="needs MQTTREF_PROFILE=thorough")
def test_a_long_control_hunt_finds_nothing_in_the_unbroken_broker() -> None:
    check(hunt_all([NO_FAULT], THOROUGH_EXAMPLES), THOROUGH_EXAMPLES)
