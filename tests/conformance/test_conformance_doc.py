"""docs/spec/conformance.md is generated and current."""

from __future__ import annotations

from pathlib import Path

from mqttref.commands.conformance_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "spec" / "conformance.md"


def test_conformance_matrix_is_current_run_mqttref_conformance_doc_if_not() -> None:
    assert DOC.read_text("utf-8") == render(), "run: mqttref conformance-doc"


def test_conformance_matrix_reports_the_coverage_figure() -> None:
    assert "Covered by at least one check: 97 / 97 server-side testable statements" in render()


def test_conformance_matrix_lists_every_statement_once() -> None:
    rows = [line for line in render().splitlines() if line.startswith("| MQTT-")]
    assert len(rows) == 141
