"""docs/spec/conformance.md is generated and current."""

from __future__ import annotations

from pathlib import Path

from mqttref.commands.conformance_doc import render
from mqttref.oracle.docgen import coverage
from mqttref.oracle.statements import statements

DOC = Path(__file__).resolve().parents[2] / "docs" / "spec" / "conformance.md"


def test_conformance_matrix_is_current_run_mqttref_conformance_doc_if_not() -> None:
    assert DOC.read_text("utf-8") == render(), "run: mqttref conformance-doc"


def test_conformance_matrix_reports_the_coverage_figure() -> None:
    assert "Covered by at least one check: 97 / 97 server-side testable statements" in render()


def _statement_rows(text: str) -> list[str]:
    return [line.split(" |")[0][2:] for line in text.splitlines() if line.startswith("| MQTT-")]


def test_conformance_matrix_lists_every_statement_once() -> None:
    v311, v5 = render().split("\n# MQTT 5.0 conformance matrix\n")
    assert len(_statement_rows(v311)) == 141
    assert [row.split(" (printed")[0] for row in _statement_rows(v5)] == list(statements("5.0"))


def test_the_5_0_matrix_reports_checked_over_observable() -> None:
    covered, observable, _ = coverage("5.0")
    assert observable == sum(1 for s in statements("5.0").values()
                             if s.server_side and s.testable)
    assert (f"Checked (at least one check cites it): {covered} / {observable} server-side"
            " observable statements") in render()
    assert "## Checks (5.0)" in render()
