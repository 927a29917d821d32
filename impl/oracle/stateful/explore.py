"""The model exploration for ``mqttref check``: the state machine against any broker.

``mqttref.impl.oracle.exploration`` imports this module and calls
``explore(host, port, budget=..., seed=...)``. It runs the same
``BrokerMachine`` that ``tests/stateful`` runs against the mqttref broker,
here against the broker at ``host:port``, in rounds of a few examples, each
round with its own seed (``seed``, ``seed + 1``...), until the budget is
spent, and reports the statement ids the model's transitions covered and
every disagreement: its statement ids, the model's verdict, the rule sequence
and transcript, and the seed of the round that replays it (``explore(..., seed=that)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hypothesis import Phase
from hypothesis import seed as use_seed
from hypothesis.errors import Flaky
from hypothesis.stateful import get_state_machine_test

from mqttref.impl.oracle.exploration import ExplorationFailure, ExplorationOutcome
from mqttref.impl.oracle.stateful.driver import Disagreement, ModelCrash
from mqttref.impl.oracle.stateful.machine import (
    Coverage,
    machine_for,
    machine_settings,
    shrinking_limited_to,
)
from mqttref.impl.oracle.stateful.target import ExternalTarget, slow_multiplier

EXAMPLES_PER_ROUND = 4
STEPS = 25
MIN_ROUND_SECONDS = 8.0
"""A round is not started with less budget left than this."""


def _disagreements(group: BaseExceptionGroup[BaseException]) -> list[Disagreement]:
    """The disagreements inside a (possibly nested) exception group."""
    found: list[Disagreement] = []
    for exc in group.exceptions:
        if isinstance(exc, Disagreement):
            found.append(exc)
        elif isinstance(exc, BaseExceptionGroup):
            found.extend(_disagreements(exc))
    return found


def explore(
    host: str,
    port: int,
    *,
    budget: float,
    seed: int,
    partial: Callable[[ExplorationOutcome], None] | None = None,
) -> ExplorationOutcome:
    """Explore in rounds until ``budget`` is spent; ``partial`` gets the outcome so far
    after every round, so that a caller that must stop this one keeps its verdicts."""
    started = time.monotonic()
    target = ExternalTarget(host, port)
    target.timing = target.timing.scaled(slow_multiplier())
    machine = machine_for(target)
    covered_before = set(Coverage.refs)
    Coverage.refs.clear()
    failures: list[ExplorationFailure] = []
    notes: list[str] = []
    verdicts: set[str] = set()
    rounds = 0
    longest = 0.0

    def outcome() -> ExplorationOutcome:
        note = (
            f"{rounds} rounds of {EXAMPLES_PER_ROUND} examples x {STEPS} steps "
            f"(seeds {seed}..{seed + max(rounds - 1, 0)})"
        )
        if notes:
            note += "; " + "; ".join(notes)
        return ExplorationOutcome(
            ran=True,
            note=note,
            covered=tuple(sorted(Coverage.refs)),
            failures=tuple(failures),
            seconds=time.monotonic() - started,
        )

    try:
        # A round is not started unless the longest one so far still fits: on a
        # loaded machine rounds grow, and the budget is the command's promise.
        while (remaining := budget - (time.monotonic() - started)) >= max(
            MIN_ROUND_SECONDS, longest
        ):
            round_seed = seed + rounds
            rounds += 1
            round_started = time.monotonic()
            how = machine_settings(
                "ci",
                max_examples=EXAMPLES_PER_ROUND,
                stateful_step_count=STEPS,
                derandomize=False,
                database=None,
                phases=[Phase.generate, Phase.shrink],
            )
            test = use_seed(round_seed)(get_state_machine_test(machine, settings=how))
            try:
                with shrinking_limited_to(max(1.0, min(30.0, remaining / 3))):
                    test()
            except Disagreement as error:
                verdict = str(error).split("\nTranscript", 1)[0]
                if verdict.splitlines()[0] not in verdicts:
                    verdicts.add(verdict.splitlines()[0])
                    program = [
                        n for note in getattr(error, "__notes__", []) for n in note.splitlines()
                    ]
                    failures.append(
                        ExplorationFailure(
                            ids=error.refs,
                            message=verdict,
                            trace=(*program, "transcript:", *error.transcript),
                            seed=round_seed,
                        )
                    )
            except ModelCrash as crash:
                notes.append(f"seed {round_seed}: the model could not judge: "
                             f"{str(crash).splitlines()[0]}")
            except BaseExceptionGroup as group:
                # Hypothesis wraps a failure that did not replay (FlakyFailure) or
                # several distinct failures in a group. A disagreement seen once and
                # not again is timing-dependent: reported as inconclusive, not a FAIL.
                seen = _disagreements(group)
                if not seen:
                    raise
                first = str(seen[0]).splitlines()[0]
                notes.append(f"seed {round_seed}: observed once but did not replay "
                             f"(inconclusive): {first}")
            except Flaky as flaky:
                # The broker answered a replayed program differently (its timing
                # decided something the program depends on): no verdict from it.
                first = str(flaky).splitlines()[0] if str(flaky) else ""
                notes.append(f"seed {round_seed}: the broker's answers did not replay"
                             f" (inconclusive): {type(flaky).__name__}: {first[:120]}")
            longest = max(longest, time.monotonic() - round_started)
            if partial is not None:
                partial(outcome())
    except OSError as error:
        return ExplorationOutcome(
            ran=False,
            note=f"model exploration could not reach {host}:{port}: {error}",
            seconds=time.monotonic() - started,
        )
    finally:
        final = outcome()
        Coverage.refs |= covered_before
    return final
