"""Run the checks against a target within a budget and turn what they saw into verdicts.

Checks run one after another (so that their traces stay readable and the
broker's load stays that of a few clients); each gets a fresh ``Context`` with
its own clients, its own ``Ledger`` and a hard time limit, and cleans up after
itself. A verdict is earned from the ledgers (``evidence``), never from a
check's outcome as a whole:

- FAIL: a finding (an observation that contradicts a statement) cites it. The
  blame goes to what the failing step cites, whether or not the check lists it.
- PASS: no finding, and an observation made in this run shows the broker
  meeting it. The report keeps that observation as the evidence.
- NOT APPLICABLE: neither, and the broker made a choice the spec allows that
  left a check of it without a situation to judge; the choice is named.
- NOT RUN: neither, with why: the budget ran out, a check was blocked by
  another statement's failure or cut off after one of its own, or it ended
  inconclusive.
- NOT TESTABLE: no client can observe it, or it binds only the client; never
  FAIL, whatever a message cites.
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

from mqttref.oracle import checks as _checks  # noqa: F401 - registers the checks
from mqttref.oracle import checks5 as _checks5  # noqa: F401 - registers the 5.0 checks
from mqttref.oracle import nodes
from mqttref.oracle.capabilities import BrokerProfile, BrokerProfile5
from mqttref.oracle.connection import new_check
from mqttref.oracle.evidence import (
    LEDGER,
    Choice,
    Deviation,
    Finding,
    Inconclusive,
    Ledger,
    NotApplicable,
    Observation,
)
from mqttref.oracle.exploration import ExplorationOutcome
from mqttref.oracle.probe import Timing
from mqttref.oracle.scenario import REGISTRIES, Check, Context
from mqttref.oracle.statements import Statement, normalise_id, statements


class Verdict(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    NOT_APPLICABLE = "NOT APPLICABLE"
    NOT_TESTABLE = "NOT TESTABLE"
    NOT_RUN = "NOT RUN"


class Outcome(enum.Enum):
    """How a check ended as a whole: a summary for people, not a verdict."""

    PASS = "PASS"
    FAIL = "FAIL"
    NOT_APPLICABLE = "NOT APPLICABLE"
    ERROR = "ERROR"
    """The oracle itself broke (a bug in a check); no statement is blamed."""
    NOT_RUN = "NOT RUN"


@attrs.frozen
class CheckResult:
    check: Check
    outcome: Outcome
    message: str = ""
    trace: tuple[str, ...] = ()
    seconds: float = 0.0
    observations: tuple[Observation, ...] = ()
    findings: tuple[Finding, ...] = ()
    choices: tuple[Choice, ...] = ()
    inconclusive: tuple[str, ...] = ()

    @property
    def blamed(self) -> tuple[str, ...]:
        """The statements this check's findings are evidence against."""
        out: list[str] = []
        for finding in self.findings:
            out += [sid for sid in finding.ids if sid not in out]
        return tuple(out)

    @property
    def uncited(self) -> tuple[Finding, ...]:
        """Findings that cite no statement a server can be judged on: gaps of the oracle."""
        return tuple(f for f in self.findings if not f.ids)

    def observed(self, sid: str) -> tuple[Observation, ...]:
        return tuple(o for o in self.observations if sid in o.ids)


@attrs.frozen
class Evidence:
    """The observation a PASS rests on, with the check that made it."""

    check: str
    observation: Observation


@attrs.frozen
class StatementVerdict:
    statement: Statement
    verdict: Verdict
    checks: tuple[str, ...]
    reason: str = ""
    failures: tuple[CheckResult, ...] = ()
    evidence: tuple[Evidence, ...] = ()


def all_checks(protocol: str = "3.1.1") -> list[Check]:
    """The checks registered for MQTT ``protocol``."""
    return list(REGISTRIES[protocol].values())


def select(only: Sequence[str] | None, protocol: str = "3.1.1") -> list[Check]:
    """Checks of ``protocol`` citing any statement id in ``only`` or named in it (all when None).

    The ids are resolved against ``protocol``'s list: MQTT-3.1.2-4 is a different
    statement in 3.1.1 and in 5.0.
    """
    if not only:
        return all_checks(protocol)
    registry = REGISTRIES[protocol]
    ids, names = set(), set()
    for item in only:
        if item in registry:
            names.add(item)
        else:
            ids.add(normalise_id(item))
    return [c for c in all_checks(protocol) if c.name in names or ids & set(c.ids)]


async def run_check(check: Check, host: str, port: int, *, timing: Timing, token: str,
                    seed: int, limit: float, profile: BrokerProfile | None = None,
                    profile5: BrokerProfile5 | None = None,
                    denied_filters: tuple[str, ...] = ()) -> CheckResult:
    rng = random.Random(seed ^ zlib.crc32(check.name.encode()))
    ledger = Ledger(protocol=check.protocol)
    LEDGER.set(ledger)
    new_check()  # the users alternate afresh among this check's clients
    nodes.new_check(seed, check.name)  # and the nodes of a cluster take turns afresh
    ctx = Context(host, port, timing, token, rng, profile=profile, ledger=ledger,
                  protocol=check.protocol, profile5=profile5, denied_filters=denied_filters)
    start = time.monotonic()
    error = ""
    try:
        await asyncio.wait_for(check.run(ctx), limit)
    except Deviation as exc:
        ledger.deviated(exc)
    except NotApplicable as exc:
        ledger.chose(exc)
    except Inconclusive as exc:
        ledger.inconclusive.append(str(exc))
    except TimeoutError:
        ledger.inconclusive.append(f"the scenario did not finish within {limit:.0f}s")
    except OSError as exc:
        ledger.inconclusive.append(f"network error talking to the broker: {exc!r}")
    except Exception as exc:
        error = f"oracle error (a bug in the check): {exc!r}"
    finally:
        try:
            await asyncio.wait_for(ctx.cleanup(), timing.reply_bound * 2)
        except (Deviation, OSError, TimeoutError) as exc:
            ctx.trace.note(f"cleanup failed: {exc!r}")
    seconds = time.monotonic() - start
    return _result(check, ledger, error, tuple(ctx.trace.lines), seconds)


