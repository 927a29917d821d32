"""One fault hunt in its own process: ``python -m tests.stateful.hunt NAME``.

A fault is injected by patching classes of the implementation, which holds for
a whole process, so each hunt gets its own; ``test_faults`` runs several at a
time (they spend their time waiting on sockets, not computing). Prints one
JSON object: whether the machine found the fault, in how long, the model's
verdict, the rule sequence that found it and the transcript.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import pytest
from hypothesis import Phase

from mqttref.impl.oracle.stateful.driver import Disagreement
from mqttref.impl.oracle.stateful.machine import hunt, machine_for, machine_settings
from mqttref.impl.oracle.stateful.target import slow_multiplier
from tests.stateful.faults import FAULTS
from tests.stateful.inprocess import InProcessTarget

NO_FAULT = "none"
"""The control run: the same hunt against the unbroken broker must find nothing,
or the findings above could be the machine's (or the model's) own faults."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stateful.hunt")
    parser.add_argument(
        "fault", choices=[NO_FAULT, *(fault.name for fault in FAULTS)],
        help=f"a fault of faults.FAULTS, or {NO_FAULT!r} for the control run",
    )
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--shrink", type=float, default=15.0, help="seconds of shrinking")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the broken broker's own complaints are noise here
    patch = pytest.MonkeyPatch()
    for fault in FAULTS:
        if fault.name == args.fault:
            fault.inject(patch)
    target = InProcessTarget()
    target.timing = target.timing.scaled(slow_multiplier())
    try:
        finding = hunt(
            machine_for(target, discard_model_crashes=True),
            machine_settings(
                "ci",
                max_examples=args.examples,
                stateful_step_count=args.steps,
                derandomize=True,
                database=None,
                phases=[Phase.generate, Phase.shrink],
            ),
            shrink_seconds=args.shrink,
        )
    finally:
        patch.undo()
    result: dict[str, object] = {"fault": args.fault, "found": finding is not None}
    if finding is not None:
        error = finding.error
        result.update(
            seconds=round(finding.seconds, 1),
            verdict=finding.verdict,
            refs=list(getattr(error, "refs", ())),
            program=finding.program,
            transcript=error.transcript if isinstance(error, Disagreement) else [str(error)],
        )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
