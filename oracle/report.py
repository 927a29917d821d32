"""The verdicts as text for people, JSON for programs and JUnit XML for CI.

All three are written from the same ``Report`` so they cannot disagree. The
text ends with the one summary line ``N checked, P passed, F failed``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any, TextIO

import attrs

from mqttref.oracle.capabilities import BrokerProfile, BrokerProfile5
from mqttref.oracle.exploration import ExplorationFailure, ExplorationOutcome
from mqttref.oracle.runner import CheckResult, Outcome, StatementVerdict, Verdict
from mqttref.oracle.statements import statements


@attrs.frozen
class Report:
    target: str
    protocol: str
    seed: int
    seconds: float
    verdicts: tuple[StatementVerdict, ...]
    results: tuple[CheckResult, ...]
    exploration: ExplorationOutcome
    profile: BrokerProfile | BrokerProfile5 = attrs.field(factory=BrokerProfile)
    """The 3.1.1 profile (choices probed), or at 5.0 what the CONNACK declared."""
    full_run_seconds: float | None = None
    """When the budget cut the suite short: how long a run of every check would take."""
    transport: str = "TCP"
    """How the oracle reached the broker (``Connection.describe_transport``)."""
    authentication: str = "anonymous (no user name)"
    """The user names the oracle connected with (never a password)."""

    def count(self, verdict: Verdict) -> int:
        return sum(v.verdict is verdict for v in self.verdicts)

    @property
    def robustness(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.check.ids)

    @property
    def oracle_errors(self) -> tuple[CheckResult, ...]:
        """Checks the oracle could not run to a verdict because of its own bug."""
        return tuple(r for r in self.results if r.outcome is Outcome.ERROR)

    @property
    def failed(self) -> bool:
        """A FAIL, a robustness check failed, or the model exploration found a deviation
        (even one citing no statement of this protocol's list: it is one all the same)."""
        return (self.count(Verdict.FAIL) > 0 or bool(self.exploration.failures)
                or any(r.outcome is Outcome.FAIL for r in self.robustness))

    def explored(self, sid: str) -> tuple[ExplorationFailure, ...]:
        """The exploration's deviations blamed on statement ``sid``."""
        return tuple(f for f in self.exploration.failures if sid in f.ids)

    def summary_line(self) -> str:
        passed, failed = self.count(Verdict.PASS), self.count(Verdict.FAIL)
        return f"{passed + failed} checked, {passed} passed, {failed} failed"


def _failure_lines(result: CheckResult, sid: str | None = None) -> list[str]:
    """The findings of ``result`` (those blaming ``sid`` when given), then its trace."""
    label = "oracle error in" if result.outcome is Outcome.ERROR else "check"
    findings = [f for f in result.findings if sid is None or sid in f.ids]
    if findings:
        lines = [f"      {label} {result.check.name}"
                 f"{f' [{f.scenario}]' if f.scenario else ''}: {f.message}" for f in findings]
    else:
        lines = [f"      {label} {result.check.name}: {result.message}"]
    lines += [f"        {line}" for line in result.trace]
    return lines


def write_text(report: Report, out: TextIO, *, verbose: bool = False) -> None:
    out.write(f"mqttref check: MQTT {report.protocol} broker at {report.target}"
              f" (seed {report.seed})\n")
    out.write(f"transport: {report.transport}\n")
    out.write(f"authentication: {report.authentication}\n")
    out.write("broker profile:\n")
    out.write("".join(f"  {line}\n" for line in report.profile.lines()))
    for v in report.verdicts:
        tag = f"{v.verdict.value:<14} {v.statement.id:<14}"
        if v.verdict is Verdict.PASS:
            seen = sorted({e.check for e in v.evidence})
            out.write(f"{tag} observed in {', '.join(seen)}\n")
            if verbose:
                out.write("".join(f"      {e.check}: {e.observation.text}\n"
                                  for e in v.evidence[:3]))
        elif v.verdict is Verdict.FAIL:
            out.write(f"{tag} {v.statement.text[:90]}\n")
            for result in v.failures:
                out.write("\n".join(_failure_lines(result, v.statement.id)) + "\n")
            if v.reason:
                out.write(f"      {v.reason} (below)\n")
        else:
            out.write(f"{tag} {v.reason}\n")
    robust = report.robustness
    if robust:
        out.write("robustness (no normative statement; either outcome allowed where the spec"
                  " is silent):\n")
        for result in robust:
            out.write(f"{result.outcome.value:<12} {result.check.name}\n")
            if result.outcome in (Outcome.FAIL, Outcome.ERROR):
                out.write("\n".join(_failure_lines(result)) + "\n")
    for result in report.oracle_errors:
        out.write(f"oracle error (no statement blamed) in {result.check.name}:"
                  f" {result.message}\n")
    if report.full_run_seconds is not None:
        out.write(f"the budget cut the suite short: a run of every check needs about"
                  f" {report.full_run_seconds:.0f}s (use --budget)\n")
    if verbose:
        out.write("checks:\n")
        for result in report.results:
            ids = " ".join(result.check.ids) or "robustness"
            out.write(f"  {result.outcome.value:<8} {result.seconds:6.2f}s {result.check.name}"
                      f" [{ids}]\n")
    out.write(f"exploration: {report.exploration.note}\n")
    for failure in report.exploration.failures:
        out.write("".join(f"  {line}\n" for line in _exploration_lines(report, failure)))
    for failure in report.exploration.inconclusive:
        out.write("".join(f"  {line}\n" for line in _inconclusive_lines(report, failure)))
    out.write(f"{report.summary_line()}\n")


def _exploration_lines(report: Report, failure: ExplorationFailure) -> list[str]:
    """A deviation the exploration found: the statements it breaks, word for word, the
    model's verdict, how to replay it, and the minimal sequence with its transcript."""
    known = statements(report.protocol)
    lines = [f"deviation at MQTT {report.protocol} [{' '.join(failure.ids)}]: {failure.message}"
             f" (replay with --seed {failure.seed})"]
    lines += [f"  {sid}: {known[sid].text}" for sid in failure.ids if sid in known]
    return [*lines, *(f"  {line}" for line in failure.trace)]


def _inconclusive_lines(report: Report, failure: ExplorationFailure) -> list[str]:
    """A disagreement the exploration observed once and not on the replay: no verdict
    (no statement is blamed), but all of it, as a deviation is printed, to diagnose."""
    lines = [f"inconclusive at MQTT {report.protocol} (observed once, not on the replay; no"
             f" verdict) [{' '.join(failure.ids)}]: {failure.message} (seed {failure.seed})"]
    return [*lines, *(f"  {line}" for line in failure.trace)]


def _result_json(result: CheckResult) -> dict[str, Any]:
    return {
        "check": result.check.name,
        "ids": list(result.check.ids),
        "outcome": result.outcome.value,
        "message": result.message,
        "seconds": round(result.seconds, 3),
        "findings": [attrs.asdict(f) for f in result.findings],
        "choices": [attrs.asdict(c) for c in result.choices],
        "inconclusive": list(result.inconclusive),
        "trace": list(result.trace),
    }


def to_json(report: Report) -> dict[str, Any]:
    return {
        "target": report.target,
        "protocol": report.protocol,
        "seed": report.seed,
        "seconds": round(report.seconds, 3),
        "transport": report.transport,
        "authentication": report.authentication,
        "summary": {
            "checked": report.count(Verdict.PASS) + report.count(Verdict.FAIL),
            "passed": report.count(Verdict.PASS),
            "failed": report.count(Verdict.FAIL),
            "not_applicable": report.count(Verdict.NOT_APPLICABLE),
            "not_testable": report.count(Verdict.NOT_TESTABLE),
            "not_run": report.count(Verdict.NOT_RUN),
            "oracle_errors": len(report.oracle_errors),
        },
        "profile": {**attrs.asdict(report.profile), "choices": report.profile.choices()},
        "full_run_seconds": report.full_run_seconds,
        "statements": [
            {
                "id": v.statement.id,
                "protocol": report.protocol,
                "verdict": v.verdict.value,
                "checks": list(v.checks),
                "reason": v.reason,
                "evidence": [{"check": e.check, "observation": e.observation.text,
                              "scenario": e.observation.scenario} for e in v.evidence],
                "failures": [_result_json(r) for r in v.failures],
                "explored": [attrs.asdict(f) for f in report.explored(v.statement.id)],
            }
            for v in report.verdicts
        ],
        "robustness": [_result_json(r) for r in report.robustness],
        "checks": [_result_json(r) for r in report.results],
        "exploration": {
            "ran": report.exploration.ran,
            "note": report.exploration.note,
            "covered": list(report.exploration.covered),
            "failures": [{**attrs.asdict(f), "protocol": report.protocol}
                         for f in report.exploration.failures],
            "inconclusive": [{**attrs.asdict(f), "protocol": report.protocol}
                             for f in report.exploration.inconclusive],
        },
    }


def write_json(report: Report | Sequence[Report], path: str,
               refused: Sequence[tuple[str, str]] = ()) -> None:
    """One report as an object; the reports of ``--protocol all`` as
    ``{"reports": [...], "refused": [...]}``, one object per protocol judged, in the order
    they ran, and one per level the broker refused (``protocol``, ``how``), so that a
    reader of the file alone knows a level was left out and why, as the text says."""
    data = (to_json(report) if isinstance(report, Report)
            else {"reports": [to_json(r) for r in report],
                  "refused": [{"protocol": p, "how": how} for p, how in refused]})
    with open(path, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1, ensure_ascii=False)
        out.write("\n")


def _testcase(suite: ET.Element, classname: str, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=name,
                         time=f"{seconds:.3f}")


def _failure_text(results: Sequence[CheckResult], sid: str | None = None) -> str:
    return "\n".join(line for r in results for line in _failure_lines(r, sid))


def _explored_text(report: Report, sid: str) -> str:
    return "\n".join(line for f in report.explored(sid) for line in _exploration_lines(report, f))


def write_junit(report: Report | Sequence[Report], path: str,
                refused: Sequence[tuple[str, str]] = ()) -> None:
    """A ``testsuite`` per report; several (``--protocol all``) under ``testsuites``, with
    a level the broker refused as an empty suite whose ``skipped`` property says how."""
    if isinstance(report, Report):
        root = _junit_suite(report)
    else:
        root = ET.Element("testsuites", name="mqttref-check")
        root.extend(_junit_suite(r) for r in report)
        for protocol, how in refused:
            suite = ET.SubElement(root, "testsuite", name=f"mqttref-check MQTT {protocol}",
                                  tests="0", failures="0", skipped="0")
            properties = ET.SubElement(suite, "properties")
            ET.SubElement(properties, "property", name="skipped",
                          value=f"the broker does not accept a {protocol} CONNECT ({how})")
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _junit_suite(report: Report) -> ET.Element:
    suite = ET.Element("testsuite", name=f"mqttref-check MQTT {report.protocol}",
                       tests=str(len(report.verdicts)),
                       failures=str(report.count(Verdict.FAIL)),
                       skipped=str(report.count(Verdict.NOT_RUN)
                                   + report.count(Verdict.NOT_TESTABLE)
                                   + report.count(Verdict.NOT_APPLICABLE)),
                       time=f"{report.seconds:.3f}")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("target", report.target), ("transport", report.transport),
                        ("authentication", report.authentication)):
        ET.SubElement(properties, "property", name=name, value=value)
    classname = f"MQTT {report.protocol} at {report.target}"
    for v in report.verdicts:
        seconds = sum(r.seconds for r in v.failures)
        case = _testcase(suite, classname, v.statement.id, seconds)
        if v.verdict is Verdict.FAIL:
            explored = report.explored(v.statement.id)
            messages = [r.message for r in v.failures]
            messages += [f"model exploration: {f.message}" for f in explored]
            failure = ET.SubElement(case, "failure", message="; ".join(messages)[:500])
            failure.text = "\n".join(text for text in (
                _failure_text(v.failures, v.statement.id),
                _explored_text(report, v.statement.id)) if text)
        elif v.verdict is not Verdict.PASS:
            ET.SubElement(case, "skipped", message=f"{v.verdict.value}: {v.reason}")
    for result in report.robustness:
        case = _testcase(suite, f"{classname} robustness", result.check.name, result.seconds)
        if result.outcome in (Outcome.FAIL, Outcome.ERROR):
            failure = ET.SubElement(case, "failure", message=result.message[:500])
            failure.text = _failure_text([result])
        elif result.outcome is Outcome.NOT_RUN:
            ET.SubElement(case, "skipped", message=result.message)
    return suite