def _result(check: Check, ledger: Ledger, error: str, trace: tuple[str, ...],
            seconds: float) -> CheckResult:
    findings = tuple(ledger.findings)
    robustness = not check.ids
    if error:
        outcome, message = Outcome.ERROR, error
    elif findings and (robustness or any(f.ids for f in findings)):
        outcome, message = Outcome.FAIL, findings[0].message
    elif findings:
        outcome = Outcome.ERROR
        message = f"a deviation that cites no statement (an oracle gap): {findings[0].message}"
    elif ledger.choices:
        outcome, message = Outcome.NOT_APPLICABLE, ledger.choices[0].choice
    elif ledger.inconclusive and (robustness or not ledger.observations):
        # A robustness check's outcome is its verdict: one that hung is no PASS.
        outcome, message = Outcome.NOT_RUN, f"inconclusive: {ledger.inconclusive[0]}"
    else:
        outcome, message = Outcome.PASS, ""
    return CheckResult(check, outcome, message, trace, seconds, tuple(ledger.observations),
                       findings, tuple(ledger.choices), tuple(ledger.inconclusive))


async def run_suite(
    host: str,
    port: int,
    selected: Iterable[Check],
    *,
    budget: float,
    timing: Timing,
    seed: int,
    progress: Callable[[int, int, str], None] | None = None,
    profile: BrokerProfile | None = None,
    profile5: BrokerProfile5 | None = None,
    denied_filters: tuple[str, ...] = (),
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
                                       limit=limit, profile=profile, profile5=profile5,
                                       denied_filters=denied_filters))
    return results


def judge(
    results: Sequence[CheckResult],
    exploration: ExplorationOutcome | None = None,
    only: Sequence[str] | None = None,
    protocol: str = "3.1.1",
) -> list[StatementVerdict]:
    """One verdict per statement (limited to those ``only`` selects, when given).

    The exploration's coverage (the transitions its own actions fired) is no
    evidence: only its findings count, as FAILs.
    """
    listing: dict[str, list[str]] = {}
    for check in all_checks(protocol):
        for sid in check.ids:
            listing.setdefault(sid, []).append(check.name)
    explored_fail = {sid for f in (exploration.failures if exploration else ()) for sid in f.ids}
    wanted = _wanted(only, protocol)
    verdicts = []
    for sid, statement in statements(protocol).items():
        if wanted is not None and sid not in wanted:
            continue
        names = tuple(listing.get(sid, []))
        if not (statement.testable and statement.server_side):
            reason = statement.note or "it binds the client only"
            verdicts.append(StatementVerdict(statement, Verdict.NOT_TESTABLE, (), reason))
            continue
        failed = tuple(r for r in results if sid in r.blamed)
        evidence = tuple(Evidence(r.check.name, o) for r in results for o in r.observed(sid))
        if failed or sid in explored_fail:
            reason = "model exploration found a deviation" if sid in explored_fail else ""
            verdicts.append(StatementVerdict(statement, Verdict.FAIL, names, reason, failed))
        elif evidence:
            verdicts.append(StatementVerdict(statement, Verdict.PASS, names, evidence=evidence))
        else:
            verdicts.append(_unobserved(statement, names, results))
    return verdicts


def _unobserved(statement: Statement, names: tuple[str, ...],
                results: Sequence[CheckResult]) -> StatementVerdict:
    """NOT APPLICABLE when a legal choice explains the silence, else NOT RUN with why."""
    sid = statement.id
    mine = [r for r in results if sid in r.check.ids]
    choices = sorted({c.choice for r in mine for c in r.choices if not c.ids or sid in c.ids})
    if choices:
        return StatementVerdict(statement, Verdict.NOT_APPLICABLE, names, "; ".join(choices))
    reasons: list[str] = []
    for r in mine:
        cited_here = [f for f in r.findings if f.ids]
        if r.outcome in (Outcome.NOT_RUN, Outcome.ERROR):
            reasons.append(f"{r.check.name}: {r.message}")
        elif cited_here:
            own = [i for f in cited_here for i in f.ids if i in r.check.ids]
            if own:
                reasons.append(f"{r.check.name}: after the failure of {', '.join(own)}")
            else:
                other = sorted({i for f in cited_here for i in f.ids})
                reasons.append(f"{r.check.name}: blocked by {', '.join(other)}")
        elif r.inconclusive:
            reasons.append(f"{r.check.name}: inconclusive: {r.inconclusive[0]}")
        else:
            reasons.append(f"{r.check.name}: ran without observing it (an oracle gap)")
    if not reasons:
        reasons.append("its checks were not selected" if names
                       else "no check of the suite covers it yet")
    return StatementVerdict(statement, Verdict.NOT_RUN, names, "; ".join(sorted(set(reasons))))


def _wanted(only: Sequence[str] | None, protocol: str) -> set[str] | None:
    if not only:
        return None
    registry = REGISTRIES[protocol]
    wanted: set[str] = set()
    for item in only:
        if item in registry:
            wanted.update(registry[item].ids)
        else:
            wanted.add(normalise_id(item))
    return wanted
