"""The model exploration for ``mqttref check``: the state machine against any broker.

``mqttref.oracle.exploration`` imports this module and calls
``explore(host, port, budget=..., seed=...)``. It runs the same
``BrokerMachine`` that ``tests/stateful`` runs against the mqttref broker,
here against the broker at ``host:port``, in rounds of a few examples, each
round with its own seed (``seed``, ``seed + 1``...), until the budget is
spent, and reports the statement ids the model's transitions covered and
every disagreement: its statement ids, the model's verdict, the rule sequence
and transcript, and the seed of the round that replays it (``explore(..., seed=that)``).

What a round raises is sorted by ``judge_round``. Hypothesis raises one failure
alone, or, when a round found several with different origins, an exception group
in which each distinct failure carries its own minimal example (its
``__notes__``): every disagreement in it is a failure of its own. Only what
Hypothesis could not replay (``Flaky``: the broker's timing decided it) is an
inconclusive note, and so is anything that is no verdict on the broker (a
``ModelCrash``, or any other exception of the machine: "oracle error: " with the
exception's type and message). Failures with the same statement ids and message
are one, across rounds too (``Findings``).

Where the broker's timing reaches the rules' preconditions, Hypothesis's replay of a
recorded prefix (a later example of the round, or a shrink) can meet another set of
enabled rules and stops with FlakyStrategyDefinition ("Inconsistent data generation"),
a note here. Measured against mosquitto (``max_qos 1``, level 5, seed 12, the same
example run twice): a client with keep alive 1 s reconnected, then ``expiry_passes``
waited 2.3 s; mosquitto closed it within that wait in one run and later in the other
(its sweep closes 1.3 to 7 s after the last packet, inside the 6 s grace an external
target gets), so ``connected_slots`` and with it ``away_while_others_publish``'s
precondition differed at the next draw. So the machine keeps what a precondition reads
out of the broker's timing: clients ping before their keep alive lapses, whenever the
driver reads (``Driver.keep_alive_pings``), so only a deliberate silence (``Driver.wait``)
lets one lapse, and that silence ends only when every lapsed connection is closed or its
close is owed; the rules whose options follow the broker's timing (what is owed, who
listens) are enabled by the connected clients alone and do nothing, said in the
transcript, when there is nothing to choose. A failure that still does not replay
(an answer the broker's timing decided) stays an inconclusive note.

``covered`` lists the statements whose model transitions fired: what the
exploration exercised, not that the broker conforms to them. A transition fires
when the model takes a step, in examples that go on to disagree or do not
replay too, and an example cut at the budget or a failure filed as inconclusive
judges nothing. It is no evidence of conformance: it does not turn a statement
the suite did not run (NOT RUN) into a PASS.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

import attrs
from hypothesis import Phase
from hypothesis import seed as use_seed
from hypothesis.errors import Flaky
from hypothesis.stateful import get_state_machine_test

from mqttref.oracle.exploration import ExplorationFailure, ExplorationOutcome
from mqttref.oracle.stateful.driver import Disagreement
from mqttref.oracle.stateful.machine import _RUN, BrokerMachine, Coverage, machine_for
from mqttref.oracle.stateful.settings import machine_settings, shrinking_limited_to
from mqttref.oracle.stateful.target import ExternalTarget, slow_multiplier

Bind = Callable[[ExternalTarget], type[BrokerMachine]]
"""Makes the machine class an exploration runs, bound to the broker (``machine_for``;
``explore5`` binds ``BrokerMachine5``)."""

EXAMPLES_PER_ROUND = 4
STEPS = 25
MIN_ROUND_SECONDS = 8.0
"""A round is not started with less budget left than this."""

_EXAMPLE_PREFIX = re.compile(rf"x{re.escape(_RUN)}\d+")
"""The per-example prefix of topics and client ids (``~`` in the machine's names)."""


def _first_line(error: BaseException, limit: int = 200) -> str:
    text = str(error)
    return text.splitlines()[0][:limit] if text else ""


def _failure(error: Disagreement, notes: Sequence[str], seed: int) -> ExplorationFailure:
    """One disagreement, with the minimal example Hypothesis noted on it."""
    program = [line for note in notes for line in note.splitlines() if line.strip()]
    return ExplorationFailure(
        ids=error.refs,
        message=error.verdict,
        trace=(*program, "transcript:", *error.transcript),
        seed=seed,
    )


def _disagreements(error: BaseException) -> list[Disagreement]:
    """The disagreements in ``error``, inside (possibly nested) groups too."""
    if isinstance(error, Disagreement):
        return [error]
    if isinstance(error, BaseExceptionGroup):
        return [found for inner in error.exceptions for found in _disagreements(inner)]
    return []


def _did_not_replay(error: BaseException, seed: int) -> str:
    """The note for a ``Flaky`` failure: the broker answered a replayed program
    differently (its timing decided something the program depends on)."""
    seen = _disagreements(error)
    if seen:
        return (f"seed {seed}: observed once but did not replay (inconclusive): "
                f"{_first_line(seen[0])}")
    what = f"{type(error).__name__}: {_first_line(error, 120)}"
    if isinstance(error, BaseExceptionGroup) and error.exceptions:
        inner = error.exceptions[0]
        what += f" ({type(inner).__name__}: {_first_line(inner, 120)})"
    return f"seed {seed}: the broker's answers did not replay (inconclusive): {what}"


def unreplayed(error: BaseException, seed: int) -> list[ExplorationFailure]:
    """The disagreements of a round's ``Flaky`` failures, whole: observed once and not on
    the replay, so no verdict, but the verdict text, the program Hypothesis noted (if
    any) and the transcript of the run that saw them are what a diagnosis needs."""
    found: list[ExplorationFailure] = []

    def visit(error: BaseException, inherited: Sequence[str], flaky: bool) -> None:
        own = getattr(error, "__notes__", None)
        program = list(own) if own else list(inherited)
        if isinstance(error, Disagreement):
            if flaky:
                found.append(_failure(error, program, seed))
        elif isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                visit(inner, program, flaky or isinstance(error, Flaky))

    visit(error, (), False)
    return found


def judge_round(error: BaseException, seed: int) -> tuple[list[ExplorationFailure], list[str]]:
    """What a round that raised ``error`` found: a failure per distinct disagreement
    (statement ids and message, the first one kept) and the inconclusive notes.

    ``error`` is what Hypothesis raised for the round's seed ``seed``: one failure,
    or a group of distinct failures (nested groups too), each with its minimal
    example in ``__notes__`` (on the failure itself, or, when the test raised a
    group, on that group: a failure without notes has those of its nearest group).
    """
    failures: dict[tuple[tuple[str, ...], str], ExplorationFailure] = {}
    notes: list[str] = []

    def visit(error: BaseException, inherited: Sequence[str]) -> None:
        own = getattr(error, "__notes__", None)
        program = list(own) if own else list(inherited)
        if isinstance(error, Flaky):  # FlakyFailure is a group: before groups
            notes.append(_did_not_replay(error, seed))
        elif isinstance(error, Disagreement):
            failures.setdefault(failure_key(error.refs, error.verdict),
                                _failure(error, program, seed))
        elif isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                visit(inner, program)
        else:  # a ModelCrash, or a bug of the machine: no verdict on the broker
            notes.append(f"seed {seed}: oracle error: {type(error).__name__}: "
                         f"{_first_line(error)} (inconclusive)")

    visit(error, ())
    return list(failures.values()), list(dict.fromkeys(notes))


def failure_key(ids: Sequence[str], message: str) -> tuple[tuple[str, ...], str]:
    """Failures with the same key are one: the same statement ids, the same
    message (the example's own prefix of topics and client ids aside)."""
    return tuple(sorted(set(ids))), _EXAMPLE_PREFIX.sub("~", message)


@attrs.define
class Findings:
    """What the rounds found so far: distinct failures and inconclusive notes."""

    failures: list[ExplorationFailure] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    inconclusive: list[ExplorationFailure] = attrs.field(factory=list)
    """What did not replay, whole (``unreplayed``)."""
    _keys: set[tuple[tuple[str, ...], str]] = attrs.field(factory=set)

    def add_round(self, error: BaseException, seed: int) -> None:
        failures, notes = judge_round(error, seed)
        for failure in failures:
            key = failure_key(failure.ids, failure.message)
            if key not in self._keys:
                self._keys.add(key)
                self.failures.append(failure)
        self.notes.extend(notes)
        self.inconclusive.extend(unreplayed(error, seed))


def explore(
    host: str,
    port: int,
    *,
    budget: float,
    seed: int,
    partial: Callable[[ExplorationOutcome], None] | None = None,
    bind: Bind | None = None,
    examples: int | None = None,
    steps: int | None = None,
    min_round: float | None = None,
    shrink_limit: Callable[[float, float], float] | None = None,
) -> ExplorationOutcome:
    """Explore in rounds until ``budget`` is spent; ``partial`` gets the outcome so far
    after every round, so that a caller that must stop this one keeps its verdicts.
    ``bind`` makes the machine (``machine_for``: the 3.1.1 ``BrokerMachine``, unless
    told otherwise); a round is ``examples`` examples (``EXAMPLES_PER_ROUND``) of up to
    ``steps`` steps (``STEPS``), not started with less than ``min_round`` seconds left
    (``MIN_ROUND_SECONDS``). ``shrink_limit(remaining, longest)`` bounds the
    shrinking of a round's failure (a third of what is left, at most 30 s, unless told)."""
    started = time.monotonic()
    target = ExternalTarget(host, port)
    target.timing = target.timing.scaled(slow_multiplier())
    machine = (bind or machine_for)(target)
    examples = EXAMPLES_PER_ROUND if examples is None else examples
    steps = STEPS if steps is None else steps
    min_round = MIN_ROUND_SECONDS if min_round is None else min_round
    covered_before = set(Coverage.refs)
    Coverage.refs.clear()
    findings = Findings()
    rounds = 0
    longest = 0.0

    def outcome() -> ExplorationOutcome:
        note = (
            f"{rounds} rounds of {examples} examples x {steps} steps "
            f"(seeds {seed}..{seed + max(rounds - 1, 0)})"
        )
        if findings.notes:
            note += "; " + "; ".join(findings.notes)
        return ExplorationOutcome(
            ran=True,
            note=note,
            covered=tuple(sorted(Coverage.refs)),
            failures=tuple(findings.failures),
            seconds=time.monotonic() - started,
            inconclusive=tuple(findings.inconclusive),
        )

    try:
        # A round is not started unless the longest one so far still fits: on a
        # loaded machine rounds grow, and the budget is the command's promise.
        while (remaining := budget - (time.monotonic() - started)) >= max(
            min_round, longest
        ):
            round_seed = seed + rounds
            rounds += 1
            round_started = time.monotonic()
            how = machine_settings(
                "ci",
                max_examples=examples,
                stateful_step_count=steps,
                derandomize=False,
                database=None,
                phases=[Phase.generate, Phase.shrink],
            )
            test = use_seed(round_seed)(get_state_machine_test(machine, settings=how))
            try:
                limit = (shrink_limit(remaining, longest) if shrink_limit is not None
                         else max(1.0, min(30.0, remaining / 3)))
                with shrinking_limited_to(limit):
                    test()
            except OSError as error:
                # The broker could not be reached: before any round finished, the
                # exploration did not run; after, what the finished rounds found stays.
                if rounds == 1:
                    raise
                rounds -= 1
                findings.notes.append(f"stopped at seed {round_seed}: {host}:{port} could"
                                      f" not be reached ({type(error).__name__}: {error})")
                break
            except Exception as error:  # every outcome is judged or noted
                findings.add_round(error, round_seed)
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
