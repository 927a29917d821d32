"""``docs/spec/conformance.md``: the statement list joined with the checks that cover it.

The document is generated, never edited: ``mqttref conformance-doc`` writes it
from ``statements-3.1.1.json``, the registered checks and the model's
transitions (passed in by the command, so that this package does not import the
model), and a test fails when the file in the repository is not what the
generator produces. Output is sorted and carries no timestamps, so it only
changes when its sources do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from mqttref.oracle import checks as _checks  # noqa: F401 - registers the checks
from mqttref.oracle import checks5 as _checks5  # noqa: F401 - registers the 5.0 checks
from mqttref.oracle.scenario import REGISTRIES, REGISTRY, Check
from mqttref.oracle.statements import Statement, statements

COMMAND = "mqttref conformance-doc"

_CHAPTERS = {
    "1": "Introduction: data representation",
    "2": "MQTT Control Packet format",
    "3": "MQTT Control Packets",
    "4": "Operational behavior",
    "6": "Using WebSocket as a network transport",
    "7": "Conformance",
}

_CHAPTERS_5 = {**_CHAPTERS, "5": "Security"}


VERDICT_RULES = (
    "## How a verdict is earned",
    "",
    "Every check writes down what it observed; verdicts come from those observations, never"
    " from a check's outcome as a whole (`oracle/evidence.py`, `oracle/runner.py`).",
    "",
    "- **PASS**: in this run, an observation showed the broker meeting this statement: a"
    " requirement that cites it held. The JSON report keeps, for each PASS, the check and the"
    " observation (`evidence`). A check that runs to its end without observing a statement it"
    " lists gives no PASS for it (NOT RUN, \"an oracle gap\").",
    "- **FAIL**: an observation contradicts the statement. The blame goes to the statements that"
    " the failing step cites, and to nothing else, whether or not the check lists them. A"
    " check's statements cut off by the failure are NOT RUN \"after the failure of MQTT-x\";"
    " when the failing step was a setup step citing another statement (the broker did not"
    " answer QoS 2 with PUBREC, say), they are NOT RUN \"blocked by MQTT-x\". A deviation that"
    " cites no statement is an oracle gap, never a FAIL.",
    "- **NOT APPLICABLE**: the broker made a choice the specification allows (a lower granted QoS"
    " [MQTT-3.8.4-6], a 0x80 refusal [MQTT-3.8.4-5], refusing wildcards [MQTT-3.8.3-2], closing on"
    " a PUBLISH it does not authorize [MQTT-3.3.5-2], refusing empty client ids, a MAY-close of"
    " section 1.5.3) that left the statement without a scenario to judge it. The report names"
    " the choice. Where a check can go on at what was granted, it does.",
    "- **NOT TESTABLE**: no client can observe the server's conformance, or the statement binds"
    " the client only. Such a statement can never be FAIL, and no check may list it: the"
    " server's reaction to a client that breaks a client rule is judged by the reaction rules"
    " (MQTT-1.5.3-1, MQTT-2.2.2-2, MQTT-3.1.4-1, MQTT-4.8.0-1).",
    "- **NOT RUN**: none of the above, with the reason (budget, inconclusive scenario, blocked,"
    " not selected).",
    "",
    "Each scenario of a check runs and is judged on its own (`Context.scenario`): a deviation in"
    " one does not stop the others. Before the checks, a capability probe learns the broker's"
    " choices (the \"broker profile\" of the report: maximum granted QoS, QoS 2 PUBLISH accepted,"
    " wildcards, empty client ids, filter characters, long filters, QoS 0 queued offline), and"
    " checks adapt to it. Timing follows the specification's own numbers plus one stated"
    " measurement margin (`Timing.margin`, 0.5 s, scaled by `--time-multiplier`); obligations"
    " with no deadline in the specification (a re-send, a queued message) are waited for"
    " `Timing.obligation` (3 s, scaled) and reported as \"not within N s\". The model"
    " exploration's findings are FAILs of the statements they cite; the transitions it fires"
    " are no evidence. The oracle's power, fault by fault: `scripts/oracle-power`.",
)
"""The rules of the verdicts, as the document states them (enforced by the runner)."""


def checks_by_statement(protocol: str = "3.1.1") -> dict[str, list[Check]]:
    """Statement id -> the checks of ``protocol`` citing it (ids are per protocol)."""
    table: dict[str, list[Check]] = {}
    for check in REGISTRIES[protocol].values():
        for sid in check.ids:
            table.setdefault(sid, []).append(check)
    return table


def coverage(protocol: str = "3.1.1") -> tuple[int, int, list[str]]:
    """(covered, testable, uncovered ids) over the server-side testable statements."""
    covered_ids = checks_by_statement(protocol)
    testable = [s for s in statements(protocol).values() if s.server_side and s.testable]
    uncovered = [s.id for s in testable if s.id not in covered_ids]
    return len(testable) - len(uncovered), len(testable), uncovered


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _statement_row(statement: Statement, checks: Sequence[Check],
                   transitions: Sequence[str]) -> str:
    testable = "yes" if statement.testable else "no: " + statement.note
    shown_id = statement.id
    if statement.appendix_id:
        shown_id += f" (printed {statement.appendix_id})"
    names = ", ".join(f"`{c.name}`" for c in checks) or "-"
    model = ", ".join(transitions) or "-"
    return (f"| {shown_id} | {statement.binds} | {_cell(testable)} | {names} | {_cell(model)} |"
            f" {_cell(statement.text)} |")


def generate(model_transitions: Mapping[str, Sequence[str]], protocol: str = "3.1.1") -> str:
    """The whole document; ``model_transitions`` maps statement ids to transition labels."""
    table = checks_by_statement()
    covered, testable, uncovered = coverage(protocol)
    all_statements = list(statements(protocol).values())
    robustness = sorted(c.name for c in REGISTRY.values() if not c.ids)
    lines = [
        f"# MQTT {protocol} conformance matrix",
        "",
        f"Generated by `{COMMAND}` from `oracle/statements-{protocol}.json` (the"
        " normative statements of Appendix B of the OASIS standard), the checks of"
        " `mqttref check` (`oracle/checks/`) and the transitions of the model"
        " (`model/`). Do not edit: regenerate.",
        "",
        "## Coverage",
        "",
        f"- Statements: {len(all_statements)}; binding the server (alone or with the"
        f" client): {sum(s.server_side for s in all_statements)}; of those, black-box"
        f" testable from a client: {testable}.",
        f"- **Covered by at least one check: {covered} / {testable} server-side testable"
        f" statements ({100 * covered / testable:.0f}%).**",
        f"- Checks: {len(REGISTRY)}, of which {len(robustness)} robustness checks for known"
        f" attacks that no statement names ({', '.join(f'`{n}`' for n in robustness)}).",
    ]
    if uncovered:
        lines.append(f"- Not yet covered: {', '.join(uncovered)}.")
    lines += ["", *VERDICT_RULES]
    lines += [
        "",
        "Columns: *binds* is whom the statement obliges; *testable* is whether a client can"
        " observe a server's conformance to it; *checks* are the `mqttref check` scenarios"
        " that verify it (`mqttref check --only ID` runs them); *model* lists the"
        " statechart transitions of the executable model that cite it. At run time,"
        " `mqttref check` also runs the model exploration (the state machine of"
        " `mqttref.oracle.stateful`, which `tests/stateful` runs against the mqttref"
        " broker) against the target in the budget the suite leaves.",
    ]
    lines += _chapters(all_statements, table, model_transitions,
                       lambda chapter: f"## Chapter {chapter}: {_CHAPTERS.get(chapter, '')}")
    lines += ["", "## Checks", ""]
    lines += _check_table(REGISTRY.values())
    return "\n".join(lines) + "\n"


def _chapters(every: Iterable[Statement], checks: Mapping[str, Sequence[Check]],
              model: Mapping[str, Sequence[str]], heading: Callable[[str], str]) -> list[str]:
    """A table of rows per chapter, under ``heading(chapter)``: one layout for both
    protocols, so that the two matrices read alike."""
    lines: list[str] = []
    current = None
    for statement in every:
        chapter = statement.id.split("-")[1].split(".")[0]
        if chapter != current:
            current = chapter
            lines += [
                "",
                heading(chapter),
                "",
                "| statement | binds | testable | checks | model | text |",
                "|---|---|---|---|---|---|",
            ]
        lines.append(_statement_row(statement, checks.get(statement.id, []),
                                    model.get(statement.id, [])))
    return lines


def _check_table(checks: Iterable[Check]) -> list[str]:
    lines = ["| check | area | statements | what it does |", "|---|---|---|---|"]
    for check in sorted(checks, key=lambda c: (c.group, c.name)):
        ids = ", ".join(check.ids) or "robustness"
        lines.append(f"| `{check.name}` | {check.group} | {ids} | {_cell(check.summary)} |")
    return lines


def generate_5(model: Mapping[str, Sequence[str]]) -> str:
    """The MQTT 5.0 part of the document: coverage, a row per 5.0 statement, the 5.0
    checks. ``model`` maps 5.0 statement ids to what in the model cites them (5.0 chart
    rows, level-5 rules, 3.1.1 rows requiring the same), as the command computes it."""
    protocol = "5.0"
    registry = REGISTRIES[protocol]
    table = checks_by_statement(protocol)
    covered, observable, uncovered = coverage(protocol)
    every = list(statements(protocol).values())
    robustness = sorted(c.name for c in registry.values() if not c.ids)
    cited = sum(1 for s in every if s.server_side and s.testable and model.get(s.id))
    lines = [
        "",
        "# MQTT 5.0 conformance matrix",
        "",
        f"Generated the same way from `oracle/statements-{protocol}.json` (the normative"
        " statements of the OASIS MQTT 5.0 standard, Appendix B), the 5.0 checks of"
        " `mqttref check --protocol 5` (`oracle/checks5/`) and the model's citations"
        " (`statecharts/coverage.py`). A 5.0 id names a 5.0 statement: MQTT-3.1.2-4 here"
        " is not 3.1.1's MQTT-3.1.2-4.",
        "",
        "## Coverage (5.0)",
        "",
        f"- Statements: {len(every)}; binding the server (alone or with the client):"
        f" {sum(s.server_side for s in every)}; of those, observable from a client:"
        f" {observable}.",
        f"- **Checked (at least one check cites it): {covered} / {observable} server-side"
        f" observable statements ({100 * covered / observable:.0f}%).**",
        f"- Cited by the model (a 5.0 chart row, a level-5 rule or a 3.1.1 row requiring the"
        f" same): {cited} / {observable}.",
        f"- Checks: {len(registry)}, of which {len(robustness)} robustness checks"
        f"{': ' + ', '.join(f'`{n}`' for n in robustness) if robustness else ''}.",
    ]
    if uncovered:
        lines.append(f"- Not yet checked: {', '.join(uncovered)}.")
    lines += [
        "",
        "The verdict rules are those above. At run time `mqttref check --protocol 5` also"
        " runs the model exploration at level 5 (`BrokerMachine5`: 5.0 clients beside 3.1.1"
        " ones, keeping to the profile the broker's CONNACK declares) in the budget the"
        " suite leaves; its deviations are FAILs of the 5.0 statements they cite.",
        "",
        "Columns as in the 3.1.1 table; *model* names the 5.0 chart rows (`chart: source"
        " -event-> target`), `level-5 rule` (an id the 5.0 model code raises or tabulates)"
        " and `3.1.1 row` (a 3.1.1 chart row whose statement 5.0 keeps word for word in"
        " requirement, `oracle/statements-3.1.1-to-5.0.json`).",
    ]
    lines += _chapters(every, table, model, lambda chapter: (
        f"## MQTT 5.0 chapter {chapter}: {_CHAPTERS_5.get(chapter, '')}"))
    lines += ["", "## Checks (5.0)", ""]
    lines += _check_table(registry.values())
    return "\n".join(lines) + "\n"
