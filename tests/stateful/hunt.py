"""One fault hunt in its own process: ``python -m tests.stateful.hunt NAME``.

A fault is injected by patching classes of the implementation, which holds for
a whole process, so each hunt gets its own; ``test_faults`` runs several at a
time (they spend their time waiting on sockets, not computing). Prints one
JSON object: whether the machine found a disagreement, in how long, the
model's verdict, the statement ids it names (``refs``), the statements the
fault declares (``declared``: its breaks and cascades) and whether the two
meet (``names_declared``), the rule sequence that found it and the transcript.

``--level 5`` hunts with ``BrokerMachine5`` (5.0 clients beside 3.1.1 ones) a
fault of ``faults5`` (``test_faults_v5`` runs those); the control is ``none`` at
either level, and without ``--level`` a hunt is the 3.1.1 one it always was.

Exit status: 0 when the hunt ran to its end (found or not); 1 when the control
hunt made the model itself crash (``model_crash`` in the JSON: a bug of the
model, which the control hunt reports rather than discards); anything else
(an import error, an exception of the machine) is a crash with a traceback.
Either way ``test_faults`` fails on a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import pytest
from hypothesis import Phase

from mqttref.oracle.stateful.driver import Disagreement, ModelCrash
from mqttref.oracle.stateful.machine import hunt, machine_for
from mqttref.oracle.stateful.machine5 import machine5_for
from mqttref.oracle.stateful.settings import machine_settings
from mqttref.oracle.stateful.target import slow_multiplier
from tests.stateful.faults import FAULTS, Fault
from tests.stateful.faults5 import FAULTS5
from tests.stateful.inprocess import InProcessTarget

NO_FAULT = "none"
"""The control run: the same hunt against the unbroken broker must find nothing,
or the findings above could be the machine's (or the model's) own faults."""
MODEL_CRASHED = 1
"""Exit status of a control hunt in which the model itself raised."""


LEVELS = {4: FAULTS, 5: FAULTS5}
"""The Protocol Level whose machine hunts (4: ``BrokerMachine``, MQTT 3.1.1; 5:
``BrokerMachine5``, 5.0 clients beside 3.1.1 ones) -> the faults hunted at it."""


def fault_named(name: str, level: int = 4) -> Fault | None:
    return next((fault for fault in LEVELS[level] if fault.name == name), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stateful.hunt")
    parser.add_argument(
        "fault", help=f"a fault of faults.FAULTS (--level 5: of faults5.FAULTS5), or"
        f" {NO_FAULT!r} for the control run",
    )
    parser.add_argument("--level", type=int, choices=sorted(LEVELS), default=4,
                        help="4: the 3.1.1 machine and faults (default); 5: the level-5 ones")
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--shrink", type=float, default=15.0, help="seconds of shrinking")
    parser.add_argument("--seed", type=int,
                        help="the programs of this seed (default: derandomized, the same"
                        " programs every run); a control budget spread over processes uses it")
    args = parser.parse_args(argv)
    names = [NO_FAULT, *(fault.name for fault in LEVELS[args.level])]
    if args.fault not in names:
        parser.error(f"argument fault: invalid choice: {args.fault!r} at level {args.level}"
                     f" (choose from {', '.join(map(repr, names))})")
    logging.disable(logging.CRITICAL)  # the broken broker's own complaints are noise here
    fault = fault_named(args.fault, args.level)
    patch = pytest.MonkeyPatch()
    if fault is not None:
        fault.inject(patch)
    target = InProcessTarget()
    target.timing = target.timing.scaled(slow_multiplier())
    # A broken broker may lead the model where it cannot judge (an example it then
    # discards); against the unbroken broker a model crash is a bug of the model.
    discard_model_crashes = fault is not None
    result: dict[str, object] = {
        "fault": args.fault,
        "level": args.level,
        "seed": args.seed,
        "found": False,
        "declared": sorted(fault.declared) if fault is not None else [],
    }
    machine = machine5_for if args.level == 5 else machine_for
    try:
        finding = hunt(
            machine(target, discard_model_crashes=discard_model_crashes),
            machine_settings(
                "ci",
                max_examples=args.examples,
                stateful_step_count=args.steps,
                derandomize=args.seed is None,
                database=None,
                phases=[Phase.generate, Phase.shrink],
            ),
            shrink_seconds=args.shrink,
            seed=args.seed,
        )
    except (ModelCrash, ExceptionGroup) as raised:
        crashes = [raised] if isinstance(raised, ModelCrash) else [
            e for e in raised.exceptions if isinstance(e, ModelCrash)
        ]
        if not crashes:
            raise
        crash = crashes[0]
        result.update(model_crash=str(crash), transcript=crash.transcript)
        _print(result)
        return MODEL_CRASHED
    finally:
        patch.undo()
    if finding is not None:
        error = finding.error
        refs = list(error.refs) if isinstance(error, Disagreement) else []
        result.update(
            found=True,
            seconds=round(finding.seconds, 1),
            verdict=finding.verdict,
            refs=refs,
            names_declared=bool(fault is not None and set(refs) & fault.declared),
            program=finding.program,
            transcript=error.transcript if isinstance(error, Disagreement) else [str(error)],
        )
    _print(result)
    return 0


def _print(result: dict[str, object]) -> None:
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(main())
