"""The figure of issue 16: 5.0 statements the model cites, against the observable ones."""

from __future__ import annotations

from mqttref.oracle.statements import statements
from mqttref.statecharts.coverage import (
    carried_over,
    chart_citations,
    observable,
    rule_citations,
    summary,
    uncited,
)


def test_every_id_the_5_0_model_uses_is_a_5_0_statement() -> None:
    known = statements("5.0")
    assert sorted((chart_citations() | rule_citations()) - set(known)) == []


def test_rows_carried_over_from_3_1_1_name_5_0_statements() -> None:
    assert carried_over() <= set(statements("5.0"))
    assert "MQTT-4.3.2-1" in carried_over()  # the QoS 1 sender's rows stand at both levels


def test_the_summary_counts_what_uncited_leaves_out() -> None:
    cited = len(observable()) - len(uncited())
    assert summary().startswith(f"MQTT 5.0 in the model: {cited} / {len(observable())} ")
