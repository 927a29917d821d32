"""Run the checks against a target within a budget and turn results into verdicts.

Checks run one after another (so that their traces stay readable and the
broker's load stays that of a few clients); each gets a fresh ``Context`` with
its own clients and a hard time limit, and cleans up after itself. When the
budget runs out, the remaining checks are reported NOT RUN. The verdict for a
statement is FAIL when any check citing it failed, PASS when at least one ran
and all that ran passed, NOT RUN when its checks did not run, and NOT TESTABLE
(with the reason from the statement list) when none can exist.
"""

from __future__ import annotations

import asyncio
import enum
import random
import secrets
import time
import zlib
from collections.abc import Callable, Iterable, Sequence

import attrs

from mqttref.impl.oracle import checks as _checks  # noqa: F401 - registers the checks
from mqttref.impl.oracle.exploration import ExplorationOutcome
from mqttref.impl.oracle.flows import VERIFIED, cited
from mqttref.impl.oracle.probe import Deviation, Inconclusive, Timing
from mqttref.impl.oracle.scenario import REGISTRY, Check, Context
from mqttref.impl.oracle.statements import Statement, normalise_id, statements


class Verdict(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    NOT_TESTABLE = "NOT TESTABLE"
    NOT_RUN = "NOT RUN"


class Outcome(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    """The oracle itself broke (a bug in a check): counted as a failure, labelled."""
    NOT_RUN = "NOT RUN"


@attrs.frozen
class CheckResult:
    check: Check
    outcome: Outcome
    message: str = ""
    trace: tuple[str, ...] = ()
    seconds: float = 0.0
    verified: frozenset[str] = frozenset()
    """Statements whose requirements held before a failure stopped the check."""

    @property
    def blamed(self) -> tuple[str, ...]:
        """The statements a failure is evidence against.

        A deviation message that cites some of the check's statements blames
        those alone (the check stopped there, so its other statements have no
        verdict from it); one that cites none blames them all.
        """
        named_ids = {normalise_id(raw) for raw in cited(self.message)}
        named = tuple(sid for sid in self.check.ids if sid in named_ids)
        return named or self.check.ids


@attrs.frozen
class StatementVerdict:
    statement: Statement
    verdict: Verdict
    checks: tuple[str, ...]
    reason: str = ""
    failures: tuple[CheckResult, ...] = ()


def all_checks() -> list[Check]:
    return list(REGISTRY.values())


def select(only: Sequence[str] | None) -> list[Check]:
    """Checks citing any statement id in ``only`` or named in it (all when None)."""
    if not only:
        return all_checks()
    ids, names = set(), set()
    for item in only:
        if item in REGISTRY:
            names.add(item)
        else:
            ids.add(normalise_id(item))
    return [c for c in all_checks() if c.name in names or ids & set(c.ids)]


async def run_check(check: Check, host: str, port: int, *, timing: Timing, token: str,
                    seed: int, limit: float) -> CheckResult:
    rng = random.Random(seed ^ zlib.crc32(check.name.encode()))
    ctx = Context(host, port, timing, token, rng)
    start = time.monotonic()
    outcome, message = Outcome.PASS, ""
    verified: set[str] = set()
    VERIFIED.set(verified)
    try:
        await asyncio.wait_for(check.run(ctx), limit)
    except Deviation as exc:
        outcome, message = Outcome.FAIL, str(exc)
    except Inconclusive as exc:
        outcome, message = Outcome.NOT_RUN, f"inconclusive: {exc}"
    except TimeoutError:
        outcome, message = Outcome.FAIL, f"the scenario did not finish within {limit:.0f}s"
    except OSError as exc:
        outcome, message = Outcome.FAIL, f"network error talking to the broker: {exc!r}"
    except Exception as exc:
        outcome, message = Outcome.ERROR, f"oracle error (a bug in the check): {exc!r}"
    finally:
        try:
            await asyncio.wait_for(ctx.cleanup(), timing.reply_bound * 2)
        except (Deviation, OSError, TimeoutError) as exc:
            ctx.trace.note(f"cleanup failed: {exc!r}")
    seconds = time.monotonic() - start
    held = frozenset(normalise_id(raw) for raw in verified) & set(check.ids)
    return CheckResult(check, outcome, message, tuple(ctx.trace.lines), seconds, held)


async def run_suite(
    host: str,
    port: int,
    selected: Iterable[Check],
    *,
    budget: float,
    timing: Timing,
    seed: int,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[CheckResult]:
    """Run ``selected`` in order until the budget is spent."""
    chosen = list(selected)
    token = secrets.token_hex(4)
    deadline = time.monotonic() + budget
    limit = timing.bound(30.0)
    results = []
    for n, check in enumerate(chosen):
        if time.monotonic() + min(limit, 5.0) > deadline:
            results.append(CheckResult(check, Outcome.NOT_RUN, "budget exhausted"))
            continue
        if progress is not None:
            progress(n, len(chosen), check.name)
        results.append(await run_check(check, host, port, timing=timing, token=token, seed=seed,
                                       limit=limit))
    return results


def judge(
    results: Sequence[CheckResult],
    exploration: ExplorationOutcome | None = None,
    only: Sequence[str] | None = None,
    protocol: str = "3.1.1",
) -> list[StatementVerdict]:
    """One verdict per statement (limited to those ``only`` selects, when given)."""
    by_id: dict[str, list[CheckResult]] = {}
    for result in results:
        for sid in result.check.ids:
            by_id.setdefault(sid, []).append(result)
    cited: dict[str, list[str]] = {}
    for check in all_checks():
        for sid in check.ids:
            cited.setdefault(sid, []).append(check.name)
    explored = set(exploration.covered) if exploration and exploration.ran else set()
    explored_fail = {sid for f in (exploration.failures if exploration else ()) for sid in f.ids}
    wanted = _wanted(only)
    verdicts = []
    for sid, statement in statements(protocol).items():
        if wanted is not None and sid not in wanted:
            continue
        mine = by_id.get(sid, [])
        names = tuple(cited.get(sid, []))
        bad = [r for r in mine if r.outcome in (Outcome.FAIL, Outcome.ERROR)]
        failed = tuple(r for r in bad if sid in r.blamed)
        stopped = [r.check.name for r in bad if sid not in r.blamed and sid not in r.verified]
        passed = any(r.outcome is Outcome.PASS or (sid in r.verified and sid not in r.blamed)
                     for r in mine)
        if failed or sid in explored_fail:
            reason = "model exploration found a deviation" if sid in explored_fail else ""
            verdict = StatementVerdict(statement, Verdict.FAIL, names, reason, failed)
        elif passed or (sid in explored and statement.testable):
            verdict = StatementVerdict(statement, Verdict.PASS, names)
        elif names:
            reasons = sorted({r.message for r in mine if r.outcome is Outcome.NOT_RUN})
            reasons += [f"{name} stopped at a deviation from another statement"
                        for name in stopped]
            verdict = StatementVerdict(statement, Verdict.NOT_RUN, names,
                                       "; ".join(reasons) or "its checks were not selected")
        elif not statement.testable:
            verdict = StatementVerdict(statement, Verdict.NOT_TESTABLE, (), statement.note)
        else:
            verdict = StatementVerdict(statement, Verdict.NOT_RUN, (),
                                       "no check of the suite covers it yet")
        verdicts.append(verdict)
    return verdicts


def _wanted(only: Sequence[str] | None) -> set[str] | None:
    if not only:
        return None
    wanted: set[str] = set()
    for item in only:
        if item in REGISTRY:
            wanted.update(REGISTRY[item].ids)
        else:
            wanted.add(normalise_id(item))
    return wanted
